#include "kernels/MambaKernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <type_traits>

namespace statescope::kernels {

namespace {

cudaStream_t asStream(void* s)
{
    return static_cast<cudaStream_t>(s);
}

__device__ __forceinline__ float silu(float v)
{
    return v / (1.0f + __expf(-v));
}

__device__ __forceinline__ float toFloat(float v)
{
    return v;
}
__device__ __forceinline__ float toFloat(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}
__device__ __forceinline__ float toFloat(__half v)
{
    return __half2float(v);
}

template <typename T> __device__ __forceinline__ T fromFloat(float v);
template <> __device__ __forceinline__ float fromFloat<float>(float v)
{
    return v;
}
template <> __device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float v)
{
    return __float2bfloat16(v);
}
template <> __device__ __forceinline__ __half fromFloat<__half>(float v)
{
    return __float2half(v);
}

using Bf16 = __nv_bfloat16;

__device__ __forceinline__ float warpSum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// ---- causal conv + SiLU -------------------------------------------------------------------------

constexpr int kMaxConv = 8;

// The raw conv input at chunk position src of channel c: the chunk itself, or (src < 0) the state of
// the K - 1 inputs before it, [K - 1] per channel.
template <typename In>
__device__ __forceinline__ float convInput(const In* in, int64_t inStride, const float* st, int64_t b,
                                           int64_t T, int64_t c, int64_t src, int K)
{
    return src >= 0 ? toFloat(in[(b * T + src) * inStride + c]) : st[K - 1 + src];
}

// kVec adjacent channels a thread, loaded and stored as one vector where kVec = 2.
template <typename In> __device__ __forceinline__ void loadVec(const In* p, float (&v)[1])
{
    v[0] = toFloat(*p);
}
__device__ __forceinline__ void loadVec(const float* p, float (&v)[2])
{
    const float2 f = *reinterpret_cast<const float2*>(p);
    v[0] = f.x, v[1] = f.y;
}
__device__ __forceinline__ void loadVec(const __nv_bfloat16* p, float (&v)[2])
{
    const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
    v[0] = f.x, v[1] = f.y;
}
__device__ __forceinline__ void loadVec(const __half* p, float (&v)[2])
{
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(p));
    v[0] = f.x, v[1] = f.y;
}
__device__ __forceinline__ void storeVec(float* p, const float (&v)[1])
{
    *p = v[0];
}
__device__ __forceinline__ void storeVec(float* p, const float (&v)[2])
{
    *reinterpret_cast<float2*>(p) = make_float2(v[0], v[1]);
}
__device__ __forceinline__ void storeVec(__nv_bfloat16* p, const float (&v)[1])
{
    *p = __float2bfloat16(v[0]);
}
__device__ __forceinline__ void storeVec(__nv_bfloat16* p, const float (&v)[2])
{
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v[0], v[1]);
}

// In: the in_proj output's own type (float32, or bfloat16 / float16 read without a widened copy).
// kK: the conv width when known at compile time (4, every Mamba-2 checkpoint's), else 0 and K: with
// a run-time width the window and weights lived in local memory (64 bytes of stack a thread).
// kVec channels a thread, and kRows rows loaded before any is summed: one 2-byte load in flight a
// thread could not keep the memory busy (8.7 ms for the 1.3b shape's 16K tokens, against about 5 that
// its bytes need). outHalf, when not null, receives the same values rounded to bfloat16: the
// tensor-core scan's operands, written here instead of by a pass of their own over the float32 ones.
template <typename In, int kK, int kVec>
__global__ void causalConvSiluKernel(const In* __restrict__ in, int64_t inStride,
                                     const float* __restrict__ state, const float* __restrict__ weight,
                                     const float* __restrict__ bias, float* __restrict__ out,
                                     __nv_bfloat16* __restrict__ outHalf, int64_t T, int64_t C, int runtimeK)
{
    constexpr int kSlots = kK > 0 ? kK : kMaxConv;
    constexpr int kRows = 4;
    const int K = kK > 0 ? kK : runtimeK;
    const int64_t c = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * kVec;
    const int64_t b = blockIdx.z;
    if (c >= C)
        return;
    float w[kVec][kSlots], b0[kVec];
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
#pragma unroll
        for (int k = 0; k < kSlots; ++k)
            w[j][k] = k < K ? weight[(c + j) * K + k] : 0.0f;
        b0[j] = bias ? bias[c + j] : 0.0f;
    }
    // A window of K inputs slides down this block's rows of tokens.
    const int64_t rowsPerBlock = (T + gridDim.y - 1) / gridDim.y;
    const int64_t t0 = blockIdx.y * rowsPerBlock, t1 = min(T, t0 + rowsPerBlock);
    if (t0 >= t1)
        return;
    float win[kVec][kSlots];
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
        const float* st = state + (b * C + c + j) * (K - 1);
#pragma unroll
        for (int k = 0; k < kSlots - 1; ++k)
            win[j][k] = k < K - 1 ? convInput(in, inStride, st, b, T, c + j, t0 - (K - 1) + k, K) : 0.0f;
    }
    const In* src = in + (b * T + t0) * inStride + c;
    float* dst = out + (b * T + t0) * C + c;
    __nv_bfloat16* dstHalf = outHalf ? outHalf + (b * T + t0) * C + c : nullptr;
    for (int64_t t = t0; t < t1; t += kRows) {
        float v[kRows][kVec];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            if (t + r < t1) {
                loadVec(src + r * inStride, v[r]);
            } else {
#pragma unroll
                for (int j = 0; j < kVec; ++j)
                    v[r][j] = 0.0f;
            }
        }
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            if (t + r >= t1)
                break;
            float o[kVec];
#pragma unroll
            for (int j = 0; j < kVec; ++j) {
                // The newest input goes to slot K - 1; slots past it stay zero and weigh zero.
                float acc = b0[j];
#pragma unroll
                for (int k = 0; k < kSlots; ++k) {
                    const float in_k = k < K - 1 ? win[j][k] : (k == K - 1 ? v[r][j] : 0.0f);
                    acc += w[j][k] * in_k;
                }
                o[j] = silu(acc);
#pragma unroll
                for (int k = 0; k < kSlots - 1; ++k)
                    win[j][k] = k + 1 < K - 1 ? win[j][k + 1] : (k + 1 == K - 1 ? v[r][j] : 0.0f);
            }
            storeVec(dst + r * C, o);
            if (dstHalf)
                storeVec(dstHalf + r * C, o);
        }
        src += kRows * inStride;
        dst += kRows * C;
        if (dstHalf)
            dstHalf += kRows * C;
    }
}

template <typename In>
__global__ void convStateKernel(const In* __restrict__ in, int64_t inStride, const float* __restrict__ state,
                                float* __restrict__ newState, int64_t T, int64_t C, int K)
{
    const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    const int64_t b = blockIdx.y;
    if (c >= C)
        return;
    const float* st = state + (b * C + c) * (K - 1);
    for (int j = 0; j < K - 1; ++j) // the last K - 1 inputs of [state | chunk]
        newState[(b * C + c) * (K - 1) + j] = convInput(in, inStride, st, b, T, c, T - (K - 1) + j, K);
}

// ---- gated RMSNorm ------------------------------------------------------------------------------

// The sum of v over the block, for every thread (blockDim.x a multiple of 32). Once a kernel: the
// partial sums' shared memory is not guarded for a second call.
__device__ __forceinline__ float blockSum(float v)
{
    __shared__ float partial[32];
    v = warpSum(v);
    if ((threadIdx.x & 31) == 0)
        partial[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        float w = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0f;
        w = warpSum(w);
        if (threadIdx.x == 0)
            partial[0] = w;
    }
    __syncthreads();
    return partial[0];
}

template <typename Out, typename Z>
__global__ void gatedRmsNormKernel(const float* __restrict__ y, const Z* __restrict__ z, int64_t zStride,
                                   const float* __restrict__ weight, Out* __restrict__ out, int64_t D,
                                   int64_t groupSize, float eps)
{
    const int64_t row = blockIdx.x, g = blockIdx.y;
    const float* yr = y + row * D + g * groupSize;
    const Z* zr = z + row * zStride + g * groupSize;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < groupSize; i += blockDim.x) {
        const float v = yr[i] * silu(toFloat(zr[i]));
        ss += v * v;
    }
    ss = blockSum(ss);
    const float scale = rsqrtf(ss / float(groupSize) + eps);
    Out* o = out + row * D + g * groupSize;
    for (int64_t i = threadIdx.x; i < groupSize; i += blockDim.x)
        o[i] = fromFloat<Out>(yr[i] * silu(toFloat(zr[i])) * scale * weight[g * groupSize + i]);
}

// ---- the chunk's own part of the scan, and the read-out --------------------------------------------

constexpr int kTileRows = 64, kTileCols = 64, kTileS = 32, kMaxChunk = 2048;

// One block: 64 rows (of C's then B's rows) x 64 columns of P for one chunk and head. The masked
// decay matrix is formed tile by tile while K is staged in shared memory; each thread keeps 4 x 4
// outputs in registers.
__global__ void __launch_bounds__(256)
    ssdChunkOutputKernel(const float* __restrict__ K, int64_t rowsK, const double* __restrict__ cum,
                         const float* __restrict__ X, const float* __restrict__ R,
                         const float* __restrict__ eCum, float* __restrict__ y, float* __restrict__ Z,
                         int64_t nc, int64_t Q, int64_t G, int64_t Hg, int64_t P)
{
    extern __shared__ double cumS[]; // Q running sums of this chunk and head
    __shared__ float As[kTileS][kTileRows + 4];
    __shared__ __align__(16) float Xs[kTileS][kTileCols];
    const int64_t w = blockIdx.x; // ((b * nc + c) * G + g) * Hg + hg
    const int64_t hg = w % Hg, g = (w / Hg) % G, c = (w / (Hg * G)) % nc, b = w / (Hg * G * nc);
    const int64_t H = G * Hg, h = g * Hg + hg;
    const int64_t r0 = int64_t(blockIdx.y) * kTileRows, p0 = int64_t(blockIdx.z) * kTileCols;
    const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;

    const double* cumH = cum + w * Q;
    for (int64_t i = tid; i < Q; i += blockDim.x)
        cumS[i] = cumH[i];
    __syncthreads();

    // The tokens these rows read go up to the largest l(r) of the tile.
    const int64_t rEnd = min(rowsK, r0 + kTileRows);
    const int64_t lMax = (r0 < Q && rEnd > Q) ? Q - 1 : ((rEnd - 1) % Q);
    const float* Kw = K + ((b * nc + c) * G + g) * rowsK * Q;
    const float* Xc = X + (b * nc * Q + c * Q) * H * P + h * P;

    float acc[4][4] = {};
    for (int64_t s0 = 0; s0 <= lMax; s0 += kTileS) {
        // K tile, masked and decayed: As[s][r].
        for (int k = tid; k < kTileRows * kTileS; k += blockDim.x) {
            const int rr = k / kTileS, ss = k % kTileS;
            const int64_t r = r0 + rr, s = s0 + ss;
            float v = 0.0f;
            if (r < rowsK && s < Q) {
                const int64_t l = r % Q;
                if (s <= l)
                    v = Kw[r * Q + s] * expf(float(cumS[l] - cumS[s]));
            }
            As[ss][rr] = v;
        }
        for (int k = tid; k < kTileS * kTileCols; k += blockDim.x) {
            const int ss = k / kTileCols, pp = k % kTileCols;
            const int64_t s = s0 + ss, p = p0 + pp;
            Xs[ss][pp] = (s < Q && p < P) ? Xc[s * H * P + p] : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int ss = 0; ss < kTileS; ++ss) {
            float a[4], x[4];
            for (int i = 0; i < 4; ++i)
                a[i] = As[ss][ty * 4 + i];
            const float4 xv = *reinterpret_cast<const float4*>(&Xs[ss][tx * 4]);
            x[0] = xv.x, x[1] = xv.y, x[2] = xv.z, x[3] = xv.w;
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j)
                    acc[i][j] += a[i] * x[j];
        }
        __syncthreads();
    }

    for (int i = 0; i < 4; ++i) {
        const int64_t r = r0 + ty * 4 + i;
        if (r >= rowsK)
            continue;
        for (int j = 0; j < 4; ++j) {
            const int64_t p = p0 + tx * 4 + j;
            if (p >= P)
                continue;
            if (r < Q) {
                const float read = R[(((b * nc + c) * G + g) * rowsK + r) * (Hg * P) + hg * P + p];
                y[((b * nc * Q + c * Q + r) * H + h) * P + p] = acc[i][j] + read * eCum[w * Q + r];
            } else {
                Z[(w * Q + (r - Q)) * P + p] = acc[i][j];
            }
        }
    }
}

