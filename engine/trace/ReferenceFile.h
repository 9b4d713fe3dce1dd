#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace statescope {

// Reference numbers for a test fixture, written by tools/make_mamba2_fixtures.py from Hugging Face
// transformers' Mamba2ForCausalLM in float64: /ids int32 [T], /nll [T], and /dt, /decay,
// /state_norm [T, L, H] (float64). Read here as double.
struct ReferenceData {
    std::vector<int32_t> ids;
    std::vector<double> nll;
    std::vector<std::string> probeNames;
    std::vector<std::vector<double>> probes; // token-major, same order as probeNames
    std::vector<int64_t> probeShape;         // per token, e.g. {L, H}
};

ReferenceData readReferenceFile(const std::string& path);

// Largest |a - b| / (|b| + atol) over the pairs where b is finite; NaN in b must be NaN in a.
double maxRelativeError(const float* a, const double* b, size_t n, double atol = 1e-6);

} // namespace statescope
