#pragma once

// Fused CUDA kernels for the Mamba-2 mixer on the GPU (issue 15), launched on the caller's stream.
// Plain pointers and sizes: this header needs neither CUDA's nor LibTorch's. FusedOps.h wraps them
// for tensors; the LibTorch code they replace stays the reference and the CPU path, and
// `statescope-cli kernel-check` compares the two on the GPU.
#include <cstdint>

namespace statescope::kernels {

enum class ElementType { Float32, BFloat16, Float16 };

// out[b, t, c] = silu(bias[c] + sum_k w[c, k] * in[b, t - (K-1) + k, c]), where positions before the
// chunk read the conv state (the previous K-1 raw inputs, [B, C, K-1]). in: rows of inStride
// elements of inType (a slice of in_proj's output, in its own dtype); out [B, T, C] contiguous float32;
// outHalf, unless null, the same in bfloat16 (the tensor-core scan's operands, SsdScanArgs::xbcHalf).
// newState [B, C, K-1] receives the last K-1 raw inputs of [state | chunk]. bias may be null.
void causalConvSilu(const void* in, ElementType inType, int64_t inStride, const float* state,
                    const float* weight, const float* bias, float* out, void* outHalf, float* newState,
                    int64_t B, int64_t T, int64_t C, int64_t K, void* stream);

// Per row and group: v = y * silu(z); out = v / sqrt(mean(v^2) + eps) * weight, in outType.
// y [rows, D] contiguous, z rows of zStride elements of zType, weight [D].
void gatedRmsNorm(const float* y, const void* z, ElementType zType, int64_t zStride, const float* weight,
                  void* out, ElementType outType, int64_t rows, int64_t D, int64_t groups, double eps,
                  void* stream);

// Per row of residual [rows, D] (float32, contiguous): residual += delta (deltaType, [rows, D]; none
// when null), then out = residual / sqrt(mean(residual^2) + eps) * weight, in outType. D % 4 == 0.
void addRmsNorm(float* residual, const void* delta, ElementType deltaType, const float* weight, void* out,
                ElementType outType, int64_t rows, int64_t D, double eps, void* stream);

// The within-chunk part of the chunked scalar-decay scan and its read-out, for each chunk and head:
//   D[r, p] = sum_{s <= l(r)} K[r, s] exp(cum[l(r)] - cum[s]) X[s, p],  l(r) = r mod Q,
// the decay mask built on the fly (the LibTorch path writes it, Q x Q per head, and multiplies).
// Rows r < Q are C's: y[l, p] = D[l, p] + R[l, hg P + p] eCum[l], written token-major. Rows Q.. (when
// rowsK = 2Q) are B's, the state norms' Z, written to Z.
//   K    [B, nc, G, rowsK, Q]  (C | B) . B^T of each chunk, shared by the group's heads
//   cum  [B, nc, G, Hg, Q]     running log decays, float64 (their differences lose nothing)
//   X    [B, nc Q, H, P]       x * dt (padded); R [B, nc, G, rowsK, Hg P]; eCum [B, nc, G, Hg, Q]
//   y    [B, nc Q, H, P]; Z [B, nc, G, Hg, Q, P] or null when rowsK = Q
// Returns false (nothing launched) when Q is too long for its shared memory.
bool ssdChunkOutput(const float* K, int64_t rowsK, const double* cum, const float* X, const float* R,
                    const float* eCum, float* y, float* Z, int64_t B, int64_t nc, int64_t Q, int64_t G,
                    int64_t Hg, int64_t P, void* stream);

// The per-token state norms of the chunked scalar-decay scan (ModelCommon.cpp's derivation), one
// block per chunk and head, as the recurrence ||S_t||^2 = alpha_t^2 ||S_{t-1}||^2 + v_t with
// v_t = 2 (X_t . Z_t + e_t X_t . R_t) - |X_t|^2 |B_t|^2, from ||S_in||^2 at the chunk start: the v_t
// of all tokens at once, then the recurrence over them.
//   X   [B, nc, Q, H, P]          the scan's input x * dt (padded, contiguous)
//   Z   [B, nc, G, Hg, zRows, P]  the within-chunk product with B in place of C, from row zRow0
//   R   [B, nc, G, 2Q, Hg P]      the incoming state read by C and B; rows Q.. are B's
//   Bm  [B, nc Q, G, N]           B (padded, contiguous)
//   a   [B, nc Q, H]              log decays; eCum [B, nc, G, Hg, Q] exp of their running sums
//   n0  [B, nc, H]                ||S_in||^2 of each chunk
// norm [B, nc Q, H] receives ||S_t||.
void scanStateNorms(const float* X, const float* Z, int64_t zRows, int64_t zRow0, const float* R,
                    const float* Bm, const float* a, const float* eCum, const float* n0, float* norm,
                    int64_t B, int64_t nc, int64_t Q, int64_t G, int64_t Hg, int64_t P, int64_t N,
                    void* stream);

// The whole chunked scalar-decay scan on tensor cores (TF32 operands for the chunk states, bfloat16
// for the read-out, float32 sums), for models whose
// own precision is half (bfloat16, float16): chunk states, the pass across chunks, each chunk's
// read-out with its decay mask, and the per-token state norms, without the Q x Q or [T, Hg P] products
// ever written. Tokens are rows of a [B, T, ...] layout with the given stride (a slice of the conv's
// output); dt and a [B, T, H] contiguous; stateIn/stateOut [B, H, P, N] (distinct); y [B, T, H, P]
// receives the read-out plus D x (D [H], or [H, P] with dPerChannel, or null); norm [B, T, H] or null.
// work: ssdScanWorkspace's floats, in that order.
struct SsdScanArgs {
    const float* x = nullptr;
    int64_t xStride = 0;
    const float* Bm = nullptr;
    const float* Cm = nullptr;
    int64_t bcStride = 0;
    const float* dt = nullptr;
    const float* a = nullptr;
    const float* D = nullptr;
    bool dPerChannel = false;
    const float* stateIn = nullptr;
    float* stateOut = nullptr;
    float* y = nullptr;
    float* norm = nullptr;
    float* work = nullptr;
    // Optional: x | B | C already in bfloat16, [B, T, H P + 2 G N] contiguous (causalConvSilu's outHalf),
    // used where x, Bm and Cm are that one row of floats; otherwise the scan rounds them itself.
    const void* xbcHalf = nullptr;
    int64_t B = 0, T = 0, H = 0, G = 1, P = 0, N = 0, Q = 0;
};
struct SsdWorkspace {
    int64_t cum = 0, states = 0, n0Parts = 0, v = 0, operandsHalf = 0, statesHalf = 0;
    int64_t total() const { return cum + states + n0Parts + v + operandsHalf + statesHalf; }
};
// Head and state sizes multiples of 16 (P <= 128, N <= 256, P N <= 16384), chunks of at most 256, and
// the read-out's shared memory within Hopper's 227 KiB a block.
bool ssdScanSupported(int64_t P, int64_t N, int64_t Q);
SsdWorkspace ssdScanWorkspace(int64_t B, int64_t T, int64_t H, int64_t G, int64_t P, int64_t N, int64_t Q);
// False (nothing launched) for sizes it does not support or shared memory it cannot have.
bool ssdScan(const SsdScanArgs& args, void* stream);

// The Mamba-2 mixer's step sizes and log decays from in_proj's dt columns (rows of rawStride elements of
// rawType, H of them a row): dt = softplus(raw + bias), clamped to [lo, hi] when clamp, times dtScale
// (flags & 1); logAlpha = dt (-exp(aLog) aScale (flags & 2)) + shift (flags & 4). bias, aLog [H];
// dt and logAlpha [rows, H] contiguous.
void dtDecay(const void* raw, ElementType rawType, int64_t rawStride, const float* bias, const float* aLog,
             float* dt, float* logAlpha, int64_t rows, int64_t H, bool clamp, float lo, float hi,
             float dtScale, float aScale, float shift, int flags, void* stream);

// nll[r] = logsumexp(logits[r, :]) - logits[r, target[r]], reading each logit once (the LM head's
// block of rows, in its own dtype; the sum in float32). logits rows of ld elements.
void logitsNll(const void* logits, ElementType type, int64_t rows, int64_t vocab, int64_t ld,
               const int64_t* targets, float* nll, void* stream);

// The last CUDA error as text, or empty; clears it.
const char* lastError();

} // namespace statescope::kernels