// ---- state norms of the chunked scan ------------------------------------------------------------

constexpr int kNormThreads = 256;

__global__ void __launch_bounds__(kNormThreads)
    scanStateNormsKernel(const float* __restrict__ X, const float* __restrict__ Z, int64_t zRows,
                         int64_t zRow0, const float* __restrict__ R, const float* __restrict__ Bm,
                         const float* __restrict__ a, const float* __restrict__ eCum,
                         const float* __restrict__ n0, float* __restrict__ norm, int64_t nc, int64_t Q,
                         int64_t G, int64_t Hg, int64_t P, int64_t N)
{
    extern __shared__ float shared[]; // v[Q], then alpha^2[Q]
    float* v = shared;
    float* alpha2 = shared + Q;
    const int64_t w = blockIdx.x; // ((b * nc + c) * G + g) * Hg + hg
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int64_t hg = w % Hg, g = (w / Hg) % G, c = (w / (Hg * G)) % nc, b = w / (Hg * G * nc);
    const int64_t H = G * Hg, h = g * Hg + hg;
    const float* Zb = Z + (w * zRows + zRow0) * P;
    const float* Rb = R + (((b * nc + c) * G + g) * 2 * Q + Q) * (Hg * P) + hg * P;
    const float* eb = eCum + w * Q;
    // Every token's v_t at once, a warp per token.
    for (int64_t l = warp; l < Q; l += warps) {
        const int64_t tok = c * Q + l;
        const float* x = X + ((b * nc * Q + tok) * H + h) * P;
        const float* z = Zb + l * P;
        const float* r = Rb + l * (Hg * P);
        const float* bb = Bm + ((b * nc * Q + tok) * G + g) * N;
        float xz = 0.0f, xr = 0.0f, xx = 0.0f, bsq = 0.0f;
        for (int64_t p = lane; p < P; p += 32) {
            const float xv = x[p];
            xz += xv * z[p];
            xr += xv * r[p];
            xx += xv * xv;
        }
        for (int64_t n = lane; n < N; n += 32)
            bsq += bb[n] * bb[n];
        xz = warpSum(xz);
        xr = warpSum(xr);
        xx = warpSum(xx);
        bsq = warpSum(bsq);
        if (lane == 0) {
            v[l] = 2.0f * (xz + eb[l] * xr) - xx * bsq;
            const float al = expf(a[(b * nc * Q + tok) * H + h]);
            alpha2[l] = al * al;
        }
    }
    __syncthreads();
    // The recurrence, in place: v[l] becomes ||S_l||.
    if (threadIdx.x == 0) {
        float sq = n0[(b * nc + c) * H + h];
        for (int64_t l = 0; l < Q; ++l) {
            sq = alpha2[l] * sq + v[l];
            v[l] = sqrtf(fmaxf(sq, 0.0f));
        }
    }
    __syncthreads();
    for (int64_t l = threadIdx.x; l < Q; l += blockDim.x)
        norm[(b * nc * Q + c * Q + l) * H + h] = v[l];
}

// ---- the whole scan on tensor cores (half-precision models) ----------------------------------------
//
// Four kernels, as the SSD algorithm splits the work (stuffed-mamba.md §7.3): each chunk's own state
// (A), the states passed across chunks (B), each chunk's read-out with its decay mask (C), and the
// per-token state norms (D). The products run on tensor cores with float32 sums. The chunk states,
// which the whole run carries forward, take TF32 operands (2^-11); the read-out takes bfloat16 ones,
// the model's own precision and mamba_ssm's. Neither is float16: a state that grows by 10^7 in a
// collapse must not overflow.

namespace wmma = nvcuda::wmma;
using FragACol = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragAcc = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

constexpr int kTcThreads = 256, kTcWarps = kTcThreads / 32, kTcRows = 64, kTcStateK = 32;

// Padded leading dimension (floats) of a shared-memory matrix: a multiple of 4 as WMMA needs, off the
// 32-bank stride.
__host__ __device__ constexpr int64_t paddedLd(int64_t cols)
{
    return cols + 4;
}
// Shared-memory regions start on 32-byte boundaries (WMMA's pointer alignment).
__host__ __device__ constexpr int64_t alignedFloats(int64_t n)
{
    return (n + 7) / 8 * 8;
}

// Inclusive prefix sum of v[0..n) in shared memory, by the whole block (blockDim.x == kTcThreads).
__device__ void blockInclusiveScan(float* v, int n)
{
    __shared__ float warpTotals[kTcWarps];
    __shared__ float carry;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (threadIdx.x == 0)
        carry = 0.0f;
    __syncthreads();
    for (int base = 0; base < n; base += kTcThreads) {
        const int i = base + threadIdx.x;
        float x = i < n ? v[i] : 0.0f;
        for (int o = 1; o < 32; o <<= 1) {
            const float y = __shfl_up_sync(0xffffffffu, x, o);
            if (lane >= o)
                x += y;
        }
        if (lane == 31)
            warpTotals[warp] = x;
        __syncthreads();
        float before = carry;
        for (int w = 0; w < warp; ++w)
            before += warpTotals[w];
        if (i < n)
            v[i] = x + before;
        __syncthreads();
        if (threadIdx.x == 0)
            for (int w = 0; w < kTcWarps; ++w)
                carry += warpTotals[w];
        __syncthreads();
    }
}

__device__ __forceinline__ void store4(float* d, float4 v)
{
    *reinterpret_cast<float4*>(d) = v;
}

