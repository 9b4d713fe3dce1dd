#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace statescope {

// Reference numbers for a test fixture (tools/make_mamba2_fixtures.py, make_builtin_references.py:
// an independent float64 implementation checked against Hugging Face transformers), for any
// architecture: /ids int32 [T], /nll float64 [T], and every other numeric top-level dataset is a
// probe [T, ...] named as the dataset (Mamba-2's: /dt, /decay, /state_norm [T, L, H]). Read as double.
struct ReferenceData {
    std::vector<int32_t> ids;
    std::vector<double> nll;
    std::vector<std::string> probeNames;     // in the order the file's producer wrote them
    std::vector<std::vector<double>> probes; // token-major, same order as probeNames
    std::vector<int64_t> probeShape;         // per token, shared by all probes, e.g. {L, H}; {} if none
};

// Throws Error naming the file (and the dataset) if it is not HDF5, /ids or /nll is missing or not
// [T], or a probe is not [T, ...] or its per-token shape differs from the first probe's.
ReferenceData readReferenceFile(const std::string& path);

// Largest |a - b| / (|b| + atol) over the pairs where b is finite; NaN in b must be NaN in a.
double maxRelativeError(const float* a, const double* b, size_t n, double atol = 1e-6);

} // namespace statescope
