#include "io/Json.h"

#include "Error.h"
#include "io/MappedFile.h"

#include <cstring>
#include <limits>
#include <memory>
#include <unordered_set>
#include <utility>
#include <vector>

namespace statescope {

namespace {

// Deeper nesting than this is not a config file; refusing it keeps every later walk of the tree
// (dump() in messages, recursive readers) far from the C++ stack limit.
constexpr int kMaxDepth = 512;

struct Rewrite {
    size_t newPos;  // where the replacement starts in the rewritten text
    size_t newEnd;  // one past its end
    size_t origPos; // where the bare token started in the original text
    size_t origLen;
};

bool startsWith(const std::string& s, size_t pos, const char* word)
{
    size_t n = std::strlen(word);
    return s.size() - pos >= n && s.compare(pos, n, word) == 0;
}

size_t toOriginalOffset(const std::vector<Rewrite>& rewrites, size_t pos)
{
    // Shift back by every rewrite that ends at or before pos; a position inside a replacement maps
    // to the start of the token it replaced.
    long long shift = 0;
    for (const Rewrite& r : rewrites) {
        if (pos < r.newPos)
            break;
        if (pos < r.newEnd)
            return r.origPos;
        shift = static_cast<long long>(r.newEnd) - static_cast<long long>(r.origPos + r.origLen);
    }
    return static_cast<size_t>(static_cast<long long>(pos) - shift);
}

std::string describeParseError(const char* what)
{
    // nlohmann's text starts with "[json.exception...] parse error at line L, column C: "; the line and
    // column refer to the rewritten text, so keep only the reason.
    std::string s(what);
    size_t col = s.find("column ");
    if (col != std::string::npos) {
        size_t colon = s.find(": ", col);
        if (colon != std::string::npos)
            return s.substr(colon + 2);
    }
    return s;
}

} // namespace

nlohmann::json parsePythonJson(const std::string& text, const std::string& sourceName)
{
    std::string out;
    out.reserve(text.size() + 16);
    std::vector<Rewrite> rewrites;
    int depth = 0;
    bool inString = false;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (inString) {
            out.push_back(c);
            if (c == '\\') {
                // Copy the escaped character too, so an escaped quote does not end the string.
                if (i + 1 < text.size())
                    out.push_back(text[++i]);
            } else if (c == '"') {
                inString = false;
            }
            continue;
        }
        const char* word = nullptr;
        const char* value = nullptr;
        if (c == '"') {
            inString = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxDepth)
                throw Error(sourceName, "invalid JSON at byte " + std::to_string(i) +
                                            ": nesting deeper than " + std::to_string(kMaxDepth) + " levels");
        } else if (c == ']' || c == '}') {
            --depth;
        } else if (c == 'N' && startsWith(text, i, "NaN")) {
            word = "NaN";
            value = "NaN";
        } else if (c == 'I' && startsWith(text, i, "Infinity")) {
            word = "Infinity";
            value = "Infinity";
        } else if (c == '-' && startsWith(text, i, "-Infinity")) {
            word = "-Infinity";
            value = "-Infinity";
        }
        if (!word) {
            out.push_back(c);
            continue;
        }
        Rewrite r;
        r.origPos = i;
        r.origLen = std::strlen(word);
        r.newPos = out.size();
        out += "{\"__float__\":\"";
        out += value;
        out += "\"}";
        r.newEnd = out.size();
        rewrites.push_back(r);
        i += r.origLen - 1;
    }

    try {
        return nlohmann::json::parse(out);
    } catch (const nlohmann::json::parse_error& e) {
        size_t pos = e.byte > 0 ? e.byte - 1 : 0; // nlohmann counts bytes from 1
        pos = std::min(toOriginalOffset(rewrites, pos), text.size());
        throw Error(sourceName,
                    "invalid JSON at byte " + std::to_string(pos) + ": " + describeParseError(e.what()));
    } catch (const nlohmann::json::exception& e) {
        throw Error(sourceName, std::string("invalid JSON: ") + e.what());
    }
}

nlohmann::json loadPythonJson(const std::string& path)
{
    auto file = MappedFile::open(path);
    std::string text;
    if (file->size() > 0)
        text.assign(reinterpret_cast<const char*>(file->data()), file->size());
    return parsePythonJson(text, path);
}

double jsonNumber(const nlohmann::json& v, const std::string& file, const std::string& field)
{
    if (v.is_number())
        return v.get<double>();
    const nlohmann::json* word = &v;
    if (v.is_object() && v.size() == 1 && v.contains("__float__"))
        word = &v["__float__"];
    if (word->is_string()) {
        const std::string& s = word->get_ref<const std::string&>();
        if (s == "Infinity")
            return std::numeric_limits<double>::infinity();
        if (s == "-Infinity")
            return -std::numeric_limits<double>::infinity();
        if (s == "NaN")
            return std::numeric_limits<double>::quiet_NaN();
    }
    std::string actual = v.dump();
    if (actual.size() > 80)
        actual = actual.substr(0, 77) + "...";
    throw Error(file, field, "a number", actual);
}

