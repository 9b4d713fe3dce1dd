#include "trace/ProbeEncoding.h"

#include "Error.h"

#include <cmath>
#include <cstring>

namespace statescope {

const char* probePrecisionName(ProbePrecision p)
{
    return p == ProbePrecision::Float16 ? "float16" : p == ProbePrecision::Auto ? "auto" : "float32";
}

ProbePrecision parseProbePrecision(const std::string& name, const std::string& what)
{
    if (name == "float32")
        return ProbePrecision::Float32;
    if (name == "float16")
        return ProbePrecision::Float16;
    if (name == "auto")
        return ProbePrecision::Auto;
    throw Error(what, "probe precision", "float32, float16 or auto", "\"" + name + "\"");
}

ProbePrecision resolveProbePrecision(ProbePrecision p, const std::vector<ProbeDesc>& probes, bool onGpu)
{
    if (p != ProbePrecision::Auto)
        return p;
    if (onGpu)
        return ProbePrecision::Float16;
    int64_t bytes = 0;
    for (const ProbeDesc& d : probes)
        bytes += 4 * d.valuesPerToken();
    return bytes > kAutoHalfBytesPerToken ? ProbePrecision::Float16 : ProbePrecision::Float32;
}

const char* probeEncodingName(ProbeEncoding e)
{
    switch (e) {
    case ProbeEncoding::Float32:
        return "float32";
    case ProbeEncoding::Float16:
        return "float16";
    case ProbeEncoding::LogFloat16:
        return "log_float16";
    case ProbeEncoding::NegLogFloat16:
        return "neg_log_float16";
    }
    return "float32";
}

bool parseProbeEncoding(const std::string& name, ProbeEncoding* out)
{
    for (ProbeEncoding e : {ProbeEncoding::Float32, ProbeEncoding::Float16, ProbeEncoding::LogFloat16,
                            ProbeEncoding::NegLogFloat16})
        if (name == probeEncodingName(e)) {
            *out = e;
            return true;
        }
    return false;
}

size_t probeEncodingBytes(ProbeEncoding e)
{
    return e == ProbeEncoding::Float32 ? 4 : 2;
}

ProbeEncoding probeEncodingFor(const ProbeDesc& probe, ProbePrecision precision)
{
    if (precision != ProbePrecision::Float16) // Auto is resolved before a writer asks
        return ProbeEncoding::Float32;
    switch (probe.summary) {
    case ProbeSummary::GeoMean:
        return ProbeEncoding::NegLogFloat16;
    case ProbeSummary::RootSumSquare:
        return ProbeEncoding::LogFloat16;
    default:
        return ProbeEncoding::Float16;
    }
}

uint16_t halfFromFloat(float f)
{
    uint32_t x = 0;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) // inf or NaN (NaN keeps a quiet payload bit)
        return static_cast<uint16_t>(sign | 0x7c00u | (x > 0x7f800000u ? 0x0200u : 0u));
    if (x >= 0x477ff000u) // rounds to 65520 or more: beyond the largest half
        return static_cast<uint16_t>(sign | 0x7c00u);
    if (x < 0x38800000u) {   // below 2^-14: a subnormal half (or zero)
        if (x < 0x33000000u) // below half of the smallest subnormal, 2^-25: rounds to 0
            return static_cast<uint16_t>(sign);
        const uint32_t exponent = x >> 23;
        const uint32_t mantissa = (x & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - exponent; // 14..24: the half subnormal's units of 2^-24
        uint32_t h = mantissa >> shift;
        const uint32_t rest = mantissa & ((1u << shift) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (h & 1u)))
            ++h;
        return static_cast<uint16_t>(sign | h);
    }
    // Normal: rebias the exponent, keep 10 mantissa bits, round to nearest even (a carry into the
    // exponent is the right result, up to inf).
    uint32_t h = ((x - 0x38000000u) >> 13);
    const uint32_t rest = x & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
        ++h;
    return static_cast<uint16_t>(sign | h);
}

float floatFromHalf(uint16_t h)
{
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    const uint32_t mantissa = h & 0x3ffu;
    uint32_t x = 0;
    if (exponent == 0x1f) {
        x = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {
        x = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else {
        // Subnormal or zero: the value is mantissa * 2^-24, exact in float.
        const float v = std::ldexp(static_cast<float>(mantissa), -24);
        std::memcpy(&x, &v, 4);
        x |= sign;
    }
    float f = 0;
    std::memcpy(&f, &x, 4);
    return f;
}

void encodeHalves(const float* values, size_t count, ProbeEncoding e, uint16_t* out)
{
    switch (e) {
    case ProbeEncoding::LogFloat16:
        // A negative norm cannot be: NaN says so rather than a made-up value.
        for (size_t i = 0; i < count; ++i)
            out[i] = halfFromFloat(values[i] >= 0 ? std::log(values[i]) : std::nanf(""));
        break;
    case ProbeEncoding::NegLogFloat16:
        for (size_t i = 0; i < count; ++i)
            out[i] = halfFromFloat(values[i] >= 0 ? -std::log(values[i]) : std::nanf(""));
        break;
    default:
        for (size_t i = 0; i < count; ++i)
            out[i] = halfFromFloat(values[i]);
        break;
    }
}

void decodeInPlace(float* values, size_t count, ProbeEncoding e)
{
    if (e == ProbeEncoding::LogFloat16)
        for (size_t i = 0; i < count; ++i)
            values[i] = std::exp(values[i]);
    else if (e == ProbeEncoding::NegLogFloat16)
        for (size_t i = 0; i < count; ++i)
            values[i] = std::exp(-values[i]);
}

void decodeDerivedInPlace(float* values, size_t count, ProbeEncoding source, const std::vector<float>& scale)
{
    const size_t n = scale.size();
    if (n == 0)
        return;
    for (size_t i = 0; i < count; ++i) {
        const float s = scale[i % n];
        // neg_log_float16 stores -ln(source) itself: no round trip through exp and log.
        values[i] = source == ProbeEncoding::NegLogFloat16
                        ? s * values[i]
                        : static_cast<float>(s * -std::log(static_cast<double>(values[i])));
    }
}

} // namespace statescope
