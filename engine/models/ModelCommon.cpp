#include "models/ModelCommon.h"

#include "kernels/FusedOps.h"

#include "Error.h"
#include "io/AtomicFile.h"
#include "io/SafeTensors.h"
#include "io/SafeTensorsWriter.h"
#include "io/TorchCheckpoint.h"
#include "util/Warnings.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

using torch::indexing::None;
using torch::indexing::Slice;
namespace F = torch::nn::functional;

namespace statescope {

void widenToFloat64(std::initializer_list<torch::Tensor*> tensors)
{
    for (torch::Tensor* t : tensors)
        if (t->defined() && t->scalar_type() == torch::kFloat32)
            *t = t->to(torch::kFloat64);
}

torch::ScalarType torchType(DType t)
{
    switch (t) {
    case DType::Float32:
        return torch::kFloat32;
    case DType::Float64:
        return torch::kFloat64;
    case DType::BFloat16:
        return torch::kBFloat16;
    case DType::Float16:
        return torch::kFloat16;
    case DType::Int64:
        return torch::kInt64;
    case DType::Int32:
        return torch::kInt32;
    case DType::Int16:
        return torch::kInt16;
    case DType::Int8:
        return torch::kInt8;
    case DType::UInt8:
        return torch::kUInt8;
    case DType::Bool:
        return torch::kBool;
    }
    return torch::kFloat32;
}

torch::Tensor rmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps)
{
    return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * weight;
}

namespace {

// cum [..., Q] running sums of log decays (float64) -> exp(cum[l] - cum[s]) for l >= s, else 0, as
// dtype. The difference is taken in float64: a float32 one would lose |cum| * 2^-24 to cancellation
// late in a long chunk, while the float64 one rounds only once, to dtype.
torch::Tensor decayMatrix(const torch::Tensor& cum, torch::ScalarType dtype)
{
    // -inf above the diagonal before exp, not zeros after it: there the exponent is a positive sum
    // whose exp may be inf, and the trainer's gradient through exp would be 0 * inf = NaN.
    const int64_t q = cum.size(-1);
    const torch::Tensor above =
        torch::full({q, q}, -std::numeric_limits<double>::infinity(), cum.options().dtype(dtype)).triu(1);
    return (cum.unsqueeze(-1) - cum.unsqueeze(-2)).to(dtype).add_(above).exp_();
}

} // namespace

torch::Tensor segsumExp(const torch::Tensor& a)
{
    return decayMatrix(a.to(torch::kFloat64).cumsum(-1), a.scalar_type());
}

std::string stateSpacesName(const std::string& name)
{
    std::string n = name;
    if (n.rfind("model.", 0) == 0)
        n = n.substr(6);
    const std::string hfEmbedding = "backbone.embeddings.";
    if (n.rfind(hfEmbedding, 0) == 0)
        n = "backbone.embedding." + n.substr(hfEmbedding.size());
    return n;
}

WeightSet readWeights(const ModelFolder& folder,
                      const std::function<std::string(const std::string&)>& canonical)
{
    WeightSet set;
    uint64_t stored = 0;
    for (const auto& file : folder.weightFiles) {
        std::vector<RawTensor> raw =
            folder.weightsFormat == "pytorch" ? readTorchCheckpoint(file) : readSafeTensors(file);
        for (auto& t : raw) {
            stored += t.bytesAvailable;
            const std::string name = canonical(t.name);
            if (name.empty())
                continue;
            set.fileOf[name] = file;
            set.tensors[name] = std::move(t);
        }
        set.files += (set.files.empty() ? "" : ", ") + file;
    }
    // Headers read, nothing allocated yet: a config that describes far more than is stored stops here.
    checkWeightBytes(folder, stored);
    return set;
}

std::vector<int64_t> WeightLoader::shapeOf(const std::string& name) const
{
    auto it = m_set.tensors.find(name);
    if (it == m_set.tensors.end())
        throw Error(m_set.files, "tensor " + name, "present", "missing");
    return it->second.shape;
}

const std::string& WeightLoader::fileOf(const std::string& name) const
{
    auto it = m_set.fileOf.find(name);
    return it == m_set.fileOf.end() ? m_set.files : it->second;
}

int64_t WeightLoader::embeddingRows(const std::string& name, int64_t width, int64_t minRows) const
{
    const std::vector<int64_t> shape = shapeOf(name);
    if (shape.size() != 2 || shape[1] != width)
        throw Error(fileOf(name), "tensor " + name, "shape [vocab, " + std::to_string(width) + "]",
                    "shape " + shapeToString(shape));
    if (shape[0] < minRows)
        throw Error(fileOf(name), "tensor " + name,
                    "at least vocab_size = " + std::to_string(minRows) + " rows", std::to_string(shape[0]));
    return shape[0];
}

torch::Tensor WeightLoader::take(const std::string& name, const std::vector<int64_t>& shape,
                                 torch::ScalarType dtype)
{
    auto it = m_set.tensors.find(name);
    if (it == m_set.tensors.end())
        throw Error(m_set.files, "tensor " + name, "present with shape " + shapeToString(shape), "missing");
    const RawTensor& raw = it->second;
    if (raw.shape != shape)
        throw Error(fileOf(name), "tensor " + name, "shape " + shapeToString(shape),
                    "shape " + shapeToString(raw.shape));
    const auto src = torchType(raw.dtype);
    if (!torch::isFloatingType(src))
        throw Error(fileOf(name), "tensor " + name, "a floating-point dtype", dtypeName(raw.dtype));
    // from_blob only views the mapped file; the copy below owns its memory.
    torch::Tensor view = torch::from_blob(const_cast<uint8_t*>(raw.data), raw.shape, raw.strides,
                                          torch::TensorOptions().dtype(src));
    // Widen on the CPU first: Half/BFloat16 kernels on the CPU are slow or missing.
    torch::Tensor t = view.to(torch::kFloat32, false, true);
    // NaN or infinite weights run to a trace whose every loss is NaN; say which tensor, once.
    const int64_t bad = t.numel() - torch::isfinite(t).sum().item<int64_t>();
    if (bad > 0)
        warnOnce(fileOf(name) + "\n" + name, fileOf(name) + ": tensor " + name + " holds " +
                                                 std::to_string(bad) + " NaN or infinite value" +
                                                 (bad == 1 ? "" : "s") + " of " + std::to_string(t.numel()) +
                                                 ": the losses and probes that depend on it will be NaN");
    return t.to(m_device, dtype).contiguous();
}

