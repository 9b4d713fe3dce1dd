#pragma once

// Internal to the tokenizer.json readers (BpeTokenizer, SentencePieceTokenizer): what both do the same
// way as the Rust `tokenizers` library: added tokens found in the text, JSON messages, and the sink that
// keeps the offsets monotone.
#include "Error.h"
#include "tokenizers/BpeTokenizer.h"
#include "tokenizers/Unicode.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace statescope::tokenizer_json {

using Json = nlohmann::json;

// Ids size the id tables, so a huge id in a file would make us allocate gigabytes. The largest real
// vocabularies have about 260k tokens; 4M leaves room and bounds the tables to ~150 MB.
constexpr int64_t kMaxTokenId = (int64_t(1) << 22) - 1;
constexpr int kMaxJsonDepth = 128;
// Same limits as the Rust library's word cache: short words repeat, long ones rarely do.
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 1 << 16;
constexpr uint64_t kMaxFileBytes = uint64_t(1) << 30;

// The key of a merge table: the ids of the pair's two symbols.
inline uint64_t pairKey(int32_t left, int32_t right)
{
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
}

inline std::string describe(const Json& j)
{
    if (j.is_string()) {
        std::string s = j.get<std::string>();
        if (s.size() > 60)
            s = s.substr(0, 60) + "...";
        return "\"" + s + "\"";
    }
    if (j.is_number() || j.is_boolean() || j.is_null())
        return j.dump();
    return std::string("a JSON ") + j.type_name();
}

inline std::string jsonQuoted(const std::string& s)
{
    return Json(s).dump();
}

struct AddedToken {
    int32_t id = 0;
    std::string content;
    bool special = false;
    bool normalized = true;
    bool lstrip = false;
    bool rstrip = false;
    bool singleWord = false;
};

// Finds added tokens the way the Rust library's Aho-Corasick automaton with MatchKind::LeftmostLongest
// does: the match that starts first, and among those the longest. An Aho-Corasick automaton over the
// patterns (failure links, and links to the longest pattern that is a suffix) reads each text byte
// once; walking the trie afresh from every start was quadratic when an added token was a long
// prefix of the text (100 KB of "a" then "b" against 1 MB of "a": minutes).
class AddedTokenMatcher {
public:
    AddedTokenMatcher() { m_nodes.emplace_back(); }

    void add(std::string_view pattern, int32_t tokenIndex)
    {
        if (pattern.empty())
            return;
        int32_t node = 0;
        for (char ch : pattern) {
            const auto b = static_cast<unsigned char>(ch);
            int32_t child = findChild(node, b);
            if (child < 0) {
                child = static_cast<int32_t>(m_nodes.size());
                m_nodes[node].children.emplace_back(b, child);
                m_nodes.emplace_back();
                m_nodes.back().depth = m_nodes[node].depth + 1;
            }
            node = child;
        }
        if (m_nodes[node].token < 0) // identical patterns: the first one listed wins
            m_nodes[node].token = tokenIndex;
        m_empty = false;
    }

    bool empty() const { return m_empty; }

    // The leftmost-longest match starting at or after `from`.
    bool find(std::string_view text, size_t from, size_t& begin, size_t& end, int32_t& tokenIndex) const
    {
        if (m_empty)
            return false;
        int32_t node = 0;
        int32_t best = -1;
        size_t bestBegin = 0, bestEnd = 0;
        for (size_t j = from; j < text.size(); ++j) {
            node = step(node, static_cast<unsigned char>(text[j]));
            // The longest pattern ending here: of those ending here, it starts first.
            const int32_t o = m_nodes[node].token >= 0 ? node : m_nodes[node].output;
            if (o > 0) {
                const size_t start = j + 1 - size_t(m_nodes[o].depth);
                if (best < 0 || start < bestBegin || (start == bestBegin && j + 1 > bestEnd)) {
                    best = m_nodes[o].token;
                    bestBegin = start;
                    bestEnd = j + 1;
                }
            }
            // A match still possible starts at j + 1 - depth or later: once that is past the best
            // match's start, nothing can beat it.
            if (best >= 0 && j + 1 - size_t(m_nodes[node].depth) > bestBegin)
                break;
        }
        if (best < 0)
            return false;
        begin = bestBegin;
        end = bestEnd;
        tokenIndex = best;
        return true;
    }

private:
    struct Node {
        std::vector<std::pair<unsigned char, int32_t>> children;
        int32_t token = -1;
        int32_t depth = 0;
        int32_t fail = 0;
        int32_t output = 0; // the nearest node on the failure chain that ends a pattern; 0: none
    };

