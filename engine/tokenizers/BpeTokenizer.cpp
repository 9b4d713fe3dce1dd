#include "tokenizers/BpeTokenizer.h"

#include "io/Json.h"
#include "io/MappedFile.h"

#include "Error.h"
#include "tokenizers/TokenizerJson.h"
#include "tokenizers/Unicode.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <queue>
#include <unordered_map>

namespace statescope {

namespace {

using Json = nlohmann::json;
using namespace tokenizer_json;

// The ByteLevel pre-tokenizer regex (GPT-2). The Rust library runs it with Oniguruma, whose Unicode
// \s is exactly White_Space. PCRE2's \s with UCP also accepts U+180E (through \h), so \s is spelled
// out here as the White_Space class (the goldens "mvs_*", made with the Rust library, check this).
#define STATESCOPE_WS                                                                                        \
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"                 \
    "\\x{202F}\\x{205F}\\x{3000}"
constexpr const char* kByteLevelPattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" STATESCOPE_WS "\\p{L}\\p{N}]+|[" STATESCOPE_WS
    "]+(?![^" STATESCOPE_WS "])|[" STATESCOPE_WS "]+";
#undef STATESCOPE_WS

// GPT-2's bytes_to_unicode(): printable bytes keep their code point, the other 68 bytes map in
// ascending order onto U+0100.. so that every token is printable text.
struct ByteMap {
    std::array<char32_t, 256> byteToChar{};
    std::array<int16_t, 0x144> charToByte{}; // -1: the code point stands for no byte

    ByteMap()
    {
        charToByte.fill(-1);
        char32_t next = 0x100;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            const char32_t cp = printable ? char32_t(b) : next++;
            byteToChar[b] = cp;
            charToByte[cp] = static_cast<int16_t>(b);
        }
    }
};

const ByteMap& byteMap()
{
    static const ByteMap map;
    return map;
}

// Token text as stored in the vocabulary ("Ġworld") → the bytes it stands for (" world"). Like the
// Rust ByteLevel decoder, a token with any character outside the byte alphabet stands for its own
// UTF-8. `mapped` tells which case applied: only mapped tokens can come out of byte-level BPE.
std::string tokenTextToBytes(const std::string& text, bool* mapped)
{
    const ByteMap& bm = byteMap();
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
        const char32_t cp = unicode::nextCodePoint(text, pos);
        if (cp >= bm.charToByte.size() || bm.charToByte[cp] < 0) {
            *mapped = false;
            return text;
        }
        out += static_cast<char>(bm.charToByte[cp]);
    }
    *mapped = true;
    return out;
}

std::string byteToTokenText(unsigned char b)
{
    std::string s;
    unicode::appendUtf8(s, byteMap().byteToChar[b]);
    return s;
}

struct WordToken {
    int32_t id;
    uint32_t begin; // byte offsets inside the word
    uint32_t end;
};

struct MergeInfo {
    int32_t rank;
    int32_t newId;
};

} // namespace

struct BpeTokenizer::Impl {
    std::string sourceName;
    int32_t vocabSize = 0;

    std::unordered_map<std::string, int32_t> vocab; // token text as in the file ("Ġworld")
    std::vector<std::string> idToBytes;
    std::vector<uint8_t> idPresent;

    std::vector<AddedToken> added;
    std::unordered_map<std::string, int32_t> addedByContent;
    AddedTokenMatcher rawMatcher;        // tokens with normalized == false, matched on the input
    AddedTokenMatcher normalizedMatcher; // the others, matched (NFC'd) on normalized text

    bool nfc = false;
    bool addPrefixSpace = false;
    bool useRegex = true;
    bool ignoreMerges = false;
    bool fuseUnk = false;
    int32_t unkId = -1;
    std::array<int32_t, 256> byteToId{};
    std::unordered_map<uint64_t, MergeInfo> merges;
    std::unordered_map<std::string, int32_t> bytesToId; // only filled for ignore_merges
    std::unique_ptr<UnicodeRegex> regex;

    mutable std::mutex cacheMutex;
    mutable std::unordered_map<std::string, std::vector<WordToken>> cache;

    void bpe(std::string_view word, std::vector<WordToken>& out) const;
    void mergeWord(std::string_view word, std::vector<WordToken>& out) const;
    void encodeText(std::string_view text, const std::function<size_t(size_t)>& toOriginal,
                    ClampedSink& emit) const;
};