void FolderWriter::put(const std::string& name, const torch::Tensor& t)
{
    if (t.defined())
        m_tensors.emplace_back(name, t.detach().to(torch::kCPU, torch::kFloat32).contiguous());
}

void FolderWriter::write(const std::string& path)
{
    SafeTensorsWriter w;
    for (const auto& [name, t] : m_tensors)
        w.add(name, DType::Float32, t.sizes().vec(), t.data_ptr<float>());
    w.write(path);
}

void writeConfigJson(const std::string& dir, const std::string& json)
{
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        throw Error(dir, "cannot create the model folder: " + ec.message());
    writeFileAtomically(dir + "/config.json", json + "\n");
}

namespace {

// [.., C] as [.., groups, C / groups].
torch::Tensor grouped(const torch::Tensor& x, int64_t groups)
{
    std::vector<int64_t> shape = x.sizes().vec();
    const int64_t c = shape.back();
    shape.back() = groups;
    shape.push_back(c / groups);
    return x.reshape(shape);
}

} // namespace

torch::Tensor groupMean(const torch::Tensor& x, int64_t groups)
{
    return grouped(x, groups).mean(-1);
}

torch::Tensor groupMax(const torch::Tensor& x, int64_t groups)
{
    return grouped(x, groups).amax(-1);
}

torch::Tensor scalarDecayStateMaxAbs(const torch::Tensor& x, const torch::Tensor& dt,
                                     const torch::Tensor& logDecay, const torch::Tensor& Bm,
                                     const torch::Tensor& sIn)
{
    const int64_t Bsz = x.size(0), T = x.size(1), H = x.size(2), P = x.size(3), G = Bm.size(2),
                  N = Bm.size(3);
    std::vector<torch::Tensor> out;
    torch::Tensor S = sIn; // [B, H, P, N]
    for (int64_t b = 0; b < T; b += 32) {
        const int64_t n = std::min<int64_t>(32, T - b);
        const torch::Tensor a = logDecay.narrow(1, b, n).permute({0, 2, 1}); // [B, H, n]
        const torch::Tensor X = (x.narrow(1, b, n) * dt.narrow(1, b, n).unsqueeze(-1)).permute({0, 2, 1, 3});
        const torch::Tensor Bh = Bm.narrow(1, b, n)
                                     .unsqueeze(3)
                                     .expand({Bsz, n, G, H / G, N})
                                     .reshape({Bsz, n, H, N})
                                     .permute({0, 2, 1, 3}); // [B, H, n, N]
        const torch::Tensor U = (X.unsqueeze(-1) * Bh.unsqueeze(-2)).reshape({Bsz, H, n, P * N});
        const torch::Tensor L = segsumExp(a); // [B, H, n, n]
        const torch::Tensor states = torch::matmul(L, U) + a.cumsum(-1).exp().unsqueeze(-1) *
                                                               S.reshape({Bsz, H, 1, P * N}); // [B, H, n, PN]
        out.push_back(states.abs().amax(-1).transpose(1, 2));
        S = states.select(2, n - 1).reshape({Bsz, H, P, N});
    }
    return torch::cat(out, 1);
}

torch::Tensor groupRootSumSquare(const torch::Tensor& squares, int64_t groups)
{
    return grouped(squares, groups).sum(-1).clamp_min(0).sqrt();
}

torch::Tensor trainingScalarDecayScan(const torch::Tensor& x, const torch::Tensor& dt,
                                      const torch::Tensor& logDecay, const torch::Tensor& Bm,
                                      const torch::Tensor& Cm, int64_t chunkSize, torch::ScalarType operand)
{
    const int64_t Bsz = x.size(0), T = x.size(1), H = x.size(2), P = x.size(3), N = Bm.size(3);
    const int64_t G = Bm.size(2), Hg = H / G;
    const int64_t Q = std::min<int64_t>(chunkSize, T);
    const int64_t nc = (T + Q - 1) / Q, pad = nc * Q - T;
    const torch::ScalarType wide =
        logDecay.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;

    torch::Tensor X = x * dt.unsqueeze(-1), Bp = Bm, Cp = Cm, a = logDecay.to(wide);
    if (pad > 0) { // zero input and zero log-decay: the padding adds nothing and reads nothing
        X = F::pad(X, F::PadFuncOptions({0, 0, 0, 0, 0, pad}));
        Bp = F::pad(Bp, F::PadFuncOptions({0, 0, 0, 0, 0, pad}));
        Cp = F::pad(Cp, F::PadFuncOptions({0, 0, 0, 0, 0, pad}));
        a = F::pad(a, F::PadFuncOptions({0, 0, 0, pad}));
    }
    X = X.to(operand).contiguous();
    const torch::Tensor Xh =
        X.view({Bsz, nc, Q, G, Hg, P}).permute({0, 1, 3, 4, 2, 5}); // [B, c, G, Hg, Q, P]
    const torch::Tensor Bq =
        Bp.to(operand).reshape({Bsz, nc, Q, G, N}).permute({0, 1, 3, 2, 4}); // [B,c,G,Q,N]
    const torch::Tensor Cq = Cp.to(operand).reshape({Bsz, nc, Q, G, N}).permute({0, 1, 3, 2, 4});
    const torch::Tensor cum =
        a.reshape({Bsz, nc, Q, G, Hg}).permute({0, 1, 3, 4, 2}).cumsum(-1); // [B,c,G,Hg,Q]

    // Within each chunk: y_l = sum_{s<=l} (C_l . B_s) exp(a_{s+1..l}) X_s, the mask rounded to the
    // operand type after the product, as the tensor-core kernels round it.
    const torch::Tensor kernel = torch::matmul(Cq, Bq.transpose(-1, -2)).unsqueeze(3); // [B, c, G, 1, Q, Q]
    const torch::Tensor masked = (kernel.to(wide) * decayMatrix(cum, wide)).to(operand);
    torch::Tensor y = torch::matmul(masked, Xh); // [B, c, G, Hg, Q, P]

    if (nc > 1) {
        // Each chunk's own state at its end, sum_l exp(a_{l+1..Q-1}) X_l B_l^T, the group's heads
        // stacked: [Hg P, Q] x [Q, N]. The last chunk's is never read.
        const torch::Tensor total = cum.select(-1, Q - 1); // [B, c, G, Hg]
        const torch::Tensor after = (total.unsqueeze(-1) - cum).exp().to(operand).unsqueeze(-1);
        const torch::Tensor Xw = (Xh * after).transpose(-1, -2).reshape({Bsz, nc, G, Hg * P, Q});
        const torch::Tensor own = torch::matmul(Xw, Bq).to(wide); // [B, c, G, Hg P, N]
        // The state entering chunk z, from zero: sum_{j<z} exp(total of chunks j+1..z-1) S_j. With
        // e_z the totals of chunks before z, that is exp(e_z - e_{j+1}): decayMatrix(e) without its
        // first column.
        const torch::Tensor e = F::pad(total.reshape({Bsz, nc, H}), F::PadFuncOptions({0, 0, 1, 0}))
                                    .permute({0, 2, 1})
                                    .cumsum(-1);
        const torch::Tensor pass = decayMatrix(e, wide).narrow(-2, 0, nc).narrow(-1, 1, nc); // [B, H, c, c]
        const torch::Tensor statesIn =
            torch::matmul(pass, own.reshape({Bsz, nc, H, P * N}).permute({0, 2, 1, 3}));
        const torch::Tensor Sin =
            statesIn.permute({0, 2, 1, 3}).reshape({Bsz, nc, G, Hg * P, N}).to(operand); // [B, c, G, Hg P, N]
        // Its read-out, C_l . S_in exp(a_{0..l}), for all heads of a group in one GEMM.
        const torch::Tensor R = torch::matmul(Cq, Sin.transpose(-1, -2)) // [B, c, G, Q, Hg P]
                                    .view({Bsz, nc, G, Q, Hg, P})
                                    .permute({0, 1, 2, 4, 3, 5});
        y = y + R * cum.exp().to(operand).unsqueeze(-1);
    }
    return y.permute({0, 1, 4, 2, 3, 5}).reshape({Bsz, nc * Q, H, P}).narrow(1, 0, T);
}