// A tile of rows x cols floats (source rows of srcStride, zeros from row `valid` on) held in registers
// between its load and its store to shared memory, so that the next tile's loads are in flight while
// the current one is multiplied: float4 k = threadIdx.x + i kTcThreads of the tile, at most kMax.
template <int kMax> struct TilePrefetch {
    float4 v[kMax];

    __device__ __forceinline__ void load(const float* __restrict__ src, int srcStride, int rows, int valid,
                                         int cols)
    {
        const int c4 = cols >> 2, total = rows * c4;
#pragma unroll
        for (int i = 0; i < kMax; ++i) {
            const int k = threadIdx.x + i * kTcThreads, r = k / c4, j = (k - r * c4) * 4;
            v[i] = k < total && r < valid ? *reinterpret_cast<const float4*>(src + r * srcStride + j)
                                          : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
    }

    // Times scale[r] (may be null; read for rows below `valid` only: past a ragged chunk's end it
    // holds no values), rounded to TF32.
    __device__ __forceinline__ void store(float* dst, int ld, int rows, int valid, int cols,
                                          const float* scale) const
    {
        const int c4 = cols >> 2, total = rows * c4;
#pragma unroll
        for (int i = 0; i < kMax; ++i) {
            const int k = threadIdx.x + i * kTcThreads, r = k / c4, j = (k - r * c4) * 4;
            if (k >= total)
                break;
            const float f = !scale ? 1.0f : r < valid ? scale[r] : 0.0f;
            store4(dst + r * ld + j,
                   make_float4(wmma::__float_to_tf32(v[i].x * f), wmma::__float_to_tf32(v[i].y * f),
                               wmma::__float_to_tf32(v[i].z * f), wmma::__float_to_tf32(v[i].w * f)));
        }
    }
};

// (A) One block per batch row, chunk and kHeads heads of one group: the running log decays of the
// chunk (cum, written out for B to D) and the state the chunk adds by its end, S_c = sum_l
// exp(cum[Q-1] - cum[l]) dt_l x_l B_l^T, [P, N], as (X w)^T B on tensor cores in steps of kTcStateK
// tokens. Tokens past T (a ragged last chunk) count as zero input and zero decay. The operands are
// rounded to TF32 as they are staged. Each warp holds kAcc blocks of 2 x 2 tiles of 16 x 16 (kQuad, P
// and N multiples of 32: two loads of each operand feed four products) or kAcc single tiles. With two
// heads a block, B's tile is staged once for both: it was two thirds of what a one-head block loaded
// for the sizes every Mamba-2 checkpoint has (26.8 ms of the 1.3b shape's 16K tokens).
template <int kAcc, bool kQuad, int kXLoads = 4, int kBLoads = 8, int kHeads = 1>
__global__ void __launch_bounds__(kTcThreads)
    ssdChunkStateKernel(const float* __restrict__ x, int64_t xStride, const float* __restrict__ Bm,
                        int64_t bStride, const float* __restrict__ dt, const float* __restrict__ a,
                        float* __restrict__ cumOut, float* __restrict__ states, int64_t T, int64_t nc,
                        int64_t Q, int64_t H, int64_t G, int64_t P, int64_t N)
{
    extern __shared__ __align__(32) float smem[];
    const int ldX = int(paddedLd(P)), ldB = int(paddedLd(N));
    const int64_t qa = alignedFloats(Q), xTile = alignedFloats(kTcStateK * ldX);
    float* cum = smem;               // [kHeads][qa]
    float* w = cum + kHeads * qa;    // [kHeads][qa]: exp(cum[Q-1] - cum[l]) dt_l
    float* Xs = w + kHeads * qa;     // [kHeads][kTcStateK][ldX]
    float* Bs = Xs + kHeads * xTile; // [kTcStateK][ldB]
    const int64_t Hb = H / kHeads;   // blockIdx.x = (b * nc + c) * Hb + hb
    const int64_t hb = blockIdx.x % Hb, c = (blockIdx.x / Hb) % nc, b = blockIdx.x / (Hb * nc);
    const int64_t h0 = hb * kHeads, g = h0 / (H / G), blk0 = (b * nc + c) * H + h0;
    const int64_t t0 = c * Q, Qc = min(Q, T - t0);
    const int warp = threadIdx.x >> 5;

#pragma unroll
    for (int j = 0; j < kHeads; ++j)
        for (int64_t l = threadIdx.x; l < Q; l += kTcThreads)
            cum[j * qa + l] = l < Qc ? a[(b * T + t0 + l) * H + h0 + j] : 0.0f;
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kHeads; ++j) {
        blockInclusiveScan(cum + j * qa, int(Q));
        const float total = cum[j * qa + Q - 1];
        for (int64_t l = threadIdx.x; l < Q; l += kTcThreads) {
            cumOut[(blk0 + j) * Q + l] = cum[j * qa + l];
            w[j * qa + l] =
                l < Qc ? __expf(total - cum[j * qa + l]) * dt[(b * T + t0 + l) * H + h0 + j] : 0.0f;
        }
    }
    __syncthreads();

    // Where each of the warp's accumulators sits (head, rows, columns), worked out once.
    constexpr int kFrags = kQuad ? 4 * kAcc : kAcc;
    const int span = kQuad ? 32 : 16, colsN = int(N) / span, perHead = (int(P) / span) * colsN,
              units = kHeads * perHead;
    int hd[kAcc], p0[kAcc], n0[kAcc];
    int mine = 0;
#pragma unroll
    for (int k = 0; k < kAcc; ++k) {
        const int unit = warp + k * kTcWarps, r = unit % perHead;
        hd[k] = unit < units ? unit / perHead : 0;
        p0[k] = unit < units ? (r / colsN) * span : 0;
        n0[k] = unit < units ? (r % colsN) * span : 0;
        mine += unit < units;
    }
    FragAcc acc[kFrags];
#pragma unroll
    for (int k = 0; k < kFrags; ++k)
        wmma::fill_fragment(acc[k], 0.0f);
    // P <= 128 and N <= 256: at most 4 and 8 float4s a thread in a step of kTcStateK (32) tokens; fewer
    // (kXLoads, kBLoads) for the sizes every Mamba-2 checkpoint has, which leaves registers for 2 blocks.
    TilePrefetch<kXLoads> nextX[kHeads];
    TilePrefetch<kBLoads> nextB;
    const float* xRows = x + (b * T + t0) * xStride + h0 * P;
    const float* bRows = Bm + (b * T + t0) * bStride + g * N;
    const int xs = int(xStride), bs = int(bStride);
#pragma unroll
    for (int j = 0; j < kHeads; ++j)
        nextX[j].load(xRows + j * P, xs, kTcStateK, int(Qc), int(P));
    nextB.load(bRows, bs, kTcStateK, int(Qc), int(N));
    for (int l0 = 0; l0 < int(Qc); l0 += kTcStateK) {
#pragma unroll
        for (int j = 0; j < kHeads; ++j)
            nextX[j].store(Xs + j * xTile, ldX, kTcStateK, int(Qc) - l0, int(P), w + j * qa + l0);
        nextB.store(Bs, ldB, kTcStateK, int(Qc) - l0, int(N), nullptr);
        __syncthreads();
        if (l0 + kTcStateK < int(Qc)) {
#pragma unroll
            for (int j = 0; j < kHeads; ++j)
                nextX[j].load(xRows + j * P + (l0 + kTcStateK) * xs, xs, kTcStateK, int(Qc) - l0 - kTcStateK,
                              int(P));
            nextB.load(bRows + (l0 + kTcStateK) * bs, bs, kTcStateK, int(Qc) - l0 - kTcStateK, int(N));
        }
#pragma unroll
        for (int k = 0; k < kAcc; ++k) {
            if (k >= mine)
                break;
            const float* Xh = Xs + hd[k] * xTile;
            for (int kk = 0; kk < kTcStateK; kk += 8) {
                if (kQuad) {
                    FragACol fa[2]; // (X w)^T: element (p, l) at Xs[l][p]
                    FragB fb[2];
#pragma unroll
                    for (int i = 0; i < 2; ++i) {
                        wmma::load_matrix_sync(fa[i], Xh + kk * ldX + p0[k] + 16 * i, unsigned(ldX));
                        wmma::load_matrix_sync(fb[i], Bs + kk * ldB + n0[k] + 16 * i, unsigned(ldB));
                    }
#pragma unroll
                    for (int i = 0; i < 2; ++i)
#pragma unroll
                        for (int j = 0; j < 2; ++j)
                            wmma::mma_sync(acc[4 * k + 2 * i + j], fa[i], fb[j], acc[4 * k + 2 * i + j]);
                } else {
                    FragACol fa;
                    FragB fb;
                    wmma::load_matrix_sync(fa, Xh + kk * ldX + p0[k], unsigned(ldX));
                    wmma::load_matrix_sync(fb, Bs + kk * ldB + n0[k], unsigned(ldB));
                    wmma::mma_sync(acc[k], fa, fb, acc[k]);
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int k = 0; k < kAcc; ++k) {
        if (k >= mine)
            break;
        float* out = states + (blk0 + hd[k]) * P * N;
        if (kQuad) {
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int j = 0; j < 2; ++j)
                    wmma::store_matrix_sync(out + (p0[k] + 16 * i) * N + n0[k] + 16 * j,
                                            acc[4 * k + 2 * i + j], unsigned(N), wmma::mem_row_major);
        } else {
            wmma::store_matrix_sync(out + p0[k] * N + n0[k], acc[k], unsigned(N), wmma::mem_row_major);
        }
    }
}

constexpr int kPassSlice = 1024; // state elements per block of the pass across chunks
constexpr int kPassParts = kPassSlice / 32 / (kPassSlice / kTcThreads); // one partial sum a warp

// (B) The states passed across chunks: from states[c] (the chunk's own, from A), the state entering
// chunk c, S_in[c] = exp(total[c-1]) S_in[c-1] + S_{c-1}, S_in[0] the incoming state, goes to statesHalf
// in bfloat16, the read-out's operand type, so that C copies it without converting.
// The state after the last chunk goes to stateOut. Each warp also leaves, per chunk, its share of
// ||S_in[c]||^2 (n0Parts [B, nc, H, slices * kPassParts]), which D sums: no atomics and no block-wide
// barrier, the same order every run. The next chunk's values are loaded before this one's are
// written, so the loop waits on one load at a time.
__global__ void __launch_bounds__(kTcThreads)
    ssdStatePassKernel(const float* __restrict__ stateIn, const float* __restrict__ states,
                       Bf16* __restrict__ statesHalf, const float* __restrict__ cum,
                       float* __restrict__ stateOut, float* __restrict__ n0Parts, int64_t nc, int64_t Q,
                       int64_t H, int64_t PN, int64_t slices)
{
    const int64_t bh = blockIdx.x, slice = blockIdx.y; // bh = b * H + h
    const int64_t h = bh % H, b = bh / H;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    constexpr int kPer = kPassSlice / kTcThreads;
    float cur[kPer], own[kPer];
    int64_t idx[kPer];
    for (int k = 0; k < kPer; ++k) {
        idx[k] = slice * kPassSlice + k * kTcThreads + threadIdx.x;
        cur[k] = idx[k] < PN ? stateIn[bh * PN + idx[k]] : 0.0f;
    }
    auto load = [&](int64_t c, float* into) {
        const float* sc = states + ((b * nc + c) * H + h) * PN;
        for (int k = 0; k < kPer; ++k)
            into[k] = idx[k] < PN ? sc[idx[k]] : 0.0f;
        return __expf(cum[((b * nc + c) * H + h) * Q + Q - 1]);
    };
    float decay = load(0, own);
    for (int64_t c = 0; c < nc; ++c) {
        const int64_t blk = (b * nc + c) * H + h;
        float next[kPer] = {};
        float nextDecay = 1.0f;
        if (c + 1 < nc)
            nextDecay = load(c + 1, next);
        Bf16* sc = statesHalf + blk * PN;
        float sq = 0.0f;
        for (int k = 0; k < kPer; ++k) {
            if (idx[k] < PN)
                sc[idx[k]] = __float2bfloat16_rn(cur[k]);
            sq += cur[k] * cur[k];
            cur[k] = decay * cur[k] + own[k];
            own[k] = next[k];
        }
        decay = nextDecay;
        sq = warpSum(sq);
        if (lane == 0)
            n0Parts[blk * slices * kPassParts + slice * kPassParts + warp] = sq;
    }
    for (int k = 0; k < kPer; ++k)
        if (idx[k] < PN)
            stateOut[bh * PN + idx[k]] = cur[k];
}

using FragAh = wmma::fragment<wmma::matrix_a, 16, 16, 16, Bf16, wmma::row_major>;
using FragBhCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, Bf16, wmma::col_major>;
using FragAcch = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

constexpr int kScanHeads = 8;                // heads of a group one block of (C) reads out in turn
constexpr int kScanMaxChunk = 256;           // C.B^T of a row tile stays in shared memory: [64, Q] bfloat16
constexpr int64_t kScanMaxSmem = 227 * 1024; // a block's shared memory on Hopper (Ampere's A100: 163 KiB)

// 16 bytes from global to shared memory without passing through registers (Ampere's cp.async), or
// 16 zero bytes where !valid (src is then not read, but must still be a valid address).
__device__ __forceinline__ void copy16Async(void* dst, const void* src, bool valid)
{
    const unsigned d = unsigned(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void commitAsync()
{
    asm volatile("cp.async.commit_group;\n" ::);
}

// Waits until at most kPending of this thread's committed copies are still in flight.
template <int kPending> __device__ __forceinline__ void waitAsync()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// dst[r][0, cols) = src's row r (bfloat16), zeros from row `valid` (>= 1) on, issued as 16-byte
// asynchronous copies: rows of src and dst start on 16 bytes, cols is a multiple of 8.
// tid and threads: the copying threads (the block, or one head's half of it).
__device__ __forceinline__ void copyRowsAsync(Bf16* dst, int ld, const Bf16* __restrict__ src, int srcStride,
                                              int rows, int valid, int cols, int tid = threadIdx.x,
                                              int threads = kTcThreads)
{
    // Row and 16-byte column of chunk k advance by constant steps: no division in the loop.
    const int c8 = cols >> 3, total = rows * c8, dr = threads / c8, dj = threads - dr * c8;
    int r = tid / c8, j = tid - r * c8;
    for (int k = tid; k < total; k += threads) {
        const bool ok = r < valid;
        copy16Async(dst + r * ld + j * 8, ok ? src + r * srcStride + j * 8 : src, ok);
        r += dr, j += dj;
        if (j >= c8)
            j -= c8, ++r;
    }
}

// dst [rows, cols] contiguous bfloat16 from src's rows of srcStride floats (16-byte aligned), eight
// values a thread: the read-out's operands, rounded once here instead of in every block that reads them.
__global__ void toBf16Kernel(const float* __restrict__ src, int64_t srcStride, Bf16* __restrict__ dst,
                             int64_t rows, int cols)
{
    const int c8 = cols >> 3;
    const int64_t total = rows * c8;
    for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total;
         k += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = k / c8;
        const int j = int(k - r * c8) << 3;
        const float4* s = reinterpret_cast<const float4*>(src + r * srcStride + j);
        const float4 a = s[0], b = s[1];
        __nv_bfloat162 o[4] = {__floats2bfloat162_rn(a.x, a.y), __floats2bfloat162_rn(a.z, a.w),
                               __floats2bfloat162_rn(b.x, b.y), __floats2bfloat162_rn(b.z, b.w)};
        *reinterpret_cast<uint4*>(dst + r * cols + j) = *reinterpret_cast<const uint4*>(o);
    }
}

__host__ __device__ inline int64_t align32(int64_t bytes)
{
    return (bytes + 31) / 32 * 32;
}

// ---- the read-out on mma.sync: the decayed mask formed in registers --------------------------------
//
// Operand and accumulator layouts of mma.m16n8k16 (bfloat16 operands, float32 sums) are fixed by PTX,
// so each thread knows the rows and columns it holds: the decays scale the A fragments on their way
// from shared memory to the tensor cores, and the accumulators go straight to y and v. (WMMA's
// fragments are opaque: the WMMA read-out this replaced took the masked tiles and the sums through
// shared memory, and ran 1.4 times as long; docs/kernels.md.)

__device__ __forceinline__ void ldsm4(unsigned (&r)[4], const Bf16* p)
{
    const unsigned a = unsigned(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
}

__device__ __forceinline__ void ldsm4Trans(unsigned (&r)[4], const Bf16* p)
{
    const unsigned a = unsigned(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
}

// d += a b for one 16 x 8 tile: a the 16 x 16 A fragment, (b0, b1) the 16 x 8 B fragment.
__device__ __forceinline__ void mma16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// A bfloat16 pair (low half first) times (f0, f1), rounded back to a bfloat16 pair.
__device__ __forceinline__ unsigned scalePair(unsigned v, float f0, float f1)
{
    const __nv_bfloat162 r =
        __floats2bfloat162_rn(__uint_as_float(v << 16) * f0, __uint_as_float(v & 0xffff0000u) * f1);
    return *reinterpret_cast<const unsigned*>(&r);
}

constexpr int kMmaSlots = 2; // heads read out at once, four warps (one band of 16 rows each) a head

struct ScanMmaSmem {
    int ldN, ldP, ldCB; // in elements; rows of 16 bytes times an odd number, so ldmatrix has no conflicts
    int64_t cum, dts, bsq, colF, cb, rd, work, slot, xs0, xs1, ss, total; // byte offsets (slot: a stride)
};

__host__ __device__ inline ScanMmaSmem scanMmaSmem(int64_t P, int64_t N, int64_t Q)
{
    ScanMmaSmem m;
    const int64_t qPad = (Q + kTcRows - 1) / kTcRows * kTcRows;
    m.ldN = int(N) + 8, m.ldP = int(P) + 8, m.ldCB = int(qPad) + 8;
    m.cum = 0;                                   // [kScanHeads][Q]
    m.dts = align32(kScanHeads * Q * 4);         // [kScanHeads][Q]
    m.bsq = m.dts + align32(kScanHeads * Q * 4); // [64]
    m.colF = m.bsq + align32(kTcRows * 4);       // [kMmaSlots][qPad]
    m.cb = m.colF + align32(kMmaSlots * qPad * 4);
    m.rd = m.cb + align32(kTcRows * m.ldCB * 2);
    m.work = m.rd + align32(kTcRows * m.ldN * 2);
    // Per head slot: x of two source tiles (one read while the next arrives) and S_in.
    m.xs0 = 0;
    m.xs1 = align32(kTcRows * m.ldP * 2);
    m.ss = m.xs1 + align32(kTcRows * m.ldP * 2);
    m.slot = m.ss + align32(P * m.ldN * 2);
    // Before the heads: B's tile, then each warp's two 16 x 16 float tiles of reader . B^T.
    const int64_t cbStage = int64_t(kTcWarps) * 2 * 16 * 16 * 4;
    const int64_t cbPhase = align32(kTcRows * m.ldN * 2) > cbStage ? align32(kTcRows * m.ldN * 2) : cbStage;
    const int64_t headPhase = kMmaSlots * m.slot;
    m.total = m.work + (cbPhase > headPhase ? cbPhase : headPhase);
    return m;
}

// (C) One block per batch row, chunk, group, tile of 64 tokens, run of up to kScanHeads heads and
// reader. With C as the reader it writes y_l = sum_{s<=l} (C_l . B_s) exp(cum_l - cum_s) dt_s x_s +
// exp(cum_l) C_l . S_in + D x_l; with B as the reader the same sum is U_l = S_l B_l (the state after
// token l read by its own B), from which the state norm's increment v_l = 2 X_l . U_l - |X_l|^2 |B_l|^2
// (X_l = dt_l x_l; ModelCommon.cpp's derivation) goes to v [B, nc, Q, H].
// The reader's rows times B^T are formed once for the block's heads (WMMA, float32 sums, kept in
// bfloat16); then two heads at a time, each by four warps of 16 rows and all P columns. Below the
// diagonal tile the A fragments of reader . B^T are scaled by the column factor exp(cum_r0 - cum_s) dt_s,
// and the sum over those tiles by the row factor exp(cum_l - cum_r0) at the end: both <= 1 (no
// overflow; each at least the product, so no underflow the product would not have). The diagonal tile
// takes exp(cum_l - cum_s) dt_s per element. The incoming state's part has its own accumulators,
// scaled by exp(cum_l) when the rows are written. Operands are bfloat16, as in mamba_ssm's kernels,
// copied by cp.async from bfloat16 copies of x | B | C and of the incoming states (the next tile of x
// arriving while the current one is multiplied); sums float32; x in float32 serves D x and v.
// kPairs: pairs of 8-column tiles of the accumulators, at least P / 16.
template <int kPairs>
__global__ void __launch_bounds__(kTcThreads, 1)
    ssdChunkScanMmaKernel(const float* __restrict__ x, int64_t xStride, const Bf16* __restrict__ xh,
                          int64_t xhStride, const float* __restrict__ Bm, int64_t bcStride,
                          const Bf16* __restrict__ Bh, const Bf16* __restrict__ Ch, int64_t bchStride,
                          const float* __restrict__ dt, const float* __restrict__ cumIn,
                          const Bf16* __restrict__ statesIn, const float* __restrict__ D, int dPerChannel,
                          float* __restrict__ y, float* __restrict__ v, int64_t T, int64_t nc, int64_t Q,
                          int64_t H, int64_t G, int64_t P, int64_t N)
{
    extern __shared__ __align__(32) unsigned char smemBytes[];
    const ScanMmaSmem m = scanMmaSmem(P, N, Q);
    float* cumAll = reinterpret_cast<float*>(smemBytes + m.cum);
    float* dtsAll = reinterpret_cast<float*>(smemBytes + m.dts);
    float* bsq = reinterpret_cast<float*>(smemBytes + m.bsq);
    Bf16* CB = reinterpret_cast<Bf16*>(smemBytes + m.cb); // [64][ldCB] reader . B^T, unmasked
    Bf16* Rd = reinterpret_cast<Bf16*>(smemBytes + m.rd); // [64][ldN] the reader's rows
    unsigned char* work = smemBytes + m.work;
    Bf16* Bs = reinterpret_cast<Bf16*>(work); // [64][ldN] B of 64 source tokens

    const int64_t Hg = H / G, runs = (Hg + kScanHeads - 1) / kScanHeads;
    const int64_t run = blockIdx.x % runs, grp = (blockIdx.x / runs) % G, c = (blockIdx.x / (runs * G)) % nc,
                  b = blockIdx.x / (runs * G * nc);
    const int64_t r0 = int64_t(blockIdx.y) * kTcRows, t0 = c * Q, Qc = min(Q, T - t0);
    const bool byB = blockIdx.z == 1;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (r0 >= Qc)
        return;
    const int rows = int(min(int64_t(kTcRows), Qc - r0));
    const int bchs = int(bchStride), xhs = int(xhStride);

    copyRowsAsync(Rd, m.ldN, (byB ? Bh : Ch) + (b * T + t0 + r0) * bchStride + grp * N, bchs, kTcRows, rows,
                  int(N));
    commitAsync();
    const int64_t hFirst = run * kScanHeads, hEnd = min(Hg, hFirst + kScanHeads);
    if (warp < hEnd - hFirst) { // a warp a head (kScanHeads == kTcWarps): its loads go out together
        const int64_t h = grp * Hg + hFirst + warp;
        const float* cumSrc = cumIn + ((b * nc + c) * H + h) * Q;
        const float* dtSrc = dt + (b * T + t0) * H + h;
        float* cumDst = cumAll + warp * Q;
        float* dtsDst = dtsAll + warp * Q;
        const int q = int(Q), qc = int(Qc), hs = int(H);
#pragma unroll 8
        for (int l = lane; l < q; l += 32) {
            cumDst[l] = cumSrc[l];
            dtsDst[l] = l < qc ? dtSrc[l * hs] : 0.0f;
        }
    }
    if (byB) { // |B_l|^2, four threads a row
        const int r = threadIdx.x >> 2, q = threadIdx.x & 3;
        float acc = 0.0f;
        if (r < rows)
            for (int64_t n = q * 4; n < N; n += 16) {
                const float4 bv =
                    *reinterpret_cast<const float4*>(Bm + (b * T + t0 + r0 + r) * bcStride + grp * N + n);
                acc += bv.x * bv.x + bv.y * bv.y + bv.z * bv.z + bv.w * bv.w;
            }
        acc += __shfl_xor_sync(0xffffffffu, acc, 1);
        acc += __shfl_xor_sync(0xffffffffu, acc, 2);
        if (q == 0)
            bsq[r] = acc;
    }
    {
        const int band = warp >> 1, half = warp & 1; // WMMA: warps in pairs per band of 16 rows
        for (int s0 = 0; s0 <= int(r0); s0 += kTcRows) {
            __syncthreads(); // Bs is free
            copyRowsAsync(Bs, m.ldN, Bh + (b * T + t0 + s0) * bchStride + grp * N, bchs, kTcRows,
                          int(Qc - s0), int(N));
            commitAsync();
            waitAsync<0>();
            __syncthreads();
            FragAcch acc[2];
            wmma::fill_fragment(acc[0], 0.0f);
            wmma::fill_fragment(acc[1], 0.0f);
            for (int n0 = 0; n0 < int(N); n0 += 16) {
                FragAh fa;
                wmma::load_matrix_sync(fa, Rd + band * 16 * m.ldN + n0, unsigned(m.ldN));
                for (int k = 0; k < 2; ++k) {
                    FragBhCol fb; // B^T: element (n, s) at Bs[s][n]
                    wmma::load_matrix_sync(fb, Bs + (half * 32 + k * 16) * m.ldN + n0, unsigned(m.ldN));
                    wmma::mma_sync(acc[k], fa, fb, acc[k]);
                }
            }
            __syncthreads(); // Bs read: the staging goes over it
            float* stage = reinterpret_cast<float*>(work) + warp * 2 * 16 * 16;
            for (int k = 0; k < 2; ++k)
                wmma::store_matrix_sync(stage + k * 16, acc[k], 32u, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 16 * 32; e += 32) {
                const int r = e / 32, col = e % 32;
                CB[(band * 16 + r) * m.ldCB + s0 + half * 32 + col] =
                    __float2bfloat16_rn(stage[r * 32 + col]);
            }
        }
    }

    // Two heads at a time: slot = warp / 4, rows band * 16 .. + 15 of the tile. In an A fragment and an
    // accumulator this thread holds rows lr0 and lr0 + 8 (gq = lane / 4) and columns tq * 2, tq * 2 + 1
    // (+ 8) of each 8-column tile.
    const int slot = warp >> 2, band = warp & 3, gq = lane >> 2, tq = lane & 3;
    const int sTid = threadIdx.x & 127, lr0 = band * 16 + gq, lr1 = lr0 + 8;
    // ldmatrix row addresses: lanes 0-7, 8-15, 16-23, 24-31 give the rows of matrices 0 to 3.
    const int aRow = (lane & 7) + ((lane >> 3) & 1) * 8, aCol = (lane >> 4) * 8; // A; B from [k][n] (.trans)
    const int sRow = (lane & 7) + (lane >> 4) * 8, sCol = ((lane >> 3) & 1) * 8; // B from [n][k]
    unsigned char* mine = work + slot * m.slot;
    Bf16* const Xb0 = reinterpret_cast<Bf16*>(mine + m.xs0);
    Bf16* const Xb1 = reinterpret_cast<Bf16*>(mine + m.xs1);
    Bf16* const Ss = reinterpret_cast<Bf16*>(mine + m.ss); // [P][ldN] S_in
    float* colF =
        reinterpret_cast<float*>(smemBytes + m.colF) + slot * ((Q + kTcRows - 1) / kTcRows * kTcRows);
    const int nt = int(r0 / kTcRows) + 1, ntP = int(P / 16), ldCB = m.ldCB, ldP = m.ldP, ldN = m.ldN;
    for (int64_t hp = hFirst; hp < hEnd; hp += kMmaSlots) {
        const int64_t hg = hp + slot, h = grp * Hg + hg, blk = (b * nc + c) * H + h;
        const bool active = hg < hEnd;
        const float* cum = cumAll + (hg - hFirst) * Q;
        const float* dts = dtsAll + (hg - hFirst) * Q;
        const Bf16* xHead = xh + (b * T + t0) * xhStride + h * P;
        __syncthreads(); // the previous heads' tiles and states are read
        if (active) {
            copyRowsAsync(Xb0, ldP, xHead, xhs, kTcRows, int(Qc), int(P), sTid, 128);
            commitAsync();
            copyRowsAsync(Ss, ldN, statesIn + blk * P * N, int(N), int(P), int(P), int(N), sTid, 128);
            for (int sIdx = sTid; sIdx < int(r0); sIdx += 128)
                colF[sIdx] = __expf(cum[r0] - cum[sIdx]) * dts[sIdx];
        }
        commitAsync(); // (empty where inactive: the waits below count the same groups)
        float rowE0 = 0.0f, rowE1 = 0.0f, cl0 = 0.0f, cl1 = 0.0f;
        if (active) {
            cl0 = lr0 < rows ? cum[r0 + lr0] : 0.0f, cl1 = lr1 < rows ? cum[r0 + lr1] : 0.0f;
            rowE0 = lr0 < rows ? __expf(cl0 - cum[r0]) : 0.0f;
            rowE1 = lr1 < rows ? __expf(cl1 - cum[r0]) : 0.0f;
        }
        float acc[2 * kPairs][4], accS[2 * kPairs][4];
#pragma unroll
        for (int j = 0; j < 2 * kPairs; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e)
                acc[j][e] = 0.0f, accS[j][e] = 0.0f;
        // x of this thread's rows and columns in float32, for D x and v: loaded now, used at the end.
        const float* x0 = x + (b * T + t0 + r0 + lr0) * xStride + h * P;
        const float* x1 = x0 + 8 * xStride;
        float2 xr[2 * kPairs][2];
#pragma unroll
        for (int j = 0; j < 2 * kPairs; ++j) {
            const int p = j * 8 + tq * 2;
            const bool in = active && j < 2 * ntP;
            xr[j][0] = in && lr0 < rows ? *reinterpret_cast<const float2*>(x0 + p) : make_float2(0.0f, 0.0f);
            xr[j][1] = in && lr1 < rows ? *reinterpret_cast<const float2*>(x1 + p) : make_float2(0.0f, 0.0f);
        }
        for (int i = 0; i < nt; ++i) {
            if (i == 0)
                waitAsync<1>(); // x's tile 0 (S_in, copied after it, may still travel)
            else
                waitAsync<0>();
            __syncthreads(); // tile i in place (and colF); the other buffer's readers done
            if (i + 1 < nt && active) {
                copyRowsAsync((i & 1) ? Xb0 : Xb1, ldP, xHead + (i + 1) * kTcRows * xhs, xhs, kTcRows,
                              int(Qc) - (i + 1) * kTcRows, int(P), sTid, 128);
                commitAsync();
            }
            if (!active)
                continue;
            const Bf16* Xs = (i & 1) ? Xb1 : Xb0;
            const int s0 = i * kTcRows;
            const bool diagonal = i + 1 == nt;
            if (diagonal) // the sum below the diagonal tile takes its row factor now
#pragma unroll
                for (int j = 0; j < 2 * kPairs; ++j)
                    acc[j][0] *= rowE0, acc[j][1] *= rowE0, acc[j][2] *= rowE1, acc[j][3] *= rowE1;
            for (int kk = 0; kk < kTcRows / 16; ++kk) {
                if (diagonal && kk > band)
                    break; // columns past the band's last row: masked out
                unsigned a[4];
                ldsm4(a, CB + (band * 16 + aRow) * ldCB + s0 + kk * 16 + aCol);
                const int cA = s0 + kk * 16 + tq * 2; // this thread's columns cA, cA + 1, cA + 8, cA + 9
                if (!diagonal) {
                    const float2 f0 = *reinterpret_cast<const float2*>(colF + cA);
                    const float2 f8 = *reinterpret_cast<const float2*>(colF + cA + 8);
                    a[0] = scalePair(a[0], f0.x, f0.y), a[1] = scalePair(a[1], f0.x, f0.y);
                    a[2] = scalePair(a[2], f8.x, f8.y), a[3] = scalePair(a[3], f8.x, f8.y);
                } else {
                    // exp(cum_l - cum_s) dt_s for s <= l (tile-local columns against rows)
                    const int c0 = cA - s0;
                    float cs[4], ds[4];
#pragma unroll
                    for (int q = 0; q < 4; ++q) {
                        const int col = cA + (q & 1) + (q >> 1) * 8;
                        cs[q] = cum[col], ds[q] = dts[col];
                    }
                    auto w = [&](int lr, float cl, int q) {
                        const int col = c0 + (q & 1) + (q >> 1) * 8;
                        return (col <= lr && lr < rows) ? __expf(cl - cs[q]) * ds[q] : 0.0f;
                    };
                    a[0] = scalePair(a[0], w(lr0, cl0, 0), w(lr0, cl0, 1));
                    a[1] = scalePair(a[1], w(lr1, cl1, 0), w(lr1, cl1, 1));
                    a[2] = scalePair(a[2], w(lr0, cl0, 2), w(lr0, cl0, 3));
                    a[3] = scalePair(a[3], w(lr1, cl1, 2), w(lr1, cl1, 3));
                }
#pragma unroll
                for (int jp = 0; jp < kPairs; ++jp) {
                    if (jp >= ntP)
                        break;
                    unsigned bf[4];
                    ldsm4Trans(bf, Xs + (kk * 16 + aRow) * ldP + jp * 16 + aCol);
                    mma16816(acc[2 * jp], a, bf[0], bf[1]);
                    mma16816(acc[2 * jp + 1], a, bf[2], bf[3]);
                }
            }
        }
        waitAsync<0>();
        __syncthreads(); // S_in in place
        if (!active)
            continue;
        // The reader's rows times S_in^T.
        for (int kk = 0; kk < int(N) / 16; ++kk) {
            unsigned a[4];
            ldsm4(a, Rd + (band * 16 + aRow) * ldN + kk * 16 + aCol);
#pragma unroll
            for (int jp = 0; jp < kPairs; ++jp) {
                if (jp >= ntP)
                    break;
                unsigned bf[4];
                ldsm4(bf, Ss + (jp * 16 + sRow) * ldN + kk * 16 + sCol);
                mma16816(accS[2 * jp], a, bf[0], bf[1]);
                mma16816(accS[2 * jp + 1], a, bf[2], bf[3]);
            }
        }
        const float e0 = __expf(cl0), e1 = __expf(cl1);
        if (!byB) {
            float* y0 = y + ((b * T + t0 + r0 + lr0) * H + h) * P;
            float* y1 = y0 + 8 * H * P;
#pragma unroll
            for (int j = 0; j < 2 * kPairs; ++j) {
                if (j >= 2 * ntP)
                    break;
                const int p = j * 8 + tq * 2;
                float2 d = make_float2(0.0f, 0.0f);
                if (D && dPerChannel)
                    d = make_float2(D[h * P + p], D[h * P + p + 1]);
                else if (D)
                    d = make_float2(D[h], D[h]);
                if (lr0 < rows) {
                    const float2 xv = xr[j][0];
                    *reinterpret_cast<float2*>(y0 + p) = make_float2(
                        acc[j][0] + e0 * accS[j][0] + d.x * xv.x, acc[j][1] + e0 * accS[j][1] + d.y * xv.y);
                }
                if (lr1 < rows) {
                    const float2 xv = xr[j][1];
                    *reinterpret_cast<float2*>(y1 + p) = make_float2(
                        acc[j][2] + e1 * accS[j][2] + d.x * xv.x, acc[j][3] + e1 * accS[j][3] + d.y * xv.y);
                }
            }
            continue;
        }
        // v_l = 2 d_l x_l . U_l - d_l^2 |x_l|^2 |B_l|^2, the quad of threads holding row l summing over P.
        float xu0 = 0.0f, xx0 = 0.0f, xu1 = 0.0f, xx1 = 0.0f;
#pragma unroll
        for (int j = 0; j < 2 * kPairs; ++j) {
            if (j >= 2 * ntP)
                break;
            if (lr0 < rows) {
                const float2 xv = xr[j][0];
                xu0 += xv.x * (acc[j][0] + e0 * accS[j][0]) + xv.y * (acc[j][1] + e0 * accS[j][1]);
                xx0 += xv.x * xv.x + xv.y * xv.y;
            }
            if (lr1 < rows) {
                const float2 xv = xr[j][1];
                xu1 += xv.x * (acc[j][2] + e1 * accS[j][2]) + xv.y * (acc[j][3] + e1 * accS[j][3]);
                xx1 += xv.x * xv.x + xv.y * xv.y;
            }
        }
#pragma unroll
        for (int o = 1; o <= 2; o <<= 1) {
            xu0 += __shfl_xor_sync(0xffffffffu, xu0, o), xx0 += __shfl_xor_sync(0xffffffffu, xx0, o);
            xu1 += __shfl_xor_sync(0xffffffffu, xu1, o), xx1 += __shfl_xor_sync(0xffffffffu, xx1, o);
        }
        if (tq == 0) {
            if (lr0 < rows) {
                const float d = dts[r0 + lr0];
                v[((b * nc + c) * Q + r0 + lr0) * H + h] = 2.0f * d * xu0 - d * d * xx0 * bsq[lr0];
            }
            if (lr1 < rows) {
                const float d = dts[r0 + lr1];
                v[((b * nc + c) * Q + r0 + lr1) * H + h] = 2.0f * d * xu1 - d * d * xx1 * bsq[lr1];
            }
        }
    }
}

// (D) The state norms, a warp per batch row, chunk and head: ||S_l||^2 = alpha_l^2 ||S_{l-1}||^2 + v_l
// from ||S_in||^2 (the sum of B's partial sums). The recurrence composes affine maps s -> A s + V, so 32
// tokens at a time go through a warp's prefix scan of them.
__global__ void ssdNormKernel(const float* __restrict__ v, const float* __restrict__ a,
                              const float* __restrict__ n0Parts, float* __restrict__ norm, int64_t B,
                              int64_t T, int64_t nc, int64_t Q, int64_t H, int64_t slices)
{
    const int lane = threadIdx.x & 31;
    const int64_t i = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; // (b * nc + c) * H + h
    if (i >= B * nc * H)
        return;
    const int64_t h = i % H, c = (i / H) % nc, b = i / (H * nc);
    const int64_t t0 = c * Q, Qc = min(Q, T - t0);
    float carry = 0.0f;
    for (int64_t s = lane; s < slices; s += 32)
        carry += n0Parts[i * slices + s];
    carry = warpSum(carry);
    for (int64_t base = 0; base < Qc; base += 32) {
        const int64_t l = base + lane, t = b * T + t0 + l;
        const bool valid = l < Qc;
        float A = valid ? __expf(2.0f * a[t * H + h]) : 1.0f;
        float V = valid ? v[((b * nc + c) * Q + l) * H + h] : 0.0f;
        for (int o = 1; o < 32; o <<= 1) {
            const float Ap = __shfl_up_sync(0xffffffffu, A, o), Vp = __shfl_up_sync(0xffffffffu, V, o);
            if (lane >= o) {
                V = A * Vp + V;
                A = A * Ap;
            }
        }
        const float sq = A * carry + V;
        if (valid)
            norm[t * H + h] = sqrtf(fmaxf(sq, 0.0f));
        carry = __shfl_sync(0xffffffffu, sq, 31);
    }
}

// ---- the mixer's step sizes and log decays --------------------------------------------------------

// dt = softplus(raw + bias) (PyTorch's: the input itself above 20), clamped to [lo, hi] where clamp,
// times dtScale; logAlpha = dt (-exp(aLog) aScale) + shift. One element a thread: the seven LibTorch
// kernels this replaces (a cast, add, softplus, exp, neg, mul, and copies) were each a launch and a
// pass of their own in every layer.
template <typename In>
__global__ void dtDecayKernel(const In* __restrict__ raw, int64_t rawStride, const float* __restrict__ bias,
                              const float* __restrict__ aLog, float* __restrict__ dt,
                              float* __restrict__ logAlpha, int64_t total, int H, int clamp, float lo,
                              float hi, float dtScale, float aScale, float shift, int flags)
{
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i >= total)
        return;
    const int64_t r = i / H;
    const int h = int(i - r * H);
    const float v = toFloat(raw[r * rawStride + h]) + bias[h];
    float d = v > 20.0f ? v : log1pf(expf(v));
    if (clamp) // NaN stays NaN, as with torch::clamp
        d = d < lo ? lo : (d > hi ? hi : d);
    if (flags & 1)
        d = d * dtScale;
    dt[i] = d;
    float A = -expf(aLog[h]);
    if (flags & 2)
        A = A * aScale;
    float la = d * A;
    if (flags & 4)
        la = la + shift;
    logAlpha[i] = la;
}

// ---- NLL from a block of logits -----------------------------------------------------------------

// One logit into a running maximum m and the sum s of exp(logit - m).
__device__ __forceinline__ void lseAdd(float v, float& m, float& s)
{
    if (v > m) {
        s = s * __expf(m - v) + 1.0f;
        m = v;
    } else {
        s += __expf(v - m);
    }
}

// The 16 bytes u as 16 / sizeof(T) floats.
__device__ __forceinline__ void unpack16(uint4 u, const float*, float (&f)[4])
{
    f[0] = __uint_as_float(u.x), f[1] = __uint_as_float(u.y), f[2] = __uint_as_float(u.z),
    f[3] = __uint_as_float(u.w);
}
__device__ __forceinline__ void unpack16(uint4 u, const __nv_bfloat16*, float (&f)[8])
{
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int k = 0; k < 4; ++k)
        f[2 * k] = __uint_as_float(w[k] << 16), f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
}
__device__ __forceinline__ void unpack16(uint4 u, const __half*, float (&f)[8])
{
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const float2 h = __half22float2(*reinterpret_cast<const __half2*>(&w[k]));
        f[2 * k] = h.x, f[2 * k + 1] = h.y;
    }
}

// 16 bytes of logits at a time between the row's first and last 16-byte boundaries, the rest one at a
// time: read a logit at a time the kernel took 2.35 ms for the 130m shape's 16K rows of 50K logits,
// six times what their bytes need. Each vector raises the running maximum once.
template <typename T>
__global__ void logitsNllKernel(const T* __restrict__ logits, int64_t vocab, int64_t ld,
                                const int64_t* __restrict__ targets, float* __restrict__ nll)
{
    constexpr int kVec = 16 / sizeof(T);
    const int64_t row = blockIdx.x;
    const T* lr = logits + row * ld;
    // Online log-sum-exp: a running maximum and the sum scaled to it.
    float m = -FLT_MAX, s = 0.0f;
    const uintptr_t at = reinterpret_cast<uintptr_t>(lr);
    const int64_t head = min(vocab, int64_t(((16 - (at & 15)) & 15) / sizeof(T)));
    const int64_t body = at % sizeof(T) == 0 ? (vocab - head) / kVec : 0;
    for (int64_t i = threadIdx.x; i < head; i += blockDim.x)
        lseAdd(toFloat(lr[i]), m, s);
    const uint4* vec = reinterpret_cast<const uint4*>(lr + head);
    for (int64_t k = threadIdx.x; k < body; k += blockDim.x) {
        float f[kVec];
        unpack16(vec[k], lr, f);
        float top = f[0];
#pragma unroll
        for (int j = 1; j < kVec; ++j)
            top = fmaxf(top, f[j]);
        const float mm = fmaxf(m, top);
        // Equal values weigh 1 (also where both are infinite, whose difference is NaN).
        float sum = s * (m == mm ? 1.0f : __expf(m - mm));
#pragma unroll
        for (int j = 0; j < kVec; ++j)
            sum += f[j] == mm ? 1.0f : __expf(f[j] - mm);
        s = sum, m = mm;
    }
    for (int64_t i = head + body * kVec + threadIdx.x; i < vocab; i += blockDim.x)
        lseAdd(toFloat(lr[i]), m, s);
    for (int o = 16; o > 0; o >>= 1) {
        const float mo = __shfl_xor_sync(0xffffffffu, m, o), so = __shfl_xor_sync(0xffffffffu, s, o);
        const float mm = fmaxf(m, mo);
        s = s * __expf(m - mm) + so * __expf(mo - mm);
        m = mm;
    }
    __shared__ float ms[32], ss[32];
    if ((threadIdx.x & 31) == 0) {
        ms[threadIdx.x >> 5] = m;
        ss[threadIdx.x >> 5] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float M = -FLT_MAX, S = 0.0f;
        for (int k = 0; k < int(blockDim.x >> 5); ++k) {
            const float mm = fmaxf(M, ms[k]);
            S = S * __expf(M - mm) + ss[k] * __expf(ms[k] - mm);
            M = mm;
        }
        nll[row] = M + logf(S) - toFloat(lr[targets[row]]);
    }
}

} // namespace

namespace {

template <typename In>
void launchConv(const In* in, int64_t inStride, const float* state, const float* weight, const float* bias,
                float* out, Bf16* outHalf, float* newState, int64_t B, int64_t T, int64_t C, int64_t K,
                cudaStream_t st)
{
    const int threads = 128;
    // Two channels a thread where their loads and stores can be vectors.
    const bool pairs =
        C % 2 == 0 && inStride % 2 == 0 && reinterpret_cast<uintptr_t>(in) % (2 * sizeof(In)) == 0 &&
        reinterpret_cast<uintptr_t>(out) % 8 == 0 && reinterpret_cast<uintptr_t>(outHalf) % 4 == 0;
    // Enough blocks of rows to fill the GPU; each block walks its rows with a sliding window.
    const int64_t lanes = pairs ? C / 2 : C;
    const int64_t channelBlocks = (lanes + threads - 1) / threads;
    const int64_t rowBlocks = std::max<int64_t>(1, std::min<int64_t>(T / 16, 1024));
    const dim3 grid{unsigned(channelBlocks), unsigned(rowBlocks), unsigned(B)};
    auto run = [&](auto kernel, int width) {
        kernel<<<grid, threads, 0, st>>>(in, inStride, state, weight, bias, out, outHalf, T, C, width);
    };
    if (K == 4)
        pairs ? run(causalConvSiluKernel<In, 4, 2>, 4) : run(causalConvSiluKernel<In, 4, 1>, 4);
    else
        pairs ? run(causalConvSiluKernel<In, 0, 2>, int(K)) : run(causalConvSiluKernel<In, 0, 1>, int(K));
    if (K > 1)
        convStateKernel<In><<<dim3(unsigned((C + threads - 1) / threads), unsigned(B)), threads, 0, st>>>(
            in, inStride, state, newState, T, C, int(K));
}

// One row of residual += delta (delta may be null), then out = residual / rms(residual) * weight in
// out's type: the add, the five LibTorch operations of the norm and the cast before in_proj in one pass.
// Four values a thread at a time (D % 4 == 0); the row is read twice, the second time from the cache.
__device__ __forceinline__ float4 load4(const float* p)
{
    return *reinterpret_cast<const float4*>(p);
}
__device__ __forceinline__ float4 load4(const __nv_bfloat16* p)
{
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u),
                       __uint_as_float(u.y << 16), __uint_as_float(u.y & 0xffff0000u));
}
__device__ __forceinline__ float4 load4(const __half* p)
{
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&u.x)),
                 b = __half22float2(*reinterpret_cast<const __half2*>(&u.y));
    return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ void store4(__nv_bfloat16* p, float4 v)
{
    const __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
    *reinterpret_cast<uint2*>(p) =
        make_uint2(*reinterpret_cast<const unsigned*>(&a), *reinterpret_cast<const unsigned*>(&b));
}
__device__ __forceinline__ void store4(__half* p, float4 v)
{
    const __half2 a = __floats2half2_rn(v.x, v.y), b = __floats2half2_rn(v.z, v.w);
    *reinterpret_cast<uint2*>(p) =
        make_uint2(*reinterpret_cast<const unsigned*>(&a), *reinterpret_cast<const unsigned*>(&b));
}

