#include "Error.h"

#include <cstdint>

namespace statescope {

// Names and values quoted from files reach a terminal: a newline would make one error several lines,
// an escape sequence would change the terminal's colours. Control characters (C0, DEL and UTF-8's
// C1) are written as \xNN instead.
std::string escapeControls(const std::string& s)
{
    static const char* const kHex = "0123456789abcdef";
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        const bool c1 = c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
                        static_cast<unsigned char>(s[i + 1]) <= 0x9F;
        if (c < 0x20 || c == 0x7F) {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        } else if (c1) {
            const auto d = static_cast<unsigned char>(s[++i]);
            out += "\\u00";
            out += kHex[d >> 4];
            out += kHex[d & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string errorLine(const std::string& what)
{
    std::string line = what;
    // Also in their escaped spelling, for a torch message already wrapped in an Error.
    for (const char* tail : {"\nException raised from ", "\nframe #", " (Exception raised from ",
                             "\\x0aException raised from ", "\\x0aframe #"}) {
        const size_t at = line.find(tail);
        if (at != std::string::npos)
            line.resize(at);
    }
    const size_t nl = line.find_first_of("\r\n");
    if (nl != std::string::npos)
        line.resize(nl);
    // LibTorch's own text can end in a full stop and spaces; the user sees one clean line.
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t'))
        line.pop_back();
    return escapeControls(line.empty() ? std::string("unknown error") : line);
}

std::string errorLine(const std::exception& e)
{
    return errorLine(std::string(e.what()));
}

namespace {

std::string compose(const std::string& file, const std::string& field, const std::string& expected,
                    const std::string& actual)
{
    std::string msg = file.empty() ? std::string() : file + ": ";
    msg += field + ": expected " + expected + ", got " + actual;
    return escapeControls(msg);
}
} // namespace

Error::Error(std::string file, std::string message)
    : std::runtime_error(escapeControls(file.empty() ? message : file + ": " + message)),
      m_file(std::move(file))
{
}

Error::Error(std::string file, std::string field, std::string expected, std::string actual)
    : std::runtime_error(compose(file, field, expected, actual)), m_file(std::move(file)),
      m_field(std::move(field)), m_expected(std::move(expected)), m_actual(std::move(actual))
{
}

std::string shapeToString(const int64_t* dims, size_t n)
{
    std::string s = "[";
    for (size_t i = 0; i < n; ++i) {
        if (i)
            s += ", ";
        s += std::to_string(dims[i]);
    }
    return s + "]";
}

} // namespace statescope
