#include "kernels/KernelCheck.h"

#include "Error.h"
#include "kernels/FusedOps.h"
#include "models/ModelCommon.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <limits>

namespace statescope {

namespace {

namespace F = torch::nn::functional;

// max |a - b| / max(max |b|, tiny): errors on the reference's own scale.
double scaledError(const torch::Tensor& a, const torch::Tensor& b)
{
    const torch::Tensor x = a.to(torch::kFloat64), y = b.to(torch::kFloat64);
    const double scale = std::max(y.abs().max().item<double>(), 1e-30);
    return (x - y).abs().max().item<double>() / scale;
}

std::string sizes(std::initializer_list<std::pair<const char*, int64_t>> kv)
{
    std::string s;
    for (auto [k, v] : kv)
        s += (s.empty() ? "" : " ") + std::string(k) + " " + std::to_string(v);
    return s;
}

// Both paths, the process-wide switch flipped around the reference.
template <typename Fn> auto reference(Fn fn)
{
    fused::setEnabled(false);
    try {
        auto r = fn();
        fused::setEnabled(true);
        return r;
    } catch (...) {
        fused::setEnabled(true);
        throw;
    }
}

} // namespace

bool fusedKernelsBuilt()
{
    return fused::built();
}

void setFusedKernels(bool on)
{
    fused::setEnabled(on);
}

void setTensorCoreScan(bool on)
{
    fused::setTensorCoreScan(on);
}

std::vector<KernelCheckResult> checkFusedKernels(const std::string& deviceName, unsigned seed)
{
    if (!fused::built())
        throw Error(deviceName, "fused CUDA kernels", "built (a CUDA compiler and CUDA LibTorch)",
                    "not built");
    const torch::Device device(deviceName);
    if (!device.is_cuda() || !torch::cuda::is_available())
        throw Error(deviceName, "device", "a CUDA device", deviceName);
    c10::InferenceMode inference;
    torch::manual_seed(seed);
    const auto f32 = torch::TensorOptions().device(device).dtype(torch::kFloat32);
    std::vector<KernelCheckResult> out;

    // Causal conv + SiLU over a strided slice, with and without bias, short and long chunks; width 4
    // (every Mamba-2 checkpoint's, a kernel of its own) and two others (the general kernel). At an odd
    // column the slice is read a channel a thread; at an even one two at a time (float32 and bfloat16
    // in_proj outputs, the model's case), with the bfloat16 copy the tensor-core scan reads.
    struct ConvSlice {
        int64_t at;
        torch::ScalarType type;
    };
    for (int64_t K : {4, 2, 7})
        for (int64_t T : {1, 3, 7, 256, 1000}) {
            if (K != 4 && T != 3 && T != 1000)
                continue;
            for (ConvSlice slice : {ConvSlice{17, torch::kFloat32}, ConvSlice{16, torch::kFloat32},
                                    ConvSlice{16, torch::kBFloat16}})
                for (bool bias : {true, false}) {
                    const int64_t B = 2, C = 96, wide = C + 40;
                    const torch::Tensor proj = torch::randn({B, T, wide}, f32).to(slice.type);
                    const torch::Tensor xBC = proj.narrow(2, slice.at, C);
                    const torch::Tensor state = torch::randn({B, C, K - 1}, f32);
                    const torch::Tensor w = torch::randn({C, K}, f32) * 0.5,
                                        b = bias ? torch::randn({C}, f32) : torch::Tensor();
                    torch::Tensor fusedState = state.clone(), half;
                    const bool paired = slice.at % 2 == 0;
                    const torch::Tensor got =
                        fused::causalConvSilu(xBC, fusedState, w, b, paired ? &half : nullptr);
                    const torch::Tensor padded =
                        torch::cat({state, xBC.to(torch::kFloat32).transpose(1, 2)}, -1);
                    const torch::Tensor want =
                        F::silu(F::conv1d(padded, w.unsqueeze(1), F::Conv1dFuncOptions().bias(b).groups(C)))
                            .transpose(1, 2);
                    const torch::Tensor wantState = padded.narrow(2, padded.size(2) - (K - 1), K - 1);
                    const std::string c = sizes({{"T", T}, {"C", C}, {"K", K}, {"column", slice.at}}) + " " +
                                          c10::toString(slice.type) + (bias ? " bias" : " no bias");
                    out.push_back({"causalConvSilu", c, scaledError(got, want), 1e-5});
                    out.push_back({"causalConvSilu state", c, scaledError(fusedState, wantState), 0});
                    if (paired) // bfloat16 rounds a value by at most 2^-8 of it
                        out.push_back({"causalConvSilu bfloat16 copy", c, scaledError(half, want), 4e-3});
                }
        }

    // Gated RMSNorm per group, into float32 and bfloat16, with z in float32 or bfloat16 (in_proj's
    // output). Rows of 1,536 take the vector kernel at every group size (16 values a thread); rows of
    // 1,534 the scalar one.
    for (int64_t D : {1536, 1534}) {
        for (int64_t groups : {1, 2, 8}) {
            if (D % groups != 0)
                continue;
            for (auto type : {torch::kFloat32, torch::kBFloat16}) {
                for (auto zType : {torch::kFloat32, torch::kBFloat16}) {
                    const int64_t rows = 300;
                    const torch::Tensor y = torch::randn({3, rows / 3, D}, f32);
                    const torch::Tensor zWide = torch::randn({3, rows / 3, D + 64}, f32).to(zType);
                    const torch::Tensor z = zWide.narrow(2, 32, D);
                    const torch::Tensor w = torch::rand({D}, f32) + 0.5;
                    const torch::Tensor got = fused::gatedRmsNorm(y, z, w, groups, 1e-5, type);
                    torch::Tensor v =
                        (y * F::silu(z.to(torch::kFloat32))).reshape({3, rows / 3, groups, D / groups});
                    v = v * torch::rsqrt(v.pow(2).mean(-1, true) + 1e-5);
                    const torch::Tensor want = (v.reshape(y.sizes()) * w).to(type);
                    out.push_back({"gatedRmsNorm",
                                   sizes({{"rows", rows}, {"D", D}, {"groups", groups}}) + " " +
                                       c10::toString(type) + ", z " + c10::toString(zType),
                                   scaledError(got, want), type == torch::kFloat32 ? 1e-5 : 8e-3});
                }
            }
        }
    }

    // The residual step between layers (add, RMSNorm, cast) against ModelCommon's rmsNorm: with and
    // without a delta, the delta bfloat16 or float32, the output bfloat16 or float32, widths 768 and 2,560.
    for (int64_t D : {768, 2560}) {
        for (auto deltaType : {torch::kBFloat16, torch::kFloat32}) {
            for (auto type : {torch::kBFloat16, torch::kFloat32}) {
                for (bool withDelta : {true, false}) {
                    const torch::Tensor before = torch::randn({2, 129, D}, f32) * 3;
                    const torch::Tensor delta =
                        withDelta ? torch::randn({2, 129, D}, f32).to(deltaType) : torch::Tensor();
                    const torch::Tensor w = torch::rand({D}, f32) + 0.5;
                    torch::Tensor residual = before.clone();
                    const torch::Tensor got = fused::addRmsNorm(residual, delta, w, 1e-5, type);
                    const torch::Tensor sum = withDelta ? before + delta.to(torch::kFloat32) : before;
                    const std::string c =
                        sizes({{"D", D}}) + " " + c10::toString(type) +
                        (withDelta ? " delta " + std::string(c10::toString(deltaType)) : "");
                    out.push_back({"addRmsNorm", c, scaledError(got, rmsNorm(sum, w, 1e-5).to(type)),
                                   type == torch::kFloat32 ? 1e-5 : 8e-3});
                    out.push_back({"addRmsNorm residual", c, scaledError(residual, sum), 0});
                }
            }
        }
    }

    // The mixer's dt and log decay from in_proj's dt columns (a strided slice, bfloat16 or float32),
    // against Mamba2's discretize and logDecay: plain, and with dt's limits and every mitigation factor.
    // Raw values reach past softplus's threshold of 20 on both sides.
    struct DtCase {
        double lo, hi, dtScale, aScale, alpha;
    };
    for (auto type : {torch::kBFloat16, torch::kFloat32}) {
        for (DtCase k : {DtCase{0.0, std::numeric_limits<double>::infinity(), 1.0, 1.0, 1.0},
                         DtCase{1e-3, 0.1, 0.5, 2.0, 0.9}}) {
            const int64_t B = 2, T = 300, H = 24;
            const torch::Tensor wide = (torch::randn({B, T, H + 16}, f32) * 12).to(type);
            const torch::Tensor raw = wide.narrow(2, 8, H);
            const torch::Tensor bias = torch::randn({H}, f32), aLog = torch::randn({H}, f32);
            const auto [dt, logAlpha] =
                fused::dtDecay(raw, bias, aLog, k.lo, k.hi, k.dtScale, k.aScale, k.alpha);
            torch::Tensor want = F::softplus(raw.to(torch::kFloat32) + bias);
            if (k.lo > 0 || std::isfinite(k.hi))
                want = want.clamp(k.lo, k.hi);
            if (k.dtScale != 1.0)
                want = want * k.dtScale;
            torch::Tensor A = -aLog.exp();
            if (k.aScale != 1.0)
                A = A * k.aScale;
            torch::Tensor wantLog = want * A;
            if (k.alpha != 1.0)
                wantLog = wantLog + std::log(k.alpha);
            const std::string c = sizes({{"T", T}, {"H", H}}) + " " + c10::toString(type) +
                                  (k.dtScale != 1.0 ? " clamped, mitigated" : "");
            out.push_back({"dtDecay dt", c, scaledError(dt, want), 1e-6});
            out.push_back({"dtDecay log decay", c, scaledError(logAlpha, wantLog), 1e-6});
        }
    }

    // NLL from logits, read once, against log_softmax.
    for (int64_t V : {1001, 50288}) {
        for (auto type : {torch::kFloat32, torch::kBFloat16}) {
            const int64_t rows = 257;
            const torch::Tensor logits = (torch::randn({rows, V}, f32) * 4).to(type);
            const torch::Tensor targets = torch::randint(0, V, {rows}, f32.dtype(torch::kLong));
            torch::Tensor nll = torch::empty({rows}, f32);
            fused::logitsNll(logits, targets, nll);
            const torch::Tensor want = -torch::log_softmax(logits.to(torch::kFloat64), -1)
                                            .gather(1, targets.unsqueeze(1))
                                            .squeeze(1);
            out.push_back({"logitsNll", sizes({{"rows", rows}, {"V", V}}) + " " + c10::toString(type),
                           scaledError(nll, want), 2e-6});
        }
    }

    // The fused scan inside chunkedScalarDecayScan (the chunk's own part with its decay mask, the
    // read-out, the state norms) against the LibTorch path, at several chunk lengths (tiles of 64 rows
    // and columns straddled), with the norms on and off. The state is computed by the same LibTorch
    // code in both: it must agree exactly.
    struct ScanShape {
        int64_t G, Hg, P, N;
    };
    for (ScanShape sh : {ScanShape{2, 3, 16, 32}, ScanShape{1, 4, 80, 64}}) {
        for (int64_t chunk : {7, 64, 100, 256}) {
            for (bool norms : {true, false}) {
                const int64_t B = 2, T = 1000, G = sh.G, H = G * sh.Hg, P = sh.P, N = sh.N;
                const torch::Tensor x = torch::randn({B, T, H, P}, f32);
                const torch::Tensor dt = F::softplus(torch::randn({B, T, H}, f32) - 2);
                const torch::Tensor logDecay = -dt * (torch::rand({H}, f32) * 2 + 0.1);
                const torch::Tensor Bm = torch::randn({B, T, G, N}, f32),
                                    Cm = torch::randn({B, T, G, N}, f32);
                const torch::Tensor s0 = torch::randn({B, H, P, N}, f32);
                torch::Tensor sFused = s0.clone(), nFused;
                const torch::Tensor yFused =
                    chunkedScalarDecayScan(x, dt, logDecay, Bm, Cm, chunk, sFused, norms ? &nFused : nullptr);
                torch::Tensor sRef = s0.clone(), nRef;
                const torch::Tensor yRef = reference([&] {
                    return chunkedScalarDecayScan(x, dt, logDecay, Bm, Cm, chunk, sRef,
                                                  norms ? &nRef : nullptr);
                });
                const std::string c =
                    sizes({{"T", T}, {"chunk", chunk}, {"G", G}, {"H", H}, {"P", P}, {"N", N}}) +
                    (norms ? " norms" : "");
                out.push_back({"ssdChunkOutput", c, scaledError(yFused, yRef), 1e-5});
                out.push_back({"scan state", c, scaledError(sFused, sRef), 0});
                if (norms)
                    out.push_back({"scanStateNorms", c, scaledError(nFused, nRef), 2e-5});
            }
        }
    }

    // The tensor-core scan (half-precision models) against the same LibTorch path plus D x: bfloat16
    // operands in the read-out (errors of a few 2^-9 of the largest value), TF32 in the chunk states. Ragged
    // last chunks (T 1000), tiles of 64 rows straddled, D per head and per channel, and a state 10^6 times
    // larger than its inputs (a collapsed model's), which must neither overflow nor drown the chunk's own
    // part.
    struct TcShape {
        int64_t G, Hg, P, N;
    };
    for (TcShape sh :
         {TcShape{2, 3, 16, 32}, TcShape{1, 4, 80, 64}, TcShape{1, 3, 64, 128}, TcShape{1, 2, 128, 128},
          TcShape{1, 4, 64, 128}, TcShape{2, 2, 64, 128}}) { // the last two: two heads a chunk-state block
        for (int64_t chunk : {7, 64, 100, 256}) {
            for (int variant = 0; variant < 3; ++variant) {
                const bool norms = variant != 1, perChannel = variant == 1, bigState = variant == 2;
                const int64_t B = 2, T = 1000, G = sh.G, H = G * sh.Hg, P = sh.P, N = sh.N;
                const torch::Tensor dt = F::softplus(torch::randn({B, T, H}, f32) - 2);
                const torch::Tensor logDecay = -dt * (torch::rand({H}, f32) * 2 + 0.1);
                // B and C as slices of one wider matrix, as the conv's output holds them; in the first
                // variant x | B | C are one row, as in the model (the kernels then convert them at once).
                const bool oneRow = variant == 0;
                const torch::Tensor xbc = torch::randn({B, T, (oneRow ? H * P : 8) + 2 * G * N}, f32);
                const int64_t bAt = oneRow ? H * P : 8;
                const torch::Tensor x =
                    oneRow ? xbc.narrow(2, 0, H * P).view({B, T, H, P}) : torch::randn({B, T, H, P}, f32);
                const torch::Tensor Bm = xbc.narrow(2, bAt, G * N).view({B, T, G, N});
                const torch::Tensor Cm = xbc.narrow(2, bAt + G * N, G * N).view({B, T, G, N});
                const torch::Tensor D = perChannel ? torch::randn({H, P}, f32) : torch::randn({H}, f32);
                const torch::Tensor s0 = torch::randn({B, H, P, N}, f32) * (bigState ? 1e6 : 1.0);
                torch::Tensor sTc = s0.clone(), nTc;
                const torch::Tensor yTc =
                    fused::ssdScan(x, dt, logDecay, Bm, Cm, D, chunk, sTc, norms ? &nTc : nullptr);
                torch::Tensor sRef = s0.clone(), nRef;
                const torch::Tensor yRef = reference([&] {
                    return chunkedScalarDecayScan(x, dt, logDecay, Bm, Cm, chunk, sRef,
                                                  norms ? &nRef : nullptr) +
                           x * (perChannel ? D.view({1, 1, H, P}) : D.view({1, 1, H, 1}));
                });
                const std::string c =
                    sizes({{"T", T}, {"chunk", chunk}, {"G", G}, {"H", H}, {"P", P}, {"N", N}}) +
                    (norms ? " norms" : "") + (perChannel ? " D per channel" : "") +
                    (bigState ? " state x1e6" : "");
                out.push_back({"ssdScan (tensor cores) y", c, scaledError(yTc, yRef), 1e-2});
                out.push_back({"ssdScan (tensor cores) state", c, scaledError(sTc, sRef), 2e-3});
                if (norms)
                    out.push_back({"ssdScan (tensor cores) norms", c, scaledError(nTc, nRef), 1e-2});
                if (oneRow) { // again with the operands' bfloat16 copy made beforehand, as the conv makes it
                    torch::Tensor sHalf = s0.clone(), nHalf;
                    const torch::Tensor yHalf =
                        fused::ssdScan(x, dt, logDecay, Bm, Cm, D, chunk, sHalf, norms ? &nHalf : nullptr,
                                       xbc.to(torch::kBFloat16));
                    out.push_back(
                        {"ssdScan (tensor cores, operands copied) y", c, scaledError(yHalf, yRef), 1e-2});
                    out.push_back(
                        {"ssdScan (tensor cores, operands copied) state", c, scaledError(sHalf, sRef), 2e-3});
                    if (norms)
                        out.push_back({"ssdScan (tensor cores, operands copied) norms", c,
                                       scaledError(nHalf, nRef), 1e-2});
                }
            }
        }
    }
    torch::cuda::synchronize();
    return out;
}

} // namespace statescope
