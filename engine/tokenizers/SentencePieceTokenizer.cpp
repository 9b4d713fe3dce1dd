#include "tokenizers/SentencePieceTokenizer.h"

#include "Error.h"
#include "io/Json.h"
#include "io/MappedFile.h"
#include "tokenizers/TokenizerJson.h"
#include "tokenizers/Unicode.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <unordered_set>

namespace statescope {

using namespace tokenizer_json;

namespace {

const std::string kMeta = "\xE2\x96\x81"; // ▁ U+2581, SentencePiece's space

// Byte offsets into the original input of each byte of a normalized text: what the Rust library's
// NormalizedString keeps so that every token can be mapped back to the text it came from.
struct Aligned {
    std::string text;
    std::vector<std::pair<int64_t, int64_t>> align; // one per byte of text
};

Aligned alignedPiece(std::string_view input, size_t begin, size_t end)
{
    Aligned a;
    a.text.assign(input.substr(begin, end - begin));
    a.align.reserve(a.text.size());
    size_t pos = begin;
    while (pos < end) {
        const size_t start = pos;
        unicode::nextCodePoint(input, pos);
        for (size_t k = start; k < pos; ++k)
            a.align.emplace_back(int64_t(start), int64_t(pos));
    }
    return a;
}

// The Prepend normalizer (and Metaspace's prepending): the new bytes take the first character's span.
void prepend(Aligned& a, const std::string& s)
{
    if (a.text.empty())
        return;
    const auto span = a.align.front();
    a.text.insert(0, s);
    a.align.insert(a.align.begin(), s.size(), span);
}

// A literal Replace: each match's new bytes take the span of the match's last byte.
void replaceAll(Aligned& a, const std::string& from, const std::string& to)
{
    if (from.empty() || a.text.find(from) == std::string::npos)
        return;
    Aligned out;
    out.text.reserve(a.text.size());
    out.align.reserve(a.align.size());
    size_t i = 0;
    while (i < a.text.size()) {
        if (a.text.compare(i, from.size(), from) == 0) {
            const auto span = a.align[i + from.size() - 1];
            out.text += to;
            out.align.insert(out.align.end(), to.size(), span);
            i += from.size();
        } else {
            out.text += a.text[i];
            out.align.push_back(a.align[i]);
            ++i;
        }
    }
    a = std::move(out);
}

struct Piece {
    int32_t id;
    uint32_t begin, end; // bytes of the word
};

// "<0x0A>" -> 0x0A, the ByteFallback decoder's test (exactly six bytes; Rust's from_str_radix also
// takes a sign, which no real vocabulary uses).
int byteTokenValue(const std::string& t)
{
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>')
        return -1;
    int v = 0;
    for (size_t i = 3; i < 5; ++i) {
        const char c = t[i];
        const int d = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

std::string replaced(const std::string& s, const std::string& from, const std::string& to)
{
    if (from.empty())
        return s;
    std::string out;
    size_t i = 0;
    while (true) {
        const size_t at = s.find(from, i);
        if (at == std::string::npos)
            break;
        out.append(s, i, at - i);
        out += to;
        i = at + from.size();
    }
    out.append(s, i, std::string::npos);
    return out;
}

// The text of the tokenizer_config.json beside a tokenizer file, or "".
std::string configBeside(const std::string& path)
{
    const std::filesystem::path beside = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
    std::error_code ec;
    if (!std::filesystem::is_regular_file(beside, ec) || std::filesystem::file_size(beside, ec) >= (1u << 24))
        return "";
    const auto cfg = MappedFile::open(beside.string());
    return std::string(reinterpret_cast<const char*>(cfg->data()), cfg->size());
}

} // namespace

struct SentencePieceTokenizer::Impl {
    std::string sourceName;
    int32_t vocabSize = 0;
    std::unordered_map<std::string, int32_t> vocab;
    std::vector<std::string> idToToken;
    std::vector<uint8_t> idPresent;

    std::vector<AddedToken> added;
    std::unordered_map<std::string, int32_t> addedByContent;
    AddedTokenMatcher rawMatcher, normalizedMatcher;

    struct NormStep {
        bool isPrepend;
        std::string a, b; // Prepend: a; Replace: a -> b
    };
    std::vector<NormStep> normalizer;

    bool metaspace = false;
    std::string replacement = kMeta;
    enum class Scheme { Always, First, Never } scheme = Scheme::Always;
    bool split = true;

    bool byteFallback = false, fuseUnk = false, ignoreMerges = false;
    int32_t unkId = -1;
    std::array<int32_t, 256> byteId{};
    std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges; // pair -> (rank, merged id)
    // No token has a ▁ after another character, so no merge can join across the start of a run of ▁:
    // a long piece can be cut there into words that are merged (and cached) separately.
    bool cutAtSpaces = false;

    std::vector<int32_t> prefix, suffix; // the template's special tokens around the text

    struct DecodeStep {
        enum Kind { Replace, ByteFallback, Fuse, Strip, Metaspace } kind;
        std::string a, b;
        int64_t start = 0, stop = 0;
        bool prependNever = false;
    };
    bool hasDecoder = false;
    std::vector<DecodeStep> decoder;

    mutable std::mutex cacheMutex;
    mutable std::unordered_map<std::string, std::vector<Piece>> cache;

    void word(std::string_view w, std::vector<Piece>& out) const;
    void mergeWord(std::string_view w, std::vector<Piece>& out) const;
    void normalize(Aligned& a) const;
    // A normalized piece free of added tokens: pre-tokenized, then BPE per word.
    void encodePiece(Aligned a, ClampedSink& emit) const;
    void emitWord(const Aligned& a, size_t b, size_t e, ClampedSink& emit) const;
};

void SentencePieceTokenizer::Impl::word(std::string_view w, std::vector<Piece>& out) const
{
    out.clear();
    if (w.empty())
        return;
    if (ignoreMerges) {
        auto it = vocab.find(std::string(w));
        if (it != vocab.end()) {
            out.push_back({it->second, 0, uint32_t(w.size())});
            return;
        }
    }
    const bool cacheable = w.size() <= kMaxCachedWordBytes;
    std::string key;
    if (cacheable) {
        key.assign(w);
        std::lock_guard<std::mutex> lock(cacheMutex);
        auto it = cache.find(key);
        if (it != cache.end()) {
            out = it->second;
            return;
        }
    }
    mergeWord(w, out);
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cacheMutex);
        if (cache.size() >= kMaxCacheEntries)
            cache.clear();
        cache.emplace(std::move(key), out);
    }
}

// The Rust BPE on one word: a symbol per character (its bytes' <0xXX> tokens where it is not in the
// vocabulary, else unk, else dropped), then the lowest-ranked merge present, leftmost first on ties,
// one pair at a time.
void SentencePieceTokenizer::Impl::mergeWord(std::string_view w, std::vector<Piece>& out) const
{
    struct Symbol {
        int32_t id;
        int32_t prev, next;
        uint32_t len; // 0: merged away
    };
    std::vector<Symbol> symbols;
    symbols.reserve(w.size());
    std::optional<Symbol> pendingUnk;
    auto flushUnk = [&] {
        if (pendingUnk) {
            symbols.push_back(*pendingUnk);
            pendingUnk.reset();
        }
    };
    size_t pos = 0;
    while (pos < w.size()) {
        const size_t start = pos;
        unicode::nextCodePoint(w, pos);
        const auto len = uint32_t(pos - start);
        auto it = vocab.find(std::string(w.substr(start, len)));
        if (it != vocab.end()) {
            flushUnk();
            symbols.push_back({it->second, 0, 0, len});
            continue;
        }
        if (byteFallback) {
            bool all = true;
            for (size_t k = start; k < pos; ++k)
                all = all && byteId[static_cast<unsigned char>(w[k])] >= 0;
            if (all) {
                // As the Rust library does, a pending unk is not flushed before these: it follows them.
                for (size_t k = start; k < pos; ++k)
                    symbols.push_back({byteId[static_cast<unsigned char>(w[k])], 0, 0, 1});
                continue;
            }
        }
        if (unkId >= 0) {
            if (pendingUnk && fuseUnk) {
                pendingUnk->len += len;
            } else {
                flushUnk();
                pendingUnk = Symbol{unkId, 0, 0, len};
            }
        }
        // Without unk the character is dropped; the offsets below, running sums of the symbols'
        // lengths, then shift as the Rust library's do.
    }
    flushUnk();

    const auto n = int32_t(symbols.size());
    for (int32_t i = 0; i < n; ++i) {
        symbols[i].prev = i - 1;
        symbols[i].next = i + 1 < n ? i + 1 : -1;
    }
    struct Candidate {
        int32_t rank, pos;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
    auto consider = [&](int32_t left) {
        if (left < 0 || symbols[left].next < 0)
            return;
        auto it = merges.find(pairKey(symbols[left].id, symbols[symbols[left].next].id));
        if (it != merges.end())
            queue.push({it->second.first, left});
    };
    for (int32_t i = 0; i + 1 < n; ++i)
        consider(i);
    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = symbols[top.pos];
        if (left.len == 0 || left.next < 0)
            continue;
        Symbol& right = symbols[left.next];
        auto it = merges.find(pairKey(left.id, right.id));
        if (it == merges.end() || it->second.first != top.rank)
            continue; // stale: one side changed since this candidate was queued
        left.id = it->second.second;
        left.len += right.len;
        right.len = 0;
        left.next = right.next;
        if (left.next >= 0)
            symbols[left.next].prev = top.pos;
        consider(left.prev);
        consider(top.pos);
    }
    uint32_t offset = 0;
    for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = symbols[i].next) {
        out.push_back({symbols[i].id, offset, offset + symbols[i].len});
        offset += symbols[i].len;
    }
}