// Depth is checked before parsing so that no deep tree is ever built.
void checkJsonDepth(const char* data, size_t size, const std::string& sourceName, int maxDepth)
{
    int depth = 0;
    bool inString = false;
    for (size_t i = 0; i < size; ++i) {
        char c = data[i];
        if (inString) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                inString = false;
        } else if (c == '"') {
            inString = true;
        } else if (c == '[' || c == '{') {
            if (++depth > maxDepth)
                throw Error(sourceName, "invalid JSON at byte " + std::to_string(i) +
                                            ": nesting deeper than " + std::to_string(maxDepth) + " levels");
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
}

} // namespace statescope

namespace statescope {

namespace {

// Streams a top-level object's members: each member's value is built as a small tree (nlohmann's
// own DOM builder, fed the events below the top level), handed over, and dropped.
class MemberStreamer : public nlohmann::json_sax<nlohmann::json> {
public:
    using Builder = nlohmann::detail::json_sax_dom_parser<nlohmann::json>;

    MemberStreamer(const std::string& source,
                   const std::function<void(const std::string&, nlohmann::json&)>& f)
        : m_source(source), m_onMember(f)
    {
    }

    bool null() override
    {
        return value([](Builder& b) { return b.null(); });
    }
    bool boolean(bool v) override
    {
        return value([&](Builder& b) { return b.boolean(v); });
    }
    bool number_integer(number_integer_t v) override
    {
        return value([&](Builder& b) { return b.number_integer(v); });
    }
    bool number_unsigned(number_unsigned_t v) override
    {
        return value([&](Builder& b) { return b.number_unsigned(v); });
    }
    bool number_float(number_float_t v, const string_t& s) override
    {
        return value([&](Builder& b) { return b.number_float(v, s); });
    }
    bool string(string_t& v) override
    {
        return value([&](Builder& b) { return b.string(v); });
    }
    bool binary(binary_t& v) override
    {
        return value([&](Builder& b) { return b.binary(v); });
    }
    bool start_object(std::size_t n) override
    {
        m_keys.emplace_back();
        if (m_depth++ == 0)
            return true; // the top-level object itself
        if (m_depth == 2)
            begin();
        return m_builder->start_object(n);
    }
    bool key(string_t& k) override
    {
        if (!m_keys.back().insert(k).second)
            throw Error(m_source, "invalid JSON: duplicate key \"" + k + "\"");
        if (m_depth == 1) {
            m_key = k;
            return true;
        }
        return m_builder->key(k);
    }
    bool end_object() override
    {
        m_keys.pop_back();
        if (--m_depth == 0)
            return true;
        const bool ok = m_builder->end_object();
        if (m_depth == 1)
            finish();
        return ok;
    }
    bool start_array(std::size_t n) override
    {
        if (m_depth++ == 0)
            throw Error(m_source, "top level", "a JSON object", "an array");
        if (m_depth == 2)
            begin();
        return m_builder->start_array(n);
    }
    bool end_array() override
    {
        const bool ok = m_builder->end_array();
        if (--m_depth == 1)
            finish();
        return ok;
    }
    bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override
    {
        throw Error(m_source, "invalid JSON at byte " + std::to_string(position > 0 ? position - 1 : 0) +
                                  ": " + describeParseError(e.what()));
    }

private:
    void begin()
    {
        m_value = nlohmann::json();
        m_builder = std::make_unique<Builder>(m_value);
    }
    void finish()
    {
        m_builder.reset();
        m_onMember(m_key, m_value);
        m_value = nlohmann::json();
    }
    template <typename F> bool value(F&& event)
    {
        if (m_depth == 0)
            throw Error(m_source, "top level", "a JSON object", "a single value");
        if (m_depth >= 2)
            return event(*m_builder);
        begin(); // a scalar member
        const bool ok = event(*m_builder);
        finish();
        return ok;
    }

    const std::string& m_source;
    const std::function<void(const std::string&, nlohmann::json&)>& m_onMember;
    int m_depth = 0;
    std::string m_key;
    nlohmann::json m_value;
    std::unique_ptr<Builder> m_builder;
    std::vector<std::unordered_set<std::string>> m_keys;
};

} // namespace

void forEachStrictJsonMember(const char* data, size_t size, const std::string& sourceName, int maxDepth,
                             const std::function<void(const std::string&, nlohmann::json&)>& onMember)
{
    checkJsonDepth(data, size, sourceName, maxDepth);
    MemberStreamer streamer(sourceName, onMember);
    try {
        nlohmann::json::sax_parse(data, data + size, &streamer);
    } catch (const nlohmann::json::exception& e) {
        throw Error(sourceName, std::string("invalid JSON: ") + e.what());
    }
}

} // namespace statescope
