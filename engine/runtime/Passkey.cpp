#include "runtime/Passkey.h"

#include "Error.h"
#include "runtime/Prompts.h"
#include "runtime/Runner.h"
#include "tokenizers/Tokenizer.h"
#include "trace/Hdf5Util.h"
#include "trace/TraceFile.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include <unistd.h>

namespace statescope {

namespace {

using h5::Hid;

constexpr const char* kFormat = "statescope-passkey";
constexpr int64_t kFormatVersion = 1;
constexpr size_t kPredictionBytes = 64; // 5 greedy tokens; longer ones are cut

uint64_t splitMix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

int64_t tokenCount(const Tokenizer& tokenizer, const std::string& text)
{
    return static_cast<int64_t>(tokenizer.encode(text).ids.size());
}

int64_t parseLength(const std::string& spec, std::string word)
{
    int64_t scale = 1;
    if (!word.empty() && (word.back() == 'K' || word.back() == 'k')) {
        scale = 1024;
        word.pop_back();
    } else if (!word.empty() && (word.back() == 'M' || word.back() == 'm')) {
        scale = 1024 * 1024;
        word.pop_back();
    }
    size_t used = 0;
    long long v = 0;
    try {
        v = std::stoll(word, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (word.empty() || used != word.size() || v <= 0 || v > (int64_t(1) << 40) / scale)
        throw Error("lengths", spec, "token counts such as 1K:16K:1K, 1024,4096 or 8K", "\"" + spec + "\"");
    return v * scale;
}

// Fixed-length string datasets: no global heap (see TraceWriter), readable by h5py as bytes.
Hid stringType(size_t size)
{
    Hid t(H5Tcopy(H5T_C_S1));
    H5Tset_size(t.get(), size);
    H5Tset_strpad(t.get(), H5T_STR_NULLPAD);
    H5Tset_cset(t.get(), H5T_CSET_UTF8);
    return t;
}

void writeDataset(const std::string& path, hid_t loc, const char* name, hid_t fileType, hid_t memType,
                  const std::vector<hsize_t>& dims, const void* data)
{
    Hid space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
    Hid d(H5Dcreate2(loc, name, fileType, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (!space.valid() || !d.valid() || H5Dwrite(d.get(), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        throw Error(path, std::string("cannot write ") + name + ": " + h5::errorDetail());
}

template <typename T>
std::vector<T> readDataset(const std::string& path, hid_t loc, const char* name, hid_t memType,
                           size_t expected, size_t valueBytes = sizeof(T))
{
    Hid d(H5Dopen2(loc, name, H5P_DEFAULT));
    if (!d.valid())
        throw Error(path, std::string(name), "a dataset", "nothing readable: " + h5::errorDetail());
    Hid space(H5Dget_space(d.get()));
    const std::vector<hsize_t> dims = h5::spaceDims(path, space.get(), name);
    if (dims.size() != 1 || dims[0] != expected)
        throw Error(path, std::string(name) + " shape", "[" + std::to_string(expected) + "]",
                    dims.empty() ? "a scalar"
                                 : "[" + std::to_string(dims[0]) + (dims.size() > 1 ? ", ...]" : "]"));
    std::vector<T> out(expected * valueBytes / sizeof(T));
    if (expected > 0 && H5Dread(d.get(), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
        throw Error(path, std::string("cannot read ") + name + ": " + h5::errorDetail());
    return out;
}

std::string fixedString(const char* p, size_t size)
{
    return std::string(p, strnlen(p, size));
}

} // namespace

PasskeyFileLock::PasskeyFileLock(const std::string& path) : m_lock(path + ".lock", FileLock::Mode::Try)
{
    if (!m_lock.locked())
        throw Error(path, "another passkey sweep is writing this file now: choose another --out, or wait for "
                          "that sweep to end");
}

std::string passkeyFor(uint64_t seed, int64_t length, int64_t index)
{
    const uint64_t x = splitMix(splitMix(seed) ^ splitMix(static_cast<uint64_t>(length) * 0x100000001B3ull) ^
                                static_cast<uint64_t>(index));
    char key[8];
    std::snprintf(key, sizeof key, "%05u", static_cast<unsigned>(x % 100000));
    return key;
}

PasskeySample makePasskeySample(const Tokenizer& tokenizer, int64_t length, int64_t index, int64_t samples,
                                uint64_t seed)
{
    if (samples < 1 || index < 0 || index >= samples)
        throw Error("passkey", "sample index", "in [0, " + std::to_string(samples) + ")",
                    std::to_string(index));
    PasskeySample s;
    s.length = length;
    s.index = index;
    s.depth = (static_cast<double>(index) + 0.5) / static_cast<double>(samples);
    s.passkey = passkeyFor(seed, length, index);
    const int64_t frame = tokenCount(tokenizer, kPasskeyPrefix) + tokenCount(tokenizer, kPasskeySuffix);
    const int64_t block = std::max<int64_t>(1, tokenCount(tokenizer, kPasskeyFiller));
    s.blocks = (length - frame) / block;
    if (s.blocks < 1)
        throw Error("passkey", "length",
                    "at least " + std::to_string(frame + block) +
                        " tokens (prefix, suffix and one block of this tokenizer)",
                    std::to_string(length));
    s.needleBlock = static_cast<int64_t>(s.depth * static_cast<double>(s.blocks - 1));
    const std::string needle = passkeyNeedle(s.passkey);
    const std::string filler = kPasskeyFiller;
    s.text = kPasskeyPrefix;
    size_t needleBegin = 0;
    for (int64_t i = 0; i < s.blocks; ++i) {
        if (i == s.needleBlock) {
            needleBegin = s.text.size();
            s.text += needle;
        } else {
            s.text += filler;
        }
    }
    s.text += kPasskeySuffix;
    const Encoding enc = tokenizer.encode(s.text);
    s.ids = enc.ids;
    // The needle's sentence, its newline left out: the tokens that hold the key.
    const auto b = static_cast<int64_t>(needleBegin),
               e = static_cast<int64_t>(needleBegin + needle.size() - 1);
    for (size_t t = 0; t < s.ids.size(); ++t) {
        if (enc.offsets[2 * t + 1] > b && enc.offsets[2 * t] < e) {
            if (s.needleFirst < 0)
                s.needleFirst = static_cast<int64_t>(t);
            s.needleLast = static_cast<int64_t>(t);
        }
    }
    return s;
}

int64_t passkeyAnswerTokens(const Tokenizer& tokenizer)
{
    return std::max<int64_t>(5, tokenCount(tokenizer, " 00000"));
}

bool passkeyCorrect(const std::string& prediction, const std::string& passkey)
{
    return !passkey.empty() && prediction.find(passkey) != std::string::npos;
}

std::vector<int64_t> parseLengths(const std::string& spec)
{
    std::vector<int64_t> out;
    const size_t colon = spec.find(':');
    if (colon != std::string::npos) {
        const size_t second = spec.find(':', colon + 1);
        const int64_t from = parseLength(spec, spec.substr(0, colon));
        const int64_t to =
            parseLength(spec, spec.substr(colon + 1, second == std::string::npos ? std::string::npos
                                                                                 : second - colon - 1));
        const int64_t step = second == std::string::npos ? from : parseLength(spec, spec.substr(second + 1));
        if (to < from || (to - from) / step > 100000)
            throw Error("lengths", spec, "FROM:TO:STEP with FROM <= TO and at most 100000 lengths",
                        "\"" + spec + "\"");
        for (int64_t v = from; v <= to; v += step)
            out.push_back(v);
        return out;
    }
    size_t start = 0;
    while (start <= spec.size()) {
        const size_t comma = spec.find(',', start);
        out.push_back(parseLength(
            spec, spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
        if (comma == std::string::npos)
            break;
        start = comma + 1;
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::vector<double> passkeyGrid(const std::vector<PasskeyResult>& results,
                                const std::vector<int64_t>& lengths, int bins)
{
    bins = std::max(bins, 1);
    std::map<int64_t, size_t> row;
    for (size_t i = 0; i < lengths.size(); ++i)
        row[lengths[i]] = i;
    std::vector<double> hits(lengths.size() * static_cast<size_t>(bins), 0.0), counts(hits.size(), 0.0);
    for (const PasskeyResult& r : results) {
        const auto it = row.find(r.length);
        if (it == row.end())
            continue;
        const int bin = std::clamp(static_cast<int>(std::floor(r.depth * bins)), 0, bins - 1);
        const size_t k = it->second * static_cast<size_t>(bins) + static_cast<size_t>(bin);
        hits[k] += r.correct ? 1.0 : 0.0;
        counts[k] += 1.0;
    }
    for (size_t k = 0; k < hits.size(); ++k)
        hits[k] = counts[k] > 0 ? hits[k] / counts[k] : std::numeric_limits<double>::quiet_NaN();
    return hits;
}

std::vector<double> passkeyLastK(const std::vector<PasskeyResult>& results,
                                 const std::vector<int64_t>& lengths, int64_t k)
{
    std::map<int64_t, size_t> row;
    for (size_t i = 0; i < lengths.size(); ++i)
        row[lengths[i]] = i;
    std::vector<double> hits(lengths.size(), 0.0), counts(lengths.size(), 0.0);
    for (const PasskeyResult& r : results) {
        const auto it = row.find(r.length);
        if (it == row.end() || r.needleFirst < 0 || r.promptTokens - r.needleFirst > k)
            continue;
        hits[it->second] += r.correct ? 1.0 : 0.0;
        counts[it->second] += 1.0;
    }
    for (size_t i = 0; i < hits.size(); ++i)
        hits[i] = counts[i] > 0 ? hits[i] / counts[i] : std::numeric_limits<double>::quiet_NaN();
    return hits;
}

int64_t passkeyRecallLength(const std::vector<PasskeyResult>& results, const std::vector<int64_t>& lengths,
                            double threshold)
{
    int64_t best = 0;
    for (const int64_t length : lengths) {
        double hits = 0, n = 0;
        for (const PasskeyResult& r : results)
            if (r.length == length) {
                hits += r.correct ? 1.0 : 0.0;
                n += 1.0;
            }
        if (n > 0 && hits / n >= threshold)
            best = std::max(best, length);
    }
    return best;
}

void writePasskeyFile(const std::string& path, const PasskeySettings& settings,
                      const std::vector<PasskeyResult>& results)
{
    h5::quiet();
    const std::string tmp = path + ".partial";
    {
        Hid file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
        if (!file.valid())
            throw Error(tmp, "cannot create the passkey file: " + h5::errorDetail());
        const hid_t f = file.get();
        std::string error;
        auto text = [&](const char* name, const std::string& value) {
            if (!h5::writeFixedStringAttribute(f, name, value, &error))
                throw Error(tmp, std::string("cannot write attribute ") + name + ": " + error);
        };
        auto integer = [&](const char* name, int64_t value) {
            if (!h5::writeIntAttribute(f, name, H5T_STD_I64LE, value, true, &error))
                throw Error(tmp, std::string("cannot write attribute ") + name + ": " + error);
        };
        text("format", kFormat);
        integer("format_version", kFormatVersion);
        text("model", settings.model);
        text("tokenizer", settings.tokenizer);
        integer("seed", static_cast<int64_t>(settings.seed));
        integer("samples", settings.samples);
        integer("max_new_tokens", settings.maxNewTokens);
        text("mitigation", settings.mitigation);
        text("template_prefix", kPasskeyPrefix);
        text("template_filler", kPasskeyFiller);
        text("template_needle", passkeyNeedle("{passkey}"));
        text("template_suffix", kPasskeySuffix);
        text("scoring", "correct when the decoded greedy tokens contain the passkey's 5 digits");
        text("software_version", std::string("statescope ") + STATESCOPE_VERSION);

        const std::vector<hsize_t> nLengths{settings.lengths.size()};
        writeDataset(tmp, f, "lengths", H5T_STD_I64LE, H5T_NATIVE_INT64, nLengths, settings.lengths.data());

        const size_t n = results.size();
        std::vector<int64_t> length(n), index(n), promptTokens(n), needleFirst(n), needleLast(n);
        std::vector<double> depth(n);
        std::vector<uint8_t> correct(n);
        std::vector<char> passkeys(n * 5 + 1, '\0'), predictions(n * kPredictionBytes + 1, '\0');
        for (size_t i = 0; i < n; ++i) {
            const PasskeyResult& r = results[i];
            length[i] = r.length;
            index[i] = r.index;
            depth[i] = r.depth;
            correct[i] = r.correct ? 1 : 0;
            promptTokens[i] = r.promptTokens;
            needleFirst[i] = r.needleFirst;
            needleLast[i] = r.needleLast;
            std::memcpy(&passkeys[i * 5], r.passkey.data(), std::min<size_t>(5, r.passkey.size()));
            std::memcpy(&predictions[i * kPredictionBytes], r.prediction.data(),
                        std::min(kPredictionBytes, r.prediction.size()));
        }
        Hid group(H5Gcreate2(f, "results", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        if (!group.valid())
            throw Error(tmp, "cannot create /results: " + h5::errorDetail());
        const hid_t g = group.get();
        const std::vector<hsize_t> rows{n};
        writeDataset(tmp, g, "length", H5T_STD_I64LE, H5T_NATIVE_INT64, rows, length.data());
        writeDataset(tmp, g, "index", H5T_STD_I64LE, H5T_NATIVE_INT64, rows, index.data());
        writeDataset(tmp, g, "depth", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rows, depth.data());
        writeDataset(tmp, g, "correct", H5T_STD_U8LE, H5T_NATIVE_UINT8, rows, correct.data());
        writeDataset(tmp, g, "prompt_tokens", H5T_STD_I64LE, H5T_NATIVE_INT64, rows, promptTokens.data());
        writeDataset(tmp, g, "needle_first", H5T_STD_I64LE, H5T_NATIVE_INT64, rows, needleFirst.data());
        writeDataset(tmp, g, "needle_last", H5T_STD_I64LE, H5T_NATIVE_INT64, rows, needleLast.data());
        const Hid keyType = stringType(5), predictionType = stringType(kPredictionBytes);
        writeDataset(tmp, g, "passkey", keyType.get(), keyType.get(), rows, passkeys.data());
        writeDataset(tmp, g, "prediction", predictionType.get(), predictionType.get(), rows,
                     predictions.data());

        // The heatmap as the paper draws it: 10 depth rows (fewer when there are fewer samples).
        const int bins = static_cast<int>(std::min<int64_t>(10, std::max<int64_t>(1, settings.samples)));
        const std::vector<double> grid = passkeyGrid(results, settings.lengths, bins);
        writeDataset(tmp, f, "accuracy", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                     {settings.lengths.size(), static_cast<hsize_t>(bins)}, grid.data());
        if (!file.close())
            throw Error(tmp, "cannot write the passkey file: " + h5::errorDetail());
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
        throw Error(path, std::string("cannot replace the passkey file: ") + std::strerror(errno));
}

bool isPasskeyResultsFile(const std::string& path)
{
    h5::quiet();
    if (::access(path.c_str(), R_OK) != 0 || H5Fis_hdf5(path.c_str()) <= 0)
        return false;
    Hid file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!file.valid())
        return false;
    try {
        return h5::readStringAttribute(path, file.get(), "", "format") == kFormat;
    } catch (const std::exception&) {
        return false;
    }
}

PasskeySweep readPasskeySweep(const std::string& path)
{
    h5::quiet();
    Hid file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!file.valid())
        throw Error(path, "not a passkey results file StateScope can read: " + h5::errorDetail());
    const hid_t f = file.get();
    if (h5::readStringAttribute(path, f, "", "format") != kFormat)
        throw Error(path, "format",
                    std::string("a \"") + kFormat + "\" file written by statescope-cli passkey",
                    "another file (a new sweep needs another results file)");
    auto integer = [&](const char* name) {
        const h5::AttributeValue v = h5::readAttribute(path, f, "", name);
        if (v.kind != h5::AttributeValue::Integer)
            throw Error(path, name, "an integer attribute", "none");
        return v.integer;
    };
    PasskeySweep sweep;
    PasskeySettings& s = sweep.settings;
    s.model = h5::readStringAttribute(path, f, "", "model");
    s.tokenizer = h5::readStringAttribute(path, f, "", "tokenizer");
    s.seed = static_cast<uint64_t>(integer("seed"));
    s.samples = integer("samples");
    s.maxNewTokens = integer("max_new_tokens");
    s.mitigation = h5::readStringAttribute(path, f, "", "mitigation");
    if (s.samples < 1 || s.samples > 100000000)
        throw Error(path, "samples", "1 to 10^8", std::to_string(s.samples));
    {
        Hid d(H5Dopen2(f, "lengths", H5P_DEFAULT));
        if (!d.valid())
            throw Error(path, "/lengths", "a dataset", "nothing readable");
        Hid space(H5Dget_space(d.get()));
        const std::vector<hsize_t> dims = h5::spaceDims(path, space.get(), "/lengths");
        if (dims.size() != 1 || dims[0] > 100000)
            throw Error(path, "/lengths shape", "[lengths], at most 100000", "another shape");
        s.lengths = readDataset<int64_t>(path, f, "lengths", H5T_NATIVE_INT64, dims[0]);
    }

    Hid group(H5Gopen2(f, "results", H5P_DEFAULT));
    if (!group.valid())
        throw Error(path, "/results", "a group", "nothing readable");
    const hid_t g = group.get();
    Hid probe(H5Dopen2(g, "length", H5P_DEFAULT));
    if (!probe.valid())
        throw Error(path, "/results/length", "a dataset", "nothing readable");
    Hid space(H5Dget_space(probe.get()));
    const std::vector<hsize_t> dims = h5::spaceDims(path, space.get(), "/results/length");
    if (dims.size() != 1 || dims[0] > 100000000)
        throw Error(path, "/results/length shape", "[rows], at most 10^8", "another shape");
    const auto n = static_cast<size_t>(dims[0]);
    const auto length = readDataset<int64_t>(path, g, "length", H5T_NATIVE_INT64, n);
    const auto index = readDataset<int64_t>(path, g, "index", H5T_NATIVE_INT64, n);
    const auto depth = readDataset<double>(path, g, "depth", H5T_NATIVE_DOUBLE, n);
    const auto correct = readDataset<uint8_t>(path, g, "correct", H5T_NATIVE_UINT8, n);
    const auto promptTokens = readDataset<int64_t>(path, g, "prompt_tokens", H5T_NATIVE_INT64, n);
    const auto needleFirst = readDataset<int64_t>(path, g, "needle_first", H5T_NATIVE_INT64, n);
    const auto needleLast = readDataset<int64_t>(path, g, "needle_last", H5T_NATIVE_INT64, n);
    const Hid keyType = stringType(5), predictionType = stringType(kPredictionBytes);
    const auto passkeys = readDataset<char>(path, g, "passkey", keyType.get(), n, 5);
    const auto predictions =
        readDataset<char>(path, g, "prediction", predictionType.get(), n, kPredictionBytes);
    std::vector<PasskeyResult> out(n);
    for (size_t i = 0; i < n; ++i) {
        PasskeyResult& r = out[i];
        r.length = length[i];
        r.index = index[i];
        r.depth = depth[i];
        r.correct = correct[i] != 0;
        r.promptTokens = promptTokens[i];
        r.needleFirst = needleFirst[i];
        r.needleLast = needleLast[i];
        r.passkey = fixedString(&passkeys[i * 5], 5);
        r.prediction = fixedString(&predictions[i * kPredictionBytes], kPredictionBytes);
    }
    sweep.results = std::move(out);
    return sweep;
}

std::vector<PasskeyResult> readPasskeyFile(const std::string& path, const PasskeySettings& settings)
{
    if (::access(path.c_str(), F_OK) != 0)
        return {};
    PasskeySweep stored = readPasskeySweep(path);
    auto same = [&](const char* name, const std::string& kept, const std::string& wanted) {
        if (kept != wanted)
            throw Error(path, name,
                        "\"" + wanted + "\" to resume this sweep (another --out starts a new one)",
                        "\"" + kept + "\"");
    };
    const PasskeySettings& s = stored.settings;
    same("model", s.model, settings.model);
    same("tokenizer", s.tokenizer, settings.tokenizer);
    same("seed", std::to_string(s.seed), std::to_string(settings.seed));
    same("samples", std::to_string(s.samples), std::to_string(settings.samples));
    same("max_new_tokens", std::to_string(s.maxNewTokens), std::to_string(settings.maxNewTokens));
    same("mitigation", s.mitigation, settings.mitigation);
    return std::move(stored.results);
}

void runPasskeySweep(Runner& runner, const Tokenizer& tokenizer, const PasskeySettings& settings,
                     std::vector<PasskeyResult>* results,
                     const std::function<void(const std::vector<PasskeyResult>&)>& afterLength,
                     const std::atomic<bool>* cancel)
{
    std::set<std::pair<int64_t, int64_t>> done;
    for (const PasskeyResult& r : *results)
        done.insert({r.length, r.index});
    const int64_t vocabLimit = tokenizer.vocabSize();
    for (int64_t length : settings.lengths) {
        // Samples of one token count decode together; the needle's digits make counts differ a little.
        std::map<size_t, std::vector<PasskeySample>> byCount;
        for (int64_t i = 0; i < settings.samples; ++i)
            if (!done.count({length, i})) {
                PasskeySample s = makePasskeySample(tokenizer, length, i, settings.samples, settings.seed);
                byCount[s.ids.size()].push_back(std::move(s));
            }
        if (byCount.empty())
            continue;
        for (auto& [count, group] : byCount) {
            for (size_t b = 0; b < group.size();
                 b += static_cast<size_t>(std::max<int64_t>(1, settings.batch))) {
                if (cancel && cancel->load())
                    throw Cancelled();
                const size_t e =
                    std::min(group.size(), b + static_cast<size_t>(std::max<int64_t>(1, settings.batch)));
                std::vector<std::vector<int32_t>> prompts;
                for (size_t k = b; k < e; ++k)
                    prompts.push_back(group[k].ids);
                const Generation g = runner.generate(prompts, settings.maxNewTokens, vocabLimit);
                for (size_t k = b; k < e; ++k) {
                    const PasskeySample& s = group[k];
                    PasskeyResult r;
                    r.length = s.length;
                    r.index = s.index;
                    r.depth = s.depth;
                    r.passkey = s.passkey;
                    r.prediction = tokenizer.decode(g.tokens[k - b]);
                    r.correct = passkeyCorrect(r.prediction, s.passkey);
                    r.promptTokens = static_cast<int64_t>(count);
                    r.needleFirst = s.needleFirst;
                    r.needleLast = s.needleLast;
                    results->push_back(std::move(r));
                }
            }
        }
        std::stable_sort(results->begin(), results->end(),
                         [](const PasskeyResult& a, const PasskeyResult& b) {
                             return a.length != b.length ? a.length < b.length : a.index < b.index;
                         });
        if (afterLength)
            afterLength(*results);
    }
}

} // namespace statescope
