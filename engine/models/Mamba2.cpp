// Mamba-2 (Dao & Gu, 2024) as mamba_ssm computes it: a one-token recurrent step (the readable
// reference) and a chunked SSD prefill (the fast path, matmuls only), which must agree.
#include "models/Mamba2.h"

#include "kernels/FusedOps.h"

#include "io/Json.h"
#include "models/ConfigFields.h"
#include "models/ModelCommon.h"

#include "Error.h"
#include "io/SafeTensors.h"
#include "io/SafeTensorsWriter.h"
#include "io/TorchCheckpoint.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

namespace statescope {

using torch::indexing::None;
using torch::indexing::Slice;
namespace F = torch::nn::functional;

namespace {

// Read bounds, the same as validate()'s: every product of them (d_inner, heads x headdim) fits in
// int64, so none is computed on an unchecked value (UBSan found expand x d_model overflowing).
constexpr int64_t kMaxDModel = 1 << 20;
constexpr int64_t kMaxDState = 1 << 16;
constexpr int64_t kMaxExpand = 1 << 6;

constexpr int64_t kCpuScanChunk = 64;   // see Mamba2Model::scanChunk
constexpr int64_t kCudaScanChunk = 128; // see Mamba2Model::scanChunk

void readDtLimit(const nlohmann::json& limit, const std::string& file, const std::string& field,
                 Mamba2Config& c)
{
    if (!limit.is_array() || limit.size() != 2)
        throw Error(file, field, "a pair [min, max]", limit.dump());
    c.dtLimitMin = jsonNumber(limit[0], file, field + "[0]");
    c.dtLimitMax = jsonNumber(limit[1], file, field + "[1]");
}

// state-spaces / mamba_ssm: {d_model, n_layer, vocab_size, ssm_cfg: {layer: "Mamba2", ...}, ...}
Mamba2Config parseMambaSsm(const nlohmann::json& j, const std::string& file)
{
    Mamba2Config c;
    c.dModel = intField(j, "d_model", 0, file, "", 1, kMaxDModel);
    c.nLayer = intField(j, "n_layer", 0, file);
    c.vocabSize = intField(j, "vocab_size", 0, file);
    c.padVocabSizeMultiple = intField(j, "pad_vocab_size_multiple", 8, file);
    c.tieEmbeddings = boolField(j, "tie_embeddings", true, file);
    c.residualInFp32 = boolField(j, "residual_in_fp32", true, file);
    if (!boolField(j, "rms_norm", true, file))
        throw Error(file, "rms_norm", "true (LayerNorm blocks are not supported)", "false");
    if (intField(j, "d_intermediate", 0, file, "", 0) != 0)
        throw Error(file, "d_intermediate", "0 (MLP blocks are not supported)",
                    std::to_string(intField(j, "d_intermediate", 0, file, "", 0)));
    if (j.contains("attn_layer_idx") && j["attn_layer_idx"].is_array() && !j["attn_layer_idx"].empty())
        throw Error(file, "attn_layer_idx", "[] (hybrid attention models are not supported)",
                    j["attn_layer_idx"].dump());
    const nlohmann::json& s = j.at("ssm_cfg");
    const std::string p = "ssm_cfg.";
    c.dState = intField(s, "d_state", 128, file, p, 1, kMaxDState);
    c.headdim = intField(s, "headdim", 64, file, p, 1, kMaxDState);
    c.ngroups = intField(s, "ngroups", 1, file, p, 1, kMaxDState);
    c.dConv = intField(s, "d_conv", 4, file, p);
    c.expand = intField(s, "expand", 2, file, p, 1, kMaxExpand);
    c.chunkSize = intField(s, "chunk_size", 256, file, p);
    c.bias = boolField(s, "bias", false, file, p);
    c.convBias = boolField(s, "conv_bias", true, file, p);
    c.dHasHdim = boolField(s, "D_has_hdim", false, file, p);
    if (!boolField(s, "rmsnorm", true, file, p))
        throw Error(file, p + "rmsnorm", "true", "false");
    if (boolField(s, "norm_before_gate", false, file, p))
        throw Error(file, p + "norm_before_gate", "false", "true");
    if (s.contains("d_ssm") && !s["d_ssm"].is_null() && intField(s, "d_ssm", 0, file, p, 0) != c.dInner())
        throw Error(file, p + "d_ssm", "null or d_inner (" + std::to_string(c.dInner()) + ")",
                    s["d_ssm"].dump());
    if (s.contains("dt_limit"))
        readDtLimit(s["dt_limit"], file, p + "dt_limit", c);
    return c;
}

// Hugging Face transformers: {model_type: "mamba2", hidden_size, num_heads, head_dim, ...}
Mamba2Config parseTransformers(const nlohmann::json& j, const std::string& file)
{
    Mamba2Config c;
    c.dModel = intField(j, "hidden_size", 4096, file, "", 1, kMaxDModel);
    c.nLayer = intField(j, "num_hidden_layers", 64, file);
    c.vocabSize = intField(j, "vocab_size", 32768, file);
    c.padVocabSizeMultiple = intField(j, "pad_vocab_size_multiple", 1, file);
    c.dState = intField(j, "state_size", 128, file, "", 1, kMaxDState);
    c.headdim = intField(j, "head_dim", 64, file, "", 1, kMaxDState);
    c.ngroups = intField(j, "n_groups", 8, file, "", 1, kMaxDState);
    c.dConv = intField(j, "conv_kernel", 4, file);
    c.expand = intField(j, "expand", 2, file, "", 1, kMaxExpand);
    c.chunkSize = intField(j, "chunk_size", 256, file);
    c.tieEmbeddings = boolField(j, "tie_word_embeddings", false, file);
    c.residualInFp32 = boolField(j, "residual_in_fp32", true, file);
    c.bias = boolField(j, "use_bias", false, file);
    c.convBias = boolField(j, "use_conv_bias", true, file);
    if (!boolField(j, "rms_norm", true, file))
        throw Error(file, "rms_norm", "true", "false");
    if (j.contains("layer_norm_epsilon"))
        c.normEps = jsonNumber(j["layer_norm_epsilon"], file, "layer_norm_epsilon");
    if (j.contains("time_step_limit"))
        readDtLimit(j["time_step_limit"], file, "time_step_limit", c);
    const int64_t heads = intField(j, "num_heads", 128, file, "", 1, kMaxDModel * kMaxExpand);
    if (heads * c.headdim != c.dInner())
        throw Error(file, "num_heads * head_dim", "expand * hidden_size = " + std::to_string(c.dInner()),
                    std::to_string(heads * c.headdim));
    return c;
}

const char* const kHeadMeaning = "Mamba-2 SSM head: a headdim x d_state state matrix with one scalar decay";

std::vector<ProbeDesc> probeDescsFor(int64_t layers, int64_t heads)
{
    const std::vector<int64_t> shape{layers, heads};
    const std::vector<std::string> axes{"layer", "head"};
    return {
        {"dt", "step size Delta = softplus(dt + dt_bias)", shape, axes, kHeadMeaning, "", ProbeSummary::Mean,
         "Δ"},
        {kDecayProbe, "forget gate alpha = exp(Delta * A), A = -exp(A_log)", shape, axes, kHeadMeaning, "",
         ProbeSummary::GeoMean, "α"},
        {kStateNormProbe, "Frobenius norm of the head's SSM state after the token", shape, axes, kHeadMeaning,
         "", ProbeSummary::RootSumSquare, "‖S‖"},
    };
}

} // namespace

void Mamba2Config::validate(const std::string& file) const
{
    // Bounds far above any real model keep every derived size (d_inner, N_S, in_proj rows) well
    // inside int64.
    auto inRange = [&](const char* name, int64_t v, int64_t max) {
        if (v <= 0 || v > max)
            throw Error(file, name, "an integer in [1, " + std::to_string(max) + "]", std::to_string(v));
    };
    inRange("d_model", dModel, 1 << 20);
    inRange("n_layer", nLayer, 1 << 12);
    inRange("d_state", dState, 1 << 16);
    inRange("headdim", headdim, 1 << 16);
    inRange("ngroups", ngroups, 1 << 16);
    inRange("d_conv", dConv, 1 << 10);
    inRange("expand", expand, 1 << 6);
    inRange("chunk_size", chunkSize, 1 << 20);
    if (vocabSize < 0 || vocabSize > (int64_t(1) << 31))
        throw Error(file, "vocab_size", "an integer in [0, 2^31]", std::to_string(vocabSize));
    if (dInner() % headdim != 0)
        throw Error(file, "headdim", "a divisor of d_inner = " + std::to_string(dInner()),
                    std::to_string(headdim));
    if (nHeads() % ngroups != 0)
        throw Error(file, "ngroups", "a divisor of the head count " + std::to_string(nHeads()),
                    std::to_string(ngroups));
    // A NaN epsilon or an empty dt window runs to a trace of NaN with nothing to say why.
    if (!(normEps > 0) || !std::isfinite(normEps))
        throw Error(file, "layer_norm_epsilon", "a finite number > 0", std::to_string(normEps));
    if (std::isnan(dtLimitMin) || std::isnan(dtLimitMax) || dtLimitMin < 0 || dtLimitMin > dtLimitMax ||
        std::isinf(dtLimitMin))
        throw Error(file, "time_step_limit", "[min, max] with 0 <= min <= max (max may be Infinity)",
                    "[" + std::to_string(dtLimitMin) + ", " + std::to_string(dtLimitMax) + "]");
}

Mamba2Config parseMamba2Config(const nlohmann::json& j, const std::string& layout, const std::string& file)
{
    Mamba2Config c = layout == "transformers" ? parseTransformers(j, file) : parseMambaSsm(j, file);
    c.validate(file);
    return c;
}

Mamba2Model::Mamba2Model(Mamba2Config config, Mamba2Weights weights, torch::ScalarType weightDtype)
    : m_config(std::move(config)), m_weights(std::move(weights)), m_dtype(weightDtype)
{
    m_config.paddedVocabSize = m_weights.embedding.size(0);
    if (m_dtype == torch::kFloat64) {
        for (Mamba2Layer& L : m_weights.layers)
            widenToFloat64({&L.norm, &L.convWeight, &L.convBias, &L.dtBias, &L.ALog, &L.D, &L.gateNorm});
        widenToFloat64({&m_weights.normF});
    }
}

std::unique_ptr<Mamba2Model> Mamba2Model::load(const ModelFolder& folder, torch::Device device,
                                               torch::ScalarType dtype)
{
    const Mamba2Config c = parseMamba2Config(parsePythonJson(folder.configJson, folder.configPath),
                                             folder.shape.layout, folder.configPath);
    WeightLoader w(readWeights(folder, stateSpacesName), device);
    const auto f32 = torch::kFloat32;
    const std::string embName = "backbone.embedding.weight";
    const int64_t vocab = w.embeddingRows(embName, c.dModel, c.vocabSize);
    Mamba2Weights mw;
    mw.embedding = w.take(embName, {vocab, c.dModel}, dtype);

    const int64_t H = c.nHeads(), dIn = c.dInner(), convDim = c.convDim();
    for (int64_t l = 0; l < c.nLayer; ++l) {
        const std::string p = "backbone.layers." + std::to_string(l) + ".";
        const std::string m = p + "mixer.";
        Mamba2Layer L;
        L.norm = w.take(p + "norm.weight", {c.dModel}, f32);
        L.inProj = w.take(m + "in_proj.weight", {c.inProjRows(), c.dModel}, dtype);
        if (c.bias)
            L.inProjBias = w.take(m + "in_proj.bias", {c.inProjRows()}, dtype);
        L.convWeight = w.take(m + "conv1d.weight", {convDim, 1, c.dConv}, f32).squeeze(1).contiguous();
        if (c.convBias)
            L.convBias = w.take(m + "conv1d.bias", {convDim}, f32);
        L.dtBias = w.take(m + "dt_bias", {H}, f32);
        L.ALog = w.take(m + "A_log", {H}, f32);
        L.D = w.take(m + "D", c.dHasHdim ? std::vector<int64_t>{dIn} : std::vector<int64_t>{H}, f32);
        L.gateNorm = w.take(m + "norm.weight", {dIn}, f32);
        L.outProj = w.take(m + "out_proj.weight", {c.dModel, dIn}, dtype);
        if (c.bias)
            L.outProjBias = w.take(m + "out_proj.bias", {c.dModel}, dtype);
        mw.layers.push_back(std::move(L));
    }
    mw.normF = w.take("backbone.norm_f.weight", {c.dModel}, f32);
    if (!c.tieEmbeddings && w.has("lm_head.weight"))
        mw.lmHead = w.take("lm_head.weight", {vocab, c.dModel}, dtype);
    else if (!c.tieEmbeddings)
        throw Error(folder.weightFiles.front(), "tensor lm_head.weight",
                    "present (the config says the output layer is not tied to the embedding)", "missing");
    else
        mw.lmHead = mw.embedding;
    return std::make_unique<Mamba2Model>(c, std::move(mw), dtype);
}

std::unique_ptr<Mamba2Model> Mamba2Model::random(const Mamba2Config& cIn, uint64_t seed, torch::Device device,
                                                 torch::ScalarType dtype)
{
    Mamba2Config c = cIn;
    if (c.paddedVocabSize == 0) {
        const int64_t m = std::max<int64_t>(1, c.padVocabSizeMultiple);
        c.paddedVocabSize = (c.vocabSize + m - 1) / m * m;
    }
    torch::manual_seed(seed);
    auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    const int64_t H = c.nHeads(), dIn = c.dInner(), convDim = c.convDim();
    Mamba2Weights mw;
    mw.embedding = (torch::randn({c.paddedVocabSize, c.dModel}, f32) * 0.02).to(dtype);
    for (int64_t l = 0; l < c.nLayer; ++l) {
        Mamba2Layer L;
        L.norm = torch::ones({c.dModel}, f32);
        L.inProj = (torch::randn({c.inProjRows(), c.dModel}, f32) / std::sqrt(double(c.dModel))).to(dtype);
        const double bound = 1.0 / std::sqrt(double(c.dConv));
        L.convWeight = torch::rand({convDim, c.dConv}, f32) * (2 * bound) - bound;
        L.convBias = torch::rand({convDim}, f32) * (2 * bound) - bound;
        // dt ~ log-uniform in [1e-3, 1e-1], stored as the inverse softplus (mamba_ssm's init).
        torch::Tensor dt = (torch::rand({H}, f32) * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3)).exp();
        dt = dt.clamp_min(1e-4);
        L.dtBias = dt + torch::log(-torch::expm1(-dt));
        L.ALog = (torch::rand({H}, f32) * 15 + 1).log(); // A = -U[1, 16]
        L.D = torch::ones({c.dHasHdim ? dIn : H}, f32);
        L.gateNorm = torch::ones({dIn}, f32);
        L.outProj = (torch::randn({c.dModel, dIn}, f32) / std::sqrt(double(dIn * 2 * c.nLayer))).to(dtype);
        mw.layers.push_back(std::move(L));
    }
    mw.normF = torch::ones({c.dModel}, f32);
    mw.lmHead = mw.embedding;
    return std::make_unique<Mamba2Model>(c, std::move(mw), dtype);
}