template <typename Out, typename Delta>
__global__ void __launch_bounds__(256)
    addRmsNormKernel(float* __restrict__ residual, const Delta* __restrict__ delta,
                     const float* __restrict__ weight, Out* __restrict__ out, int64_t D, float eps)
{
    float* r = residual + blockIdx.x * D;
    const Delta* d = delta ? delta + blockIdx.x * D : nullptr;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x * 4; i < D; i += 4 * blockDim.x) {
        float4 v = load4(r + i);
        if (d) {
            const float4 e = load4(d + i);
            v.x += e.x, v.y += e.y, v.z += e.z, v.w += e.w;
            store4(r + i, v);
        }
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    ss = blockSum(ss);
    const float scale = rsqrtf(ss / float(D) + eps);
    Out* o = out + blockIdx.x * D;
    for (int64_t i = threadIdx.x * 4; i < D; i += 4 * blockDim.x) {
        const float4 v = load4(r + i), w = load4(weight + i);
        store4(o + i,
               make_float4(v.x * scale * w.x, v.y * scale * w.y, v.z * scale * w.z, v.w * scale * w.w));
    }
}

// gatedRmsNormKernel with each thread's 4 x kIters values of the group kept in registers between the
// sum of squares and the write, read as vectors: y and z are read once (the scalar kernel read both
// twice, 12.4 ms for the 1.3b shape's 16K tokens). groupSize % 4 == 0, with rows 16-byte aligned for y
// and 8-byte for z and out, and groupSize <= 16 kIters blockDim.x.
template <typename Out, typename Z, int kIters>
__global__ void __launch_bounds__(1024)
    gatedRmsNormVecKernel(const float* __restrict__ y, const Z* __restrict__ z, int64_t zStride,
                          const float* __restrict__ weight, Out* __restrict__ out, int64_t D, int groupSize,
                          float eps)
{
    const int64_t row = blockIdx.x, g = blockIdx.y;
    const float* yr = y + row * D + g * groupSize;
    const Z* zr = z + row * zStride + g * groupSize;
    float4 v[kIters];
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < kIters; ++k) {
        const int i = (k * int(blockDim.x) + int(threadIdx.x)) * 4;
        if (i < groupSize) {
            const float4 a = load4(yr + i), b = load4(zr + i);
            v[k] = make_float4(a.x * silu(b.x), a.y * silu(b.y), a.z * silu(b.z), a.w * silu(b.w));
            ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
        }
    }
    ss = blockSum(ss);
    const float scale = rsqrtf(ss / float(groupSize) + eps);
    Out* o = out + row * D + g * groupSize;
    const float* wg = weight + g * groupSize;