// Chunked SSD (stuffed-mamba.md §7.3). x [B,T,H,P], dt and logDecay [B,T,H], B and C [B,T,G,N].
// Updates ssmState [B,H,P,N]; returns y [B,T,H,P] without the D skip. Heads are laid out as
// [G, H/G] so that B and C, shared by the heads of a group, broadcast instead of being copied, and
// C.B^T and B.B^T are computed once per group. Where a product runs over the heads of a group with
// B or C, the heads' P rows are stacked into one matrix (one large GEMM instead of H/G small ones).
torch::Tensor chunkedScalarDecayScan(const torch::Tensor& x, const torch::Tensor& dt,
                                     const torch::Tensor& logDecay, const torch::Tensor& Bm,
                                     const torch::Tensor& Cm, int64_t chunkSize, torch::Tensor& ssmState,
                                     torch::Tensor* stateNorm)
{
    const int64_t Bsz = x.size(0), T = x.size(1), H = x.size(2), P = x.size(3), N = Bm.size(3);
    const int64_t G = Bm.size(2), Hg = H / G;
    const int64_t Q = std::min<int64_t>(chunkSize, T);
    const int64_t nc = (T + Q - 1) / Q, pad = nc * Q - T;
    const torch::ScalarType dtype = x.scalar_type();

    torch::Tensor X = (x * dt.unsqueeze(-1)).contiguous();
    torch::Tensor Bp = Bm, Cp = Cm, a = logDecay;
    if (pad > 0) { // zero input and zero log-decay leave the state as the last real token left it
        X = F::pad(X, F::PadFuncOptions({0, 0, 0, 0, 0, pad}));
        Bp = F::pad(Bp, F::PadFuncOptions({0, 0, 0, 0, 0, pad}));
        Cp = F::pad(Cp, F::PadFuncOptions({0, 0, 0, 0, 0, pad}));
        a = F::pad(a, F::PadFuncOptions({0, 0, 0, pad}));
    }
    const torch::Tensor Xt = X.view({Bsz, nc, Q, G, Hg, P}); // token-major, as y is returned
    const torch::Tensor Xh = Xt.permute({0, 1, 3, 4, 2, 5}); // [B, c, G, Hg, Q, P]
    const torch::Tensor Bq = Bp.reshape({Bsz, nc, Q, G, N}).permute({0, 1, 3, 2, 4}); // [B, c, G, Q, N]
    const torch::Tensor Cq = Cp.reshape({Bsz, nc, Q, G, N}).permute({0, 1, 3, 2, 4});
    // Running log decays within each chunk, in float64 (see decayMatrix), [B, c, G, Hg, Q].
    const torch::Tensor cum =
        a.reshape({Bsz, nc, Q, G, Hg}).permute({0, 1, 3, 4, 2}).to(torch::kFloat64).cumsum(-1);
    const torch::Tensor total = cum.select(-1, Q - 1);                       // [B, c, G, Hg]
    const torch::Tensor eCum = cum.to(dtype).exp();                          // exp(a_{0..l})
    const torch::Tensor after = (total.unsqueeze(-1) - cum).to(dtype).exp(); // exp(a_{l+1..Q-1})

    // 1. Within each chunk: y_l = sum_{s<=l} (C_l . B_s) exp(a_{s+1..l}) X_s. For the state norm the
    // same product with B_l in place of C_l, Z_l, comes from the same batched GEMM.
    const torch::Tensor reads = stateNorm ? torch::cat({Cq, Bq}, -2) : Cq;   // [B, c, G, (1|2)Q, N]
    const torch::Tensor kernel = torch::matmul(reads, Bq.transpose(-1, -2)); // [B, c, G, (1|2)Q, Q]
    // On CUDA in float32 the fused kernel (kernels/MambaKernels.h) forms the decay mask tile by tile
    // and adds the incoming state's read-out (step 4) itself; the Q x Q matrices below are never written.
    const bool fusedScan = fused::enabled(X) && dtype == torch::kFloat32;
    torch::Tensor L, diag; // [B, c, G, Hg, Q, Q], [B, c, G, Hg, (1|2)Q, P]
    auto withinChunks = [&] {
        L = decayMatrix(cum, dtype);
        const torch::Tensor masked = kernel.view({Bsz, nc, G, 1, -1, Q, Q}) * L.unsqueeze(4);
        diag = torch::matmul(masked.flatten(4, 5), Xh);
    };
    if (!fusedScan)
        withinChunks();

    // 2. The state each chunk adds by its end: sum_l exp(a_{l+1..Q-1}) X_l B_l^T, the group's heads
    // stacked: [Hg P, Q] x [Q, N].
    const torch::Tensor Xw =
        (Xt * after.permute({0, 1, 4, 2, 3}).unsqueeze(-1)).view({Bsz, nc, Q, G, Hg * P});
    const torch::Tensor chunkStates = torch::matmul(Xw.permute({0, 1, 3, 4, 2}), Bq); // [B, c, G, Hg P, N]

    // 3. Pass states across chunks: S_in[z] = sum_{j<=z} exp(total decay of chunks j..z-1) S_j.
    const torch::Tensor all =
        torch::cat({ssmState.reshape({Bsz, 1, H, P * N}), chunkStates.reshape({Bsz, nc, H, P * N})},
                   1); // [B, c+1, H, PN]
    const torch::Tensor chunkCum =
        F::pad(total.reshape({Bsz, nc, H}), F::PadFuncOptions({0, 0, 1, 0})).permute({0, 2, 1}).cumsum(-1);
    const torch::Tensor passed =
        torch::matmul(decayMatrix(chunkCum, dtype), all.permute({0, 2, 1, 3})); // [B, H, c+1, PN]
    const torch::Tensor statesIn =
        passed.narrow(2, 0, nc).permute({0, 2, 1, 3}).reshape({Bsz, nc, G, Hg * P, N});
    ssmState = passed.select(2, nc).reshape({Bsz, H, P, N}).contiguous();

    // 4. What the incoming state contributes: C_l . S_in exp(a_{0..l}), all heads of a group in one
    // [Q, N] x [N, Hg P] GEMM whose rows are already token-major. The norm needs B_l . S_in too.
    const torch::Tensor R = torch::matmul(reads, statesIn.transpose(-1, -2)); // [B, c, G, (1|2)Q, Hg P]
    if (fusedScan) {
        torch::Tensor yFused, Z;
        if (fused::ssdChunkOutput(kernel, cum, X, R, eCum, yFused, stateNorm ? &Z : nullptr)) {
            if (stateNorm) { // the LibTorch path's sum below, as its recurrence sq_t = alpha_t^2 sq_{t-1} +
                             // v_t
                const torch::Tensor n0 = statesIn.pow(2).sum(-1).view({Bsz, nc, G, Hg, P}).sum(-1);
                *stateNorm = fused::scanStateNorms(X, Z, 0, R, Bp, a, eCum, n0).index({Slice(), Slice(0, T)});
            }
            return yFused.index({Slice(), Slice(0, T)});
        }
        withinChunks(); // a chunk too long for the kernel's shared memory
    }
    auto tokenMajor = [&](const torch::Tensor& t) { // [B, c, G, Q, Hg P] -> [B, c, Q, G, Hg, P]
        return t.reshape({Bsz, nc, G, Q, Hg, P}).permute({0, 1, 3, 2, 4, 5});
    };
    const torch::Tensor eTok = eCum.permute({0, 1, 4, 2, 3}).unsqueeze(-1); // [B, c, Q, G, Hg, 1]
    const torch::Tensor y =
        (diag.narrow(-2, 0, Q).permute({0, 1, 4, 2, 3, 5}) + tokenMajor(R.narrow(-2, 0, Q)) * eTok)
            .reshape({Bsz, nc * Q, H, P});

    if (stateNorm) {
        // ||S_t||^2 without materialising S_t. S_t = alpha_t S_{t-1} + X_t B_t^T gives
        // ||S_t||^2 = alpha_t^2 ||S_{t-1}||^2 + v_t, v_t = 2 alpha_t X_t^T S_{t-1} B_t + |X_t|^2 |B_t|^2,
        // and with S_{t-1} = e_{t-1} S_in + sum_{s<t} L[t-1,s] X_s B_s^T,
        // v_t = 2 e_t X_t^T S_in B_t + 2 X_t . Z_t - |X_t|^2 |B_t|^2 (Z_t counts s = t once).
        // Unrolled: ||S_t||^2 = e_t^2 ||S_in||^2 + sum_{k<=t} L[t,k]^2 v_k, a matrix-vector product
        // (where the quadratic form over L was a Q x Q x Q product per head).
        const torch::Tensor cross = (Xt * tokenMajor(R.narrow(-2, Q, Q))).sum(-1).permute({0, 1, 3, 4, 2});
        const torch::Tensor xz = (Xh * diag.narrow(-2, Q, Q)).sum(-1); // [B, c, G, Hg, Q]
        const torch::Tensor self = Xh.pow(2).sum(-1) * Bq.pow(2).sum(-1).unsqueeze(3);
        const torch::Tensor v = 2 * (xz + eCum * cross) - self;
        const torch::Tensor n0 = statesIn.pow(2).sum(-1).view({Bsz, nc, G, Hg, P}).sum(-1, true);
        const torch::Tensor sq = eCum.pow(2) * n0 + torch::matmul(L * L, v.unsqueeze(-1)).squeeze(-1);
        *stateNorm = sq.clamp_min(0)
                         .sqrt()
                         .permute({0, 1, 4, 2, 3})
                         .reshape({Bsz, nc * Q, H})
                         .index({Slice(), Slice(0, T)});
    }
    return y.index({Slice(), Slice(0, T)});
}

