#include "tokenizers/WorldTokenizer.h"

#include "Error.h"
#include "tokenizers/Unicode.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace statescope {

namespace {

int hexValue(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

} // namespace

std::string parsePythonLiteral(std::string_view s, const std::string& where)
{
    auto bad = [&](const std::string& why) {
        return Error(where, "literal", "a Python str or bytes literal as repr() writes it",
                     why + ": " + std::string(s.substr(0, 80)));
    };
    const bool bytes = !s.empty() && s.front() == 'b';
    if (bytes)
        s.remove_prefix(1);
    if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front())
        throw bad("no matching quotes");
    const char quote = s.front();
    s = s.substr(1, s.size() - 2);
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == quote)
            throw bad("an unescaped quote inside");
        if (c != '\\') {
            if (bytes && static_cast<unsigned char>(c) >= 0x80)
                throw bad("a non-ASCII character in a bytes literal");
            out += c;
            continue;
        }
        if (++i >= s.size())
            throw bad("a backslash at the end");
        auto hex = [&](size_t digits) {
            if (i + digits >= s.size())
                throw bad("a short escape");
            uint32_t v = 0;
            for (size_t k = 1; k <= digits; ++k) {
                const int h = hexValue(s[i + k]);
                if (h < 0)
                    throw bad("a bad hex digit");
                v = v * 16 + static_cast<uint32_t>(h);
            }
            i += digits;
            return v;
        };
        switch (s[i]) {
        case '\\':
            out += '\\';
            break;
        case '\'':
            out += '\'';
            break;
        case '"':
            out += '"';
            break;
        case 'n':
            out += '\n';
            break;
        case 'r':
            out += '\r';
            break;
        case 't':
            out += '\t';
            break;
        case 'a':
            out += '\a';
            break;
        case 'b':
            out += '\b';
            break;
        case 'f':
            out += '\f';
            break;
        case 'v':
            out += '\v';
            break;
        case 'x': {
            const uint32_t v = hex(2);
            if (bytes)
                out += static_cast<char>(v);
            else
                unicode::appendUtf8(out, static_cast<char32_t>(v)); // in a str, \xhh is the code point U+00hh
            break;
        }
        case 'u':
        case 'U': {
            if (bytes)
                throw bad("a \\u escape in a bytes literal");
            const uint32_t v = hex(s[i] == 'u' ? 4 : 8);
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
                throw bad("an escape that is not a Unicode scalar value");
            unicode::appendUtf8(out, static_cast<char32_t>(v));
            break;
        }
        default:
            throw bad(std::string("an unknown escape \\") + s[i]);
        }
    }
    return out;
}

struct WorldTokenizer::Impl {
    // A byte trie: node 0 is the root. Children sorted by byte; the root's are found directly.
    struct Node {
        int32_t id = -1;
        std::vector<std::pair<uint8_t, int32_t>> children;
    };
    std::vector<Node> nodes;
    int32_t rootChild[256];
    std::vector<std::string> tokens; // by id; empty where no token
    std::string source;
    size_t longest = 0;

    int32_t child(int32_t node, uint8_t b) const
    {
        if (node == 0)
            return rootChild[b];
        const auto& c = nodes[static_cast<size_t>(node)].children;
        const auto it = std::lower_bound(c.begin(), c.end(), std::make_pair(b, int32_t(-1)));
        return it != c.end() && it->first == b ? it->second : -1;
    }

    void insert(const std::string& bytes, int32_t id)
    {
        int32_t node = 0;
        for (const char ch : bytes) {
            const auto b = static_cast<uint8_t>(ch);
            int32_t next = child(node, b);
            if (next < 0) {
                next = static_cast<int32_t>(nodes.size());
                nodes.emplace_back();
                if (node == 0) {
                    rootChild[b] = next;
                } else {
                    auto& c = nodes[static_cast<size_t>(node)].children;
                    c.insert(std::lower_bound(c.begin(), c.end(), std::make_pair(b, int32_t(-1))),
                             std::make_pair(b, next));
                }
            }
            node = next;
        }
        nodes[static_cast<size_t>(node)].id = id;
    }
};

WorldTokenizer::WorldTokenizer(std::shared_ptr<const Impl> impl) : m_impl(std::move(impl)) {}

WorldTokenizer WorldTokenizer::fromFile(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(path, "cannot open the RWKV World vocabulary");
    std::ostringstream text;
    text << in.rdbuf();
    return fromText(text.str(), path);
}

