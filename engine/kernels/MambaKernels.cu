#include "kernels/MambaKernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>

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
__device__ __forceinline__ float convInput(const float* in, int64_t inStride, const float* st, int64_t b,
                                           int64_t T, int64_t c, int64_t src, int K)
{
    return src >= 0 ? in[(b * T + src) * inStride + c] : st[K - 1 + src];
}

__global__ void causalConvSiluKernel(const float* __restrict__ in, int64_t inStride,
                                     const float* __restrict__ state, const float* __restrict__ weight,
                                     const float* __restrict__ bias, float* __restrict__ out, int64_t T,
                                     int64_t C, int K)
{
    const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    const int64_t b = blockIdx.z;
    if (c >= C)
        return;
    float w[kMaxConv];
    for (int k = 0; k < K; ++k)
        w[k] = weight[c * K + k];
    const float b0 = bias ? bias[c] : 0.0f;
    // A window of K inputs slides down this block's rows of tokens.
    const int64_t rowsPerBlock = (T + gridDim.y - 1) / gridDim.y;
    const int64_t t0 = blockIdx.y * rowsPerBlock, t1 = min(T, t0 + rowsPerBlock);
    if (t0 >= t1)
        return;
    const float* st = state + (b * C + c) * (K - 1);
    float win[kMaxConv];
    for (int k = 0; k < K - 1; ++k)
        win[k] = convInput(in, inStride, st, b, T, c, t0 - (K - 1) + k, K);
    for (int64_t t = t0; t < t1; ++t) {
        win[K - 1] = in[(b * T + t) * inStride + c];
        float acc = b0;
        for (int k = 0; k < K; ++k)
            acc += w[k] * win[k];
        out[(b * T + t) * C + c] = silu(acc);
        for (int k = 0; k < K - 1; ++k)
            win[k] = win[k + 1];
    }
}

__global__ void convStateKernel(const float* __restrict__ in, int64_t inStride,
                                const float* __restrict__ state, float* __restrict__ newState, int64_t T,
                                int64_t C, int K)
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

template <typename Out>
__global__ void gatedRmsNormKernel(const float* __restrict__ y, const float* __restrict__ z, int64_t zStride,
                                   const float* __restrict__ weight, Out* __restrict__ out, int64_t D,
                                   int64_t groupSize, float eps)
{
    const int64_t row = blockIdx.x, g = blockIdx.y;
    const float* yr = y + row * D + g * groupSize;
    const float* zr = z + row * zStride + g * groupSize;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < groupSize; i += blockDim.x) {
        const float v = yr[i] * silu(zr[i]);
        ss += v * v;
    }
    __shared__ float partial[32];
    ss = warpSum(ss);
    if ((threadIdx.x & 31) == 0)
        partial[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0f;
        v = warpSum(v);
        if (threadIdx.x == 0)
            partial[0] = v;
    }
    __syncthreads();
    const float scale = rsqrtf(partial[0] / float(groupSize) + eps);
    Out* o = out + row * D + g * groupSize;
    for (int64_t i = threadIdx.x; i < groupSize; i += blockDim.x)
        o[i] = fromFloat<Out>(yr[i] * silu(zr[i]) * scale * weight[g * groupSize + i]);
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

// ---- NLL from a block of logits -----------------------------------------------------------------

template <typename T>
__global__ void logitsNllKernel(const T* __restrict__ logits, int64_t vocab, int64_t ld,
                                const int64_t* __restrict__ targets, float* __restrict__ nll)
{
    const int64_t row = blockIdx.x;
    const T* lr = logits + row * ld;
    // Online log-sum-exp: a running maximum and the sum scaled to it.
    float m = -FLT_MAX, s = 0.0f;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float v = toFloat(lr[i]);
        if (v > m) {
            s = s * __expf(m - v) + 1.0f;
            m = v;
        } else {
            s += __expf(v - m);
        }
    }
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

void causalConvSilu(const float* in, int64_t inStride, const float* state, const float* weight,
                    const float* bias, float* out, float* newState, int64_t B, int64_t T, int64_t C,
                    int64_t K, void* stream)
{
    if (K < 1 || K > kMaxConv || T < 1)
        return;
    const int threads = 128;
    // Enough blocks of rows to fill the GPU; each block walks its rows with a sliding window.
    const int64_t channelBlocks = (C + threads - 1) / threads;
    const int64_t rowBlocks = std::max<int64_t>(1, std::min<int64_t>(T / 16, 1024));
    causalConvSiluKernel<<<dim3(unsigned(channelBlocks), unsigned(rowBlocks), unsigned(B)), threads, 0,
                           asStream(stream)>>>(in, inStride, state, weight, bias, out, T, C, int(K));
    if (K > 1)
        convStateKernel<<<dim3(unsigned(channelBlocks), unsigned(B)), threads, 0, asStream(stream)>>>(
            in, inStride, state, newState, T, C, int(K));
}

void gatedRmsNorm(const float* y, const float* z, int64_t zStride, const float* weight, void* out,
                  ElementType outType, int64_t rows, int64_t D, int64_t groups, double eps, void* stream)
{
    if (rows < 1)
        return;
    const dim3 grid{unsigned(rows), unsigned(groups)};
    const int threads = 256;
    const int64_t gs = D / groups;
    switch (outType) {
    case ElementType::Float32:
        gatedRmsNormKernel<float><<<grid, threads, 0, asStream(stream)>>>(
            y, z, zStride, weight, static_cast<float*>(out), D, gs, float(eps));
        break;
    case ElementType::BFloat16:
        gatedRmsNormKernel<__nv_bfloat16><<<grid, threads, 0, asStream(stream)>>>(
            y, z, zStride, weight, static_cast<__nv_bfloat16*>(out), D, gs, float(eps));
        break;
    case ElementType::Float16:
        gatedRmsNormKernel<__half><<<grid, threads, 0, asStream(stream)>>>(
            y, z, zStride, weight, static_cast<__half*>(out), D, gs, float(eps));
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
