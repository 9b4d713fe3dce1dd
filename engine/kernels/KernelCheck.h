#pragma once

#include <string>
#include <vector>

namespace statescope {

// One comparison of a fused CUDA kernel (kernels/FusedOps.h) with the LibTorch code it replaces, on
// random inputs on the GPU: the largest error relative to the reference's scale, against a tolerance.
struct KernelCheckResult {
    std::string kernel; // e.g. "causalConvSilu"
    std::string case_;  // sizes and options
    double maxError = 0;
    double tolerance = 0;
    bool passed() const { return maxError <= tolerance; }
};

// Every fused kernel against its reference, at several sizes and chunk lengths, with the scan's state
// norms on and off. Throws Error when the kernels are not built or device is not a CUDA device.
std::vector<KernelCheckResult> checkFusedKernels(const std::string& device, unsigned seed = 0);

// kernels/FusedOps.h's switch and build state, for code that does not include LibTorch.
bool fusedKernelsBuilt();
void setFusedKernels(bool on);
void setTensorCoreScan(bool on);

} // namespace statescope