torch::Tensor chunkedKeyDecayScan(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& logw, const torch::Tensor& u, torch::Tensor& state,
                                  int64_t chunkSize, torch::Tensor* stateNorm, torch::Tensor* stateMaxAbs)
{
    namespace F = torch::nn::functional;
    const int64_t B = q.size(0), T = q.size(1), H = q.size(2), K = q.size(3), V = v.size(3);
    const int64_t c = kKeyDecaySubBlock;
    const bool inclusive = !u.defined(); // GLA: the token's own decay acts before the read-out
    // A short chunk needs no long block: the smallest multiple of the sub-block that holds it.
    const int64_t Q = std::min(chunkSize, (T + c - 1) / c * c);
    const int64_t n = (T + Q - 1) / Q, m = Q / c, pad = n * Q - T;
    // Padding at the end: no key, no value, decay 1, so the state passes through unchanged.
    auto blocks = [&](const torch::Tensor& x) { // [B, T, H, D] -> [B, H, n, Q, D]
        const int64_t D = x.size(3);
        torch::Tensor p = pad ? F::pad(x, F::PadFuncOptions({0, 0, 0, 0, 0, pad})) : x;
        return p.reshape({B, n, Q, H, D}).permute({0, 3, 1, 2, 4});
    };
    const torch::Tensor R = blocks(q), Kb = blocks(k), Vb = blocks(v), LW = blocks(logw);
    const torch::Tensor Binc = LW.cumsum(3); // sum of log w up to and including t, within the block
    const torch::Tensor Bex = Binc - LW;     // ... up to t - 1
    const torch::Tensor Bread = inclusive ? Binc : Bex; // what the read-out of token t has decayed by
    const torch::Tensor G = Binc.select(3, Q - 1);

    // What each block adds to the state, and the state entering each block (a scan over blocks).
    const torch::Tensor Kd = Kb * (G.unsqueeze(3) - Binc).exp();
    const torch::Tensor U = torch::matmul(Kd.transpose(-1, -2), Vb); // [B, H, n, K, V]
    const torch::Tensor decay = G.exp().unsqueeze(-1).expand({B, H, n, K, V});
    const torch::Tensor after =
        elementwiseDecayScan(decay.transpose(1, 2).contiguous(), U.transpose(1, 2).contiguous(), state);
    const torch::Tensor before =
        (n == 1 ? state.unsqueeze(1) : torch::cat({state.unsqueeze(1), after.narrow(1, 0, n - 1)}, 1))
            .transpose(1, 2); // [B, H, n, K, V]

    // The state's part of the read-out.
    torch::Tensor out = torch::matmul(R * Bread.exp(), before); // [B, H, n, Q, V]

    // Within a block, token t reads token s < t through q_t k_s exp(Bread_t - Binc_s), per key
    // channel. Across sub-blocks i > j the product splits at the start of sub-block i, both halves <= 1.
    const std::vector<int64_t> sub{B, H, n, m, c, K};
    const torch::Tensor BreadS = Bread.reshape(sub), BincS = Binc.reshape(sub);
    const torch::Tensor ref = Bex.reshape(sub).select(4, 0); // [B, H, n, m, K]: the sum before sub-block i
    const torch::Tensor Rq = R.reshape(sub) * (BreadS - ref.unsqueeze(4)).exp();
    const torch::Tensor later =
        torch::arange(Q, q.options().dtype(torch::kLong)).view({1, Q}) >=
        (torch::arange(m, q.options().dtype(torch::kLong)) * c).view({m, 1}); // [m, Q]
    const torch::Tensor expo = (ref.unsqueeze(4) - Binc.unsqueeze(3))         // [B, H, n, m, Q, K]
                                   .masked_fill(later.view({1, 1, 1, m, Q, 1}), -INFINITY);
    const torch::Tensor Kq = Kb.unsqueeze(3) * expo.exp();
    torch::Tensor A = torch::matmul(Rq, Kq.transpose(-1, -2)); // [B, H, n, m, c, Q]

    // Within a sub-block the products are taken one distance at a time, exactly. Distance 0 is the
    // token itself: RWKV's bonus u, or GLA's undecayed q_t . k_t.
    const torch::Tensor RS = R.reshape(sub), KS = Kb.reshape(sub);
    torch::Tensor diag =
        torch::diag_embed((inclusive ? RS * KS : RS * u.view({1, H, 1, 1, 1, K}) * KS).sum(-1));
    for (int64_t d = 1; d < c; ++d) {
        const torch::Tensor e = (BreadS.narrow(4, d, c - d) - BincS.narrow(4, 0, c - d)).exp();
        diag = diag + torch::diag_embed((RS.narrow(4, d, c - d) * KS.narrow(4, 0, c - d) * e).sum(-1), -d);
    }
    const torch::Tensor eye = torch::eye(m, q.options()).view({1, 1, 1, m, 1, m, 1});
    A = A.view({B, H, n, m, c, m, c}) + diag.unsqueeze(5) * eye;
    out = out + torch::matmul(A.reshape({B, H, n, Q, Q}), Vb);

    if (stateNorm) {
        // ||S_t|| without keeping every S_t: Q steps of the recurrence, all blocks at once.
        torch::Tensor cur = before;
        std::vector<torch::Tensor> norms, maxima;
        for (int64_t t = 0; t < Q; ++t) {
            cur = cur * LW.select(3, t).exp().unsqueeze(-1) +
                  Kb.select(3, t).unsqueeze(-1) * Vb.select(3, t).unsqueeze(-2);
            norms.push_back(cur.pow(2).sum({-2, -1}).sqrt());
            if (stateMaxAbs)
                maxima.push_back(cur.abs().amax({-2, -1}));
        }
        auto tokens = [&](const std::vector<torch::Tensor>& perStep) { // Q x [B, H, n] -> [B, T, H]
            return torch::stack(perStep, 3).permute({0, 2, 3, 1}).reshape({B, n * Q, H}).narrow(1, 0, T);
        };
        *stateNorm = tokens(norms);
        if (stateMaxAbs)
            *stateMaxAbs = tokens(maxima);
    }
    state = after.select(1, n - 1);
    return out.permute({0, 2, 3, 1, 4}).reshape({B, n * Q, H, V}).narrow(1, 0, T);
}