void SentencePieceTokenizer::Impl::emitWord(const Aligned& a, size_t b, size_t e, ClampedSink& emit) const
{
    if (b >= e)
        return;
    std::vector<Piece> pieces;
    word(std::string_view(a.text).substr(b, e - b), pieces);
    for (const Piece& p : pieces)
        emit(p.id, a.align[b + p.begin].first, a.align[b + p.end - 1].second);
}

void SentencePieceTokenizer::Impl::normalize(Aligned& a) const
{
    for (const NormStep& s : normalizer) {
        if (s.isPrepend)
            prepend(a, s.a);
        else
            replaceAll(a, s.a, s.b);
    }
}

void SentencePieceTokenizer::Impl::encodePiece(Aligned a, ClampedSink& emit) const
{
    if (a.text.empty())
        return;
    if (metaspace) {
        replaceAll(a, " ", replacement);
        const bool first = a.align.front().first == 0; // the piece starts the input
        if ((scheme == Scheme::Always || (scheme == Scheme::First && first)) &&
            a.text.compare(0, replacement.size(), replacement) != 0)
            prepend(a, replacement);
    }
    const std::string& cut = metaspace ? replacement : kMeta;
    if (metaspace && split) {
        // MergedWithNext: each ▁ starts a word.
        size_t start = 0, at = a.text.find(cut, 1);
        while (at != std::string::npos) {
            emitWord(a, start, at, emit);
            start = at;
            at = a.text.find(cut, at + cut.size());
        }
        emitWord(a, start, a.text.size(), emit);
        return;
    }
    if (!cutAtSpaces) {
        emitWord(a, 0, a.text.size(), emit);
        return;
    }
    // Words of the form ▁* followed by other characters: cut where a run of ▁ follows another character.
    size_t start = 0, i = 0;
    bool sawOther = false;
    while (i < a.text.size()) {
        if (a.text.compare(i, cut.size(), cut) == 0) {
            if (sawOther) {
                emitWord(a, start, i, emit);
                start = i;
                sawOther = false;
            }
            i += cut.size();
        } else {
            sawOther = true;
            ++i;
        }
    }
    emitWord(a, start, a.text.size(), emit);
}

