#include "runtime/Prompts.h"

#include "Error.h"

#include <cstdio>
#include <random>
#include <vector>

namespace statescope {

const char* const kCapitalsSentence =
    "The capital of China is Beijing. The capital of USA is Washington. The capital of Norway is Oslo. ";

const char* const kPasskeyPrefix =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it.\n\n";
const char* const kPasskeyFiller =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n";
const char* const kPasskeySuffix = "\nWhat is the pass key? The passkey is";

std::string passkeyNeedle(const std::string& key)
{
    return "The passkey is " + key + ". Remember it. " + key + " is the passkey.\n";
}

namespace {

int64_t parseCount(const std::string& spec, const std::string& text)
{
    try {
        size_t used = 0;
        const long long v = std::stoll(text, &used);
        if (used != text.size() || v <= 0)
            throw std::invalid_argument(text);
        return v;
    } catch (const std::exception&) {
        throw Error("prompt", spec, "a positive count after the colon", "\"" + text + "\"");
    }
}
} // namespace

std::string newlinesPrompt(int64_t n)
{
    return std::string(static_cast<size_t>(n), '\n');
}

std::string capitalsPrompt(int64_t n)
{
    std::string s;
    const std::string sentence = kCapitalsSentence;
    s.reserve(sentence.size() * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
        s += sentence;
    return s;
}

PasskeyPrompt passkeyPrompt(int64_t blocks, double depth, uint64_t seed)
{
    PasskeyPrompt p;
    std::mt19937_64 rng(seed);
    char key[8];
    std::snprintf(key, sizeof key, "%05d", static_cast<int>(rng() % 100000));
    p.passkey = key;
    blocks = std::max<int64_t>(1, blocks);
    depth = std::min(1.0, std::max(0.0, depth));
    p.needleBlock = static_cast<int64_t>(depth * static_cast<double>(blocks - 1));
    const std::string needle = passkeyNeedle(p.passkey);
    p.text = kPasskeyPrefix;
    for (int64_t i = 0; i < blocks; ++i)
        p.text += i == p.needleBlock ? needle : std::string(kPasskeyFiller);
    p.text += kPasskeySuffix;
    return p;
}

std::string promptFromSpec(const std::string& spec)
{
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t i = 0; i <= spec.size(); ++i)
        if (i == spec.size() || spec[i] == ':') {
            parts.push_back(spec.substr(start, i - start));
            start = i + 1;
        }
    const std::string& kind = parts[0];
    if (kind == "newlines" && parts.size() == 2)
        return newlinesPrompt(parseCount(spec, parts[1]));
    if (kind == "capitals" && parts.size() == 2)
        return capitalsPrompt(parseCount(spec, parts[1]));
    if (kind == "passkey" && parts.size() >= 2 && parts.size() <= 4) {
        double depth = 0.5;
        uint64_t seed = 0;
        try {
            if (parts.size() >= 3)
                depth = std::stod(parts[2]);
            if (parts.size() == 4)
                seed = std::stoull(parts[3]);
        } catch (const std::exception&) {
            throw Error("prompt", spec, "passkey:BLOCKS[:DEPTH[:SEED]]", spec);
        }
        return passkeyPrompt(parseCount(spec, parts[1]), depth, seed).text;
    }
    throw Error("prompt", "prompt", "newlines:N, capitals:N or passkey:BLOCKS[:DEPTH[:SEED]]",
                "\"" + spec + "\"");
}

} // namespace statescope
