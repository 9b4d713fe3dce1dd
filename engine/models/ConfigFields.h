#pragma once

// Reading config.json fields with the checks every architecture needs (torch-free).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace statescope {

// The integer at key (fallback if absent or null). Throws Error(file, prefix + key) for a value that
// is not an integer or lies outside [minValue, maxValue].
int64_t intField(const nlohmann::json& obj, const char* key, int64_t fallback, const std::string& file,
                 const std::string& prefix = "", int64_t minValue = 1, int64_t maxValue = int64_t(1) << 40);
bool boolField(const nlohmann::json& obj, const char* key, bool fallback, const std::string& file,
               const std::string& prefix = "");
double numberField(const nlohmann::json& obj, const char* key, double fallback, const std::string& file,
                   const std::string& prefix = "");
std::string stringField(const nlohmann::json& obj, const char* key, const std::string& fallback,
                        const std::string& file, const std::string& prefix = "");

// A count computed in double, as an int64 (INT64_MAX when it does not fit).
int64_t saturatedCount(double n);

// a * b, or Error(file, field) if it overflows int64.
int64_t checkedMul(int64_t a, int64_t b, const std::string& file, const std::string& field);

} // namespace statescope