WorldTokenizer WorldTokenizer::fromText(std::string_view text, const std::string& sourceName)
{
    auto impl = std::make_shared<Impl>();
    impl->source = sourceName;
    impl->nodes.emplace_back();
    std::fill(std::begin(impl->rootChild), std::end(impl->rootChild), -1);
    size_t lineNo = 0;
    while (!text.empty()) {
        const size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
        ++lineNo;
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.empty())
            continue;
        const std::string where = sourceName + ":" + std::to_string(lineNo);
        const size_t first = line.find(' '), last = line.rfind(' ');
        if (first == std::string_view::npos || last <= first)
            throw Error(where, "line", "ID REPR LENGTH", std::string(line.substr(0, 80)));
        int64_t id = -1, length = -1;
        try {
            size_t used = 0;
            id = std::stoll(std::string(line.substr(0, first)), &used);
            if (used != first)
                id = -1;
            const std::string tail(line.substr(last + 1));
            length = std::stoll(tail, &used);
            if (used != tail.size())
                length = -1;
        } catch (const std::exception&) {
        }
        if (id < 1 || id > (1 << 24) || length < 1)
            throw Error(where, "line", "ID REPR LENGTH with ID >= 1 and LENGTH >= 1",
                        std::string(line.substr(0, 80)));
        const std::string bytes = parsePythonLiteral(line.substr(first + 1, last - first - 1), where);
        if (static_cast<int64_t>(bytes.size()) != length)
            throw Error(where, "token length", std::to_string(length) + " bytes (the line's LENGTH)",
                        std::to_string(bytes.size()));
        if (static_cast<size_t>(id) >= impl->tokens.size())
            impl->tokens.resize(static_cast<size_t>(id) + 1);
        if (!impl->tokens[static_cast<size_t>(id)].empty())
            throw Error(where, "id", "each id once", std::to_string(id) + " again");
        impl->tokens[static_cast<size_t>(id)] = bytes;
        impl->insert(bytes, static_cast<int32_t>(id));
        impl->longest = std::max(impl->longest, bytes.size());
    }
    // Every byte must be a token, or some inputs could not be encoded.
    for (int b = 0; b < 256; ++b) {
        const int32_t node = impl->rootChild[b];
        if (node < 0 || impl->nodes[static_cast<size_t>(node)].id < 0)
            throw Error(sourceName, "vocabulary", "a token for each of the 256 bytes",
                        "none for byte " + std::to_string(b));
    }
    if (impl->tokens.empty())
        impl->tokens.resize(1);
    return WorldTokenizer(std::move(impl));
}

void WorldTokenizer::encode(std::string_view bytes, const TokenSink& sink) const
{
    const Impl& m = *m_impl;
    size_t i = 0;
    while (i < bytes.size()) {
        int32_t node = 0, bestId = -1;
        size_t bestEnd = i;
        for (size_t j = i; j < bytes.size(); ++j) {
            node = m.child(node, static_cast<uint8_t>(bytes[j]));
            if (node < 0)
                break;
            if (m.nodes[static_cast<size_t>(node)].id >= 0) {
                bestId = m.nodes[static_cast<size_t>(node)].id;
                bestEnd = j + 1;
            }
        }
        // bestId >= 0 always: every byte is a token (checked when loading).
        sink(bestId, static_cast<int64_t>(i), static_cast<int64_t>(bestEnd));
        i = bestEnd;
    }
}

Encoding WorldTokenizer::encode(std::string_view bytes) const
{
    Encoding e;
    encode(bytes, [&](int32_t id, int64_t begin, int64_t end) {
        e.ids.push_back(id);
        e.offsets.push_back(begin);
        e.offsets.push_back(end);
    });
    return e;
}

std::string WorldTokenizer::tokenBytes(int32_t id) const
{
    const auto& t = m_impl->tokens;
    if (id == kEndOfText)
        return {};
    if (id < 0 || static_cast<size_t>(id) >= t.size() || t[static_cast<size_t>(id)].empty())
        throw Error(m_impl->source, "token id", "an id of the vocabulary", std::to_string(id));
    return t[static_cast<size_t>(id)];
}

std::string WorldTokenizer::decode(const std::vector<int32_t>& ids) const
{
    std::string out;
    for (const int32_t id : ids)
        out += tokenBytes(id);
    return out;
}

int32_t WorldTokenizer::vocabSize() const
{
    return static_cast<int32_t>(m_impl->tokens.size());
}

const std::string& WorldTokenizer::sourceName() const
{
    return m_impl->source;
}

} // namespace statescope