void BpeTokenizer::Impl::bpe(std::string_view word, std::vector<WordToken>& out) const
{
    out.clear();
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    std::string key;
    if (cacheable) {
        key.assign(word);
        std::lock_guard<std::mutex> lock(cacheMutex);
        auto it = cache.find(key);
        if (it != cache.end()) {
            out = it->second;
            return;
        }
    }
    bool done = false;
    if (ignoreMerges) {
        auto it = bytesToId.find(std::string(word));
        if (it != bytesToId.end()) {
            out.push_back({it->second, 0, static_cast<uint32_t>(word.size())});
            done = true;
        }
    }
    if (!done)
        mergeWord(word, out);
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cacheMutex);
        if (cache.size() >= kMaxCacheEntries)
            cache.clear();
        cache.emplace(std::move(key), out);
    }
}

// The Rust BPE word merge: repeatedly apply the lowest-ranked merge present, leftmost first on ties,
// one pair at a time, with a heap so that long words (a million newlines) stay O(n log n).
void BpeTokenizer::Impl::mergeWord(std::string_view word, std::vector<WordToken>& out) const
{
    struct Symbol {
        int32_t id;
        int32_t prev;
        int32_t next;
        uint32_t begin;
        uint32_t end; // begin == end: merged away
    };
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    bool lastWasUnk = false;
    for (size_t i = 0; i < word.size(); ++i) {
        const int32_t id = byteToId[static_cast<unsigned char>(word[i])];
        const auto begin = static_cast<uint32_t>(i), end = static_cast<uint32_t>(i + 1);
        if (id >= 0) {
            symbols.push_back({id, 0, 0, begin, end});
            lastWasUnk = false;
        } else if (unkId >= 0) {
            if (fuseUnk && lastWasUnk)
                symbols.back().end = end;
            else
                symbols.push_back({unkId, 0, 0, begin, end});
            lastWasUnk = true;
        }
        // Without an unk token the Rust library drops bytes missing from the vocabulary; so do we.
    }
    const auto n = static_cast<int32_t>(symbols.size());
    for (int32_t i = 0; i < n; ++i) {
        symbols[i].prev = i - 1;
        symbols[i].next = i + 1 < n ? i + 1 : -1;
    }

    // A merge's rank names its pair: a queued candidate whose rank still matches the pair now at its
    // position is current. 8 bytes a candidate, for words of millions of bytes.
    struct Candidate {
        int32_t rank;
        int32_t pos;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::vector<Candidate> heap;
    heap.reserve(symbols.size());
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue(
        std::greater<Candidate>(), std::move(heap));
    auto consider = [&](int32_t left) {
        if (left < 0)
            return;
        const int32_t right = symbols[left].next;
        if (right < 0)
            return;
        auto it = merges.find(pairKey(symbols[left].id, symbols[right].id));
        if (it != merges.end())
            queue.push({it->second.rank, left});
    };
    for (int32_t i = 0; i + 1 < n; ++i)
        consider(i);

    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = symbols[top.pos];
        if (left.begin == left.end || left.next < 0)
            continue;
        Symbol& right = symbols[left.next];
        auto it = merges.find(pairKey(left.id, right.id));
        if (it == merges.end() || it->second.rank != top.rank)
            continue; // stale: one side changed since this candidate was queued
        left.id = it->second.newId;
        left.end = right.end;
        left.next = right.next;
        right.begin = right.end;
        if (left.next >= 0)
            symbols[left.next].prev = top.pos;
        consider(left.prev);
        consider(top.pos);
    }

    for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = symbols[i].next)
        out.push_back({symbols[i].id, symbols[i].begin, symbols[i].end});
}