nlohmann::ordered_json Mamba2Model::configJson() const
{
    const Mamba2Config& c = m_config;
    nlohmann::ordered_json j;
    j["architectures"] = {"Mamba2ForCausalLM"};
    j["model_type"] = "mamba2";
    j["hidden_size"] = c.dModel;
    j["num_hidden_layers"] = c.nLayer;
    j["vocab_size"] = m_weights.embedding.size(0);
    j["state_size"] = c.dState;
    j["head_dim"] = c.headdim;
    j["num_heads"] = c.nHeads();
    j["n_groups"] = c.ngroups;
    j["expand"] = c.expand;
    j["conv_kernel"] = c.dConv;
    j["chunk_size"] = c.chunkSize;
    j["tie_word_embeddings"] = m_weights.lmHead.is_same(m_weights.embedding);
    j["use_bias"] = c.bias;
    j["use_conv_bias"] = c.convBias;
    j["residual_in_fp32"] = c.residualInFp32;
    j["rms_norm"] = true;
    j["layer_norm_epsilon"] = c.normEps;
    j["time_step_limit"] = {c.dtLimitMin, std::isfinite(c.dtLimitMax)
                                              ? nlohmann::ordered_json(c.dtLimitMax)
                                              : nlohmann::ordered_json{{"__float__", "Infinity"}}};
    return j;
}