torch::Tensor elementwiseDecayScan(const torch::Tensor& decay, const torch::Tensor& input,
                                   const torch::Tensor& hIn)
{
    const int64_t n = decay.size(1);
    if (!decay.is_cuda()) {
        torch::Tensor states = torch::empty_like(input);
        torch::Tensor prev = hIn;
        for (int64_t t = 0; t < n; ++t) {
            torch::Tensor out = states.select(1, t);
            torch::addcmul_out(out, input.select(1, t), decay.select(1, t), prev);
            prev = out;
        }
        return states;
    }
    // Hillis-Steele over (a, b) pairs composed as (a2 a1, a2 b1 + b2); the products of decays stay
    // in (0, 1], so nothing overflows whatever the block length.
    torch::Tensor a = decay.clone(), b = input.clone();
    b.select(1, 0).addcmul_(a.select(1, 0), hIn);
    for (int64_t k = 1; k < n; k *= 2) {
        const torch::Tensor aHead = a.narrow(1, k, n - k), bHead = b.narrow(1, k, n - k);
        const torch::Tensor nb = bHead + aHead * b.narrow(1, 0, n - k);
        const torch::Tensor na = aHead * a.narrow(1, 0, n - k);
        b = torch::cat({b.narrow(1, 0, k), nb}, 1);
        a = torch::cat({a.narrow(1, 0, k), na}, 1);
    }
    return b;
}

} // namespace statescope