    int32_t findChild(int32_t node, unsigned char b) const
    {
        for (const auto& c : m_nodes[node].children) {
            if (c.first == b)
                return c.second;
        }
        return -1;
    }

    int32_t step(int32_t node, unsigned char b) const
    {
        while (true) {
            const int32_t child = findChild(node, b);
            if (child >= 0)
                return child;
            if (node == 0)
                return 0;
            node = m_nodes[node].fail;
        }
    }

public:
    // Failure and output links, breadth first: call once after the last add(), before find().
    void link()
    {
        std::vector<int32_t> queue;
        for (const auto& c : m_nodes[0].children) {
            m_nodes[c.second].fail = 0;
            m_nodes[c.second].output = 0;
            queue.push_back(c.second);
        }
        for (size_t q = 0; q < queue.size(); ++q) {
            const int32_t node = queue[q];
            for (const auto& [b, child] : m_nodes[node].children) {
                int32_t f = m_nodes[node].fail;
                int32_t target = -1;
                while (true) {
                    target = findChild(f, b);
                    if (target >= 0 || f == 0)
                        break;
                    f = m_nodes[f].fail;
                }
                const int32_t fail = target >= 0 && target != child ? target : 0;
                m_nodes[child].fail = fail;
                m_nodes[child].output = m_nodes[fail].token >= 0 ? fail : m_nodes[fail].output;
                queue.push_back(child);
            }
        }
    }

private:
    std::vector<Node> m_nodes;
    bool m_empty = true;
};

// A piece of text [begin, end): plain text when addedIndex < 0, else the added token it matched.
struct Split {
    size_t begin;
    size_t end;
    int32_t addedIndex;
};

inline size_t previousCharStart(std::string_view s, size_t pos)
{
    do {
        --pos;
    } while (pos > 0 && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80);
    return pos;
}

// The Rust AddedVocabulary::find_matches, including single_word, lstrip and rstrip (none of which the
// GPT-NeoX tokenizer sets, but other tokenizer.json files do).
inline void splitOnAddedTokens(const AddedTokenMatcher& matcher, const std::vector<AddedToken>& tokens,
                               std::string_view text, std::vector<Split>& out)
{
    size_t startOffset = 0;
    size_t from = 0;
    size_t b = 0, e = 0;
    int32_t index = -1;
    while (matcher.find(text, from, b, e, index)) {
        from = e;
        const AddedToken& token = tokens[static_cast<size_t>(index)];
        size_t start = b, stop = e;
        if (start < startOffset)
            continue; // inside whitespace an earlier rstrip token already took
        if (token.singleWord) {
            bool wordBefore = false, wordAfter = false;
            if (start > 0) {
                size_t p = previousCharStart(text, start);
                wordBefore = unicode::isWordChar(unicode::nextCodePoint(text, p));
            }
            if (stop < text.size()) {
                size_t p = stop;
                wordAfter = unicode::isWordChar(unicode::nextCodePoint(text, p));
            }
            if (wordBefore || wordAfter)
                continue;
        }
        if (token.lstrip) {
            size_t newStart = start;
            while (newStart > startOffset) {
                const size_t p0 = previousCharStart(text, newStart);
                size_t p = p0;
                if (!unicode::isWhiteSpace(unicode::nextCodePoint(text, p)))
                    break;
                newStart = p0;
            }
            start = newStart;
        }
        if (token.rstrip) {
            while (stop < text.size()) {
                size_t p = stop;
                if (!unicode::isWhiteSpace(unicode::nextCodePoint(text, p)))
                    break;
                stop = p;
            }
            from = std::max(from, stop);
        }
        if (startOffset < start)
            out.push_back({startOffset, start, -1});
        out.push_back({start, stop, index});
        startOffset = stop;
    }
    if (startOffset < text.size())
        out.push_back({startOffset, text.size(), -1});
}