namespace {

// The parts of tokenizer.json (and tokenizer_config.json) this tokenizer reads, each checked so that
// an unsupported file fails naming the field.
class Reader {
public:
    explicit Reader(const std::string& source) : m_source(source) {}

    [[noreturn]] void fail(const std::string& field, const std::string& expected,
                           const std::string& actual) const
    {
        throw Error(m_source, field, expected, actual);
    }
    std::string type(const Json& c, const std::string& field) const
    {
        auto it = c.find("type");
        if (!c.is_object() || it == c.end() || !it->is_string())
            fail(field + ".type", "a string", c.is_object() && it != c.end() ? describe(*it) : describe(c));
        return it->get<std::string>();
    }
    std::string string(const Json& c, const char* key, const std::string& field) const
    {
        auto it = c.find(key);
        if (it == c.end() || !it->is_string())
            fail(field + "." + key, "a string", it == c.end() ? "nothing" : describe(*it));
        return it->get<std::string>();
    }
    bool boolean(const Json& c, const char* key, bool fallback, const std::string& field) const
    {
        auto it = c.find(key);
        if (it == c.end() || it->is_null())
            return fallback;
        if (!it->is_boolean())
            fail(field + "." + key, "true or false", describe(*it));
        return it->get<bool>();
    }
    int32_t id(const Json& v, const std::string& field) const
    {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxTokenId)
            fail(field, "a token id in [0, " + std::to_string(kMaxTokenId) + "]", describe(v));
        return int32_t(v.get<int64_t>());
    }
    // A Replace's pattern: {"String": s}; regex patterns are not supported.
    std::string pattern(const Json& c, const std::string& field) const
    {
        auto it = c.find("pattern");
        if (it == c.end() || !it->is_object())
            fail(field + ".pattern", "{\"String\": ...}", it == c.end() ? "nothing" : describe(*it));
        auto s = it->find("String");
        if (s == it->end() || !s->is_string())
            fail(field + ".pattern", "a String pattern (Regex patterns are not supported)",
                 it->dump().substr(0, 60));
        return s->get<std::string>();
    }

private:
    const std::string& m_source;
};

// The components of a Sequence (or the component itself), flattened.
std::vector<std::pair<const Json*, std::string>>
flatten(const Json& c, const char* listKey, const std::string& field, const Reader& r, int depth = 0)
{
    std::vector<std::pair<const Json*, std::string>> out;
    if (c.is_null())
        return out;
    if (r.type(c, field) != "Sequence") {
        out.push_back({&c, field});
        return out;
    }
    auto it = c.find(listKey);
    if (it == c.end() || !it->is_array())
        r.fail(field + "." + listKey, "an array", it == c.end() ? "nothing" : describe(*it));
    if (depth > 8)
        r.fail(field, "Sequences nested at most 8 deep", "deeper");
    for (size_t i = 0; i < it->size(); ++i) {
        auto inner =
            flatten((*it)[i], listKey, field + "." + listKey + "[" + std::to_string(i) + "]", r, depth + 1);
        out.insert(out.end(), inner.begin(), inner.end());
    }
    return out;
}

std::string tokenContent(const Json& j)
{
    if (j.is_string())
        return j.get<std::string>();
    if (j.is_object() && j.contains("content") && j["content"].is_string())
        return j["content"].get<std::string>();
    return "";
}

} // namespace

bool SentencePieceTokenizer::recognises(const std::string& jsonText)
{
    try {
        const Json root = Json::parse(jsonText);
        const Json& model = root.at("model");
        if (!model.contains("type") || model["type"] != "BPE")
            return false;
        const std::string dump = root.contains("pre_tokenizer") ? root["pre_tokenizer"].dump() : "null";
        return dump.find("\"ByteLevel\"") == std::string::npos;
    } catch (const std::exception&) {
        return false;
    }
}

SentencePieceTokenizer::SentencePieceTokenizer(std::shared_ptr<const Impl> impl) : m_impl(std::move(impl)) {}

SentencePieceTokenizer SentencePieceTokenizer::fromFile(const std::string& path)
{
    const auto file = MappedFile::open(path);
    if (file->size() > kMaxFileBytes)
        throw Error(path, "file size", "at most 1 GiB for a tokenizer.json",
                    std::to_string(file->size()) + " bytes");
    const std::string config = configBeside(path);
    return fromJson(std::string(reinterpret_cast<const char*>(file->data()), file->size()), path, config);
}