#pragma unroll
    for (int k = 0; k < kIters; ++k) {
        const int i = (k * int(blockDim.x) + int(threadIdx.x)) * 4;
        if (i < groupSize) {
            const float4 w = load4(wg + i);
            store4(o + i, make_float4(v[k].x * scale * w.x, v[k].y * scale * w.y, v[k].z * scale * w.z,
                                      v[k].w * scale * w.w));
        }
    }
}

template <typename Delta>
void launchAddRmsNorm(float* residual, const Delta* delta, const float* weight, void* out,
                      ElementType outType, int64_t rows, int64_t D, double eps, cudaStream_t st)
{
    const int threads = D >= 1024 ? 256 : 128;
    switch (outType) {
    case ElementType::Float32:
        addRmsNormKernel<<<unsigned(rows), threads, 0, st>>>(residual, delta, weight,
                                                             static_cast<float*>(out), D, float(eps));
        break;
    case ElementType::BFloat16:
        addRmsNormKernel<<<unsigned(rows), threads, 0, st>>>(residual, delta, weight,
                                                             static_cast<__nv_bfloat16*>(out), D, float(eps));
        break;
    case ElementType::Float16:
        addRmsNormKernel<<<unsigned(rows), threads, 0, st>>>(residual, delta, weight,
                                                             static_cast<__half*>(out), D, float(eps));
        break;
    }
}