void Mamba2Model::saveFolder(const std::string& dir) const
{
    writeConfigJson(dir, configJson().dump(2));
    FolderWriter w;
    w.put("backbone.embeddings.weight", m_weights.embedding);
    for (size_t l = 0; l < m_weights.layers.size(); ++l) {
        const Mamba2Layer& L = m_weights.layers[l];
        const std::string p = "backbone.layers." + std::to_string(l) + ".";
        const std::string m = p + "mixer.";
        w.put(p + "norm.weight", L.norm);
        w.put(m + "in_proj.weight", L.inProj);
        w.put(m + "in_proj.bias", L.inProjBias);
        w.put(m + "conv1d.weight", L.convWeight.unsqueeze(1));
        w.put(m + "conv1d.bias", L.convBias);
        w.put(m + "dt_bias", L.dtBias);
        w.put(m + "A_log", L.ALog);
        w.put(m + "D", L.D);
        w.put(m + "norm.weight", L.gateNorm);
        w.put(m + "out_proj.weight", L.outProj);
        w.put(m + "out_proj.bias", L.outProjBias);
    }
    w.put("backbone.norm_f.weight", m_weights.normF);
    if (!m_weights.lmHead.is_same(m_weights.embedding))
        w.put("lm_head.weight", m_weights.lmHead);
    w.write(dir + "/model.safetensors");
}

std::vector<ProbeDesc> Mamba2Model::probeDescs() const
{
    std::vector<ProbeDesc> d = probeDescsFor(m_config.nLayer, m_config.nHeads());
    if (m_context.window > 0)
        for (ProbeDesc& p : oldContextProbeDescs({m_config.nLayer, m_config.nHeads()}, {"layer", "head"},
                                                 kHeadMeaning, m_context))
            d.push_back(std::move(p));
    return d;
}

// ln(alpha) = Delta * A with A = -exp(A_log) * the mitigation's A factor, so Delta = -ln(alpha) / |A|.
// A mitigation that adds to ln(alpha) itself (alpha's factor) breaks that, and then dt is stored.
bool Mamba2Model::probeDerivation(const std::string& probe, std::string* from,
                                  std::vector<float>* scale) const
{
    if (probe != "dt" || m_mitigation.alpha != 1.0 || m_mitigation.A <= 0)
        return false;
    *from = kDecayProbe;
    scale->clear();
    for (const Mamba2Layer& L : m_weights.layers) {
        const torch::Tensor a = L.ALog.detach().to(torch::kCPU, torch::kFloat64).contiguous();
        const double* p = a.data_ptr<double>();
        for (int64_t h = 0; h < a.numel(); ++h)
            scale->push_back(static_cast<float>(1.0 / (std::exp(p[h]) * m_mitigation.A)));
    }
    return true;
}

std::unique_ptr<ModelState> Mamba2Model::initialState(int64_t batch) const
{
    auto s = std::make_unique<Mamba2State>();
    auto f32 = torch::TensorOptions().dtype(accumulation()).device(device());
    for (int64_t l = 0; l < m_config.nLayer; ++l) {
        s->conv.push_back(torch::zeros({batch, m_config.convDim(), m_config.dConv - 1}, f32));
        s->ssm.push_back(torch::zeros({batch, m_config.nHeads(), m_config.headdim, m_config.dState}, f32));
        s->decaySum.push_back(torch::zeros({batch, m_config.nHeads()}, f32.dtype(torch::kFloat64)));
    }
    s->snapshots.resize(static_cast<size_t>(m_config.nLayer));
    s->contextSnapshots.resize(static_cast<size_t>(m_config.nLayer));
    return s;
}

std::vector<torch::Tensor> Mamba2Model::parameters() const
{
    std::vector<torch::Tensor> out{m_weights.embedding, m_weights.normF};
    if (!m_weights.lmHead.is_same(m_weights.embedding))
        out.push_back(m_weights.lmHead);
    for (const auto& L : m_weights.layers)
        for (const auto* t : {&L.norm, &L.inProj, &L.inProjBias, &L.convWeight, &L.convBias, &L.dtBias,
                              &L.ALog, &L.D, &L.gateNorm, &L.outProj, &L.outProjBias})
            if (t->defined())
                out.push_back(*t);
    return out;
}