// Pre-tokenizes and BPE-encodes text free of added tokens. `toOriginal` maps a byte offset of `text`
// to the original input.
void BpeTokenizer::Impl::encodeText(std::string_view text, const std::function<size_t(size_t)>& toOriginal,
                                    ClampedSink& emit) const
{
    std::string_view subject = text;
    std::string withSpace;
    size_t shift = 0;
    if (addPrefixSpace && (text.empty() || text[0] != ' ')) {
        withSpace.reserve(text.size() + 1);
        withSpace += ' ';
        withSpace.append(text);
        subject = withSpace;
        shift = 1; // the added space covers no input: it maps to the start of the text
    }

    std::vector<WordToken> tokens;
    auto emitWord = [&](size_t b, size_t e) {
        bpe(subject.substr(b, e - b), tokens);
        for (const WordToken& t : tokens) {
            const size_t tb = b + t.begin, te = b + t.end;
            emit(t.id, static_cast<int64_t>(toOriginal(tb > shift ? tb - shift : 0)),
                 static_cast<int64_t>(toOriginal(te > shift ? te - shift : 0)));
        }
    };
    if (!useRegex) {
        if (!subject.empty())
            emitWord(0, subject.size());
        return;
    }
    // Split with "Isolated" behaviour: text between matches (none with this regex) stays a piece too.
    size_t previous = 0;
    regex->forEachMatch(subject, [&](size_t b, size_t e) {
        if (b > previous)
            emitWord(previous, b);
        emitWord(b, e);
        previous = e;
    });
    if (previous < subject.size())
        emitWord(previous, subject.size());
}

BpeTokenizer::BpeTokenizer(std::shared_ptr<const Impl> impl) : m_impl(std::move(impl)) {}

BpeTokenizer BpeTokenizer::fromFile(const std::string& path)
{
    // Regular files only: a FIFO would wait for a writer forever.
    const auto file = MappedFile::open(path);
    if (file->size() > kMaxFileBytes)
        throw Error(path, "file size", "at most 1 GiB for a tokenizer.json",
                    std::to_string(file->size()) + " bytes");
    return fromJson(std::string(reinterpret_cast<const char*>(file->data()), file->size()), path);
}

namespace {

// The pieces of tokenizer.json that configure the pipeline, checked one by one so that an
// unsupported file fails with the field that is not supported.
class ConfigReader {
public:
    explicit ConfigReader(const std::string& source) : m_source(source) {}

    [[noreturn]] void fail(const std::string& field, const std::string& expected,
                           const std::string& actual) const
    {
        throw Error(m_source, field, expected, actual);
    }

    const Json& requireObject(const Json& parent, const char* key, const std::string& field) const
    {
        auto it = parent.find(key);
        if (it == parent.end())
            fail(field, "an object", "nothing (the field is missing)");
        if (!it->is_object())
            fail(field, "an object", describe(*it));
        return *it;
    }

    std::string typeOf(const Json& component, const std::string& field) const
    {
        auto it = component.find("type");
        if (it == component.end() || !it->is_string())
            fail(field + ".type", "a string", it == component.end() ? "nothing" : describe(*it));
        return it->get<std::string>();
    }

    bool optionalBool(const Json& obj, const char* key, bool fallback, const std::string& field) const
    {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null())
            return fallback;
        if (!it->is_boolean())
            fail(field + "." + key, "true or false", describe(*it));
        return it->get<bool>();
    }

    int32_t tokenId(const Json& value, const std::string& field) const
    {
        if (!value.is_number_integer())
            fail(field, "an integer token id", describe(value));
        const bool negative = value.is_number_unsigned() ? false : value.get<int64_t>() < 0;
        if (negative || (value.is_number_unsigned() ? value.get<uint64_t>() > uint64_t(kMaxTokenId)
                                                    : value.get<int64_t>() > kMaxTokenId))
            fail(field, "a token id in [0, " + std::to_string(kMaxTokenId) + "]", describe(value));
        return static_cast<int32_t>(value.get<int64_t>());
    }

    // NFC, or a Sequence made only of NFC (possibly nested), or nothing.
    bool normalizerIsNfc(const Json& n, const std::string& field) const
    {
        if (n.is_null())
            return false;
        if (!n.is_object())
            fail(field, "an object or null", describe(n));
        const std::string type = typeOf(n, field);
        if (type == "NFC")
            return true;
        if (type == "Sequence") {
            auto it = n.find("normalizers");
            if (it == n.end() || !it->is_array())
                fail(field + ".normalizers", "an array", it == n.end() ? "nothing" : describe(*it));
            bool any = false;
            for (size_t i = 0; i < it->size(); ++i)
                any = normalizerIsNfc((*it)[i], field + ".normalizers[" + std::to_string(i) + "]") || any;
            return any;
        }
        fail(field + ".type", "\"NFC\", a \"Sequence\" of NFC, or a null normalizer", jsonQuoted(type));
    }

