#include "models/ConfigFields.h"

#include "Error.h"
#include "io/Json.h"

#include <climits>
#include <cmath>
#include <cstdint>

namespace statescope {

int64_t intField(const nlohmann::json& obj, const char* key, int64_t fallback, const std::string& file,
                 const std::string& prefix, int64_t minValue, int64_t maxValue)
{
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null())
        return fallback;
    const std::string range =
        "an integer in [" + std::to_string(minValue) + ", " + std::to_string(maxValue) + "]";
    if (!it->is_number())
        throw Error(file, prefix + key, range, it->dump());
    // Through double first: a huge or fractional number must not reach an int64 conversion.
    const double d = it->get<double>();
    if (!std::isfinite(d) || std::floor(d) != d || d < double(minValue) || d > double(maxValue))
        throw Error(file, prefix + key, range, it->dump());
    return it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(d);
}

bool boolField(const nlohmann::json& obj, const char* key, bool fallback, const std::string& file,
               const std::string& prefix)
{
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null())
        return fallback;
    if (!it->is_boolean())
        throw Error(file, prefix + key, "true or false", it->dump());
    return it->get<bool>();
}

double numberField(const nlohmann::json& obj, const char* key, double fallback, const std::string& file,
                   const std::string& prefix)
{
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null())
        return fallback;
    return jsonNumber(*it, file, prefix + key);
}

std::string stringField(const nlohmann::json& obj, const char* key, const std::string& fallback,
                        const std::string& file, const std::string& prefix)
{
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null())
        return fallback;
    if (!it->is_string())
        throw Error(file, prefix + key, "a string", it->dump());
    return it->get<std::string>();
}

int64_t saturatedCount(double n)
{
    if (!(n >= 0))
        return 0;
    return n >= 9.2e18 ? INT64_MAX : static_cast<int64_t>(n);
}

int64_t checkedMul(int64_t a, int64_t b, const std::string& file, const std::string& field)
{
    int64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r))
        throw Error(file, field, "a size that fits in 64 bits",
                    std::to_string(a) + " x " + std::to_string(b) + " (overflow)");
    return r;
}

} // namespace statescope