int64_t Mamba2Model::parameterCount() const
{
    int64_t n = m_weights.embedding.numel() + m_weights.normF.numel();
    if (!m_weights.lmHead.is_same(m_weights.embedding))
        n += m_weights.lmHead.numel();
    for (const auto& L : m_weights.layers)
        for (const auto* t : {&L.norm, &L.inProj, &L.inProjBias, &L.convWeight, &L.convBias, &L.dtBias,
                              &L.ALog, &L.D, &L.gateNorm, &L.outProj, &L.outProjBias})
            if (t->defined())
                n += t->numel();
    return n;
}

torch::Tensor Mamba2Model::projectNative(const torch::Tensor& x, const torch::Tensor& w,
                                         const torch::Tensor& b) const
{
    const torch::Tensor bias = b.defined() ? b.to(m_dtype) : torch::Tensor();
    return F::linear(x.to(m_dtype), w.to(m_dtype), bias);
}

torch::Tensor Mamba2Model::project(const torch::Tensor& x, const torch::Tensor& w,
                                   const torch::Tensor& b) const
{
    return projectNative(x, w, b).to(accumulation());
}

torch::Tensor Mamba2Model::logits(const torch::Tensor& hidden) const
{
    return project(hidden, m_weights.lmHead, torch::Tensor());
}

torch::Tensor Mamba2Model::nativeLogits(const torch::Tensor& hidden) const
{
    return projectNative(hidden, m_weights.lmHead, torch::Tensor());
}

// Delta = softplus(dt + dt_bias), clamped to dt_limit when the config sets one.
torch::Tensor Mamba2Model::discretize(const Mamba2Layer& layer, const torch::Tensor& dtRaw) const
{
    torch::Tensor dt = F::softplus(dtRaw + layer.dtBias);
    if (m_config.dtLimitMin > 0.0 || std::isfinite(m_config.dtLimitMax))
        dt = dt.clamp(m_config.dtLimitMin, m_config.dtLimitMax);
    if (m_mitigation.dt != 1.0)
        dt = dt * m_mitigation.dt; // lambda_Delta, after the clamp: the model's own step, scaled
    return dt;
}

// log alpha = Delta * A, with the mitigations' lambda_A (A scaled) and lambda_alpha (alpha scaled).
// Each is skipped at 1, so that the original run is reproduced bit for bit.
torch::Tensor Mamba2Model::logDecay(const Mamba2Layer& layer, const torch::Tensor& dt) const
{
    torch::Tensor A = -layer.ALog.exp();
    if (m_mitigation.A != 1.0)
        A = A * m_mitigation.A;
    torch::Tensor logAlpha = dt * A;
    if (m_mitigation.alpha != 1.0)
        logAlpha = logAlpha + std::log(m_mitigation.alpha);
    return logAlpha;
}

// The scan's cost within a chunk grows with its length (a Q x Q decay matrix per head) while its
// cost across chunks stays the same per token. On the CPU, whose matmuls are no faster for being
// larger here, 64 tokens ran the 130m shape 1.1-1.2x faster than mamba_ssm's 256 (issue 15); the
// result differs only by rounding. The tensor-core scan takes 128: its read-out and state norms,
// quadratic in Q, halve, for twice the chunk states to pass; at 64K tokens on the H200 the 1.3b shape
// ran at 94,889 / 98,290 / 95,916 tokens/s with 64 / 128 / 256, the 130m at 503,225 / 529,359 /
// 518,266. The other CUDA paths (float32 models, training) keep the config's length.
int64_t Mamba2Model::scanChunk(bool tensorCores) const
{
    if (device().is_cpu())
        return std::min(kCpuScanChunk, m_config.chunkSize);
    // STATESCOPE_SCAN_CHUNK sets the length of every CUDA path, for measuring (docs/kernels.md).
    static const int64_t cudaChunk = [] {
        const char* env = std::getenv("STATESCOPE_SCAN_CHUNK");
        const long v = env ? std::strtol(env, nullptr, 10) : 0;
        return v >= 16 && v <= 4096 ? static_cast<int64_t>(v) : int64_t(0);
    }();
    if (cudaChunk > 0)
        return cudaChunk;
    return tensorCores ? std::min(kCudaScanChunk, m_config.chunkSize) : m_config.chunkSize;
}

// y * silu(z), RMS-normalised per group (mamba_ssm; transformers ignores the groups here), then out_proj.
torch::Tensor Mamba2Model::gatedOutput(const Mamba2Layer& layer, const torch::Tensor& y,
                                       const torch::Tensor& z, bool native) const
{
    auto out = [&](const torch::Tensor& v) {
        return native ? projectNative(v, layer.outProj, layer.outProjBias)
                      : project(v, layer.outProj, layer.outProjBias);
    };
    const int64_t G = m_config.ngroups, dIn = m_config.dInner();
    std::vector<int64_t> grouped = y.sizes().vec();
    grouped.back() = G;
    grouped.push_back(dIn / G);
    if (fused::enabled(y) && z.is_cuda() && layer.gateNorm.scalar_type() == torch::kFloat32)
        return out(fused::gatedRmsNorm(y, z, layer.gateNorm, G, m_config.normEps, m_dtype));
    torch::Tensor v = (y * F::silu(z)).reshape(grouped);
    v = v * torch::rsqrt(v.pow(2).mean(-1, true) + m_config.normEps);
    v = v.reshape(y.sizes()) * layer.gateNorm;
    return out(v);
}

ForwardResult Mamba2Model::forward(const torch::Tensor& ids, ModelState& state, bool recurrent,
                                   bool withProbes)
{
    auto& s = static_cast<Mamba2State&>(state);
    std::vector<MixerProbes> probes;
    ForwardResult r;
    r.hidden = recurrent ? forwardRecurrent(ids, s, withProbes ? &probes : nullptr)
                         : forwardChunked(ids, s, withProbes ? &probes : nullptr);
    if (withProbes) {
        std::vector<torch::Tensor> dt, decay, norm, retention, oldShare, readout, insertion, bNorm, convRms,
            maxAbs;
        for (auto& p : probes) {
            dt.push_back(p.dt);
            decay.push_back(p.decay);
            norm.push_back(p.stateNorm);
            if (m_context.window > 0) {
                retention.push_back(torch::cat(p.retention, 1));
                oldShare.push_back(torch::cat(p.oldShare, 1));
                readout.push_back(torch::cat(p.readoutShare, 1));
                insertion.push_back(torch::cat(p.insertion, 1));
                bNorm.push_back(torch::cat(p.bNorm, 1));
                convRms.push_back(torch::cat(p.convRms, 1));
                maxAbs.push_back(torch::cat(p.maxAbs, 1));
            }
        }
        // [B, T, L, H], token-major like the trace.
        r.probes = {torch::stack(dt, 2), torch::stack(decay, 2), torch::stack(norm, 2)};
        if (m_context.window > 0)
            for (auto* v : {&retention, &oldShare, &readout, &insertion, &bNorm, &convRms, &maxAbs})
                r.probes.push_back(torch::stack(*v, 2));
    }
    return r;
}