namespace statescope {

void ScanState::copyFrom(const ModelState& other)
{
    const auto& o = static_cast<const ScanState&>(other);
    for (size_t l = 0; l < conv.size(); ++l) {
        conv[l].copy_(o.conv[l]);
        ssm[l].copy_(o.ssm[l]);
    }
    tokens = o.tokens;
    decaySum = o.decaySum;
    snapshots = o.snapshots;
    contextSnapshots = o.contextSnapshots;
}

void ScanState::forgetRecurrence()
{
    for (torch::Tensor& s : ssm)
        s = torch::zeros_like(s);
    for (torch::Tensor& d : decaySum)
        d = torch::zeros_like(d);
    for (auto& s : snapshots)
        s.clear();
    for (auto& s : contextSnapshots)
        s.clear();
}

std::vector<torch::Tensor> ScanState::unitNorms() const
{
    std::vector<torch::Tensor> out;
    for (const torch::Tensor& s : ssm)
        out.push_back(s.flatten(2).norm(2, {-1}));
    return out;
}

std::vector<int64_t> segmentEnds(int64_t count0, int64_t T, const std::vector<int64_t>& intervals)
{
    std::vector<int64_t> ends;
    std::vector<int64_t> next;
    for (const int64_t i : intervals)
        if (i > 0)
            next.push_back((count0 / i + 1) * i - count0);
    std::vector<int64_t> step;
    for (const int64_t i : intervals)
        if (i > 0)
            step.push_back(i);
    while (true) {
        int64_t e = T;
        for (const int64_t n : next)
            e = std::min(e, n);
        ends.push_back(e);
        if (e >= T)
            break;
        for (size_t k = 0; k < next.size(); ++k)
            if (next[k] == e)
                next[k] += step[k];
    }
    return ends;
}

torch::Tensor normaliseState(torch::Tensor& state, const torch::Tensor& tau, const Mitigation& m)
{
    const torch::Tensor norms = state.flatten(2).norm(2, {-1}); // [B, U]
    if (tau.dim() != 1 || tau.size(0) != norms.size(1))
        throw Error("state normalisation", "calibrated norms",
                    std::to_string(norms.size(1)) + " units per layer", std::to_string(tau.numel()));
    torch::Tensor target = m.renorm ? tau.expand_as(norms) : (tau * m.clip).expand_as(norms);
    torch::Tensor scale = torch::where(norms > 0, target / norms, torch::ones_like(norms));
    if (!m.renorm)
        scale = scale.clamp_max(1.0);
    std::vector<int64_t> view = scale.sizes().vec();
    view.resize(state.dim(), 1);
    state = state * scale.view(view);
    return scale;
}

const StateSnapshot* windowSnapshot(const std::deque<StateSnapshot>& snapshots, int64_t n,
                                    const SnapshotWindow& w)
{
    const int64_t s = w.every;
    const int64_t b = (n + s - 1) / s * s - w.window;
    if (b <= 0)
        return nullptr; // the window reaches the start: the state before it was zero
    for (const StateSnapshot& snap : snapshots)
        if (snap.count == b)
            return &snap;
    throw Error("state-difference window", "snapshot after token " + std::to_string(b),
                "recorded (the stream is fed in order from its start)", "missing");
}

std::vector<ProbeDesc> oldContextProbeDescs(const std::vector<int64_t>& shape,
                                            const std::vector<std::string>& axes,
                                            const std::string& unitMeaning, const SnapshotWindow& w)
{
    const std::string span = w.every == 1 ? "the last " + std::to_string(w.window) + " tokens"
                                          : "the last " + std::to_string(w.window - w.every + 1) + " to " +
                                                std::to_string(w.window) + " tokens (snapshots every " +
                                                std::to_string(w.every) + ")";
    return {
        {"retention",
         "retention of old tokens: the decay alpha over " + span +
             ", the weight left of the token before them",
         shape, axes, unitMeaning, "", ProbeSummary::GeoMean, "α_r"},
        {"old_share", "old-context share rho = |alpha h_b| / |h_t|: the part of the state older than " + span,
         shape, axes, unitMeaning, "", ProbeSummary::Mean, "ρ"},
        {"old_readout_share", "read-out share |C . alpha h_b| / |C . h_t| of the state older than " + span,
         shape, axes, unitMeaning, "", ProbeSummary::Mean, "ρ_y"},
        {"insertion", "insertion strength Delta |B_t| |x_t|", shape, axes, unitMeaning, "",
         ProbeSummary::Mean, "ι"},
        {"b_norm", "|B_t|, the input (key) the token writes with", shape, axes, unitMeaning, "",
         ProbeSummary::Mean, "‖B‖"},
        {"conv_rms", "RMS of the conv state after the token (its last d_conv - 1 raw inputs of x)", shape,
         axes, unitMeaning, "", ProbeSummary::Mean, "conv"},
        {"state_max_abs", "max |S| over the unit's state after the token", shape, axes, unitMeaning, "",
         ProbeSummary::Mean, "max|S|"},
    };
}

torch::Tensor settleState(ScanState& s, size_t l, int64_t n, const Mitigation& m,
                          const std::vector<torch::Tensor>& tau, const SnapshotWindow* context)
{
    torch::Tensor scale;
    if (m.normalises() && n % m.every == 0) {
        if (l >= tau.size())
            throw Error("state normalisation", "calibrated norms (tau)",
                        "one row per layer (" + std::to_string(s.ssm.size()) + "), from a calibration run",
                        std::to_string(tau.size()) + " rows");
        scale = normaliseState(s.ssm[l], tau[l], m);
    }
    if (m.window > 0)
        recordSnapshot(s.snapshots[l], n, s.ssm[l], s.decaySum[l], m.windowSpec());
    if (context)
        recordSnapshot(s.contextSnapshots[l], n, s.ssm[l], s.decaySum[l], *context);
    return scale;
}

void recordSnapshot(std::deque<StateSnapshot>& snapshots, int64_t n, const torch::Tensor& state,
                    const torch::Tensor& decaySum, const SnapshotWindow& w)
{
    const int64_t s = w.every;
    if (n % s != 0)
        return;
    snapshots.push_back({n, state, decaySum});
    // The next token reads the snapshot after n + s - window tokens at the earliest.
    while (!snapshots.empty() && snapshots.front().count < n + s - w.window)
        snapshots.pop_front();
}

} // namespace statescope