template <typename Z>
void launchGatedNorm(const float* y, const Z* z, int64_t zStride, const float* weight, void* out,
                     ElementType outType, int64_t rows, int64_t D, int64_t groups, double eps,
                     cudaStream_t st)
{
    const dim3 grid{unsigned(rows), unsigned(groups)};
    const int64_t gs = D / groups;
    constexpr int kIters = 4;
    // The vector kernel: 16 values a thread, a multiple of 32 threads, at most 1024 of them.
    const int64_t vecThreads = (gs / (4 * kIters) + 31) / 32 * 32;
    const size_t outBytes = outType == ElementType::Float32 ? 4 : 2;
    auto aligned = [](const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; };
    const bool vec = gs % 4 == 0 && vecThreads >= 32 && vecThreads <= 1024 && zStride % 4 == 0 &&
                     aligned(y, 16) && aligned(z, 4 * sizeof(Z)) && aligned(weight, 16) &&
                     aligned(out, 4 * outBytes);
    auto run = [&](auto* o) {
        using Out = std::remove_pointer_t<decltype(o)>;
        if (vec)
            gatedRmsNormVecKernel<Out, Z, kIters>
                <<<grid, unsigned(vecThreads), 0, st>>>(y, z, zStride, weight, o, D, int(gs), float(eps));
        else
            gatedRmsNormKernel<Out, Z><<<grid, 256, 0, st>>>(y, z, zStride, weight, o, D, gs, float(eps));
    };
    switch (outType) {
    case ElementType::Float32:
        run(static_cast<float*>(out));
        break;
    case ElementType::BFloat16:
        run(static_cast<__nv_bfloat16*>(out));
        break;
    case ElementType::Float16:
        run(static_cast<__half*>(out));
        break;
    }
}

} // namespace