torch::Tensor Mamba2Model::forwardChunked(const torch::Tensor& ids, Mamba2State& s,
                                          std::vector<MixerProbes>* probes)
{
    torch::Tensor residual = F::embedding(ids, m_weights.embedding).to(accumulation());
    const bool roundResidual = !m_config.residualInFp32 && m_dtype != accumulation();
    // On the GPU the residual add, each norm and the cast for in_proj are one kernel, and the mixer's
    // output stays in the model's dtype until that kernel adds it (same sums, fewer passes).
    bool fusedResidual = !roundResidual && fused::addRmsNormSupported(residual, m_weights.normF);
    for (const Mamba2Layer& layer : m_weights.layers)
        fusedResidual = fusedResidual && fused::addRmsNormSupported(residual, layer.norm);
    if (fusedResidual) {
        torch::Tensor delta; // the previous layer's output, not yet added
        for (size_t l = 0; l < m_weights.layers.size(); ++l) {
            MixerProbes p;
            const torch::Tensor u =
                fused::addRmsNorm(residual, delta, m_weights.layers[l].norm, m_config.normEps, m_dtype);
            delta = mixerChunked(l, u, s, s.tokens, probes ? &p : nullptr, true);
            if (probes)
                probes->push_back(std::move(p));
        }
        s.tokens += ids.size(1);
        return fused::addRmsNorm(residual, delta, m_weights.normF, m_config.normEps, accumulation());
    }
    for (size_t l = 0; l < m_weights.layers.size(); ++l) {
        const Mamba2Layer& layer = m_weights.layers[l];
        MixerProbes p;
        torch::Tensor u = rmsNorm(residual, layer.norm, m_config.normEps);
        residual = residual + mixerChunked(l, u, s, s.tokens, probes ? &p : nullptr);
        if (roundResidual)
            residual = residual.to(m_dtype).to(accumulation());
        if (probes)
            probes->push_back(std::move(p));
    }
    s.tokens += ids.size(1);
    return rmsNorm(residual, m_weights.normF, m_config.normEps);
}

// The readable reference: every token through every layer, exactly the decode step.
torch::Tensor Mamba2Model::forwardRecurrent(const torch::Tensor& ids, Mamba2State& s,
                                            std::vector<MixerProbes>* probes)
{
    const int64_t T = ids.size(1);
    const size_t nLayers = m_weights.layers.size();
    std::vector<std::vector<MixerProbes>> perToken(nLayers);
    std::vector<torch::Tensor> hidden;
    for (int64_t t = 0; t < T; ++t) {
        torch::Tensor residual = F::embedding(ids.select(1, t), m_weights.embedding).to(accumulation());
        for (size_t l = 0; l < nLayers; ++l) {
            const Mamba2Layer& layer = m_weights.layers[l];
            MixerProbes p;
            torch::Tensor u = rmsNorm(residual, layer.norm, m_config.normEps);
            residual = residual + mixerStep(l, u, s, s.tokens, probes ? &p : nullptr);
            if (!m_config.residualInFp32 && m_dtype != accumulation())
                residual = residual.to(m_dtype).to(accumulation());
            if (probes)
                perToken[l].push_back(std::move(p));
        }
        hidden.push_back(rmsNorm(residual, m_weights.normF, m_config.normEps));
        ++s.tokens;
    }
    if (probes) {
        for (size_t l = 0; l < nLayers; ++l) {
            std::vector<torch::Tensor> dt, decay, norm;
            for (auto& p : perToken[l]) {
                dt.push_back(p.dt);
                decay.push_back(p.decay);
                norm.push_back(p.stateNorm);
            }
            MixerProbes joined{torch::stack(dt, 1), torch::stack(decay, 1), torch::stack(norm, 1)};
            for (auto& p : perToken[l]) // the old-context probes come as [B, 1, H] pieces
                for (auto [from, to] : {std::pair{&p.retention, &joined.retention},
                                        {&p.oldShare, &joined.oldShare},
                                        {&p.readoutShare, &joined.readoutShare},
                                        {&p.insertion, &joined.insertion},
                                        {&p.bNorm, &joined.bNorm},
                                        {&p.convRms, &joined.convRms},
                                        {&p.maxAbs, &joined.maxAbs}})
                    to->insert(to->end(), from->begin(), from->end());
            probes->push_back(std::move(joined));
        }
    }
    return torch::stack(hidden, 1);
}

// The per-group [.., G, N] read as per head [.., H, N]: head h reads group h / (H / G). An expand, not
// repeat_interleave, so that a captured decode step allocates nothing on the host.
static torch::Tensor headsOf(const torch::Tensor& grouped, int64_t H)
{
    std::vector<int64_t> expanded = grouped.sizes().vec();
    const int64_t G = expanded[expanded.size() - 2];
    expanded.insert(expanded.end() - 1, H / G);
    std::vector<int64_t> out = grouped.sizes().vec();
    out[out.size() - 2] = H;
    return grouped.unsqueeze(-2).expand(expanded).reshape(out);
}

