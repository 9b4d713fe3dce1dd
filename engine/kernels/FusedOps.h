#pragma once

// The fused CUDA kernels (MambaKernels.h) on tensors, for the models' CUDA path. Each function checks
// what its kernel assumes (device, dtype, layout) and throws std::invalid_argument otherwise; the
// callers ask enabled() first and keep their LibTorch code, which stays the reference and the CPU
// path. Built only where CMake finds a CUDA compiler and LibTorch with CUDA; elsewhere built() is
// false and every call below throws.
#include <torch/types.h>

#include <utility>

namespace statescope::fused {

bool built();
// Process-wide switch (statescope-cli --no-fused-kernels): on by default where built.
void setEnabled(bool on);
// built(), switched on, grad mode off (the kernels have no backward), and t a float32 CUDA tensor (the
// accumulation type they are written for).
bool enabled(const torch::Tensor& t);
// The tensor-core scan (ssdScan below) for half-precision models, on by default
// (statescope-cli --no-tensor-core-scan keeps the float32 kernels for them too).
void setTensorCoreScan(bool on);
bool tensorCoreScan();

// silu(depthwise causal conv) of xBC [B, T, C] (rows may be strided, as a slice of in_proj's
// output; float32, bfloat16 or float16) over [convState | xBC]; convState [B, C, K-1] becomes the last
// K-1 raw inputs. weight [C, K], bias [C] or undefined. Returns [B, T, C] contiguous float32; half, when
// given, receives the same values in bfloat16 (ssdScan's xbcHalf).
torch::Tensor causalConvSilu(const torch::Tensor& xBC, torch::Tensor& convState, const torch::Tensor& weight,
                             const torch::Tensor& bias, torch::Tensor* half = nullptr);

// (y * silu(z)) RMS-normalised per group of the last dimension, times weight, in outType. z may be in
// bfloat16 or float16 (in_proj's own output).
torch::Tensor gatedRmsNorm(const torch::Tensor& y, const torch::Tensor& z, const torch::Tensor& weight,
                           int64_t groups, double eps, torch::ScalarType outType);

// The residual stream's step between layers: residual += delta (in place; delta undefined for none,
// else residual's shape in any floating type), then rmsNorm(residual, weight, eps) in outType, as
// ModelCommon's rmsNorm computes it. residual float32 and contiguous on CUDA, its last size a multiple
// of 4 (addRmsNormSupported).
bool addRmsNormSupported(const torch::Tensor& residual, const torch::Tensor& weight);
torch::Tensor addRmsNorm(torch::Tensor& residual, const torch::Tensor& delta, const torch::Tensor& weight,
                         double eps, torch::ScalarType outType);

// The within-chunk part of the chunked scalar-decay scan and its read-out (MambaKernels.h,
// ssdChunkOutput): y [B, nc Q, H, P] and, when K holds B's rows too (2Q of them), Z [B, nc, G, Hg, Q, P].
// False when Q is too long for the kernel (the caller keeps its LibTorch path).
bool ssdChunkOutput(const torch::Tensor& K, const torch::Tensor& cum, const torch::Tensor& X,
                    const torch::Tensor& R, const torch::Tensor& eCum, torch::Tensor& y, torch::Tensor* Z);

// The chunked scalar-decay scan's per-token state norms (MambaKernels.h, scanStateNorms), [B, nc Q, H].
// Z [B, nc, G, Hg, rows, P] holds B's within-chunk product from row zRow0 (Q in the LibTorch path's
// `diag`, 0 in ssdChunkOutput's Z).
torch::Tensor scanStateNorms(const torch::Tensor& X, const torch::Tensor& Z, int64_t zRow0,
                             const torch::Tensor& R, const torch::Tensor& Bm, const torch::Tensor& a,
                             const torch::Tensor& eCum, const torch::Tensor& n0);

// The whole chunked scalar-decay scan on tensor cores (MambaKernels.h, ssdScan): x [B, T, H, P], dt and
// logDecay [B, T, H], Bm and Cm [B, T, G, N] (rows may be strided slices of the conv's output), D [H]
// or [H, P]. Returns y + D x [B, T, H, P]; ssmState [B, H, P, N] becomes the state after the chunk;
// stateNorm, when given, receives ||S_t|| [B, T, H]. bfloat16 and TF32 operands: for half-precision
// models only. xbcHalf, when defined: causalConvSilu's bfloat16 copy of the conv output whose slices
// x, Bm and Cm are, so that the scan need not round them again (ignored where they are not its slices).
bool ssdScanSupported(int64_t P, int64_t N, int64_t chunk);
torch::Tensor ssdScan(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& logDecay,
                      const torch::Tensor& Bm, const torch::Tensor& Cm, const torch::Tensor& D, int64_t chunk,
                      torch::Tensor& ssmState, torch::Tensor* stateNorm,
                      const torch::Tensor& xbcHalf = torch::Tensor());

// The Mamba-2 mixer's dt and log decay [B, T, H] (float32) from in_proj's dt slice raw [B, T, H] (any
// float type; rows may be strided), as Mamba2's discretize and logDecay compute them: dt =
// softplus(raw + bias) clamped to [lo, hi] (where either is finite or lo > 0) times dtScale, logDecay =
// dt * (-exp(aLog) * aScale) + ln(alpha). bias and aLog float32 [H] on raw's device.
bool dtDecaySupported(const torch::Tensor& raw, const torch::Tensor& bias, const torch::Tensor& aLog);
std::pair<torch::Tensor, torch::Tensor> dtDecay(const torch::Tensor& raw, const torch::Tensor& bias,
                                                const torch::Tensor& aLog, double lo, double hi,
                                                double dtScale, double aScale, double alpha);

// nll [rows] = logsumexp(logits) - logits[target]: logits [rows, V] in any float dtype, read once.
void logitsNll(const torch::Tensor& logits, const torch::Tensor& targets, torch::Tensor nll);

} // namespace statescope::fused