void causalConvSilu(const void* in, ElementType inType, int64_t inStride, const float* state,
                    const float* weight, const float* bias, float* out, void* outHalf, float* newState,
                    int64_t B, int64_t T, int64_t C, int64_t K, void* stream)
{
    if (K < 1 || K > kMaxConv || T < 1)
        return;
    const cudaStream_t st = asStream(stream);
    Bf16* half = static_cast<Bf16*>(outHalf);
    switch (inType) {
    case ElementType::Float32:
        launchConv(static_cast<const float*>(in), inStride, state, weight, bias, out, half, newState, B, T, C,
                   K, st);
        break;
    case ElementType::BFloat16:
        launchConv(static_cast<const __nv_bfloat16*>(in), inStride, state, weight, bias, out, half, newState,
                   B, T, C, K, st);
        break;
    case ElementType::Float16:
        launchConv(static_cast<const __half*>(in), inStride, state, weight, bias, out, half, newState, B, T,
                   C, K, st);
        break;
    }
}

void addRmsNorm(float* residual, const void* delta, ElementType deltaType, const float* weight, void* out,
                ElementType outType, int64_t rows, int64_t D, double eps, void* stream)
{
    if (rows < 1)
        return;
    const cudaStream_t st = asStream(stream);
    switch (deltaType) {
    case ElementType::Float32:
        launchAddRmsNorm(residual, static_cast<const float*>(delta), weight, out, outType, rows, D, eps, st);
        break;
    case ElementType::BFloat16:
        launchAddRmsNorm(residual, static_cast<const __nv_bfloat16*>(delta), weight, out, outType, rows, D,
                         eps, st);
        break;
    case ElementType::Float16:
        launchAddRmsNorm(residual, static_cast<const __half*>(delta), weight, out, outType, rows, D, eps, st);
        break;
    }
}

void gatedRmsNorm(const float* y, const void* z, ElementType zType, int64_t zStride, const float* weight,
                  void* out, ElementType outType, int64_t rows, int64_t D, int64_t groups, double eps,
                  void* stream)
{
    if (rows < 1)
        return;
    const cudaStream_t st = asStream(stream);
    switch (zType) {
    case ElementType::Float32:
        launchGatedNorm(y, static_cast<const float*>(z), zStride, weight, out, outType, rows, D, groups, eps,
                        st);
        break;
    case ElementType::BFloat16:
        launchGatedNorm(y, static_cast<const __nv_bfloat16*>(z), zStride, weight, out, outType, rows, D,
                        groups, eps, st);
        break;
    case ElementType::Float16:
        launchGatedNorm(y, static_cast<const __half*>(z), zStride, weight, out, outType, rows, D, groups, eps,
                        st);
        break;
    }
}

bool ssdChunkOutput(const float* K, int64_t rowsK, const double* cum, const float* X, const float* R,
                    const float* eCum, float* y, float* Z, int64_t B, int64_t nc, int64_t Q, int64_t G,
                    int64_t Hg, int64_t P, void* stream)
{
    if (Q > kMaxChunk)
        return false;
    const int64_t heads = B * nc * G * Hg;
    if (heads < 1 || Q < 1)
        return true;
    const dim3 grid{unsigned(heads), unsigned((rowsK + kTileRows - 1) / kTileRows),
                    unsigned((P + kTileCols - 1) / kTileCols)};
    ssdChunkOutputKernel<<<grid, 256, size_t(Q) * sizeof(double), asStream(stream)>>>(
        K, rowsK, cum, X, R, eCum, y, Z, nc, Q, G, Hg, P);
    return true;
}

void scanStateNorms(const float* X, const float* Z, int64_t zRows, int64_t zRow0, const float* R,
                    const float* Bm, const float* a, const float* eCum, const float* n0, float* norm,
                    int64_t B, int64_t nc, int64_t Q, int64_t G, int64_t Hg, int64_t P, int64_t N,
                    void* stream)
{
    const int64_t heads = B * nc * G * Hg;
    if (heads < 1 || Q < 1)
        return;
    scanStateNormsKernel<<<unsigned(heads), kNormThreads, size_t(2 * Q) * sizeof(float), asStream(stream)>>>(
        X, Z, zRows, zRow0, R, Bm, a, eCum, n0, norm, nc, Q, G, Hg, P, N);
}

bool ssdScanSupported(int64_t P, int64_t N, int64_t Q)
{
    return P % 16 == 0 && N % 16 == 0 && P >= 16 && N >= 16 && P <= 128 && N <= 256 && P * N <= 16384 &&
           Q >= 1 && Q <= kScanMaxChunk && scanMmaSmem(P, N, Q).total <= kScanMaxSmem;
}

