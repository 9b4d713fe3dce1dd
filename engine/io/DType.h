#pragma once

#include <cstddef>
#include <string>

namespace statescope {

// Element types a checkpoint may store. Models compute in Float32, BFloat16 or Float16.
enum class DType { Float32, Float64, BFloat16, Float16, Int64, Int32, Int16, Int8, UInt8, Bool };

size_t dtypeSize(DType t);
const char* dtypeName(DType t); // "float32", "bfloat16", ...
// Accepts our names and the common aliases ("fp32", "bf16", "half", "F32", "BF16").
bool parseDType(const std::string& s, DType* out);

} // namespace statescope
