#include "io/DType.h"

#include <algorithm>
#include <cctype>

namespace statescope {

size_t dtypeSize(DType t)
{
    switch (t) {
    case DType::Float64:
    case DType::Int64:
        return 8;
    case DType::Float32:
    case DType::Int32:
        return 4;
    case DType::BFloat16:
    case DType::Float16:
    case DType::Int16:
        return 2;
    case DType::Int8:
    case DType::UInt8:
    case DType::Bool:
        return 1;
    }
    return 0;
}

const char* dtypeName(DType t)
{
    switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
    case DType::Int64: return "int64";
    case DType::Int32: return "int32";
    case DType::Int16: return "int16";
    case DType::Int8: return "int8";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
    }
    return "?";
}

bool parseDType(const std::string& s, DType* out)
{
    std::string l = s;
    std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
    if (l == "float32" || l == "fp32" || l == "f32" || l == "float")
        *out = DType::Float32;
    else if (l == "bfloat16" || l == "bf16")
        *out = DType::BFloat16;
    else if (l == "float16" || l == "fp16" || l == "f16" || l == "half")
        *out = DType::Float16;
    else if (l == "float64" || l == "f64" || l == "double")
        *out = DType::Float64;
    else
        return false;
    return true;
}

} // namespace statescope