    // The ByteLevel pre-tokenizer, alone or as the only member of a Sequence.
    const Json& byteLevelPreTokenizer(const Json& root) const
    {
        auto it = root.find("pre_tokenizer");
        if (it == root.end() || !it->is_object())
            fail("pre_tokenizer", "a ByteLevel pre-tokenizer", it == root.end() ? "nothing" : describe(*it));
        const std::string type = typeOf(*it, "pre_tokenizer");
        if (type == "ByteLevel")
            return *it;
        if (type == "Sequence") {
            auto list = it->find("pretokenizers");
            if (list == it->end() || !list->is_array() || list->size() != 1 || !(*list)[0].is_object() ||
                typeOf((*list)[0], "pre_tokenizer.pretokenizers[0]") != "ByteLevel")
                fail("pre_tokenizer.pretokenizers", "exactly one ByteLevel pre-tokenizer",
                     list == it->end() ? "nothing" : describe(*list).substr(0, 80));
            return (*list)[0];
        }
        fail("pre_tokenizer.type", "\"ByteLevel\" (or a \"Sequence\" holding only ByteLevel)",
             jsonQuoted(type));
    }

    // Components whose only accepted kinds are ByteLevel or nothing (decoder, post_processor).
    void requireByteLevelOrNull(const Json& root, const char* key) const
    {
        auto it = root.find(key);
        if (it == root.end() || it->is_null())
            return;
        if (!it->is_object())
            fail(key, "an object or null", describe(*it));
        const std::string type = typeOf(*it, key);
        if (type == "ByteLevel")
            return;
        if (type == "Sequence") {
            const char* listKey = std::strcmp(key, "decoder") == 0 ? "decoders" : "processors";
            auto list = it->find(listKey);
            if (list != it->end() && list->is_array()) {
                bool ok = true;
                for (const Json& c : *list)
                    ok = ok && c.is_object() && c.contains("type") && c.at("type") == "ByteLevel";
                if (ok)
                    return;
            }
        }
        fail(std::string(key) + ".type", "\"ByteLevel\" or null", jsonQuoted(type));
    }

private:
    const std::string& m_source;
};

} // namespace

