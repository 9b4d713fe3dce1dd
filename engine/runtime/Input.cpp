#include "runtime/Input.h"

#include "io/MappedFile.h"

#include "Error.h"
#include "runtime/Prompts.h"
#include "tokenizers/Tokenizer.h"
#include "util/Resources.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace statescope {

namespace {

std::string absolute(const std::string& path)
{
    std::error_code ec;
    const fs::path p = fs::absolute(path, ec);
    return ec ? path : p.lexically_normal().string();
}

} // namespace

namespace {
constexpr uint64_t kMaxInputBytes = 2ull << 30;
} // namespace

std::string readWholeFile(const std::string& path, const char* what)
{
    std::error_code ec;
    if (!fs::exists(path, ec))
        throw Error(path, std::string(what) + " does not exist");
    if (fs::is_directory(path, ec))
        throw Error(path, std::string(what) + " is a folder, not a file");
    // Regular files only (a FIFO would wait forever, /dev/zero never ends), and within a size the
    // tokenizer and the run can take.
    const auto file = MappedFile::open(path);
    if (file->size() > kMaxInputBytes)
        throw Error(path, "file size", "at most 2 GiB for a " + std::string(what),
                    std::to_string(file->size()) + " bytes");
    return std::string(reinterpret_cast<const char*>(file->data()), file->size());
}

std::vector<int32_t> readIdsFile(const std::string& path)
{
    const std::string text = readWholeFile(path, "ids file");
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
            ++i;
        if (i >= text.size())
            break;
        size_t j = i;
        while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j])))
            ++j;
        const std::string word = text.substr(i, j - i);
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(word.c_str(), &end, 10);
        if (end != word.c_str() + word.size() || errno == ERANGE || v < 0 || v > INT32_MAX)
            throw Error(path, "token " + std::to_string(ids.size()), "a non-negative integer id",
                        "\"" + word + "\"");
        ids.push_back(static_cast<int32_t>(v));
        i = j;
    }
    return ids;
}

std::string chooseTokenizerPath(const std::string& requested,
                                const std::optional<std::string>& modelTokenizer)
{
    if (!requested.empty())
        return requested;
    if (modelTokenizer)
        return *modelTokenizer;
    return builtinTokenizerPath();
}

void locateNeedle(PreparedInput* in)
{
    const std::string& text = in->text;
    const std::string opening = "The passkey is ";
    const size_t begin = text.find(opening);
    if (begin == std::string::npos || in->offsets.size() != 2 * in->ids.size())
        return;
    size_t k = begin + opening.size();
    const size_t keyBegin = k;
    while (k < text.size() && text[k] >= '0' && text[k] <= '9')
        ++k;
    const std::string key = text.substr(keyBegin, k - keyBegin);
    const std::string rest = ". Remember it. " + key + " is the passkey.";
    // One needle, whole: a text that quotes the template elsewhere is not a passkey prompt.
    if (key.empty() || text.compare(k, rest.size(), rest) != 0 || text.find(opening, k) != std::string::npos)
        return;
    const int64_t b = int64_t(begin), e = int64_t(k + rest.size());
    int64_t first = -1, last = -1;
    for (size_t t = 0; t < in->ids.size(); ++t) {
        const int64_t tb = in->offsets[2 * t], te = in->offsets[2 * t + 1];
        if (te > b && tb < e) {
            if (first < 0)
                first = int64_t(t);
            last = int64_t(t);
        }
    }
    if (first < 0)
        return;
    in->source.passkey = key;
    in->source.needleFirst = first;
    in->source.needleLast = last;
}

PreparedInput prepareInput(const InputRequest& r, const std::optional<std::string>& modelTokenizer,
                           const TokenizerLoader& loadTokenizer)
{
    const int given = !r.textFile.empty() + !r.idsFile.empty() + !r.prompt.empty() + r.text.has_value();
    if (given != 1)
        throw Error("input", "input", "one of a text file, an ids file, a prompt or typed text",
                    given == 0 ? "none" : std::to_string(given) + " of them");
    PreparedInput in;
    if (!r.idsFile.empty()) {
        in.ids = readIdsFile(r.idsFile);
        in.source.kind = "ids";
        in.source.path = absolute(r.idsFile);
        in.description = "ids: " + r.idsFile;
        if (in.ids.empty())
            throw Error(r.idsFile, "input is empty: no token ids");
        return in;
    }
    std::string source; // names the input in errors
    if (!r.textFile.empty()) {
        in.text = readWholeFile(r.textFile, "text file");
        in.source.kind = "text";
        in.source.path = absolute(r.textFile);
        in.description = "text: " + r.textFile;
        source = r.textFile;
        if (in.text.empty())
            throw Error(r.textFile, "input is empty");
    } else if (!r.prompt.empty()) {
        in.text = promptFromSpec(r.prompt);
        in.source.kind = "prompt";
        in.source.prompt = r.prompt;
        in.description = "prompt: " + r.prompt;
        source = "prompt " + r.prompt;
    } else {
        in.text = *r.text;
        in.source.kind = "text";
        in.description = "text: " + (r.textLabel.empty() ? std::string("typed text") : r.textLabel);
        source = r.textLabel.empty() ? "input" : r.textLabel;
        if (in.text.empty())
            throw Error(source, "input is empty");
    }
    const std::string tokenizerPath = chooseTokenizerPath(r.tokenizer, modelTokenizer);
    std::shared_ptr<const Tokenizer> tokenizer =
        loadTokenizer ? loadTokenizer(tokenizerPath)
                      : std::make_shared<const Tokenizer>(Tokenizer::fromFile(tokenizerPath));
    Encoding enc;
    try {
        enc = tokenizer->encode(in.text);
    } catch (const Error& e) {
        throw Error(source, e.what());
    }
    in.ids = std::move(enc.ids);
    in.offsets = std::move(enc.offsets);
    in.source.tokenizerPath = absolute(tokenizerPath);
    in.source.tokenizer =
        tokenizer->sourceName() + " (" + tokenizer->kind() + ", " + std::to_string(tokenizer->vocabSize()) + " tokens)";
    in.description +=
        " (" + std::to_string(in.text.size()) + " bytes, tokenizer " + tokenizer->sourceName() + ")";
    if (in.ids.empty())
        throw Error(source, "input is empty after tokenization");
    locateNeedle(&in);
    return in;
}

} // namespace statescope