// The spans are monotone and in range by construction; this makes that a guarantee for the GUI,
// token by token as they are handed on.
class ClampedSink {
public:
    ClampedSink(const TokenSink& sink, size_t textSize) : m_sink(sink), m_size(static_cast<int64_t>(textSize))
    {
    }
    void operator()(int32_t id, int64_t begin, int64_t end)
    {
        begin = std::clamp<int64_t>(begin, m_last, m_size);
        end = std::clamp<int64_t>(end, begin, m_size);
        m_last = end;
        m_sink(id, begin, end);
    }

private:
    const TokenSink& m_sink;
    int64_t m_size;
    int64_t m_last = 0;
};

// Throws Error("input text", ...) naming the first byte that is not UTF-8.
inline void checkUtf8Input(std::string_view text)
{
    const size_t bad = unicode::findInvalidUtf8(text);
    if (bad == unicode::kNoError)
        return;
    char byteHex[8];
    std::snprintf(byteHex, sizeof(byteHex), "0x%02X", static_cast<unsigned char>(text[bad]));
    throw Error("input text",
                "not valid UTF-8 at byte offset " + std::to_string(bad) + " (byte " + byteHex + ")");
}

// A streaming encode(text, sink) collected into an Encoding.
template <typename Encode> Encoding collectEncoding(std::string_view text, Encode&& encode)
{
    Encoding enc;
    enc.ids.reserve(text.size() / 3 + 4);
    enc.offsets.reserve(2 * (text.size() / 3 + 4));
    encode(text, [&](int32_t id, int64_t begin, int64_t end) {
        enc.ids.push_back(id);
        enc.offsets.push_back(begin);
        enc.offsets.push_back(end);
    });
    return enc;
}

// One entry of tokenizer.json's added_tokens, with the Rust library's defaults (normalized unless
// special); source names the file in errors, field the entry ("added_tokens[3]").
inline AddedToken readAddedToken(const Json& t, const std::string& source, const std::string& field)
{
    if (!t.is_object())
        throw Error(source, field, "an object", describe(t));
    auto flag = [&](const char* key, bool fallback) {
        auto it = t.find(key);
        if (it == t.end() || it->is_null())
            return fallback;
        if (!it->is_boolean())
            throw Error(source, field + "." + key, "true or false", describe(*it));
        return it->get<bool>();
    };
    AddedToken token;
    auto id = t.find("id");
    if (id == t.end() || !id->is_number_integer() || id->get<int64_t>() < 0 ||
        id->get<int64_t>() > kMaxTokenId)
        throw Error(source, field + ".id", "a token id in [0, " + std::to_string(kMaxTokenId) + "]",
                    id == t.end() ? "nothing" : describe(*id));
    token.id = static_cast<int32_t>(id->get<int64_t>());
    auto content = t.find("content");
    if (content == t.end() || !content->is_string())
        throw Error(source, field + ".content", "a string",
                    content == t.end() ? "nothing" : describe(*content));
    token.content = content->get<std::string>();
    token.special = flag("special", false);
    token.normalized = flag("normalized", !token.special);
    token.lstrip = flag("lstrip", false);
    token.rstrip = flag("rstrip", false);
    token.singleWord = flag("single_word", false);
    return token;
}

} // namespace statescope::tokenizer_json
