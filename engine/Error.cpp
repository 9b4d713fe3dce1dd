#include "Error.h"

#include <cstdint>

namespace statescope {

namespace {
std::string compose(const std::string& file, const std::string& field, const std::string& expected,
                    const std::string& actual)
{
    std::string msg = file.empty() ? std::string() : file + ": ";
    msg += field + ": expected " + expected + ", got " + actual;
    return msg;
}
} // namespace

Error::Error(std::string file, std::string message)
    : std::runtime_error(file.empty() ? message : file + ": " + message), m_file(std::move(file))
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