SentencePieceTokenizer SentencePieceTokenizer::fromJson(const std::string& jsonText,
                                                        const std::string& sourceName,
                                                        const std::string& configJson)
{
    checkJsonDepth(jsonText.data(), jsonText.size(), sourceName, kMaxJsonDepth);
    Json root;
    try {
        root = Json::parse(jsonText);
    } catch (const Json::exception& e) {
        throw Error(sourceName, std::string("malformed JSON: ") + e.what());
    }
    const Reader r(sourceName);
    if (!root.is_object())
        r.fail("(top level)", "a JSON object", describe(root));
    auto impl = std::make_shared<Impl>();
    impl->sourceName = sourceName;

    // --- model ---
    auto modelIt = root.find("model");
    if (modelIt == root.end() || !modelIt->is_object())
        r.fail("model", "an object", modelIt == root.end() ? "nothing" : describe(*modelIt));
    const Json& model = *modelIt;
    if (r.type(model, "model") != "BPE")
        r.fail("model.type", "\"BPE\"", describe(model["type"]));
    auto vocabIt = model.find("vocab");
    if (vocabIt == model.end() || !vocabIt->is_object())
        r.fail("model.vocab", "an object of token: id",
               vocabIt == model.end() ? "nothing" : describe(*vocabIt));
    int64_t maxId = -1;
    for (auto it = vocabIt->begin(); it != vocabIt->end(); ++it) {
        const int32_t id = r.id(it.value(), "model.vocab[" + jsonQuoted(it.key()) + "]");
        impl->vocab.emplace(it.key(), id);
        maxId = std::max<int64_t>(maxId, id);
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        auto it = model.find(key);
        if (it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
            r.fail(std::string("model.") + key, "null (not used by SentencePiece-style BPE)", describe(*it));
    }
    if (auto it = model.find("dropout");
        it != model.end() && !it->is_null() && (!it->is_number() || it->get<double>() > 0.0))
        r.fail("model.dropout", "null (BPE dropout is random and only used in training)", describe(*it));
    impl->byteFallback = r.boolean(model, "byte_fallback", false, "model");
    impl->fuseUnk = r.boolean(model, "fuse_unk", false, "model");
    impl->ignoreMerges = r.boolean(model, "ignore_merges", false, "model");
    if (auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
        if (!it->is_string())
            r.fail("model.unk_token", "a string or null", describe(*it));
        auto unk = impl->vocab.find(it->get<std::string>());
        if (unk == impl->vocab.end())
            r.fail("model.unk_token", "a token of model.vocab", describe(*it));
        impl->unkId = unk->second;
    }
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        auto it = impl->vocab.find(name);
        impl->byteId[size_t(b)] = it == impl->vocab.end() ? -1 : it->second;
    }
    // Merges: rank = position; a pair listed twice keeps its later rank, as the Rust HashMap does.
    auto mergesIt = model.find("merges");
    if (mergesIt == model.end() || !mergesIt->is_array())
        r.fail("model.merges", "an array (possibly empty)",
               mergesIt == model.end() ? "nothing" : describe(*mergesIt));
    for (size_t i = 0; i < mergesIt->size(); ++i) {
        const Json& m = (*mergesIt)[i];
        const std::string field = "model.merges[" + std::to_string(i) + "]";
        std::string left, right;
        if (m.is_string()) {
            const std::string s = m.get<std::string>();
            if (s.rfind("#version", 0) == 0)
                continue;
            const size_t space = s.find(' ');
            if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
                r.fail(field, "two tokens separated by one space", describe(m));
            left = s.substr(0, space);
            right = s.substr(space + 1);
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            left = m[0].get<std::string>();
            right = m[1].get<std::string>();
        } else {
            r.fail(field, "\"a b\" or [\"a\", \"b\"]", describe(m));
        }
        auto l = impl->vocab.find(left), rr = impl->vocab.find(right),
             merged = impl->vocab.find(left + right);
        if (l == impl->vocab.end() || rr == impl->vocab.end() || merged == impl->vocab.end())
            r.fail(field, "a merge of two tokens of model.vocab into a third",
                   jsonQuoted(l == impl->vocab.end()    ? left
                              : rr == impl->vocab.end() ? right
                                                        : left + right) +
                       ", which is not in the vocabulary");
        impl->merges[pairKey(l->second, rr->second)] = {int32_t(i), merged->second};
    }

    // --- added tokens ---
    std::vector<AddedToken> added;
    if (auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
        if (!it->is_array())
            r.fail("added_tokens", "an array", describe(*it));
        for (size_t i = 0; i < it->size(); ++i) {
            AddedToken token =
                readAddedToken((*it)[i], sourceName, "added_tokens[" + std::to_string(i) + "]");
            if (token.content.empty())
                continue;
            // A token already in the model's vocabulary keeps the model's id, as in the Rust library.
            if (auto v = impl->vocab.find(token.content); v != impl->vocab.end())
                token.id = v->second;
            maxId = std::max<int64_t>(maxId, token.id);
            added.push_back(std::move(token));
        }
    }
    if (maxId < 0)
        r.fail("model.vocab", "at least one token", "an empty vocabulary");
    impl->vocabSize = int32_t(maxId + 1);
    impl->idToToken.assign(size_t(impl->vocabSize), std::string());
    impl->idPresent.assign(size_t(impl->vocabSize), 0);
    for (const auto& [text, id] : impl->vocab) {
        if (impl->idPresent[size_t(id)])
            r.fail("model.vocab[" + jsonQuoted(text) + "]", "a unique id",
                   "id " + std::to_string(id) + " used twice");
        impl->idToToken[size_t(id)] = text;
        impl->idPresent[size_t(id)] = 1;
    }

    // --- normalizer: Prepend and literal Replace ---
    if (auto it = root.find("normalizer"); it != root.end())
        for (const auto& [c, field] : flatten(*it, "normalizers", "normalizer", r)) {
            const std::string t = r.type(*c, field);
            if (t == "Prepend")
                impl->normalizer.push_back({true, r.string(*c, "prepend", field), ""});
            else if (t == "Replace")
                impl->normalizer.push_back({false, r.pattern(*c, field), r.string(*c, "content", field)});
            else
                r.fail(field + ".type", "\"Prepend\" or \"Replace\" (or a Sequence of them)", jsonQuoted(t));
        }

    // --- pre-tokenizer: Metaspace or none ---
    if (auto it = root.find("pre_tokenizer"); it != root.end()) {
        const auto parts = flatten(*it, "pretokenizers", "pre_tokenizer", r);
        if (parts.size() > 1)
            r.fail("pre_tokenizer", "one Metaspace pre-tokenizer or none",
                   std::to_string(parts.size()) + " of them");
        for (const auto& [c, field] : parts) {
            const std::string t = r.type(*c, field);
            if (t != "Metaspace")
                r.fail(field + ".type", "\"Metaspace\" or none (a ByteLevel file is read as byte-level BPE)",
                       jsonQuoted(t));
            impl->metaspace = true;
            impl->replacement = c->contains("replacement") ? r.string(*c, "replacement", field) : kMeta;
            const bool addPrefix = r.boolean(*c, "add_prefix_space", true, field);
            std::string scheme = "always";
            if (auto s = c->find("prepend_scheme"); s != c->end() && !s->is_null())
                scheme = r.string(*c, "prepend_scheme", field);
            if (!addPrefix) {
                if (c->contains("prepend_scheme") && scheme != "never")
                    r.fail(field + ".prepend_scheme", "\"never\" with add_prefix_space false",
                           jsonQuoted(scheme));
                scheme = "never";
            }
            if (scheme == "always")
                impl->scheme = Impl::Scheme::Always;
            else if (scheme == "first")
                impl->scheme = Impl::Scheme::First;
            else if (scheme == "never")
                impl->scheme = Impl::Scheme::Never;
            else
                r.fail(field + ".prepend_scheme", "\"always\", \"first\" or \"never\"", jsonQuoted(scheme));
            impl->split = r.boolean(*c, "split", true, field);
        }
    }

    // --- post-processor: the special tokens of TemplateProcessing's single template ---
    auto addedId = [&](const std::string& content) -> std::optional<int32_t> {
        for (const AddedToken& t : added)
            if (t.content == content)
                return t.id;
        if (auto v = impl->vocab.find(content); v != impl->vocab.end())
            return v->second;
        return std::nullopt;
    };
    if (auto it = root.find("post_processor"); it != root.end())
        for (const auto& [c, field] : flatten(*it, "processors", "post_processor", r)) {
            const std::string t = r.type(*c, field);
            if (t == "ByteLevel")
                continue; // only trims offsets
            if (t != "TemplateProcessing")
                r.fail(field + ".type", "\"TemplateProcessing\" or none", jsonQuoted(t));
            auto single = c->find("single");
            if (single == c->end() || !single->is_array())
                r.fail(field + ".single", "an array", single == c->end() ? "nothing" : describe(*single));
            const Json specials = c->value("special_tokens", Json::object());
            bool afterText = false;
            for (const Json& piece : *single) {
                if (piece.contains("Sequence")) {
                    afterText = true;
                    continue;
                }
                auto sp = piece.find("SpecialToken");
                if (sp == piece.end() || !sp->contains("id") || !(*sp)["id"].is_string())
                    r.fail(field + ".single", "SpecialToken and Sequence pieces", piece.dump().substr(0, 60));
                const std::string name = (*sp)["id"].get<std::string>();
                std::vector<int32_t> ids;
                if (specials.contains(name) && specials[name].contains("ids") &&
                    specials[name]["ids"].is_array()) {
                    for (const Json& v : specials[name]["ids"])
                        ids.push_back(r.id(v, field + ".special_tokens." + name + ".ids"));
                } else if (auto id = addedId(name)) {
                    ids.push_back(*id);
                } else {
                    r.fail(field + ".special_tokens", "the ids of " + jsonQuoted(name), "nothing");
                }
                for (int32_t id : ids)
                    (afterText ? impl->suffix : impl->prefix).push_back(id);
            }
        }

    // tokenizer_config.json's add_bos_token / add_eos_token rebuild the template, as transformers does.
    if (!configJson.empty()) {
        const std::string cfgName =
            (std::filesystem::path(sourceName).parent_path() / "tokenizer_config.json").string();
        Json cfg;
        try {
            cfg = Json::parse(configJson);
        } catch (const Json::exception& e) {
            throw Error(cfgName, std::string("malformed JSON: ") + e.what());
        }
        const Reader rc(cfgName);
        auto special = [&](const char* flag, const char* tokenKey, const char* fallback,
                           std::vector<int32_t>& out) {
            if (!cfg.is_object() || !cfg.contains(flag) || cfg[flag].is_null())
                return;
            const bool on = rc.boolean(cfg, flag, false, "(top level)");
            out.clear();
            if (!on)
                return;
            std::string content = cfg.contains(tokenKey) ? tokenContent(cfg[tokenKey]) : fallback;
            auto id = addedId(content);
            if (!id)
                rc.fail(tokenKey, "a token of " + sourceName, jsonQuoted(content));
            out.push_back(*id);
        };
        special("add_bos_token", "bos_token", "<s>", impl->prefix);
        special("add_eos_token", "eos_token", "</s>", impl->suffix);
    }

    // --- decoder ---
    if (auto it = root.find("decoder"); it != root.end() && !it->is_null()) {
        impl->hasDecoder = true;
        for (const auto& [c, field] : flatten(*it, "decoders", "decoder", r)) {
            const std::string t = r.type(*c, field);
            Impl::DecodeStep s{};
            if (t == "Replace") {
                s.kind = Impl::DecodeStep::Replace;
                s.a = r.pattern(*c, field);
                s.b = r.string(*c, "content", field);
            } else if (t == "ByteFallback") {
                s.kind = Impl::DecodeStep::ByteFallback;
            } else if (t == "Fuse") {
                s.kind = Impl::DecodeStep::Fuse;
            } else if (t == "Strip") {
                s.kind = Impl::DecodeStep::Strip;
                s.a = r.string(*c, "content", field);
                if (unicode::findInvalidUtf8(s.a) != unicode::kNoError || s.a.empty())
                    r.fail(field + ".content", "one character", describe((*c)["content"]));
                for (const char* key : {"start", "stop"}) {
                    auto v = c->find(key);
                    if (v == c->end() || !v->is_number_integer() || v->get<int64_t>() < 0)
                        r.fail(field + "." + key, "a count >= 0", v == c->end() ? "nothing" : describe(*v));
                }
                s.start = (*c)["start"].get<int64_t>();
                s.stop = (*c)["stop"].get<int64_t>();
            } else if (t == "Metaspace") {
                s.kind = Impl::DecodeStep::Metaspace;
                s.a = c->contains("replacement") ? r.string(*c, "replacement", field) : kMeta;
                std::string scheme = "always";
                if (auto p = c->find("prepend_scheme"); p != c->end() && !p->is_null())
                    scheme = r.string(*c, "prepend_scheme", field);
                s.prependNever = scheme == "never" || !r.boolean(*c, "add_prefix_space", true, field);
            } else {
                r.fail(field + ".type", "Replace, ByteFallback, Fuse, Strip or Metaspace", jsonQuoted(t));
            }
            impl->decoder.push_back(std::move(s));
        }
    }

    // Where no token has ▁ after another character, words can be cut at runs of ▁ (see cutAtSpaces).
    {
        const std::string& meta = impl->metaspace ? impl->replacement : kMeta;
        bool ok = !meta.empty();
        for (auto it = impl->vocab.begin(); ok && it != impl->vocab.end(); ++it) {
            const std::string& t = it->first;
            size_t i = 0;
            while (t.compare(i, meta.size(), meta) == 0)
                i += meta.size();
            ok = t.find(meta, i) == std::string::npos;
        }
        impl->cutAtSpaces = ok;
    }

    for (size_t i = 0; i < added.size(); ++i) {
        const AddedToken& t = added[i];
        impl->addedByContent.emplace(t.content, t.id);
        impl->idToToken[size_t(t.id)] = t.content;
        impl->idPresent[size_t(t.id)] = 1;
        (t.normalized ? impl->normalizedMatcher : impl->rawMatcher).add(t.content, int32_t(i));
    }
    impl->rawMatcher.link();
    impl->normalizedMatcher.link();
    impl->added = std::move(added);
    return SentencePieceTokenizer(std::move(impl));
}