BpeTokenizer BpeTokenizer::fromJson(const std::string& jsonText, const std::string& sourceName)
{
    // Real tokenizer.json files nest a few levels; a crafted one nested 100,000 Sequences deep, and
    // reading its normalizer recursed that deep (5 GB, then a stack overflow).
    checkJsonDepth(jsonText.data(), jsonText.size(), sourceName, kMaxJsonDepth);
    Json root;
    try {
        root = Json::parse(jsonText);
    } catch (const Json::exception& e) {
        throw Error(sourceName, std::string("malformed JSON: ") + e.what());
    }
    const ConfigReader cfg(sourceName);
    if (!root.is_object())
        cfg.fail("(top level)", "a JSON object", describe(root));

    auto impl = std::make_shared<Impl>();
    impl->sourceName = sourceName;

    // --- model ---
    const Json& model = cfg.requireObject(root, "model", "model");
    {
        auto it = model.find("type");
        if (it == model.end())
            cfg.fail("model.type", "\"BPE\"", "nothing (the field is missing)");
        if (!it->is_string() || it->get<std::string>() != "BPE")
            cfg.fail("model.type", "\"BPE\"", describe(*it));
    }
    impl->ignoreMerges = cfg.optionalBool(model, "ignore_merges", false, "model");
    const Json& vocabJson = cfg.requireObject(model, "vocab", "model.vocab");
    int64_t maxId = -1;
    impl->vocab.reserve(vocabJson.size());
    for (auto it = vocabJson.begin(); it != vocabJson.end(); ++it) {
        const int32_t id = cfg.tokenId(it.value(), "model.vocab[" + jsonQuoted(it.key()) + "]");
        impl->vocab.emplace(it.key(), id);
        maxId = std::max<int64_t>(maxId, id);
    }

    std::vector<AddedToken> added;
    if (auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
        if (!it->is_array())
            cfg.fail("added_tokens", "an array", describe(*it));
        for (size_t i = 0; i < it->size(); ++i) {
            AddedToken token =
                readAddedToken((*it)[i], sourceName, "added_tokens[" + std::to_string(i) + "]");
            if (token.content.empty())
                continue; // the Rust library ignores empty added tokens
            maxId = std::max<int64_t>(maxId, token.id);
            added.push_back(std::move(token));
        }
    }
    if (maxId < 0)
        cfg.fail("model.vocab", "at least one token", "an empty vocabulary");
    impl->vocabSize = static_cast<int32_t>(maxId + 1);

    impl->idToBytes.assign(static_cast<size_t>(impl->vocabSize), std::string());
    impl->idPresent.assign(static_cast<size_t>(impl->vocabSize), 0);
    for (const auto& [text, id] : impl->vocab) {
        if (impl->idPresent[id])
            cfg.fail("model.vocab[" + jsonQuoted(text) + "]", "a unique id",
                     "id " + std::to_string(id) + " used twice");
        bool mapped = false;
        impl->idToBytes[id] = tokenTextToBytes(text, &mapped);
        impl->idPresent[id] = 1;
        if (mapped && impl->ignoreMerges)
            impl->bytesToId.emplace(impl->idToBytes[id], id);
    }
    for (int b = 0; b < 256; ++b) {
        auto it = impl->vocab.find(byteToTokenText(static_cast<unsigned char>(b)));
        impl->byteToId[b] = it == impl->vocab.end() ? -1 : it->second;
    }

    // --- merges: rank = position in the list ---
    if (auto it = model.find("merges"); it != model.end() && !it->is_null()) {
        if (!it->is_array())
            cfg.fail("model.merges", "an array", describe(*it));
        impl->merges.reserve(it->size());
        for (size_t i = 0; i < it->size(); ++i) {
            const Json& m = (*it)[i];
            const std::string field = "model.merges[" + std::to_string(i) + "]";
            std::string left, right;
            if (m.is_string()) {
                const std::string s = m.get<std::string>();
                const size_t space = s.find(' ');
                if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
                    cfg.fail(field, "two tokens separated by one space", describe(m));
                left = s.substr(0, space);
                right = s.substr(space + 1);
            } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
                left = m[0].get<std::string>();
                right = m[1].get<std::string>();
            } else {
                cfg.fail(field, "\"a b\" or [\"a\", \"b\"]", describe(m));
            }
            auto l = impl->vocab.find(left), r = impl->vocab.find(right);
            if (l == impl->vocab.end())
                cfg.fail(field, "tokens of model.vocab",
                         jsonQuoted(left) + ", which is not in the vocabulary");
            if (r == impl->vocab.end())
                cfg.fail(field, "tokens of model.vocab",
                         jsonQuoted(right) + ", which is not in the vocabulary");
            auto merged = impl->vocab.find(left + right);
            if (merged == impl->vocab.end())
                cfg.fail(field, "a merge whose result is in model.vocab",
                         jsonQuoted(left + right) + ", which is not in the vocabulary");
            // A pair listed twice keeps its first (lowest) rank.
            impl->merges.emplace(pairKey(l->second, r->second),
                                 MergeInfo{static_cast<int32_t>(i), merged->second});
        }
    }

    // --- the rest of the BPE model's options ---
    if (auto it = model.find("dropout"); it != model.end() && !it->is_null()) {
        if (!it->is_number() || it->get<double>() > 0.0)
            cfg.fail("model.dropout", "null (BPE dropout is random and only used in training)",
                     describe(*it));
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        auto it = model.find(key);
        if (it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
            cfg.fail(std::string("model.") + key, "null (not used by byte-level BPE)", describe(*it));
    }
    impl->fuseUnk = cfg.optionalBool(model, "fuse_unk", false, "model");
    // byte_fallback only acts on characters missing from the vocabulary; a byte-level vocabulary
    // holds all 256 bytes, so it is ignored.
    if (auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
        if (!it->is_string())
            cfg.fail("model.unk_token", "a string or null", describe(*it));
        auto unk = impl->vocab.find(it->get<std::string>());
        if (unk == impl->vocab.end())
            cfg.fail("model.unk_token", "a token of model.vocab", describe(*it));
        impl->unkId = unk->second;
    }

    // --- pipeline ---
    impl->nfc =
        root.contains("normalizer") ? cfg.normalizerIsNfc(root.at("normalizer"), "normalizer") : false;
    const Json& byteLevel = cfg.byteLevelPreTokenizer(root);
    impl->addPrefixSpace = cfg.optionalBool(byteLevel, "add_prefix_space", true, "pre_tokenizer");
    impl->useRegex = cfg.optionalBool(byteLevel, "use_regex", true, "pre_tokenizer");
    cfg.requireByteLevelOrNull(root, "decoder");
    // The ByteLevel post-processor only trims offsets (ours are untrimmed by design) and adds no tokens.
    cfg.requireByteLevelOrNull(root, "post_processor");
    // `truncation` and `padding` only matter for batched model inputs; encode() returns everything.
    if (impl->useRegex)
        impl->regex = std::make_unique<UnicodeRegex>(kByteLevelPattern, sourceName);

    // --- added tokens: they win over the model vocab for id → text, like the Rust library ---
    for (size_t i = 0; i < added.size(); ++i) {
        const AddedToken& t = added[i];
        impl->addedByContent.emplace(t.content, t.id);
        impl->idToBytes[t.id] = t.content;
        impl->idPresent[t.id] = 1;
        if (t.normalized)
            impl->normalizedMatcher.add(impl->nfc ? unicode::nfc(t.content) : t.content,
                                        static_cast<int32_t>(i));
        else
            impl->rawMatcher.add(t.content, static_cast<int32_t>(i));
    }
    impl->normalizedMatcher.link();
    impl->rawMatcher.link();
    impl->added = std::move(added);
    return BpeTokenizer(std::move(impl));
}