namespace {

size_t stateKernelSmem(int64_t P, int64_t N, int64_t Q, int64_t heads = 1)
{
    return size_t(heads * (2 * alignedFloats(Q) + alignedFloats(kTcStateK * paddedLd(P))) +
                  alignedFloats(kTcStateK * paddedLd(N))) *
           sizeof(float);
}

// Kernels over 48 KiB of dynamic shared memory must say so first.
bool allowSmem(const void* kernel, size_t bytes)
{
    if (bytes <= 48 * 1024)
        return true;
    int device = 0, limit = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    if (bytes > size_t(limit))
        return false;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)) ==
           cudaSuccess;
}

} // namespace

SsdWorkspace ssdScanWorkspace(int64_t B, int64_t T, int64_t H, int64_t G, int64_t P, int64_t N, int64_t Q)
{
    const int64_t nc = (T + Q - 1) / Q, slices = (P * N + kPassSlice - 1) / kPassSlice * kPassParts;
    // Each part starts on 32 bytes: the kernels read the states as float4s.
    auto part = [](int64_t n) { return (n + 7) / 8 * 8; };
    SsdWorkspace w;
    w.cum = part(B * nc * H * Q);
    w.states = part(B * nc * H * P * N);
    w.n0Parts = part(B * nc * H * slices);
    w.v = part(B * nc * Q * H);
    // bfloat16 copies of x | B | C (a row a token) and of the incoming states, two to a float.
    w.operandsHalf = part((B * T * (H * P + 2 * G * N) + 1) / 2);
    w.statesHalf = part((B * nc * H * P * N + 1) / 2);
    return w;
}

bool ssdScan(const SsdScanArgs& s, void* stream)
{
    if (!ssdScanSupported(s.P, s.N, s.Q) || s.G < 1 || s.H % s.G != 0)
        return false;
    if (s.B < 1 || s.T < 1 || s.H < 1)
        return true;
    const int64_t nc = (s.T + s.Q - 1) / s.Q, PN = s.P * s.N, slices = (PN + kPassSlice - 1) / kPassSlice;
    const SsdWorkspace sizes = ssdScanWorkspace(s.B, s.T, s.H, s.G, s.P, s.N, s.Q);
    float* cum = s.work;
    float* states = cum + sizes.cum;
    float* n0Parts = states + sizes.states;
    float* v = n0Parts + sizes.n0Parts;
    Bf16* operandsHalf = reinterpret_cast<Bf16*>(v + sizes.v);
    Bf16* statesHalf = reinterpret_cast<Bf16*>(v + sizes.v + sizes.operandsHalf);
    // Two heads a chunk-state block where every Mamba-2 checkpoint's sizes let them share B's tile.
    const bool pairs = s.P == 64 && s.N == 128 && (s.H / s.G) % 2 == 0;
    const size_t smemA = stateKernelSmem(s.P, s.N, s.Q, pairs ? 2 : 1),
                 smemM = size_t(scanMmaSmem(s.P, s.N, s.Q).total);
    const cudaStream_t st = asStream(stream);
    const unsigned blocks = unsigned(s.B * nc * s.H);
    // The chunk-state kernel for these sizes, handed to f.
    auto withStateKernel = [&](auto&& f) {
        auto perWarp = [](int64_t units) { return (units + kTcWarps - 1) / kTcWarps; };
        if (pairs) {
            f(ssdChunkStateKernel<2, true, 2, 4, 2>);
            return;
        }
        if (s.P == 64 && s.N == 128) {
            f(ssdChunkStateKernel<1, true, 2, 4>);
            return;
        }
        if (s.P % 32 == 0 && s.N % 32 == 0) {
            if (perWarp((s.P / 32) * (s.N / 32)) <= 1)
                f(ssdChunkStateKernel<1, true>);
            else
                f(ssdChunkStateKernel<2, true>); // P N <= 16384: at most 16 blocks of 32 x 32
            return;
        }
        const int64_t tiles = perWarp((s.P / 16) * (s.N / 16));
        if (tiles <= 1)
            f(ssdChunkStateKernel<1, false>);
        else if (tiles <= 2)
            f(ssdChunkStateKernel<2, false>);
        else if (tiles <= 4)
            f(ssdChunkStateKernel<4, false>);
        else
            f(ssdChunkStateKernel<8, false>);
    };
    bool ok = true;
    withStateKernel([&](auto kernel) { ok = allowSmem(reinterpret_cast<const void*>(kernel), smemA); });
    if (!ok || !allowSmem(reinterpret_cast<const void*>(&ssdChunkScanMmaKernel<1>), smemM) ||
        !allowSmem(reinterpret_cast<const void*>(&ssdChunkScanMmaKernel<2>), smemM) ||
        !allowSmem(reinterpret_cast<const void*>(&ssdChunkScanMmaKernel<4>), smemM) ||
        !allowSmem(reinterpret_cast<const void*>(&ssdChunkScanMmaKernel<8>), smemM))
        return false;
    withStateKernel([&](auto kernel) {
        kernel<<<pairs ? blocks / 2 : blocks, kTcThreads, smemA, st>>>(
            s.x, s.xStride, s.Bm, s.bcStride, s.dt, s.a, cum, states, s.T, nc, s.Q, s.H, s.G, s.P, s.N);
    });
    ssdStatePassKernel<<<dim3(unsigned(s.B * s.H), unsigned(slices)), kTcThreads, 0, st>>>(
        s.stateIn, states, statesHalf, cum, s.stateOut, n0Parts, nc, s.Q, s.H, PN, slices);
    // The read-out's operands in bfloat16: x | B | C in one pass where they are one row of the conv's
    // output (the model's case), else each on its own.
    const int64_t HP = s.H * s.P, GN = s.G * s.N, rowsBT = s.B * s.T;
    auto toHalf = [&](const float* src, int64_t stride, Bf16* dst, int64_t cols) {
        const int64_t work = rowsBT * (cols / 8);
        // A grid-stride loop: as many blocks as fill an H200 (132 multiprocessors) 16 times at most.
        const unsigned grid = unsigned(std::min<int64_t>((work + 255) / 256, 132 * 16));
        toBf16Kernel<<<grid, 256, 0, st>>>(src, stride, dst, rowsBT, int(cols));
    };
    const Bf16 *xh = operandsHalf, *Bh, *Ch;
    int64_t xhStride, bchStride;
    if (s.xbcHalf && s.Bm == s.x + HP && s.Cm == s.Bm + GN && s.xStride == HP + 2 * GN &&
        s.bcStride == s.xStride) {
        xh = static_cast<const Bf16*>(s.xbcHalf);
        Bh = xh + HP, Ch = xh + HP + GN, xhStride = bchStride = HP + 2 * GN;
    } else if (s.Bm == s.x + HP && s.Cm == s.Bm + GN && s.xStride == s.bcStride) {
        toHalf(s.x, s.xStride, operandsHalf, HP + 2 * GN);
        Bh = operandsHalf + HP, Ch = operandsHalf + HP + GN, xhStride = bchStride = HP + 2 * GN;
    } else {
        toHalf(s.x, s.xStride, operandsHalf, HP);
        toHalf(s.Bm, s.bcStride, operandsHalf + rowsBT * HP, GN);
        toHalf(s.Cm, s.bcStride, operandsHalf + rowsBT * (HP + GN), GN);
        Bh = operandsHalf + rowsBT * HP, Ch = operandsHalf + rowsBT * (HP + GN), xhStride = HP,
        bchStride = GN;
    }
    const unsigned rowTiles = unsigned((s.Q + kTcRows - 1) / kTcRows);
    const unsigned scanBlocks = unsigned(s.B * nc * s.G * ((s.H / s.G + kScanHeads - 1) / kScanHeads));
    const dim3 scanGrid{scanBlocks, rowTiles, s.norm ? 2u : 1u};
    auto launchScan = [&](auto kernel, size_t smem) {
        kernel<<<scanGrid, kTcThreads, smem, st>>>(
            s.x, s.xStride, xh, xhStride, s.Bm, s.bcStride, Bh, Ch, bchStride, s.dt, cum, statesHalf, s.D,
            s.dPerChannel ? 1 : 0, s.y, v, s.T, nc, s.Q, s.H, s.G, s.P, s.N);
    };
    if (s.P <= 16) {
        launchScan(ssdChunkScanMmaKernel<1>, smemM);
    } else if (s.P <= 32) {
        launchScan(ssdChunkScanMmaKernel<2>, smemM);
    } else if (s.P <= 64) {
        launchScan(ssdChunkScanMmaKernel<4>, smemM);
    } else {
        launchScan(ssdChunkScanMmaKernel<8>, smemM);
    }
    if (s.norm)
        ssdNormKernel<<<(blocks + 3) / 4, 128, 0, st>>>(v, s.a, n0Parts, s.norm, s.B, s.T, nc, s.Q, s.H,
                                                        slices * kPassParts);
    return true;
}

void dtDecay(const void* raw, ElementType rawType, int64_t rawStride, const float* bias, const float* aLog,
             float* dt, float* logAlpha, int64_t rows, int64_t H, bool clamp, float lo, float hi,
             float dtScale, float aScale, float shift, int flags, void* stream)
{
    const int64_t total = rows * H;
    if (total < 1)
        return;
    const unsigned grid = unsigned((total + 255) / 256);
    const cudaStream_t st = asStream(stream);
    auto run = [&](const auto* in) {
        dtDecayKernel<<<grid, 256, 0, st>>>(in, rawStride, bias, aLog, dt, logAlpha, total, int(H),
                                            clamp ? 1 : 0, lo, hi, dtScale, aScale, shift, flags);
    };
    switch (rawType) {
    case ElementType::Float32:
        run(static_cast<const float*>(raw));
        break;
    case ElementType::BFloat16:
        run(static_cast<const __nv_bfloat16*>(raw));
        break;
    case ElementType::Float16:
        run(static_cast<const __half*>(raw));
        break;
    }
}

void logitsNll(const void* logits, ElementType type, int64_t rows, int64_t vocab, int64_t ld,
               const int64_t* targets, float* nll, void* stream)
{
    if (rows < 1)
        return;
    const int threads = 256;
    switch (type) {
    case ElementType::Float32:
        logitsNllKernel<<<unsigned(rows), threads, 0, asStream(stream)>>>(static_cast<const float*>(logits),
                                                                          vocab, ld, targets, nll);
        break;
    case ElementType::BFloat16:
        logitsNllKernel<<<unsigned(rows), threads, 0, asStream(stream)>>>(
            static_cast<const __nv_bfloat16*>(logits), vocab, ld, targets, nll);
        break;
    case ElementType::Float16:
        logitsNllKernel<<<unsigned(rows), threads, 0, asStream(stream)>>>(static_cast<const __half*>(logits),
                                                                          vocab, ld, targets, nll);
        break;
    }
}

const char* lastError()
{
    const cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? "" : cudaGetErrorString(e);
}

} // namespace statescope::kernels