Encoding SentencePieceTokenizer::encode(std::string_view text) const
{
    return collectEncoding(text, [&](std::string_view t, const TokenSink& sink) { encode(t, sink); });
}

void SentencePieceTokenizer::encode(std::string_view text, const TokenSink& sink) const
{
    const Impl& d = *m_impl;
    checkUtf8Input(text);
    ClampedSink emit(sink, text.size());
    for (int32_t id : d.prefix)
        emit(id, 0, 0);
    std::vector<Split> pieces;
    splitOnAddedTokens(d.rawMatcher, d.added, text, pieces);
    std::vector<Split> sub;
    for (const Split& piece : pieces) {
        if (piece.addedIndex >= 0) {
            emit(d.added[size_t(piece.addedIndex)].id, int64_t(piece.begin), int64_t(piece.end));
            continue;
        }
        // Each piece between the raw added tokens is normalized on its own (so a Prepend acts after
        // every special token); the other added tokens are then found in the normalized text.
        Aligned a = alignedPiece(text, piece.begin, piece.end);
        d.normalize(a);
        if (d.normalizedMatcher.empty()) {
            d.encodePiece(std::move(a), emit);
            continue;
        }
        sub.clear();
        splitOnAddedTokens(d.normalizedMatcher, d.added, a.text, sub);
        for (const Split& s : sub) {
            if (s.addedIndex >= 0) {
                emit(d.added[size_t(s.addedIndex)].id, a.align[s.begin].first, a.align[s.end - 1].second);
                continue;
            }
            Aligned part;
            part.text = a.text.substr(s.begin, s.end - s.begin);
            part.align.assign(a.align.begin() + std::ptrdiff_t(s.begin),
                              a.align.begin() + std::ptrdiff_t(s.end));
            d.encodePiece(std::move(part), emit);
        }
    }
    for (int32_t id : d.suffix)
        emit(id, int64_t(text.size()), int64_t(text.size()));
}