Encoding BpeTokenizer::encode(std::string_view text) const
{
    return collectEncoding(text, [&](std::string_view t, const TokenSink& sink) { encode(t, sink); });
}

void BpeTokenizer::encode(std::string_view text, const TokenSink& sink) const
{
    const Impl& d = *m_impl;
    checkUtf8Input(text);

    ClampedSink emit(sink, text.size());
    std::vector<Split> pieces;
    splitOnAddedTokens(d.rawMatcher, d.added, text, pieces);
    std::vector<Split> subPieces;
    for (const Split& piece : pieces) {
        if (piece.addedIndex >= 0) {
            emit(d.added[piece.addedIndex].id, static_cast<int64_t>(piece.begin),
                 static_cast<int64_t>(piece.end));
            continue;
        }
        const std::string_view raw = text.substr(piece.begin, piece.end - piece.begin);
        unicode::AlignedText norm;
        std::string_view normalized = raw;
        if (d.nfc) {
            norm = unicode::nfcAligned(raw);
            normalized = norm.text;
        }

        subPieces.clear();
        splitOnAddedTokens(d.normalizedMatcher, d.added, normalized, subPieces);
        for (const Split& sub : subPieces) {
            auto toOriginal = [&](size_t k) { return piece.begin + norm.originalOffset(sub.begin + k); };
            if (sub.addedIndex >= 0) {
                emit(d.added[sub.addedIndex].id, static_cast<int64_t>(toOriginal(0)),
                     static_cast<int64_t>(toOriginal(sub.end - sub.begin)));
            } else {
                d.encodeText(normalized.substr(sub.begin, sub.end - sub.begin), toOriginal, emit);
            }
        }
    }
}

std::string BpeTokenizer::tokenBytes(int32_t id) const
{
    const Impl& d = *m_impl;
    if (id < 0 || id >= d.vocabSize || !d.idPresent[static_cast<size_t>(id)]) {
        throw Error(d.sourceName, "token id",
                    id >= 0 && id < d.vocabSize ? "an id present in the vocabulary"
                                                : "an id in [0, " + std::to_string(d.vocabSize) + ")",
                    std::to_string(id));
    }
    return d.idToBytes[static_cast<size_t>(id)];
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const
{
    std::string bytes;
    for (int32_t id : ids)
        bytes += tokenBytes(id);
    return unicode::toValidUtf8Lossy(bytes);
}

int32_t BpeTokenizer::vocabSize() const
{
    return m_impl->vocabSize;
}

std::optional<int32_t> BpeTokenizer::tokenToId(std::string_view token) const
{
    const std::string key(token);
    if (auto it = m_impl->addedByContent.find(key); it != m_impl->addedByContent.end())
        return it->second;
    if (auto it = m_impl->vocab.find(key); it != m_impl->vocab.end())
        return it->second;
    return std::nullopt;
}

const std::string& BpeTokenizer::sourceName() const
{
    return m_impl->sourceName;
}

} // namespace statescope
