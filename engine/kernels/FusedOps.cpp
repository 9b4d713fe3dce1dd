#include "kernels/FusedOps.h"

#include <atomic>
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

[[noreturn]] void refuse(const std::string& what)
{
    throw std::invalid_argument("fused kernel: " + what);
}

} // namespace

void setEnabled(bool on)
{
    g_enabled = on;
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

torch::Tensor causalConvSilu(const torch::Tensor& xBCIn, torch::Tensor& convState,
                             const torch::Tensor& weight, const torch::Tensor& bias)
{
    require(xBCIn, "xBC");
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
    torch::Tensor out = torch::empty({B, T, C}, xBC.options());
    torch::Tensor next = torch::empty_like(state);
    kernels::causalConvSilu(xBC.data_ptr<float>(), ld, state.data_ptr<float>(), w.data_ptr<float>(),
                            b.defined() ? b.data_ptr<float>() : nullptr, out.data_ptr<float>(),
                            next.data_ptr<float>(), B, T, C, K, stream(xBC));
    check("causalConvSilu");
    convState = next;
    return out;
}

torch::Tensor gatedRmsNorm(const torch::Tensor& yIn, const torch::Tensor& zIn, const torch::Tensor& weight,
                           int64_t groups, double eps, torch::ScalarType outType)
{
    require(yIn, "y");
    require(zIn, "z");
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
    kernels::gatedRmsNorm(y.data_ptr<float>(), z.data_ptr<float>(), zs, w.data_ptr<float>(), out.data_ptr(),
                          elementType(outType), rows, D, groups, eps, stream(y));
    check("gatedRmsNorm");
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

torch::Tensor causalConvSilu(const torch::Tensor&, torch::Tensor&, const torch::Tensor&, const torch::Tensor&)
{
    refuse("not built");
}

torch::Tensor gatedRmsNorm(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, int64_t, double,
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

void logitsNll(const torch::Tensor&, const torch::Tensor&, torch::Tensor)
{
    refuse("not built");
}

#endif

} // namespace statescope::fused