// One token: u [B, d] -> [B, d]. Follows mamba_ssm's Mamba2.step line by line.
torch::Tensor Mamba2Model::mixerStep(size_t l, const torch::Tensor& u, Mamba2State& s, int64_t count0,
                                     MixerProbes* probes) const
{
    const Mamba2Layer& layer = m_weights.layers[l];
    torch::Tensor& convState = s.conv[l];
    torch::Tensor& ssmState = s.ssm[l];
    const Mamba2Config& c = m_config;
    const Mitigation& m = m_mitigation;
    const int64_t Bsz = u.size(0), H = c.nHeads(), P = c.headdim, N = c.dState, G = c.ngroups;
    const int64_t position = count0 + 1;
    const auto parts =
        project(u, layer.inProj, layer.inProjBias).split_with_sizes({c.dInner(), c.convDim(), H}, -1);
    const torch::Tensor &z = parts[0], &xBC = parts[1], &dtRaw = parts[2];

    // Conv: the window is the last d_conv - 1 raw inputs and this one; tap d_conv - 1 is the newest.
    torch::Tensor window = torch::cat({convState, xBC.unsqueeze(-1)}, -1);
    convState = window.index({Slice(), Slice(), Slice(1, None)});
    torch::Tensor conv = (window * layer.convWeight).sum(-1);
    if (layer.convBias.defined())
        conv = conv + layer.convBias;
    const auto xbc = F::silu(conv).split_with_sizes({c.dInner(), G * N, G * N}, -1);
    torch::Tensor x = xbc[0].reshape({Bsz, H, P});
    torch::Tensor Bh = headsOf(xbc[1].reshape({Bsz, G, N}), H);
    torch::Tensor Ch = headsOf(xbc[2].reshape({Bsz, G, N}), H);

    torch::Tensor dt = discretize(layer, dtRaw); // [B, H]
    const torch::Tensor logAlpha = logDecay(layer, dt);
    torch::Tensor alpha = logAlpha.exp();
    if (m.B != 1.0)
        Bh = Bh * m.B;
    // S <- alpha S + Delta x B^T; y = S C + D x
    ssmState = ssmState * alpha.view({Bsz, H, 1, 1}) + (dt.unsqueeze(-1) * x).unsqueeze(-1) * Bh.unsqueeze(2);
    torch::Tensor y = torch::matmul(ssmState, Ch.unsqueeze(-1)).squeeze(-1);
    const torch::Tensor sumBefore = s.decaySum[l];
    const bool context = probes && m_context.window > 0;
    if (context)
        contextProbes(windowSnapshot(s.contextSnapshots[l], position, m_context), sumBefore,
                      logAlpha.unsqueeze(1), Ch.unsqueeze(1), y.unsqueeze(1),
                      ssmState.pow(2).sum({-2, -1}).sqrt().unsqueeze(1), *probes);
    if (m.window > 0) {
        // Read out h_t - alpha_{b+1:t} h_b: what the tokens after the snapshot b put in.
        const StateSnapshot* snap = windowSnapshot(s.snapshots[l], position, m.windowSpec());
        if (snap) {
            const torch::Tensor decay = (sumBefore + logAlpha.to(torch::kFloat64) - snap->decaySum)
                                            .to(accumulation())
                                            .exp(); // [B, H]
            y = y - torch::matmul(snap->state, Ch.unsqueeze(-1)).squeeze(-1) * decay.unsqueeze(-1);
        }
    }
    if (m.window > 0 || context)
        s.decaySum[l] = sumBefore + logAlpha.to(torch::kFloat64);
    y = y + x * (c.dHasHdim ? layer.D.view({1, H, P}) : layer.D.view({1, H, 1}));
    settleState(s, l, position, m, m_tau, context ? &m_context : nullptr);
    if (context) {
        probes->insertion = {(dt * Bh.norm(2, {-1}) * x.norm(2, {-1})).unsqueeze(1)};
        probes->bNorm = {Bh.norm(2, {-1}).unsqueeze(1)};
        probes->maxAbs = {ssmState.abs().amax({-2, -1}).unsqueeze(1)};
        // The conv state after the token: the head's last d_conv - 1 raw x inputs.
        probes->convRms = {convState.narrow(1, 0, c.dInner())
                               .reshape({Bsz, H, P * (c.dConv - 1)})
                               .pow(2)
                               .mean(-1)
                               .sqrt()
                               .unsqueeze(1)};
    }
    if (probes) {
        probes->dt = dt;
        probes->decay = alpha;
        probes->stateNorm = ssmState.pow(2).sum({-2, -1}).sqrt();
    }
    return gatedOutput(layer, y.reshape({Bsz, c.dInner()}), z);
}

// A chunk of tokens: u [B, T, d] -> [B, T, d], carrying the conv left context and the SSM state.
torch::Tensor Mamba2Model::mixerChunked(size_t l, const torch::Tensor& u, Mamba2State& s, int64_t count0,
                                        MixerProbes* probes, bool native) const
{
    const Mamba2Layer& layer = m_weights.layers[l];
    torch::Tensor& convState = s.conv[l];
    const Mamba2Config& c = m_config;
    const int64_t Bsz = u.size(0), T = u.size(1), H = c.nHeads(), P = c.headdim, N = c.dState, G = c.ngroups;
    // The fused conv and gated norm read in_proj's output in the model's own dtype: no widened copy of
    // [T, d_in_proj]. The old-context probes read the padded input, which the fused conv never builds.
    const bool fusedConv = m_context.window == 0 && fused::enabled(convState) && c.dConv <= 8;
    const torch::Tensor projected = fusedConv ? projectNative(u, layer.inProj, layer.inProjBias)
                                              : project(u, layer.inProj, layer.inProjBias);
    const auto parts = projected.split_with_sizes({c.dInner(), c.convDim(), H}, -1);
    const torch::Tensor &z = parts[0], &xBC = parts[1];

    const bool positional = m_mitigation.positional();
    // Half-precision models on the GPU take the tensor-core scan, whose operands are no coarser than
    // the model's own (bfloat16 read-out, TF32 chunk states); float32 models keep the float32 path their
    // fixtures hold them to. (convState is in the activations' type, which the scan's inputs share.)
    const bool tensorCores = !positional && m_context.window == 0 && fused::enabled(convState) &&
                             fused::tensorCoreScan() &&
                             (m_dtype == torch::kBFloat16 || m_dtype == torch::kFloat16) &&
                             fused::ssdScanSupported(P, N, std::min(scanChunk(true), T));

    // Depthwise causal conv over [previous d_conv - 1 inputs | this chunk]: no zeros at chunk starts.
    // For the tensor-core scan it also writes x | B | C in bfloat16, the scan's operands (unless B is
    // scaled below, which the scan then rounds itself).
    torch::Tensor padded, activated, activatedHalf;
    const bool halfOperands = fusedConv && tensorCores && m_mitigation.B == 1.0;
    if (fusedConv) {
        activated = fused::causalConvSilu(xBC, convState, layer.convWeight, layer.convBias,
                                          halfOperands ? &activatedHalf : nullptr); // [B, T, conv_dim]
    } else {
        padded = torch::cat({convState, xBC.transpose(1, 2)}, -1); // [B, conv_dim, K-1+T]
        convState =
            padded.index({Slice(), Slice(), Slice(padded.size(2) - (c.dConv - 1), None)}).contiguous();
        torch::Tensor conv = F::conv1d(padded, layer.convWeight.unsqueeze(1),
                                       F::Conv1dFuncOptions().bias(layer.convBias).groups(c.convDim()));
        activated = F::silu(conv).transpose(1, 2);
    }
    const auto xbc = activated.split_with_sizes({c.dInner(), G * N, G * N}, -1);
    torch::Tensor x = xbc[0].reshape({Bsz, T, H, P});
    torch::Tensor Bm = xbc[1].reshape({Bsz, T, G, N});
    torch::Tensor Cm = xbc[2].reshape({Bsz, T, G, N});

    // [B, T, H]; on CUDA in one kernel, read from in_proj's output in its own dtype.
    torch::Tensor dt, logAlpha;
    if (fusedConv && accumulation() == torch::kFloat32 &&
        fused::dtDecaySupported(parts[2], layer.dtBias, layer.ALog)) {
        std::tie(dt, logAlpha) =
            fused::dtDecay(parts[2], layer.dtBias, layer.ALog, c.dtLimitMin, c.dtLimitMax, m_mitigation.dt,
                           m_mitigation.A, m_mitigation.alpha);
    } else {
        dt = discretize(layer, parts[2].to(accumulation()));
        logAlpha = logDecay(layer, dt);
    }
    if (m_mitigation.B != 1.0)
        Bm = Bm * m_mitigation.B;
    torch::Tensor norm;
    const torch::Tensor before = s.ssm[l];
    torch::Tensor y;
    if (m_training && torch::GradMode::is_enabled() && !positional && !probes && m_context.window == 0) {
        if (count0 != 0)
            throw Error("training", "tokens before the chunk",
                        "0 (the training scan starts from a zero state)", std::to_string(count0));
        const torch::ScalarType operand =
            m_dtype == torch::kBFloat16 || m_dtype == torch::kFloat16 ? m_dtype : accumulation();
        y = trainingScalarDecayScan(x, dt, logAlpha, Bm, Cm, scanChunk(), operand);
    } else if (tensorCores)
        y = fused::ssdScan(x, dt, logAlpha, Bm, Cm, layer.D, scanChunk(true), s.ssm[l],
                           probes ? &norm : nullptr, activatedHalf);
    else
        y = positional ? positionalScan(l, x, dt, logAlpha, Bm, Cm, s, count0, probes)
                       : chunkedScalarDecayScan(x, dt, logAlpha, Bm, Cm, scanChunk(), s.ssm[l],
                                                probes ? &norm : nullptr);
    if (!positional && probes && m_context.window > 0) {
        // The old-context probes need the scan cut at their snapshots; the run itself must not change,
        // so they come from a second, cut scan from the same state, whose read-out and state are
        // dropped (it doubles the scan's cost).
        const torch::Tensor after = s.ssm[l];
        s.ssm[l] = before;
        positionalScan(l, x, dt, logAlpha, Bm, Cm, s, count0, probes);
        s.ssm[l] = after;
    }
    if (probes && m_context.window > 0) {
        const torch::Tensor bNorm = headsOf(Bm, H).norm(2, {-1}); // [B, T, H]
        probes->insertion = {dt * bNorm * x.norm(2, {-1})};       // Delta |B_t| |x_t|
        probes->bNorm = {bNorm};
        // After token t the conv state holds the raw inputs t - d_conv + 2 .. t: the sum of squares
        // over that window, as d_conv - 1 shifted slices (exact, where a running sum would cancel).
        const int64_t K1 = c.dConv - 1;
        const torch::Tensor sq = padded.narrow(1, 0, c.dInner()).reshape({Bsz, H, P, K1 + T}).pow(2).sum(2);
        torch::Tensor window =
            torch::zeros_like(sq.narrow(-1, 0, T)); // inputs t+1 .. t+K1 of [previous | chunk]
        for (int64_t k = 1; k <= K1; ++k)
            window = window + sq.narrow(-1, k, T);
        probes->convRms = {(window / double(P * std::max<int64_t>(1, K1))).sqrt().transpose(1, 2)};
    }
    if (!tensorCores) // the tensor-core scan adds D x itself
        y = y + x * (c.dHasHdim ? layer.D.view({1, 1, H, P}) : layer.D.view({1, 1, H, 1}));
    if (probes) {
        probes->dt = dt;
        probes->decay = logAlpha.exp();
        if (!positional)
            probes->stateNorm = norm; // the uncut scan's, as without the old-context probes
    }
    return gatedOutput(layer, y.reshape({Bsz, T, c.dInner()}), z, native);
}

