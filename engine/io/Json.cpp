#include "io/Json.h"

#include "Error.h"
#include "io/MappedFile.h"

#include <cstring>
#include <limits>
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

nlohmann::json parseStrictJson(const char* data, size_t size, const std::string& sourceName, int maxDepth)
{
    // Depth is checked before parsing so that no deep tree is ever built.
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

    std::vector<std::unordered_set<std::string>> keysPerObject;
    std::string duplicate;
    auto callback = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using E = nlohmann::json::parse_event_t;
        if (event == E::object_start) {
            keysPerObject.emplace_back();
        } else if (event == E::object_end) {
            if (!keysPerObject.empty())
                keysPerObject.pop_back();
        } else if (event == E::key && !keysPerObject.empty() && parsed.is_string()) {
            const std::string& k = parsed.get_ref<const std::string&>();
            if (!keysPerObject.back().insert(k).second && duplicate.empty())
                duplicate = k;
        }
        return true;
    };
    nlohmann::json result;
    try {
        result = nlohmann::json::parse(data, data + size, callback);
    } catch (const nlohmann::json::parse_error& e) {
        size_t pos = e.byte > 0 ? e.byte - 1 : 0;
        throw Error(sourceName, "invalid JSON at byte " + std::to_string(std::min(pos, size)) + ": " +
                                    describeParseError(e.what()));
    } catch (const nlohmann::json::exception& e) {
        throw Error(sourceName, std::string("invalid JSON: ") + e.what());
    }
    if (!duplicate.empty())
        throw Error(sourceName, "invalid JSON: duplicate key \"" + duplicate + "\"");
    return result;
}

} // namespace statescope