std::string SentencePieceTokenizer::tokenBytes(int32_t id) const
{
    const Impl& d = *m_impl;
    if (id < 0 || id >= d.vocabSize || !d.idPresent[size_t(id)])
        throw Error(d.sourceName, "token id",
                    id >= 0 && id < d.vocabSize ? "an id present in the vocabulary"
                                                : "an id in [0, " + std::to_string(d.vocabSize) + ")",
                    std::to_string(id));
    const std::string& t = d.idToToken[size_t(id)];
    if (d.addedByContent.count(t))
        return t;
    const int b = d.byteFallback ? byteTokenValue(t) : -1;
    if (b >= 0)
        return std::string(1, char(b));
    return replaced(t, d.metaspace ? d.replacement : kMeta, " ");
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const
{
    const Impl& d = *m_impl;
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
        tokenBytes(id); // the range check
        tokens.push_back(d.idToToken[size_t(id)]);
    }
    if (!d.hasDecoder) {
        std::string out;
        for (size_t i = 0; i < tokens.size(); ++i)
            out += (i ? " " : "") + tokens[i];
        return out;
    }
    for (const Impl::DecodeStep& s : d.decoder) {
        switch (s.kind) {
        case Impl::DecodeStep::Replace:
            for (std::string& t : tokens)
                t = replaced(t, s.a, s.b);
            break;
        case Impl::DecodeStep::ByteFallback: {
            // A run of byte tokens is one UTF-8 text if valid, else one U+FFFD per byte.
            std::vector<std::string> out;
            std::string run;
            size_t runTokens = 0;
            auto flush = [&] {
                if (!runTokens)
                    return;
                if (unicode::findInvalidUtf8(run) == unicode::kNoError) {
                    out.push_back(run);
                } else {
                    for (size_t i = 0; i < runTokens; ++i)
                        out.push_back("\xEF\xBF\xBD");
                }
                run.clear();
                runTokens = 0;
            };
            for (std::string& t : tokens) {
                const int b = byteTokenValue(t);
                if (b >= 0) {
                    run += char(b);
                    ++runTokens;
                } else {
                    flush();
                    out.push_back(std::move(t));
                }
            }
            flush();
            tokens = std::move(out);
            break;
        }
        case Impl::DecodeStep::Fuse: {
            std::string all;
            for (const std::string& t : tokens)
                all += t;
            tokens.assign(1, all);
            break;
        }
        case Impl::DecodeStep::Strip:
            for (std::string& t : tokens) {
                for (int64_t k = 0; k < s.start && t.compare(0, s.a.size(), s.a) == 0; ++k)
                    t.erase(0, s.a.size());
                for (int64_t k = 0; k < s.stop && t.size() >= s.a.size() &&
                                    t.compare(t.size() - s.a.size(), s.a.size(), s.a) == 0;
                     ++k)
                    t.erase(t.size() - s.a.size());
            }
            break;
        case Impl::DecodeStep::Metaspace:
            for (size_t i = 0; i < tokens.size(); ++i)
                tokens[i] = replaced(tokens[i], s.a, i == 0 && !s.prependNever ? "" : " ");
            break;
        }
    }
    std::string out;
    for (const std::string& t : tokens)
        out += t;
    return unicode::toValidUtf8Lossy(out);
}