// The old-context probes of n tokens read against the snapshot b of the context window (§3.4):
// retention alpha_{b+1:t}, the old share rho = |alpha_{b+1:t} h_b| / |h_t| (a scalar decay scales the
// norm) and the read-out share |C_t . alpha h_b| / |C_t . h_t|. sumBefore: the decay sum before the
// first of the tokens, cum [B, n, H] the log decays summed within them, Ch [B, n, H, N], y [B, n, H, P]
// the state's read-out, norm [B, n, H] |h_t|.
void Mamba2Model::contextProbes(const StateSnapshot* snap, const torch::Tensor& sumBefore,
                                const torch::Tensor& cum, const torch::Tensor& Ch, const torch::Tensor& y,
                                const torch::Tensor& norm, MixerProbes& p) const
{
    const double tiny = 1e-30;
    if (!snap) { // the window reaches the stream's start: nothing older, and retention since the start
        p.retention.push_back((sumBefore.to(accumulation()).unsqueeze(1) + cum).exp());
        p.oldShare.push_back(torch::zeros_like(cum));
        p.readoutShare.push_back(torch::zeros_like(cum));
        return;
    }
    const torch::Tensor retention =
        ((sumBefore - snap->decaySum).to(accumulation()).unsqueeze(1) + cum).exp();
    const torch::Tensor oldNorm = retention * snap->state.flatten(2).norm(2, {-1}).unsqueeze(1);
    const torch::Tensor old =
        torch::matmul(Ch.transpose(1, 2), snap->state.transpose(-1, -2)).transpose(1, 2) *
        retention.unsqueeze(-1);
    p.retention.push_back(retention);
    p.oldShare.push_back(oldNorm / norm.clamp_min(tiny));
    p.readoutShare.push_back(old.norm(2, {-1}) / y.norm(2, {-1}).clamp_min(tiny));
}