namespace statescope {

torch::Tensor KeyDecayRecurrence::run(size_t l, const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v, const torch::Tensor& logw,
                                      const torch::Tensor& u, ScanState& s, bool recurrent,
                                      KeyDecayProbes* probes) const
{
    if (!recurrent)
        return chunked(l, q, k, v, logw, u, s, probes);
    std::vector<torch::Tensor> outs, norms, maxima;
    for (int64_t t = 0; t < q.size(1); ++t) {
        auto at = [&](const torch::Tensor& x) { return x.size(1) == 1 ? x : x.narrow(1, t, 1); };
        outs.push_back(step(l, at(q), at(k), at(v), at(logw), u, s, probes));
        s.tokens += 1; // the positions of normalisation and snapshots, restored below
        if (probes) {
            norms.push_back(probes->stateNorm);
        }
    }
    s.tokens -= q.size(1);
    if (probes)
        probes->stateNorm = torch::cat(norms, 1);
    return torch::cat(outs, 1);
}

// One token, as the references write it. RWKV: a = k^T v; out = r . (u * a + S); S = a + w * S.
// GLA: S = w * S + k^T v; out = q . S.
torch::Tensor KeyDecayRecurrence::step(size_t l, const torch::Tensor& q1, const torch::Tensor& k1,
                                       const torch::Tensor& v1, const torch::Tensor& logw1,
                                       const torch::Tensor& u, ScanState& s, KeyDecayProbes* probes) const
{
    const Mitigation& mit = m_mitigation;
    const bool inclusive = !u.defined();
    const bool context = probes && m_context.window > 0;
    const int64_t position = s.tokens + 1;
    const torch::Tensor r = q1.select(1, 0), k = k1.select(1, 0), v = v1.select(1, 0); // [B, H, K|V]
    const torch::Tensor logw = logw1.expand_as(q1).select(1, 0);
    const torch::Tensor a = k.unsqueeze(-1) * v.unsqueeze(-2); // [B, H, K, V]
    const torch::Tensor before = s.ssm[l];
    const torch::Tensor sumBefore = s.decaySum[l];
    torch::Tensor out;
    if (inclusive) {
        s.ssm[l] = a + logw.exp().unsqueeze(-1) * before;
        out = torch::matmul(r.unsqueeze(-2), s.ssm[l]).squeeze(-2);
    } else {
        out = torch::matmul(r.unsqueeze(-2), before + u.unsqueeze(-1) * a).squeeze(-2);
        s.ssm[l] = a + logw.exp().unsqueeze(-1) * before;
    }
    if (context)
        contextProbes(windowSnapshot(s.contextSnapshots[l], position, m_context), sumBefore,
                      logw.unsqueeze(1), r.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), out.unsqueeze(1),
                      s.ssm[l].pow(2).sum({-2, -1}).sqrt().unsqueeze(1), inclusive, *probes);
    if (mit.window > 0) {
        // The read-out of what the tokens after the snapshot b put in: the snapshot's part, each key
        // channel's row decayed by its own product (through t - 1 for RWKV, through t for GLA), is
        // taken away.
        const StateSnapshot* snap = windowSnapshot(s.snapshots[l], position, mit.windowSpec());
        if (snap) {
            torch::Tensor sum = sumBefore - snap->decaySum;
            if (inclusive)
                sum = sum + logw.to(torch::kFloat64);
            const torch::Tensor decay = sum.to(m_accumulation).exp(); // [B, H, K]
            out = out - torch::matmul((r * decay).unsqueeze(-2), snap->state).squeeze(-2);
        }
    }
    if (mit.window > 0 || context)
        s.decaySum[l] = sumBefore + logw.to(torch::kFloat64);
    settleState(s, l, position, mit, m_tau, context ? &m_context : nullptr);
    if (probes)
        probes->stateNorm = s.ssm[l].pow(2).sum({-2, -1}).sqrt().unsqueeze(1);
    if (context)
        probes->maxAbs.push_back(s.ssm[l].abs().amax({-2, -1}).unsqueeze(1));
    return out.unsqueeze(1);
}

// Retention w_{b+1:t} (geometric mean over keys), the old share |w_{b+1:t} S_b| / |S_t| (per key row:
// the rows' norms of S_b weighted by their decays), the read-out share |q_t . w_{b+1:t(-1)} S_b| /
// |out_t|, and what the token writes: |k_t| |v_t| and |k_t|.
void KeyDecayRecurrence::contextProbes(const StateSnapshot* snap, const torch::Tensor& sumBefore,
                                       const torch::Tensor& lw, const torch::Tensor& r,
                                       const torch::Tensor& k, const torch::Tensor& v,
                                       const torch::Tensor& out, const torch::Tensor& norm, bool inclusive,
                                       KeyDecayProbes& p) const
{
    const double tiny = 1e-30;
    const torch::Tensor cum = sumBefore.unsqueeze(1) + lw.to(torch::kFloat64).cumsum(1); // through t
    p.insertion.push_back(k.norm(2, {-1}) * v.norm(2, {-1}));
    p.keyNorm.push_back(k.norm(2, {-1}));
    if (!snap) { // the window reaches the stream's start: nothing older
        p.retention.push_back(cum.mean(-1).to(m_accumulation).exp());
        p.oldShare.push_back(torch::zeros_like(norm));
        p.readoutShare.push_back(torch::zeros_like(norm));
        return;
    }
    const torch::Tensor rel = (cum - snap->decaySum.unsqueeze(1)).to(m_accumulation); // [B, n, H, K]
    p.retention.push_back(rel.mean(-1).exp());
    const torch::Tensor rows = snap->state.pow(2).sum(-1).unsqueeze(1); // [B, 1, H, K]
    p.oldShare.push_back(((2 * rel).exp() * rows).sum(-1).sqrt() / norm.clamp_min(tiny));
    const torch::Tensor readDecay = inclusive ? rel.exp() : (rel - lw).exp();
    const torch::Tensor old = torch::einsum("bnhk,bhkv->bnhv", {r * readDecay, snap->state});
    p.readoutShare.push_back(old.norm(2, {-1}) / out.norm(2, {-1}).clamp_min(tiny));
}