int32_t SentencePieceTokenizer::vocabSize() const
{
    return m_impl->vocabSize;
}

std::optional<int32_t> SentencePieceTokenizer::tokenToId(std::string_view token) const
{
    const std::string key(token);
    if (auto it = m_impl->addedByContent.find(key); it != m_impl->addedByContent.end())
        return it->second;
    if (auto it = m_impl->vocab.find(key); it != m_impl->vocab.end())
        return it->second;
    return std::nullopt;
}

const std::string& SentencePieceTokenizer::sourceName() const
{
    return m_impl->sourceName;
}

} // namespace statescope

namespace statescope {

namespace {

// The few protobuf fields of sentencepiece_model.proto that a BPE model needs.
class ProtoReader {
public:
    ProtoReader(const uint8_t* data, size_t size, const std::string& file)
        : m_p(data), m_end(data + size), m_file(file)
    {
    }
    bool done() const { return m_p >= m_end; }
    uint64_t varint()
    {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (m_p >= m_end)
                fail("a varint", "the end of the data");
            const uint8_t b = *m_p++;
            v |= uint64_t(b & 0x7F) << shift;
            if (!(b & 0x80))
                return v;
        }
        fail("a varint of at most 10 bytes", "a longer one");
    }
    // The next field: its number and wire type; the value is read by the caller.
    std::pair<uint32_t, uint32_t> key()
    {
        const uint64_t k = varint();
        return {uint32_t(k >> 3), uint32_t(k & 7)};
    }
    ProtoReader bytes()
    {
        const uint64_t n = varint();
        if (n > uint64_t(m_end - m_p))
            fail("a length within the file", std::to_string(n) + " bytes");
        ProtoReader sub(m_p, size_t(n), m_file);
        m_p += n;
        return sub;
    }
    std::string string()
    {
        ProtoReader b = bytes();
        return std::string(reinterpret_cast<const char*>(b.m_p), size_t(b.m_end - b.m_p));
    }
    float fixed32()
    {
        if (m_end - m_p < 4)
            fail("4 bytes of a float", "the end of the data");
        float f;
        std::memcpy(&f, m_p, 4);
        m_p += 4;
        return f;
    }
    void skip(uint32_t wire)
    {
        if (wire == 0)
            varint();
        else if (wire == 1)
            advance(8);
        else if (wire == 2)
            bytes();
        else if (wire == 5)
            advance(4);
        else
            fail("protobuf wire types 0, 1, 2 or 5", std::to_string(wire));
    }
    [[noreturn]] void fail(const std::string& expected, const std::string& actual) const
    {
        throw Error(m_file, "SentencePiece model (protobuf)", expected, actual);
    }

private:
    void advance(size_t n)
    {
        if (size_t(m_end - m_p) < n)
            fail(std::to_string(n) + " more bytes", "the end of the data");
        m_p += n;
    }
    const uint8_t* m_p;
    const uint8_t* m_end;
    const std::string& m_file;
};

struct SpmPiece {
    std::string piece;
    float score = 0;
    int type = 1; // NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6
};

} // namespace