// The same numbers as the step path gives under normalisation and the window: the scan runs over
// segments that end where the step path normalises or snapshots, and acts there as the step does.
torch::Tensor Mamba2Model::positionalScan(size_t l, const torch::Tensor& x, const torch::Tensor& dt,
                                          const torch::Tensor& logAlpha, const torch::Tensor& Bm,
                                          const torch::Tensor& Cm, Mamba2State& s, int64_t count0,
                                          MixerProbes* probes) const
{
    const Mitigation& m = m_mitigation;
    const bool context = probes && m_context.window > 0;
    const int64_t T = x.size(1), H = x.size(2);
    std::vector<torch::Tensor> ys, norms;
    int64_t begin = 0;
    for (const int64_t end : segmentEnds(
             count0, T, {m.normalises() ? m.every : 0, m.snapshotEvery(), context ? m_context.every : 0})) {
        const int64_t n = end - begin, position = count0 + end;
        auto seg = [&](const torch::Tensor& t) { return t.narrow(1, begin, n); };
        const torch::Tensor a = seg(logAlpha);
        const torch::Tensor segStart = s.ssm[l];
        torch::Tensor segNorm, y;
        if (n == 1) {
            // One token (every = 1, exact windows): the step's update, a few kernels instead of the
            // chunked scan's dozens.
            const int64_t Bsz = x.size(0);
            torch::Tensor& S = s.ssm[l];
            S = S * a.select(1, 0).exp().view({Bsz, H, 1, 1}) +
                (seg(dt).select(1, 0).unsqueeze(-1) * seg(x).select(1, 0)).unsqueeze(-1) *
                    headsOf(seg(Bm).select(1, 0), H).unsqueeze(2);
            y = torch::matmul(S, headsOf(seg(Cm).select(1, 0), H).unsqueeze(-1)).squeeze(-1).unsqueeze(1);
            if (probes)
                segNorm = S.pow(2).sum({-2, -1}).sqrt().unsqueeze(1);
        } else {
            y = chunkedScalarDecayScan(seg(x), seg(dt), a, seg(Bm), seg(Cm), scanChunk(), s.ssm[l],
                                       probes ? &segNorm : nullptr);
        }
        const torch::Tensor sumBefore = s.decaySum[l];
        const torch::Tensor cum = m.window > 0 || context ? a.cumsum(1) : torch::Tensor(); // [B, n, H]
        if (context)
            contextProbes(windowSnapshot(s.contextSnapshots[l], position, m_context), sumBefore, cum,
                          headsOf(seg(Cm), H), y, segNorm, *probes);
        if (m.window > 0) {
            // Every token of the segment reads against one snapshot b: y_t -= alpha_{b+1:t} C_t . h_b.
            const StateSnapshot* snap = windowSnapshot(s.snapshots[l], position, m.windowSpec());
            if (snap) {
                const torch::Tensor decay =
                    ((sumBefore - snap->decaySum).to(accumulation()).unsqueeze(1) + cum).exp();
                const torch::Tensor Ch = headsOf(seg(Cm), H).transpose(1, 2); // [B, H, n, N]
                const torch::Tensor old =
                    torch::matmul(Ch, snap->state.transpose(-1, -2)).transpose(1, 2); // [B, n, H, P]
                y = y - old * decay.unsqueeze(-1);
            }
        }
        if (cum.defined())
            s.decaySum[l] = sumBefore + cum.select(1, n - 1).to(torch::kFloat64);
        torch::Tensor maxAbs;
        if (context) // rebuilt from the segment's start: the scan never holds per-token states
            maxAbs = scalarDecayStateMaxAbs(seg(x), seg(dt), a, seg(Bm), segStart);
        const torch::Tensor scale = settleState(s, l, position, m, m_tau, context ? &m_context : nullptr);
        if (scale.defined() && probes) {
            segNorm = segNorm.clone();
            segNorm.select(1, n - 1).mul_(scale);
        }
        if (scale.defined() && maxAbs.defined())
            maxAbs.select(1, n - 1).mul_(scale);
        if (maxAbs.defined())
            probes->maxAbs.push_back(maxAbs);
        ys.push_back(y);
        if (probes)
            norms.push_back(segNorm);
        begin = end;
    }
    if (probes) {
        probes->stateNorm = torch::cat(norms, 1);
        if (context) {
            probes->retention = {torch::cat(probes->retention, 1)};
            probes->oldShare = {torch::cat(probes->oldShare, 1)};
            probes->readoutShare = {torch::cat(probes->readoutShare, 1)};
            probes->maxAbs = {torch::cat(probes->maxAbs, 1)};
        }
    }
    return torch::cat(ys, 1);
}

// ---------------------------------------------------------------------------------------------------

namespace {

class Mamba2Architecture : public Architecture {
public:
    std::string name() const override { return "mamba2"; }
    std::string displayName() const override { return "Mamba-2"; }

    std::string recognise(const nlohmann::json& j) const override
    {
        if (j.value("model_type", std::string()) == "mamba2")
            return "transformers";
        if (j.contains("ssm_cfg") && j.contains("d_model") && j["ssm_cfg"].is_object() &&
            j["ssm_cfg"].value("layer", std::string()) == "Mamba2")
            return "mamba_ssm";
        return "";
    }

    ModelShape describe(const nlohmann::json& j, const std::string& layout, const std::string& file,
                        ProbeDetail) const override
    {
        const Mamba2Config c = parseMamba2Config(j, layout, file);
        ModelShape s;
        s.architecture = name();
        s.displayName = displayName();
        s.layout = layout;
        s.layers = c.nLayer;
        s.units = c.nHeads();
        s.unitName = "head";
        s.vocabSize = c.vocabSize;
        s.stateSize = c.stateSize();
        s.minParameters = saturatedCount(c.minParameters());
        s.stateSizeDefinition = "per layer: heads x headdim x d_state (SSM) + conv_dim x (d_conv - 1) (conv)";
        s.details = {{"d_model", std::to_string(c.dModel)},
                     {"layers", std::to_string(c.nLayer)},
                     {"d_state", std::to_string(c.dState)},
                     {"heads", std::to_string(c.nHeads()) + " x headdim " + std::to_string(c.headdim)},
                     {"groups", std::to_string(c.ngroups)},
                     {"d_conv", std::to_string(c.dConv)},
                     {"expand", std::to_string(c.expand)},
                     {"chunk_size", std::to_string(c.chunkSize)}};
        s.probes = probeDescsFor(c.nLayer, c.nHeads());
        return s;
    }

    std::vector<std::string> shapeNames() const override
    {
        return {"130m", "370m", "780m", "1.3b", "2.7b", "tiny"};
    }

    nlohmann::json shapeConfig(const std::string& shape, const nlohmann::json& overrides) const override
    {
        struct Row {
            const char* name;
            int64_t d, l;
        };
        const Row rows[] = {{"130m", 768, 24},  {"370m", 1024, 48}, {"780m", 1536, 48},
                            {"1.3b", 2048, 48}, {"2.7b", 2560, 64}, {"tiny", 64, 2}};
        for (const auto& r : rows)
            if (shape == r.name) {
                const bool tiny = shape == "tiny";
                nlohmann::json c = {{"model_type", "mamba2"},
                                    {"hidden_size", r.d},
                                    {"num_hidden_layers", r.l},
                                    {"vocab_size", tiny ? 512 : 50288}, // 50277 padded to a multiple of 16
                                    {"state_size", tiny ? 16 : 128},
                                    {"head_dim", tiny ? 16 : 64},
                                    {"n_groups", 1},
                                    {"expand", 2},
                                    {"conv_kernel", 4},
                                    {"chunk_size", 256},
                                    {"tie_word_embeddings", true}};
                for (const auto& [key, value] : overrides.items())
                    c[key] = value;
                // The heads fill the (possibly overridden) inner width unless set explicitly.
                if (!overrides.contains("num_heads") && c["hidden_size"].is_number_integer() &&
                    c["expand"].is_number_integer() && c["head_dim"].is_number_integer() &&
                    c["head_dim"].get<int64_t>() > 0)
                    c["num_heads"] = c["expand"].get<int64_t>() * c["hidden_size"].get<int64_t>() /
                                     c["head_dim"].get<int64_t>();
                return c;
            }
        return nullptr;
    }

    std::unique_ptr<RecurrentModel> load(const ModelFolder& folder, const TorchTarget& target) const override
    {
        return Mamba2Model::load(folder, target.device, target.dtype);
    }

    std::unique_ptr<RecurrentModel> random(const nlohmann::json& config, uint64_t seed,
                                           const TorchTarget& target) const override
    {
        const Mamba2Config c = parseMamba2Config(config, "transformers", "random model config");
        return Mamba2Model::random(c, seed, target.device, target.dtype);
    }
};

} // namespace

const Architecture& mamba2Architecture()
{
    static const Mamba2Architecture instance;
    return instance;
}

} // namespace statescope
