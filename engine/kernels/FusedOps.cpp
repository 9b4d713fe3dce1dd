#include "kernels/FusedOps.h"

#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>

#ifdef STATESCOPE_FUSED_KERNELS
#include "kernels/MambaKernels.h"

#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/autograd/grad_mode.h>
#endif

namespace statescope::fused {

namespace {

std::atomic<bool> g_enabled{true};
std::atomic<bool> g_tensorCoreScan{true};

[[noreturn]] void refuse(const std::string& what)
{
    throw std::invalid_argument("fused kernel: " + what);
}

} // namespace

void setEnabled(bool on)
{
    g_enabled = on;
}

void setTensorCoreScan(bool on)
{
    g_tensorCoreScan = on;
}

bool tensorCoreScan()
{
    return g_tensorCoreScan;
}

#ifdef STATESCOPE_FUSED_KERNELS

namespace {

void* stream(const torch::Tensor& t)
{
    return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

void require(const torch::Tensor& t, const char* name)
{
    if (!t.defined() || !t.is_cuda() || t.scalar_type() != torch::kFloat32)
        refuse(std::string(name) + " must be a float32 CUDA tensor");
}

void check(const char* kernel)
{
    const char* e = kernels::lastError();
    if (e && *e)
        throw std::runtime_error(std::string("CUDA kernel ") + kernel + ": " + e);
}

kernels::ElementType elementType(torch::ScalarType t)
{
    switch (t) {
    case torch::kFloat32:
        return kernels::ElementType::Float32;
    case torch::kBFloat16:
        return kernels::ElementType::BFloat16;
    case torch::kFloat16:
        return kernels::ElementType::Float16;
    default:
        refuse(std::string("no kernel for dtype ") + c10::toString(t));
    }
}

// Rows of the last dimension with one stride between them (a slice of a wider matrix): that stride,
// or -1.
int64_t rowStride(const torch::Tensor& t)
{
    if (t.dim() < 1 || t.stride(-1) != 1)
        return -1;
    if (t.dim() == 1)
        return t.size(0);
    const int64_t s = t.stride(-2);
    for (int64_t d = t.dim() - 2; d > 0; --d)
        if (t.size(d) > 1 && t.stride(d - 1) != t.size(d) * t.stride(d))
            return -1;
    return s;
}

} // namespace

bool built()
{
    return true;
}

bool enabled(const torch::Tensor& t)
{
    // The kernels have no backward: training (grad mode on) keeps the differentiable LibTorch path.
    return g_enabled && !torch::GradMode::is_enabled() && t.defined() && t.is_cuda() &&
           t.scalar_type() == torch::kFloat32;
}

namespace {

// A float CUDA tensor of any of the kernels' element types.
void requireFloating(const torch::Tensor& t, const char* name)
{
    if (!t.defined() || !t.is_cuda() ||
        (t.scalar_type() != torch::kFloat32 && t.scalar_type() != torch::kBFloat16 &&
         t.scalar_type() != torch::kFloat16))
        refuse(std::string(name) + " must be a float32, bfloat16 or float16 CUDA tensor");
}

} // namespace

torch::Tensor causalConvSilu(const torch::Tensor& xBCIn, torch::Tensor& convState,
                             const torch::Tensor& weight, const torch::Tensor& bias, torch::Tensor* half)
{
    requireFloating(xBCIn, "xBC");
    require(convState, "conv state");
    require(weight, "conv weight");
    if (bias.defined())
        require(bias, "conv bias");
    const int64_t B = xBCIn.size(0), T = xBCIn.size(1), C = xBCIn.size(2), K = weight.size(1);
    if (weight.size(0) != C || convState.size(0) != B || convState.size(1) != C || convState.size(2) != K - 1)
        refuse("conv shapes");
    if (K > 8)
        refuse("conv width " + std::to_string(K) + " (at most 8)");
    torch::Tensor xBC = xBCIn;
    int64_t ld = rowStride(xBC);
    if (ld < 0) {
        xBC = xBC.contiguous();
        ld = C;
    }
    const torch::Tensor state = convState.contiguous(), w = weight.contiguous();
    const torch::Tensor b = bias.defined() ? bias.contiguous() : torch::Tensor();
    torch::Tensor out = torch::empty({B, T, C}, state.options());
    torch::Tensor next = torch::empty_like(state);
    if (half)
        *half = torch::empty({B, T, C}, state.options().dtype(torch::kBFloat16));
    kernels::causalConvSilu(xBC.data_ptr(), elementType(xBC.scalar_type()), ld, state.data_ptr<float>(),
                            w.data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr,
                            out.data_ptr<float>(), half ? half->data_ptr() : nullptr, next.data_ptr<float>(),
                            B, T, C, K, stream(xBC));
    check("causalConvSilu");
    convState = next;
    return out;
}

torch::Tensor gatedRmsNorm(const torch::Tensor& yIn, const torch::Tensor& zIn, const torch::Tensor& weight,
                           int64_t groups, double eps, torch::ScalarType outType)
{
    require(yIn, "y");
    requireFloating(zIn, "z");
    require(weight, "norm weight");
    const int64_t D = yIn.size(-1);
    if (zIn.sizes() != yIn.sizes() || weight.numel() != D || groups < 1 || D % groups != 0)
        refuse("gated norm shapes");
    const torch::Tensor y = yIn.contiguous(), w = weight.contiguous();
    torch::Tensor z = zIn;
    int64_t zs = rowStride(z);
    if (zs < 0) {
        z = z.contiguous();
        zs = D;
    }
    const int64_t rows = y.numel() / std::max<int64_t>(1, D);
    torch::Tensor out = torch::empty(y.sizes(), y.options().dtype(outType));
    kernels::gatedRmsNorm(y.data_ptr<float>(), z.data_ptr(), elementType(z.scalar_type()), zs,
                          w.data_ptr<float>(), out.data_ptr(), elementType(outType), rows, D, groups, eps,
                          stream(y));
    check("gatedRmsNorm");
    return out;
}

bool addRmsNormSupported(const torch::Tensor& residual, const torch::Tensor& weight)
{
    return enabled(residual) && residual.scalar_type() == torch::kFloat32 && residual.is_contiguous() &&
           residual.dim() >= 1 && residual.size(-1) % 4 == 0 && weight.scalar_type() == torch::kFloat32 &&
           weight.is_cuda() && weight.numel() == residual.size(-1);
}

torch::Tensor addRmsNorm(torch::Tensor& residual, const torch::Tensor& deltaIn, const torch::Tensor& weight,
                         double eps, torch::ScalarType outType)
{
    if (!addRmsNormSupported(residual, weight))
        refuse("residual norm: residual must be contiguous float32 on CUDA with rows of a multiple of 4, "
               "its weight float32 of the same size");
    torch::Tensor delta;
    if (deltaIn.defined()) {
        requireFloating(deltaIn, "residual delta");
        if (deltaIn.sizes() != residual.sizes())
            refuse("residual delta shape");
        delta = deltaIn.contiguous();
    }
    const int64_t D = residual.size(-1), rows = residual.numel() / std::max<int64_t>(1, D);
    const torch::Tensor w = weight.contiguous();
    torch::Tensor out = torch::empty(residual.sizes(), residual.options().dtype(outType));
    kernels::addRmsNorm(residual.data_ptr<float>(), delta.defined() ? delta.data_ptr() : nullptr,
                        delta.defined() ? elementType(delta.scalar_type()) : kernels::ElementType::Float32,
                        w.data_ptr<float>(), out.data_ptr(), elementType(outType), rows, D, eps,
                        stream(residual));
    check("addRmsNorm");
    return out;
}

bool ssdChunkOutput(const torch::Tensor& K, const torch::Tensor& cum, const torch::Tensor& X,
                    const torch::Tensor& R, const torch::Tensor& eCum, torch::Tensor& y, torch::Tensor* Z)
{
    for (auto [t, name] : {std::pair{&K, "K"}, {&X, "X"}, {&R, "R"}, {&eCum, "eCum"}})
        require(*t, name);
    if (!cum.is_cuda() || cum.scalar_type() != torch::kFloat64 || cum.dim() != 5 || K.dim() != 5)
        refuse("scan cum must be [B, nc, G, Hg, Q] float64 on CUDA");
    const int64_t B = cum.size(0), nc = cum.size(1), G = cum.size(2), Hg = cum.size(3), Q = cum.size(4);
    const int64_t rowsK = K.size(3), P = X.size(-1);
    if (K.size(4) != Q || (rowsK != Q && rowsK != 2 * Q) || (Z && rowsK != 2 * Q))
        refuse("scan K shape");
    const torch::Tensor Kc = K.contiguous(), cc = cum.contiguous(), Xc = X.contiguous(), Rc = R.contiguous(),
                        ec = eCum.contiguous();
    if (Xc.numel() != B * nc * Q * G * Hg * P || Rc.numel() != B * nc * G * rowsK * Hg * P ||
        ec.numel() != cc.numel())
        refuse("scan sizes");
    y = torch::empty({B, nc * Q, G * Hg, P}, Xc.options());
    if (Z)
        *Z = torch::empty({B, nc, G, Hg, Q, P}, Xc.options());
    if (!kernels::ssdChunkOutput(Kc.data_ptr<float>(), rowsK, cc.data_ptr<double>(), Xc.data_ptr<float>(),
                                 Rc.data_ptr<float>(), ec.data_ptr<float>(), y.data_ptr<float>(),
                                 Z ? Z->data_ptr<float>() : nullptr, B, nc, Q, G, Hg, P, stream(Xc)))
        return false;
    check("ssdChunkOutput");
    return true;
}

torch::Tensor scanStateNorms(const torch::Tensor& X, const torch::Tensor& Z, int64_t zRow0,
                             const torch::Tensor& R, const torch::Tensor& Bm, const torch::Tensor& a,
                             const torch::Tensor& eCum, const torch::Tensor& n0)
{
    for (auto [t, name] :
         {std::pair{&X, "X"}, {&Z, "Z"}, {&R, "R"}, {&Bm, "B"}, {&a, "a"}, {&eCum, "eCum"}, {&n0, "n0"}})
        require(*t, name);
    // Z [B, nc, G, Hg, rows, P]
    if (Z.dim() != 6 || Bm.dim() != 4 || eCum.dim() != 5)
        refuse("scan norm shapes");
    const int64_t B = Z.size(0), nc = Z.size(1), G = Z.size(2), Hg = Z.size(3), zRows = Z.size(4),
                  P = Z.size(5), Q = eCum.size(4), N = Bm.size(3);
    if (zRow0 + Q > zRows || Q > 2048)
        refuse("scan norm rows");
    const torch::Tensor Xc = X.contiguous(), Zc = Z.contiguous(), Rc = R.contiguous(), Bc = Bm.contiguous(),
                        ac = a.contiguous(), ec = eCum.contiguous(), nc0 = n0.contiguous();
    if (Xc.numel() != B * nc * Q * G * Hg * P || Rc.numel() != B * nc * G * 2 * Q * Hg * P ||
        Bc.numel() != B * nc * Q * G * N || ac.numel() != B * nc * Q * G * Hg || ec.numel() != ac.numel() ||
        nc0.numel() != B * nc * G * Hg)
        refuse("scan norm sizes");
    torch::Tensor norm = torch::empty({B, nc * Q, G * Hg}, Xc.options());
    kernels::scanStateNorms(Xc.data_ptr<float>(), Zc.data_ptr<float>(), zRows, zRow0, Rc.data_ptr<float>(),
                            Bc.data_ptr<float>(), ac.data_ptr<float>(), ec.data_ptr<float>(),
                            nc0.data_ptr<float>(), norm.data_ptr<float>(), B, nc, Q, G, Hg, P, N, stream(Xc));
    check("scanStateNorms");
    return norm;
}

bool ssdScanSupported(int64_t P, int64_t N, int64_t chunk)
{
    return kernels::ssdScanSupported(P, N, chunk);
}

namespace {

// Token rows of a [B, T, K, E] tensor with one stride between tokens and E, K contiguous inside a
// token: that stride, or -1. The kernel reads rows as float4s, so they must start on 16 bytes.
int64_t tokenStride(const torch::Tensor& t)
{
    if (t.dim() != 4 || t.stride(3) != 1 || t.stride(2) != t.size(3) ||
        t.stride(0) != t.size(1) * t.stride(1) || t.stride(1) % 4 != 0 ||
        reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 != 0)
        return -1;
    return t.stride(1);
}

} // namespace

torch::Tensor ssdScan(const torch::Tensor& xIn, const torch::Tensor& dtIn, const torch::Tensor& aIn,
                      const torch::Tensor& BIn, const torch::Tensor& CIn, const torch::Tensor& DIn,
                      int64_t chunk, torch::Tensor& ssmState, torch::Tensor* stateNorm,
                      const torch::Tensor& xbcHalf)
{
    for (auto [t, name] : {std::pair{&xIn, "x"},
                           {&dtIn, "dt"},
                           {&aIn, "log decay"},
                           {&BIn, "B"},
                           {&CIn, "C"},
                           {&ssmState, "state"}})
        require(*t, name);
    if (xIn.dim() != 4 || BIn.dim() != 4 || CIn.sizes() != BIn.sizes() || dtIn.dim() != 3)
        refuse("scan shapes");
    const int64_t B = xIn.size(0), T = xIn.size(1), H = xIn.size(2), P = xIn.size(3), G = BIn.size(2),
                  N = BIn.size(3);
    if (BIn.size(0) != B || BIn.size(1) != T || G < 1 || H % G != 0 ||
        dtIn.sizes() != torch::IntArrayRef{B, T, H} || aIn.sizes() != dtIn.sizes() ||
        ssmState.sizes() != torch::IntArrayRef{B, H, P, N})
        refuse("scan shapes");
    if (!kernels::ssdScanSupported(P, N, std::min(chunk, T)))
        refuse("scan sizes P " + std::to_string(P) + ", N " + std::to_string(N) + ", chunk " +
               std::to_string(chunk));
    torch::Tensor x = xIn, Bm = BIn, Cm = CIn;
    int64_t xs = tokenStride(x);
    if (xs < 0) {
        x = x.contiguous();
        xs = H * P;
    }
    int64_t bs = tokenStride(Bm);
    if (bs < 0 || tokenStride(Cm) != bs) {
        Bm = Bm.contiguous();
        Cm = Cm.contiguous();
        bs = G * N;
    }
    const torch::Tensor dt = dtIn.contiguous(), a = aIn.contiguous(), state = ssmState.contiguous();
    torch::Tensor D;
    if (DIn.defined()) {
        D = DIn.to(x.device(), torch::kFloat32).contiguous();
        if (D.numel() != H && D.numel() != H * P)
            refuse("scan D has " + std::to_string(D.numel()) + " values, expected " + std::to_string(H) +
                   " or " + std::to_string(H * P));
    }
    const int64_t Q = std::min(chunk, T);
    const kernels::SsdWorkspace sizes = kernels::ssdScanWorkspace(B, T, H, G, P, N, Q);
    const torch::Tensor work = torch::empty({sizes.total()}, x.options());
    torch::Tensor y = torch::empty({B, T, H, P}, x.options());
    torch::Tensor next = torch::empty_like(state);
    torch::Tensor norm = stateNorm ? torch::empty({B, T, H}, x.options()) : torch::Tensor();
    kernels::SsdScanArgs args;
    args.x = x.data_ptr<float>();
    args.xStride = xs;
    args.Bm = Bm.data_ptr<float>();
    args.Cm = Cm.data_ptr<float>();
    args.bcStride = bs;
    args.dt = dt.data_ptr<float>();
    args.a = a.data_ptr<float>();
    args.D = D.defined() ? D.data_ptr<float>() : nullptr;
    args.dPerChannel = D.defined() && D.numel() == H * P && H * P != H;
    args.stateIn = state.data_ptr<float>();
    args.stateOut = next.data_ptr<float>();
    args.y = y.data_ptr<float>();
    args.norm = stateNorm ? norm.data_ptr<float>() : nullptr;
    args.work = work.data_ptr<float>();
    // The kernel takes the copy only where x, Bm and Cm lie as one row of floats; that row must then be
    // the copy's, which the shape and dtype check here and the caller promises.
    if (xbcHalf.defined() && xbcHalf.is_cuda() && xbcHalf.scalar_type() == torch::kBFloat16 &&
        xbcHalf.is_contiguous() && xbcHalf.sizes() == torch::IntArrayRef{B, T, H * P + 2 * G * N} &&
        x.data_ptr() == xIn.data_ptr() && Bm.data_ptr() == BIn.data_ptr() && Cm.data_ptr() == CIn.data_ptr())
        args.xbcHalf = xbcHalf.data_ptr();
    args.B = B, args.T = T, args.H = H, args.G = G, args.P = P, args.N = N, args.Q = Q;
    if (!kernels::ssdScan(args, stream(x)))
        refuse("scan: no shared memory for P " + std::to_string(P) + ", N " + std::to_string(N));
    check("ssdScan");
    ssmState = next;
    if (stateNorm)
        *stateNorm = norm;
    return y;
}

bool dtDecaySupported(const torch::Tensor& raw, const torch::Tensor& bias, const torch::Tensor& aLog)
{
    const auto f32Vector = [&](const torch::Tensor& t) {
        return t.defined() && t.is_cuda() && t.device() == raw.device() &&
               t.scalar_type() == torch::kFloat32 && t.dim() == 1 && t.numel() == raw.size(-1);
    };
    return enabled(aLog) && raw.is_cuda() && raw.dim() == 3 && raw.size(-1) > 0 && raw.stride(2) == 1 &&
           raw.stride(0) == raw.size(1) * raw.stride(1) && raw.is_floating_point() && f32Vector(bias) &&
           f32Vector(aLog);
}

std::pair<torch::Tensor, torch::Tensor> dtDecay(const torch::Tensor& raw, const torch::Tensor& biasIn,
                                                const torch::Tensor& aLogIn, double lo, double hi,
                                                double dtScale, double aScale, double alpha)
{
    if (!dtDecaySupported(raw, biasIn, aLogIn))
        refuse(
            "dt and decay: raw [B, T, H] on CUDA with rows of contiguous heads, bias and A_log float32 [H]");
    const int64_t H = raw.size(2), rows = raw.size(0) * raw.size(1);
    const torch::Tensor bias = biasIn.contiguous(), aLog = aLogIn.contiguous();
    torch::Tensor dt = torch::empty({raw.size(0), raw.size(1), H}, bias.options());
    torch::Tensor logAlpha = torch::empty_like(dt);
    const bool clamp = lo > 0.0 || std::isfinite(hi);
    const int flags = (dtScale != 1.0 ? 1 : 0) | (aScale != 1.0 ? 2 : 0) | (alpha != 1.0 ? 4 : 0);
    kernels::dtDecay(raw.data_ptr(), elementType(raw.scalar_type()), raw.stride(1), bias.data_ptr<float>(),
                     aLog.data_ptr<float>(), dt.data_ptr<float>(), logAlpha.data_ptr<float>(), rows, H, clamp,
                     static_cast<float>(lo), static_cast<float>(hi), static_cast<float>(dtScale),
                     static_cast<float>(aScale), static_cast<float>(std::log(alpha)), flags, stream(raw));
    check("dtDecay");
    return {dt, logAlpha};
}

void logitsNll(const torch::Tensor& logitsIn, const torch::Tensor& targetsIn, torch::Tensor nll)
{
    require(nll, "nll");
    if (!logitsIn.is_cuda() || logitsIn.dim() != 2 || targetsIn.numel() != logitsIn.size(0) ||
        nll.numel() != logitsIn.size(0) || !nll.is_contiguous())
        refuse("logits/targets/nll shapes");
    torch::Tensor logits = logitsIn;
    if (logits.stride(1) != 1)
        logits = logits.contiguous();
    const torch::Tensor targets = targetsIn.to(torch::kLong).contiguous();
    kernels::logitsNll(logits.data_ptr(), elementType(logits.scalar_type()), logits.size(0), logits.size(1),
                       logits.stride(0), targets.data_ptr<int64_t>(), nll.data_ptr<float>(), stream(logits));
    check("logitsNll");
}

#else // no CUDA compiler or no CUDA LibTorch: the LibTorch path only

bool built()
{
    return false;
}

bool enabled(const torch::Tensor&)
{
    return false;
}

torch::Tensor causalConvSilu(const torch::Tensor&, torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                             torch::Tensor*)
{
    refuse("not built");
}

torch::Tensor gatedRmsNorm(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, int64_t, double,
                           torch::ScalarType)
{
    refuse("not built");
}

bool addRmsNormSupported(const torch::Tensor&, const torch::Tensor&)
{
    return false;
}

torch::Tensor addRmsNorm(torch::Tensor&, const torch::Tensor&, const torch::Tensor&, double,
                         torch::ScalarType)
{
    refuse("not built");
}

bool ssdChunkOutput(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                    const torch::Tensor&, torch::Tensor&, torch::Tensor*)
{
    refuse("not built");
}

torch::Tensor scanStateNorms(const torch::Tensor&, const torch::Tensor&, int64_t, const torch::Tensor&,
                             const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                             const torch::Tensor&)
{
    refuse("not built");
}

bool ssdScanSupported(int64_t, int64_t, int64_t)
{
    return false;
}

torch::Tensor ssdScan(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                      const torch::Tensor&, const torch::Tensor&, int64_t, torch::Tensor&, torch::Tensor*,
                      const torch::Tensor&)
{
    refuse("not built");
}

bool dtDecaySupported(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)
{
    return false;
}

std::pair<torch::Tensor, torch::Tensor> dtDecay(const torch::Tensor&, const torch::Tensor&,
                                                const torch::Tensor&, double, double, double, double, double)
{
    refuse("not built");
}

void logitsNll(const torch::Tensor&, const torch::Tensor&, torch::Tensor)
{
    refuse("not built");
}

#endif

} // namespace statescope::fused