torch::Tensor KeyDecayRecurrence::chunked(size_t l, const torch::Tensor& q, const torch::Tensor& k,
                                          const torch::Tensor& v, const torch::Tensor& logw,
                                          const torch::Tensor& u, ScanState& s, KeyDecayProbes* probes) const
{
    const bool context = probes && m_context.window > 0;
    if (!context || m_mitigation.positional())
        return segments(l, q, k, v, logw, u, s, probes, context);
    // The old-context probes need the scan cut at their snapshots; the run itself must not change, so
    // they come from a second, cut scan from the same state, whose output and state are dropped (as
    // Mamba-2 does; it doubles the scan's cost).
    const torch::Tensor before = s.ssm[l];
    torch::Tensor y = segments(l, q, k, v, logw, u, s, probes, false);
    const torch::Tensor after = s.ssm[l];
    const torch::Tensor stateNorm = probes->stateNorm;
    s.ssm[l] = before;
    segments(l, q, k, v, logw, u, s, probes, true);
    s.ssm[l] = after;
    probes->stateNorm = stateNorm; // the uncut scan's, as without the old-context probes
    return y;
}

torch::Tensor KeyDecayRecurrence::segments(size_t l, const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& v, const torch::Tensor& logwIn,
                                           const torch::Tensor& u, ScanState& s, KeyDecayProbes* probes,
                                           bool context) const
{
    const Mitigation& mit = m_mitigation;
    const bool inclusive = !u.defined();
    const int64_t T = q.size(1), count0 = s.tokens;
    const torch::Tensor logw = logwIn.expand_as(q);
    std::vector<torch::Tensor> ys, norms;
    int64_t begin = 0;
    for (const int64_t end : segmentEnds(
             count0, T,
             {mit.normalises() ? mit.every : 0, mit.snapshotEvery(), context ? m_context.every : 0})) {
        const int64_t n = end - begin;
        torch::Tensor norm, maxAbs;
        const torch::Tensor r = q.narrow(1, begin, n), kk = k.narrow(1, begin, n), vv = v.narrow(1, begin, n);
        const torch::Tensor lw = logw.narrow(1, begin, n);
        const torch::Tensor sumBefore = s.decaySum[l];
        torch::Tensor y = chunkedKeyDecayScan(r, kk, vv, lw, u, s.ssm[l], m_chunkSize,
                                              probes ? &norm : nullptr, context ? &maxAbs : nullptr);
        if (context)
            contextProbes(windowSnapshot(s.contextSnapshots[l], count0 + end, m_context), sumBefore, lw, r,
                          kk, vv, y, norm, inclusive, *probes);
        if (mit.window > 0) {
            // Every token of the segment reads against one snapshot b: y_t -= (q_t w_{b+1:t(-1)}) . S_b.
            const StateSnapshot* snap = windowSnapshot(s.snapshots[l], count0 + end, mit.windowSpec());
            if (snap) {
                torch::Tensor read = lw.to(torch::kFloat64).cumsum(1);
                if (!inclusive)
                    read = read - lw.to(torch::kFloat64);
                const torch::Tensor decay =
                    (sumBefore.unsqueeze(1) + read - snap->decaySum.unsqueeze(1)).to(m_accumulation).exp();
                y = y - torch::einsum("bnhk,bhkv->bnhv", {r * decay, snap->state});
            }
        }
        if (mit.window > 0 || context)
            s.decaySum[l] = sumBefore + lw.to(torch::kFloat64).sum(1);
        ys.push_back(y);
        const torch::Tensor scale =
            settleState(s, l, count0 + end, mit, m_tau, context ? &m_context : nullptr);
        if (probes) {
            if (scale.defined()) {
                norm = norm.clone();
                norm.select(1, n - 1).mul_(scale);
                if (maxAbs.defined()) {
                    maxAbs = maxAbs.clone();
                    maxAbs.select(1, n - 1).mul_(scale);
                }
            }
            norms.push_back(norm);
            if (context)
                probes->maxAbs.push_back(maxAbs);
        }
        begin = end;
    }
    if (probes)
        probes->stateNorm = norms.size() == 1 ? norms[0] : torch::cat(norms, 1);
    return ys.size() == 1 ? ys[0] : torch::cat(ys, 1);
}

} // namespace statescope

namespace statescope {

KeyDecayProbeStack::KeyDecayProbeStack(size_t layers, bool full, bool context)
    : m_full(full), m_context(context), m_pieces(9, std::vector<std::vector<torch::Tensor>>(layers))
{
}

void KeyDecayProbeStack::add(size_t l, const KeyDecayLayerProbes& p)
{
    m_pieces[0][l].push_back(p.decay);
    m_pieces[1][l].push_back(p.scan.stateNorm);
    if (m_full)
        m_pieces[2][l].push_back(p.keyDecay);
    if (!m_context)
        return;
    const KeyDecayProbes& q = p.scan;
    const std::vector<torch::Tensor>* from[] = {&q.retention, &q.oldShare, &q.readoutShare,
                                                &q.insertion, &q.keyNorm,  &q.maxAbs};
    for (size_t i = 0; i < 6; ++i)
        m_pieces[3 + i][l].insert(m_pieces[3 + i][l].end(), from[i]->begin(), from[i]->end());
}

std::vector<torch::Tensor> KeyDecayProbeStack::stacked() const
{
    std::vector<torch::Tensor> out;
    for (size_t i = 0; i < m_pieces.size(); ++i) {
        if ((i == 2 && !m_full) || (i >= 3 && !m_context))
            continue;
        std::vector<torch::Tensor> perLayer;
        for (const std::vector<torch::Tensor>& pieces : m_pieces[i])
            perLayer.push_back(pieces.size() == 1 ? pieces[0] : torch::cat(pieces, 1));
        out.push_back(torch::stack(perLayer, 2));
    }
    return out;
}

} // namespace statescope

namespace statescope {

torch::Tensor overTokens(const torch::Tensor& ids, bool oneAtATime,
                         const std::function<torch::Tensor(const torch::Tensor&)>& run)
{
    if (!oneAtATime)
        return run(ids);
    std::vector<torch::Tensor> hidden;
    for (int64_t t = 0; t < ids.size(1); ++t)
        hidden.push_back(run(ids.narrow(1, t, 1)));
    return torch::cat(hidden, 1);
}

} // namespace statescope
