#pragma once

// How a trace stores a probe's values (issue 15): float32 as computed, or IEEE half precision after
// a transform that suits the probe, so that a large model's million-token trace is half the size
// and the values that matter keep their precision. docs/trace-format.md ("Probe precision") gives
// each encoding's largest error; HDF5 (and h5py, which reads these as numpy float16) converts the
// stored halves, and the reader undoes the transform.
#include "probes/Probes.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace statescope {

// What the user picks for a run.
// Auto: float16 for a run on a GPU, whose engine outruns a float32 trace's writer (the 130m shape on
// an H200: 0.76x of the trace-off speed with float32 probes, 0.95x with float16), and for probes of
// more than kAutoHalfBytesPerToken a token in float32 (the 1.3b and larger Mamba-2s); float32
// otherwise. Resolved when the trace header is made.
enum class ProbePrecision { Float32, Float16, Auto };
inline constexpr int64_t kAutoHalfBytesPerToken = 16384;
const char* probePrecisionName(ProbePrecision p); // "float32", "float16", "auto"
// Throws Error(what, "probe precision", ...) for anything else.
ProbePrecision parseProbePrecision(const std::string& name, const std::string& what);
// Auto made concrete for these probes, computed on a GPU or not; the others as given.
ProbePrecision resolveProbePrecision(ProbePrecision p, const std::vector<ProbeDesc>& probes,
                                     bool onGpu = false);

// What one dataset holds.
enum class ProbeEncoding {
    Float32,       // the value
    Float16,       // the value, in half precision (beyond ±65504: ±inf)
    LogFloat16,    // ln(value) in half precision: norms (>= 0) over any range, to 0.4 % relative
    NegLogFloat16, // -ln(value) in half precision: forget gates near 1 keep their distance from 1
};
const char* probeEncodingName(ProbeEncoding e); // "float32", "float16", "log_float16", "neg_log_float16"
// False for an unknown name.
bool parseProbeEncoding(const std::string& name, ProbeEncoding* out);
size_t probeEncodingBytes(ProbeEncoding e); // 4 or 2

// The encoding of a probe under a precision, by what its summary says it is: geometric means are
// gates in (0, 1], root sums of squares are norms, the rest (step sizes, shares) plain halves.
ProbeEncoding probeEncodingFor(const ProbeDesc& probe, ProbePrecision precision);

// IEEE 754 binary16, rounded to nearest even; NaN stays NaN, overflow becomes inf.
uint16_t halfFromFloat(float f);
float floatFromHalf(uint16_t h);

// values -> count halves (e must be a half encoding).
void encodeHalves(const float* values, size_t count, ProbeEncoding e, uint16_t* out);
// In place, after HDF5 converted the stored halves to float: undoes the transform of e.
void decodeInPlace(float* values, size_t count, ProbeEncoding e);
// In place, the source probe's values as HDF5 gave them (still encoded by `source`) become a derived
// probe's: scale[i mod scale.size()] * (-ln source value) (ProbeDesc::derivedFrom).
void decodeDerivedInPlace(float* values, size_t count, ProbeEncoding source, const std::vector<float>& scale);

} // namespace statescope