std::string SentencePieceTokenizer::jsonFromSentencePieceModel(const std::string& path)
{
    const auto file = MappedFile::open(path);
    if (file->size() > kMaxFileBytes)
        throw Error(path, "file size", "at most 1 GiB for a SentencePiece model",
                    std::to_string(file->size()) + " bytes");
    ProtoReader r(reinterpret_cast<const uint8_t*>(file->data()), file->size(), path);
    std::vector<SpmPiece> pieces;
    int64_t modelType = 1; // TrainerSpec.model_type: UNIGRAM 1 (the default), BPE 2
    while (!r.done()) {
        const auto [field, wire] = r.key();
        if (field == 1 && wire == 2) { // ModelProto.pieces
            ProtoReader p = r.bytes();
            SpmPiece sp;
            while (!p.done()) {
                const auto [f, w] = p.key();
                if (f == 1 && w == 2)
                    sp.piece = p.string();
                else if (f == 2 && w == 5)
                    sp.score = p.fixed32();
                else if (f == 3 && w == 0)
                    sp.type = int(p.varint());
                else
                    p.skip(w);
            }
            pieces.push_back(std::move(sp));
        } else if (field == 2 && wire == 2) { // ModelProto.trainer_spec
            ProtoReader t = r.bytes();
            while (!t.done()) {
                const auto [f, w] = t.key();
                if (f == 3 && w == 0)
                    modelType = int64_t(t.varint());
                else
                    t.skip(w);
            }
        } else {
            r.skip(wire);
        }
    }
    if (pieces.empty())
        throw Error(path, "pieces", "a SentencePiece model's vocabulary", "none");
    if (modelType != 2)
        throw Error(path, "trainer_spec.model_type", "BPE (2): Unigram models are not supported",
                    std::to_string(modelType));
    if (int64_t(pieces.size()) > kMaxTokenId)
        throw Error(path, "pieces", "at most " + std::to_string(kMaxTokenId), std::to_string(pieces.size()));

    // What transformers' LlamaConverter writes: the vocabulary in piece order, control / unknown pieces
    // as special added tokens, user-defined ones as plain added tokens.
    Json vocab = Json::object();
    std::unordered_map<std::string, int64_t> ids;
    Json added = Json::array();
    bool bytes = false;
    for (size_t i = 0; i < pieces.size(); ++i) {
        const SpmPiece& p = pieces[i];
        if (ids.count(p.piece))
            throw Error(path, "pieces[" + std::to_string(i) + "]", "a piece listed once",
                        jsonQuoted(p.piece));
        ids[p.piece] = int64_t(i);
        vocab[p.piece] = i;
        bytes = bytes || p.type == 6;
        if (p.type == 2 || p.type == 3 || p.type == 4)
            added.push_back({{"id", i},
                             {"content", p.piece},
                             {"single_word", false},
                             {"lstrip", false},
                             {"rstrip", false},
                             {"normalized", false},
                             {"special", p.type != 4}});
    }
    // Merges from the scores, as transformers 5 converts a model: for each piece in id order, every split
    // into two pieces of the vocabulary, the shorter left part first; then all of them stably by the
    // piece's score, highest first. The first three pieces (<unk>, <s>, </s>) count with score 0.
    struct Merge {
        std::string left, right;
        float score;
    };
    std::vector<Merge> merges;
    for (size_t i = 0; i < pieces.size(); ++i) {
        const std::string& p = pieces[i].piece;
        const float score = i < 3 ? 0.0f : pieces[i].score;
        for (size_t k = 1; k < p.size(); ++k) {
            if ((static_cast<unsigned char>(p[k]) & 0xC0) == 0x80)
                continue; // not a character boundary
            const std::string left = p.substr(0, k), right = p.substr(k);
            if (ids.count(left) && ids.count(right))
                merges.push_back({left, right, score});
        }
    }
    std::stable_sort(merges.begin(), merges.end(),
                     [](const Merge& a, const Merge& b) { return a.score > b.score; });
    Json mergeList = Json::array();
    for (const Merge& m : merges)
        mergeList.push_back({m.left, m.right});

    Json root;
    root["version"] = "1.0";
    root["added_tokens"] = added;
    root["normalizer"] = nullptr;
    root["pre_tokenizer"] = {
        {"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "first"}, {"split", false}};
    // Llama's tokenizer adds <s> unless tokenizer_config.json says otherwise (fromJson reads that).
    if (ids.count("<s>"))
        root["post_processor"] = {
            {"type", "TemplateProcessing"},
            {"single", Json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {ids["<s>"]}}, {"tokens", {"<s>"}}}}}}};
    root["decoder"] = {
        {"type", "Sequence"},
        {"decoders", Json::array({{{"type", "Replace"}, {"pattern", {{"String", kMeta}}}, {"content", " "}},
                                  {{"type", "ByteFallback"}},
                                  {{"type", "Fuse"}},
                                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
    root["model"] = {{"type", "BPE"},    {"dropout", nullptr},     {"unk_token", nullptr},
                     {"fuse_unk", true}, {"byte_fallback", bytes}, {"ignore_merges", false},
                     {"vocab", vocab},   {"merges", mergeList}};
    return root.dump();
}

SentencePieceTokenizer SentencePieceTokenizer::fromSentencePieceModel(const std::string& path)
{
    const std::string config = configBeside(path);
    return fromJson(jsonFromSentencePieceModel(path), path, config);
}

} // namespace statescope
