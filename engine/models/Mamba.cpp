// Mamba (Gu & Dao, 2023; "Mamba-1") as mamba_ssm computes it: a one-token recurrent step (the
// readable reference, Mamba.step line by line) and a chunked path that runs the projections, the
// causal conv and the gates over a whole chunk and the selective scan over blocks of tokens. The two
// must agree. Reached only through the registry (models/Registry.cpp).
#include "Error.h"
#include "io/Json.h"
#include "models/ConfigFields.h"
#include "models/ModelCommon.h"
#include "models/RecurrentModel.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <numeric>

namespace statescope {

using torch::indexing::None;
using torch::indexing::Slice;
namespace F = torch::nn::functional;

namespace {

struct MambaConfig {
    int64_t dModel = 0;
    int64_t nLayer = 0;
    int64_t vocabSize = 0;
    int64_t dState = 16;
    int64_t dConv = 4;
    int64_t expand = 2;
    int64_t dtRank = 0; // 0 until resolved from "auto": ceil(d_model / 16)
    bool bias = false;
    bool convBias = true;
    bool tieEmbeddings = true;
    bool residualInFp32 = true;
    double normEps = 1e-5;

    int64_t dInner() const { return expand * dModel; }
    // N_S: per layer the SSM state (d_inner x d_state) and the conv state (d_conv - 1 inputs per channel).
    int64_t stateSize() const { return nLayer * (dInner() * dState + dInner() * (dConv - 1)); }
    // Elements of the weights without biases (double: the validated bounds allow products past int64).
    double minParameters() const
    {
        const double d = double(dModel), inner = double(dInner()), n = double(dState), r = double(dtRank);
        const double perLayer = d + 2 * inner * d + inner * double(dConv) + (r + 2 * n) * inner + inner * r +
                                inner * n + inner + d * inner;
        return double(vocabSize) * d * (tieEmbeddings ? 1 : 2) + d + double(nLayer) * perLayer;
    }
};

int64_t resolveDtRank(const nlohmann::json& obj, const char* key, int64_t dModel, const std::string& file,
                      const std::string& prefix)
{
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null() || (it->is_string() && it->get<std::string>() == "auto"))
        return (dModel + 15) / 16;
    return intField(obj, key, 0, file, prefix, 1, 1 << 16);
}

void validate(const MambaConfig& c, const std::string& file)
{
    // Bounds far above any real model keep every derived size inside int64.
    auto inRange = [&](const char* name, int64_t v, int64_t max) {
        if (v <= 0 || v > max)
            throw Error(file, name, "an integer in [1, " + std::to_string(max) + "]", std::to_string(v));
    };
    inRange("d_model", c.dModel, 1 << 20);
    inRange("n_layer", c.nLayer, 1 << 12);
    inRange("d_state", c.dState, 1 << 12);
    inRange("d_conv", c.dConv, 1 << 10);
    inRange("expand", c.expand, 1 << 6);
    inRange("dt_rank", c.dtRank, 1 << 16);
    if (c.vocabSize < 0 || c.vocabSize > (int64_t(1) << 31))
        throw Error(file, "vocab_size", "an integer in [0, 2^31]", std::to_string(c.vocabSize));
    if (!(c.normEps > 0) || !std::isfinite(c.normEps))
        throw Error(file, "layer_norm_epsilon", "a finite number > 0", std::to_string(c.normEps));
}

// state-spaces / mamba_ssm: {d_model, n_layer, vocab_size, ssm_cfg: {} or {layer: "Mamba1", ...}}
MambaConfig parseMamba1Ssm(const nlohmann::json& j, const std::string& file)
{
    MambaConfig c;
    c.dModel = intField(j, "d_model", 0, file, "", 1, 1 << 20);
    c.nLayer = intField(j, "n_layer", 0, file);
    c.vocabSize = intField(j, "vocab_size", 0, file, "", 0);
    c.tieEmbeddings = boolField(j, "tie_embeddings", true, file);
    c.residualInFp32 = boolField(j, "residual_in_fp32", true, file);
    if (!boolField(j, "rms_norm", true, file))
        throw Error(file, "rms_norm", "true (LayerNorm blocks are not supported)", "false");
    const int64_t dInter = intField(j, "d_intermediate", 0, file, "", 0);
    if (dInter != 0)
        throw Error(file, "d_intermediate", "0 (MLP blocks are not supported)", std::to_string(dInter));
    if (j.contains("attn_layer_idx") && j["attn_layer_idx"].is_array() && !j["attn_layer_idx"].empty())
        throw Error(file, "attn_layer_idx", "[] (hybrid attention models are not supported)",
                    j["attn_layer_idx"].dump());
    const nlohmann::json& s = j.at("ssm_cfg");
    const std::string p = "ssm_cfg.";
    c.dState = intField(s, "d_state", 16, file, p);
    c.dConv = intField(s, "d_conv", 4, file, p);
    c.expand = intField(s, "expand", 2, file, p, 1, 1 << 6);
    c.dtRank = resolveDtRank(s, "dt_rank", c.dModel, file, p);
    c.bias = boolField(s, "bias", false, file, p);
    c.convBias = boolField(s, "conv_bias", true, file, p);
    if (s.contains("use_fast_path") && !s["use_fast_path"].is_boolean())
        throw Error(file, p + "use_fast_path", "true or false", s["use_fast_path"].dump());
    return c;
}

// Hugging Face transformers: {model_type: "mamba", hidden_size, state_size, time_step_rank, ...}
MambaConfig parseMamba1Transformers(const nlohmann::json& j, const std::string& file)
{
    MambaConfig c;
    c.dModel = intField(j, "hidden_size", 768, file, "", 1, 1 << 20);
    c.nLayer = intField(j, "num_hidden_layers", 32, file);
    c.vocabSize = intField(j, "vocab_size", 50280, file, "", 0);
    c.dState = intField(j, "state_size", 16, file);
    c.dConv = intField(j, "conv_kernel", 4, file);
    c.expand = intField(j, "expand", 2, file, "", 1, 1 << 6);
    c.dtRank = resolveDtRank(j, "time_step_rank", c.dModel, file, "");
    c.bias = boolField(j, "use_bias", false, file);
    c.convBias = boolField(j, "use_conv_bias", true, file);
    c.tieEmbeddings = boolField(j, "tie_word_embeddings", true, file);
    c.residualInFp32 = boolField(j, "residual_in_fp32", true, file);
    c.normEps = numberField(j, "layer_norm_epsilon", 1e-5, file);
    const std::string act = stringField(j, "hidden_act", "silu", file);
    if (act != "silu")
        throw Error(file, "hidden_act", "\"silu\"", "\"" + act + "\"");
    if (j.contains("intermediate_size") && !j["intermediate_size"].is_null()) {
        const int64_t inter = intField(j, "intermediate_size", 0, file);
        if (inter != c.expand * c.dModel)
            throw Error(file, "intermediate_size",
                        "expand * hidden_size = " + std::to_string(c.expand * c.dModel),
                        std::to_string(inter));
    }
    return c;
}

MambaConfig parseConfig(const nlohmann::json& j, const std::string& layout, const std::string& file)
{
    MambaConfig c = layout == "transformers" ? parseMamba1Transformers(j, file) : parseMamba1Ssm(j, file);
    validate(c, file);
    return c;
}

// Summary probes add up channels in groups of up to 64 (a power of two dividing d_inner), so that a
// Mamba-1 layer shows about as many units as a Mamba-2 layer has heads (130m: 24 groups of 64).
int64_t channelGroups(int64_t dInner, ProbeDetail detail)
{
    if (detail == ProbeDetail::Full)
        return dInner;
    int64_t size = 64;
    while (dInner % size != 0)
        size /= 2;
    return dInner / size;
}

const char* const kGroupMeaning =
    "Mamba channel group: consecutive channels of d_inner, each with a d_state-vector state and its own "
    "decay per state entry";
const char* const kChannelMeaning =
    "Mamba channel: a d_state-vector state with its own decay per state entry";

std::vector<ProbeDesc> mamba1ProbeDescs(int64_t layers, int64_t units, ProbeDetail detail)
{
    const bool full = detail == ProbeDetail::Full;
    const std::vector<int64_t> shape{layers, units};
    const std::vector<std::string> axes{"layer", full ? "channel" : "channel_group"};
    const char* meaning = full ? kChannelMeaning : kGroupMeaning;
    const std::string over = full ? "" : ", mean over the group's channels";
    return {
        {"dt", "step size Delta = softplus(dt_proj(x_proj(x)) + dt_bias)" + over, shape, axes, meaning, "",
         ProbeSummary::Mean, "Δ"},
        {kDecayProbe,
         "forget gate: exp(mean of Delta * A over the state entries" +
             std::string(full ? "" : " and channels") + "), A = -exp(A_log)",
         shape, axes, meaning, "", ProbeSummary::GeoMean, "α"},
        {kStateNormProbe,
         full ? "Frobenius norm of the channel's SSM state after the token"
              : "Frobenius norm of the group's SSM states after the token (root-sum-square of its channels)",
         shape, axes, meaning, "", ProbeSummary::RootSumSquare, "‖S‖"},
    };
}

struct MambaLayer {
    torch::Tensor norm;                 // [d] f32
    torch::Tensor inProj, inProjBias;   // [2 d_inner, d] weight dtype: x | z
    torch::Tensor convWeight, convBias; // [d_inner, d_conv], [d_inner] f32
    torch::Tensor xProj;                // [dt_rank + 2 d_state, d_inner] weight dtype
    torch::Tensor dtProj, dtBias;       // [d_inner, dt_rank] weight dtype, [d_inner] f32
    torch::Tensor A;                    // [d_inner, d_state] f32, -exp(A_log)
    torch::Tensor D;                    // [d_inner] f32
    torch::Tensor outProj, outProjBias; // [d, d_inner] weight dtype
};

struct MambaWeights {
    torch::Tensor embedding; // [V, d]
    std::vector<MambaLayer> layers;
    torch::Tensor normF;  // [d] f32
    torch::Tensor lmHead; // [V, d] (the embedding when tied)
};

// Per layer: the conv left context [B, d_inner, d_conv - 1] (the last raw x inputs) and the SSM state
// [B, d_inner, d_state], float32. The window's decay sums are the running sums of Delta per channel.
using MambaState = ScanState;

// Per layer, per token and channel: Delta, the mean log-decay over the state entries and the squared
// state norm; grouped into units at the end.
struct MixerProbes {
    torch::Tensor dt, logDecay, normSq; // [B, T, d_inner]
    // The old-context probes, when on, per channel: log retention (mean over the state entries),
    // squared norms of the old state and of its read-out, the squared read-out, insertion strength.
    torch::Tensor logRetention, oldSq, oldReadSq, readSq, insertion;
    torch::Tensor bNorm;  // [B, T, 1]: |B_t|, one per layer
    torch::Tensor convMs; // [B, T, d_inner]: mean square of the conv state after the token
    torch::Tensor maxAbs; // [B, T, d_inner]: max |h| over the channel's state after the token
};

class MambaModel : public RecurrentModel {
public:
    MambaModel(MambaConfig config, MambaWeights weights, torch::ScalarType dtype, ProbeDetail detail)
        : m_config(config), m_weights(std::move(weights)), m_dtype(dtype), m_detail(detail),
          m_units(channelGroups(config.dInner(), detail))
    {
        if (m_dtype == torch::kFloat64) {
            for (MambaLayer& L : m_weights.layers)
                widenToFloat64({&L.norm, &L.convWeight, &L.convBias, &L.dtBias, &L.A, &L.D});
            widenToFloat64({&m_weights.normF});
        }
    }

    std::string architecture() const override { return "mamba"; }
    std::vector<ProbeDesc> probeDescs() const override
    {
        std::vector<ProbeDesc> d = mamba1ProbeDescs(m_config.nLayer, m_units, m_detail);
        if (m_context.window > 0)
            for (ProbeDesc& p :
                 oldContextProbeDescs(d.front().shape, d.front().axes, d.front().headMeaning, m_context))
                d.push_back(std::move(p));
        return d;
    }
    int64_t vocabSize() const override { return m_weights.embedding.size(0); }
    torch::Device device() const override { return m_weights.embedding.device(); }

    std::unique_ptr<ModelState> initialState(int64_t batch) const override
    {
        auto s = std::make_unique<MambaState>();
        auto f32 = torch::TensorOptions().dtype(accumulation()).device(device());
        for (int64_t l = 0; l < m_config.nLayer; ++l) {
            s->conv.push_back(torch::zeros({batch, m_config.dInner(), m_config.dConv - 1}, f32));
            s->ssm.push_back(torch::zeros({batch, m_config.dInner(), m_config.dState}, f32));
            s->decaySum.push_back(torch::zeros({batch, m_config.dInner()}, f32.dtype(torch::kFloat64)));
        }
        s->snapshots.resize(static_cast<size_t>(m_config.nLayer));
        s->contextSnapshots.resize(static_cast<size_t>(m_config.nLayer));
        return s;
    }

    int64_t parameterCount() const override
    {
        int64_t n = m_weights.embedding.numel() + m_weights.normF.numel();
        if (!m_weights.lmHead.is_same(m_weights.embedding))
            n += m_weights.lmHead.numel();
        for (const auto& L : m_weights.layers)
            for (const auto* t : {&L.norm, &L.inProj, &L.inProjBias, &L.convWeight, &L.convBias, &L.xProj,
                                  &L.dtProj, &L.dtBias, &L.A, &L.D, &L.outProj, &L.outProjBias})
                if (t->defined())
                    n += t->numel();
        return n;
    }

    torch::Tensor logits(const torch::Tensor& hidden) const override
    {
        return project(hidden, m_weights.lmHead, torch::Tensor());
    }

    ForwardResult forward(const torch::Tensor& ids, ModelState& state, bool recurrent,
                          bool withProbes) override
    {
        auto& s = static_cast<MambaState&>(state);
        const int64_t T = ids.size(1);
        const size_t nLayers = m_weights.layers.size();
        std::vector<MixerProbes> probes(withProbes ? nLayers : 0);
        ForwardResult r;
        if (recurrent) {
            std::vector<std::vector<MixerProbes>> perToken(withProbes ? nLayers : 0);
            std::vector<torch::Tensor> hidden;
            for (int64_t t = 0; t < T; ++t) {
                torch::Tensor residual = embed(ids.narrow(1, t, 1));
                for (size_t l = 0; l < nLayers; ++l) {
                    MixerProbes p;
                    residual = addResidual(
                        residual, mixerStep(l, normed(residual, l), s, s.tokens, withProbes ? &p : nullptr));
                    if (withProbes)
                        perToken[l].push_back(std::move(p));
                }
                hidden.push_back(rmsNorm(residual, m_weights.normF, m_config.normEps));
                ++s.tokens;
            }
            r.hidden = torch::cat(hidden, 1);
            for (size_t l = 0; l < perToken.size(); ++l) {
                std::vector<torch::Tensor> dt, logDecay, normSq, ret, oldSq, oldReadSq, readSq, ins, bn, cms,
                    mx;
                for (auto& p : perToken[l]) {
                    dt.push_back(p.dt);
                    logDecay.push_back(p.logDecay);
                    normSq.push_back(p.normSq);
                    if (m_context.window > 0) {
                        ret.push_back(p.logRetention);
                        oldSq.push_back(p.oldSq);
                        oldReadSq.push_back(p.oldReadSq);
                        readSq.push_back(p.readSq);
                        ins.push_back(p.insertion);
                        bn.push_back(p.bNorm);
                        cms.push_back(p.convMs);
                        mx.push_back(p.maxAbs);
                    }
                }
                probes[l] = MixerProbes{};
                probes[l].dt = torch::cat(dt, 1);
                probes[l].logDecay = torch::cat(logDecay, 1);
                probes[l].normSq = torch::cat(normSq, 1);
                if (m_context.window > 0) {
                    probes[l].logRetention = torch::cat(ret, 1);
                    probes[l].oldSq = torch::cat(oldSq, 1);
                    probes[l].oldReadSq = torch::cat(oldReadSq, 1);
                    probes[l].readSq = torch::cat(readSq, 1);
                    probes[l].insertion = torch::cat(ins, 1);
                    probes[l].bNorm = torch::cat(bn, 1);
                    probes[l].convMs = torch::cat(cms, 1);
                    probes[l].maxAbs = torch::cat(mx, 1);
                }
            }
        } else {
            torch::Tensor residual = embed(ids);
            for (size_t l = 0; l < nLayers; ++l)
                residual = addResidual(residual, mixerChunked(l, normed(residual, l), s, s.tokens,
                                                              withProbes ? &probes[l] : nullptr));
            s.tokens += T;
            r.hidden = rmsNorm(residual, m_weights.normF, m_config.normEps);
        }
        if (withProbes) {
            std::vector<torch::Tensor> dt, decay, norm;
            for (auto& p : probes) {
                dt.push_back(groupMean(p.dt, m_units));
                decay.push_back(groupMean(p.logDecay, m_units).exp());
                norm.push_back(groupRootSumSquare(p.normSq, m_units));
            }
            r.probes = {torch::stack(dt, 2), torch::stack(decay, 2),
                        torch::stack(norm, 2)}; // [B, T, L, units]
            if (m_context.window > 0) {
                std::vector<torch::Tensor> retention, oldShare, readout, insertion, bNorm, convRms, maxAbs;
                for (auto& p : probes) {
                    retention.push_back(groupMean(p.logRetention, m_units).exp());
                    oldShare.push_back(groupRootSumSquare(p.oldSq, m_units) /
                                       groupRootSumSquare(p.normSq, m_units).clamp_min(1e-30));
                    readout.push_back(groupRootSumSquare(p.oldReadSq, m_units) /
                                      groupRootSumSquare(p.readSq, m_units).clamp_min(1e-30));
                    insertion.push_back(groupMean(p.insertion, m_units));
                    bNorm.push_back(p.bNorm.expand({-1, -1, m_units}));
                    convRms.push_back(groupMean(p.convMs, m_units).sqrt());
                    maxAbs.push_back(groupMax(p.maxAbs, m_units));
                }
                for (auto* v : {&retention, &oldShare, &readout, &insertion, &bNorm, &convRms, &maxAbs})
                    r.probes.push_back(torch::stack(*v, 2));
            }
        }
        return r;
    }

    nlohmann::ordered_json configJson() const
    {
        const MambaConfig& c = m_config;
        nlohmann::ordered_json j;
        j["architectures"] = {"MambaForCausalLM"};
        j["model_type"] = "mamba";
        j["hidden_size"] = c.dModel;
        j["num_hidden_layers"] = c.nLayer;
        j["vocab_size"] = m_weights.embedding.size(0);
        j["state_size"] = c.dState;
        j["expand"] = c.expand;
        j["intermediate_size"] = c.dInner();
        j["conv_kernel"] = c.dConv;
        j["time_step_rank"] = c.dtRank;
        j["use_bias"] = c.bias;
        j["use_conv_bias"] = c.convBias;
        j["hidden_act"] = "silu";
        j["residual_in_fp32"] = c.residualInFp32;
        j["layer_norm_epsilon"] = c.normEps;
        j["tie_word_embeddings"] = m_weights.lmHead.is_same(m_weights.embedding);
        return j;
    }

    void saveFolder(const std::string& dir) const override
    {
        writeConfigJson(dir, configJson().dump(2));
        FolderWriter w;
        w.put("backbone.embeddings.weight", m_weights.embedding);
        for (size_t l = 0; l < m_weights.layers.size(); ++l) {
            const MambaLayer& L = m_weights.layers[l];
            const std::string p = "backbone.layers." + std::to_string(l) + ".";
            const std::string m = p + "mixer.";
            w.put(p + "norm.weight", L.norm);
            w.put(m + "in_proj.weight", L.inProj);
            w.put(m + "in_proj.bias", L.inProjBias);
            w.put(m + "conv1d.weight", L.convWeight.unsqueeze(1));
            w.put(m + "conv1d.bias", L.convBias);
            w.put(m + "x_proj.weight", L.xProj);
            w.put(m + "dt_proj.weight", L.dtProj);
            w.put(m + "dt_proj.bias", L.dtBias);
            w.put(m + "A_log", (-L.A).log());
            w.put(m + "D", L.D);
            w.put(m + "out_proj.weight", L.outProj);
            w.put(m + "out_proj.bias", L.outProjBias);
        }
        w.put("backbone.norm_f.weight", m_weights.normF);
        if (!m_weights.lmHead.is_same(m_weights.embedding))
            w.put("lm_head.weight", m_weights.lmHead);
        w.write(dir + "/model.safetensors");
    }

private:
    torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const
    {
        const torch::Tensor bias = b.defined() ? b.to(m_dtype) : torch::Tensor();
        return F::linear(x.to(m_dtype), w.to(m_dtype), bias).to(accumulation());
    }

    torch::Tensor embed(const torch::Tensor& ids) const
    {
        return F::embedding(ids, m_weights.embedding).to(accumulation());
    }

    torch::Tensor normed(const torch::Tensor& residual, size_t layer) const
    {
        return rmsNorm(residual, m_weights.layers[layer].norm, m_config.normEps);
    }

    // mamba_ssm keeps the residual in the weights' dtype unless residual_in_fp32.
    torch::Tensor addResidual(const torch::Tensor& residual, const torch::Tensor& out) const
    {
        torch::Tensor r = residual + out;
        if (!m_config.residualInFp32 && m_dtype != accumulation())
            r = r.to(m_dtype).to(accumulation());
        return r;
    }

    // x [.., d_inner] after the conv -> Delta [.., d_inner], B and C [.., d_state].
    void selectiveInputs(const MambaLayer& L, const torch::Tensor& x, torch::Tensor& dt, torch::Tensor& B,
                         torch::Tensor& C) const
    {
        const int64_t R = m_config.dtRank, N = m_config.dState;
        const auto parts = project(x, L.xProj, torch::Tensor()).split_with_sizes({R, N, N}, -1);
        dt = F::softplus(project(parts[0], L.dtProj, torch::Tensor()) + L.dtBias);
        B = parts[1];
        C = parts[2];
        // The mitigations' lambda_Delta and lambda_B; each skipped at 1 (bit for bit the original).
        if (m_mitigation.dt != 1.0)
            dt = dt * m_mitigation.dt;
        if (m_mitigation.B != 1.0)
            B = B * m_mitigation.B;
    }

    // A per channel and state, with the mitigations' lambda_A.
    torch::Tensor decayRate(const MambaLayer& L) const
    {
        return m_mitigation.A != 1.0 ? L.A * m_mitigation.A : L.A;
    }

    // exp(Delta A), times the mitigations' lambda_alpha.
    torch::Tensor decayOf(const torch::Tensor& dtA) const
    {
        return m_mitigation.alpha != 1.0 ? (dtA + std::log(m_mitigation.alpha)).exp() : dtA.exp();
    }

    // The probe's log decay per channel: Delta times the mean of A over the state, and log lambda_alpha.
    torch::Tensor logDecayProbe(const MambaLayer& L, const torch::Tensor& dt) const
    {
        torch::Tensor v = dt * decayRate(L).mean(-1);
        return m_mitigation.alpha != 1.0 ? v + std::log(m_mitigation.alpha) : v;
    }

    // y * silu(z), then out_proj (Mamba-1 has no gated norm).
    torch::Tensor gatedOutput(const MambaLayer& L, const torch::Tensor& y, const torch::Tensor& z) const
    {
        return project(y * F::silu(z), L.outProj, L.outProjBias);
    }

    // What the window subtracts from the read-out of tokens at positions `positions` [n] (float):
    // sum_n C_t[n] alpha_{b+1:t}[d, n] h_b[d, n], with log alpha_{b+1:t} = A'[d, n] (sum of Delta since
    // b) + (t - b) log lambda_alpha. dtSince [B, n, D], C [B, n, N] -> [B, n, D].
    torch::Tensor windowCorrection(const MambaLayer& L, const StateSnapshot& snap,
                                   const torch::Tensor& dtSince, const torch::Tensor& positions,
                                   const torch::Tensor& C) const
    {
        torch::Tensor logDecay = decayRate(L) * dtSince.unsqueeze(-1); // [B, n, D, N]
        if (m_mitigation.alpha != 1.0)
            logDecay = logDecay +
                       ((positions - double(snap.count)) * std::log(m_mitigation.alpha)).view({1, -1, 1, 1});
        return (logDecay.exp() * snap.state.unsqueeze(1) * C.unsqueeze(2)).sum(-1);
    }

    // The old-context probes of n tokens at positions `at` [n] read against the context snapshot (null:
    // the window reaches the stream's start), per channel into p's tensors at [from, from + n):
    // dtSince [B, n, D] Delta summed since the snapshot (since the start without one), C [B, n, N],
    // y [B, n, D] the state's read-out, x and dt [B, n, D], B [B, n, N].
    void contextProbes(const MambaLayer& L, const StateSnapshot* snap, const torch::Tensor& dtSince,
                       const torch::Tensor& at, const torch::Tensor& C, const torch::Tensor& y,
                       const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& B, int64_t from,
                       MixerProbes& p) const
    {
        const int64_t n = at.size(0);
        const double logAlpha = m_mitigation.alpha != 1.0 ? std::log(m_mitigation.alpha) : 0.0;
        const double since = snap ? double(snap->count) : 0.0;
        const torch::Tensor A = decayRate(L); // [D, N]
        torch::Tensor logRet = A.mean(-1) * dtSince + ((at - since) * logAlpha).view({1, -1, 1});
        p.logRetention.narrow(1, from, n).copy_(logRet);
        p.readSq.narrow(1, from, n).copy_(y.pow(2));
        p.insertion.narrow(1, from, n).copy_(dt * x.abs() * B.norm(2, {-1}, true));
        if (!snap) {
            p.oldSq.narrow(1, from, n).zero_();
            p.oldReadSq.narrow(1, from, n).zero_();
            return;
        }
        torch::Tensor logDecay = A * dtSince.unsqueeze(-1); // [B, n, D, N]
        if (logAlpha != 0.0)
            logDecay = logDecay + ((at - since) * logAlpha).view({1, -1, 1, 1});
        const torch::Tensor old = logDecay.exp() * snap->state.unsqueeze(1);
        p.oldSq.narrow(1, from, n).copy_(old.pow(2).sum(-1));
        p.oldReadSq.narrow(1, from, n).copy_((old * C.unsqueeze(2)).sum(-1).pow(2));
    }

    void allocateContext(MixerProbes& p, const torch::Tensor& like) const
    {
        for (torch::Tensor* t : {&p.logRetention, &p.oldSq, &p.oldReadSq, &p.readSq, &p.insertion, &p.maxAbs})
            *t = torch::empty_like(like);
    }

    // One token: u [B, 1, d] -> [B, 1, d]. Follows mamba_ssm's Mamba.step line by line.
    torch::Tensor mixerStep(size_t l, const torch::Tensor& u, MambaState& s, int64_t count0,
                            MixerProbes* probes) const
    {
        const MambaLayer& L = m_weights.layers[l];
        torch::Tensor& convState = s.conv[l];
        torch::Tensor& ssmState = s.ssm[l];
        const Mitigation& m = m_mitigation;
        const int64_t position = count0 + 1;
        const int64_t dIn = m_config.dInner();
        const auto xz = project(u.squeeze(1), L.inProj, L.inProjBias).split_with_sizes({dIn, dIn}, -1);
        // Conv: the window is the last d_conv - 1 raw inputs and this one; tap d_conv - 1 is the newest.
        torch::Tensor window = torch::cat({convState, xz[0].unsqueeze(-1)}, -1);
        convState = window.index({Slice(), Slice(), Slice(1, None)});
        torch::Tensor conv = (window * L.convWeight).sum(-1);
        if (L.convBias.defined())
            conv = conv + L.convBias;
        const torch::Tensor x = F::silu(conv); // [B, d_inner]
        torch::Tensor dt, Bm, Cm;
        selectiveInputs(L, x, dt, Bm, Cm);
        // h <- exp(Delta A) h + Delta x B^T; y = h C + D x
        const torch::Tensor dA = decayOf(dt.unsqueeze(-1) * decayRate(L));
        // As one multiply-add, rounded as the chunked scan rounds it.
        ssmState = torch::addcmul((dt * x).unsqueeze(-1) * Bm.unsqueeze(1), dA, ssmState);
        torch::Tensor y = torch::matmul(ssmState, Cm.unsqueeze(-1)).squeeze(-1);
        const bool context = probes && m_context.window > 0;
        if (context) {
            const StateSnapshot* snap = windowSnapshot(s.contextSnapshots[l], position, m_context);
            const torch::Tensor sum = s.decaySum[l] + dt.to(torch::kFloat64);
            const torch::Tensor since = (snap ? sum - snap->decaySum : sum).to(accumulation()).unsqueeze(1);
            allocateContext(*probes, x.unsqueeze(1));
            contextProbes(L, snap, since, torch::full({1}, double(position), x.options()), Cm.unsqueeze(1),
                          y.unsqueeze(1), x.unsqueeze(1), dt.unsqueeze(1), Bm.unsqueeze(1), 0, *probes);
            probes->bNorm = Bm.norm(2, {-1}, true).unsqueeze(1); // [B, 1, 1]
            probes->convMs = convState.pow(2).mean(-1).unsqueeze(1);
        }
        if (context && m.window <= 0)
            s.decaySum[l] = s.decaySum[l] + dt.to(torch::kFloat64);
        if (m.window > 0) {
            const StateSnapshot* snap = windowSnapshot(s.snapshots[l], position, m.windowSpec());
            s.decaySum[l] = s.decaySum[l] + dt.to(torch::kFloat64);
            if (snap) {
                const torch::Tensor since = (s.decaySum[l] - snap->decaySum).to(accumulation()).unsqueeze(1);
                const torch::Tensor at = torch::full({1}, double(position), x.options());
                y = y - windowCorrection(L, *snap, since, at, Cm.unsqueeze(1)).squeeze(1);
            }
        }
        y = y + L.D * x;
        settleState(s, l, position, m, m_tau, context ? &m_context : nullptr);
        if (context)
            probes->maxAbs = ssmState.abs().amax(-1).unsqueeze(1);
        if (probes) {
            probes->dt = dt.unsqueeze(1);
            probes->logDecay = logDecayProbe(L, dt).unsqueeze(1);
            probes->normSq = ssmState.pow(2).sum(-1).unsqueeze(1);
        }
        return gatedOutput(L, y, xz[1]).unsqueeze(1);
    }

    // A chunk: u [B, T, d] -> [B, T, d], carrying the conv left context and the SSM state. Under the
    // positional mitigations the scan blocks also end where the step path normalises or snapshots.
    torch::Tensor mixerChunked(size_t l, const torch::Tensor& u, MambaState& s, int64_t count0,
                               MixerProbes* probes) const
    {
        const MambaLayer& L = m_weights.layers[l];
        torch::Tensor& convState = s.conv[l];
        torch::Tensor& ssmState = s.ssm[l];
        const Mitigation& m = m_mitigation;
        const int64_t dIn = m_config.dInner(), T = u.size(1);
        const auto xz = project(u, L.inProj, L.inProjBias).split_with_sizes({dIn, dIn}, -1);
        // Depthwise causal conv over [previous d_conv - 1 inputs | this chunk]: no zeros at chunk starts.
        torch::Tensor padded = torch::cat({convState, xz[0].transpose(1, 2)}, -1); // [B, d_inner, K-1+T]
        convState =
            padded.index({Slice(), Slice(), Slice(padded.size(2) - (m_config.dConv - 1), None)}).contiguous();
        torch::Tensor conv =
            F::conv1d(padded, L.convWeight.unsqueeze(1), F::Conv1dFuncOptions().bias(L.convBias).groups(dIn));
        const torch::Tensor x = F::silu(conv).transpose(1, 2); // [B, T, d_inner]
        torch::Tensor dt, Bm, Cm;
        selectiveInputs(L, x, dt, Bm, Cm);

        const torch::Tensor A = decayRate(L);
        torch::Tensor y = torch::empty_like(x);
        torch::Tensor normSq = probes ? torch::empty_like(x) : torch::Tensor();
        const int64_t Q = scanBlock();
        const bool context = probes && m_context.window > 0;
        if (context) {
            allocateContext(*probes, x);
            probes->bNorm = Bm.norm(2, {-1}, true); // [B, T, 1]
            // After token t the conv state holds [previous | chunk] inputs t+1 .. t+d_conv-1.
            const int64_t K1 = m_config.dConv - 1;
            const torch::Tensor squares = padded.pow(2);
            torch::Tensor sq = torch::zeros_like(squares.narrow(-1, 0, T));
            for (int64_t k = 1; k <= K1; ++k)
                sq = sq + squares.narrow(-1, k, T);
            probes->convMs = (sq / double(std::max<int64_t>(1, K1))).transpose(1, 2);
        }
        const std::vector<int64_t> ends = m.positional() || context
                                              ? segmentEnds(count0, T,
                                                            {m.normalises() ? m.every : 0, m.snapshotEvery(),
                                                             context ? m_context.every : 0})
                                              : std::vector<int64_t>{T};
        int64_t b = 0;
        for (const int64_t end : ends) {
            const int64_t position = count0 + end;
            const StateSnapshot* snap =
                m.window > 0 ? windowSnapshot(s.snapshots[l], position, m.windowSpec()) : nullptr;
            const StateSnapshot* contextSnap =
                context ? windowSnapshot(s.contextSnapshots[l], position, m_context) : nullptr;
            for (; b < end;) {
                const int64_t n = std::min(Q, end - b);
                const torch::Tensor dtb = dt.narrow(1, b, n), xb = x.narrow(1, b, n), Cb = Cm.narrow(1, b, n);
                const torch::Tensor dA = decayOf(dtb.unsqueeze(-1) * A); // [B, n, D, N]
                const torch::Tensor dBx =
                    (dtb * xb).unsqueeze(-1) * Bm.narrow(1, b, n).unsqueeze(2);       // [B, n, D, N]
                const torch::Tensor states = elementwiseDecayScan(dA, dBx, ssmState); // h_t, [B, n, D, N]
                ssmState = states.select(1, n - 1).contiguous();
                torch::Tensor yb = torch::matmul(states, Cb.unsqueeze(-1)).squeeze(-1);
                if (m.window > 0 || context) {
                    const torch::Tensor cum = dtb.cumsum(1); // [B, n, D]
                    const torch::Tensor at = torch::arange(count0 + b + 1, count0 + b + n + 1, x.options());
                    if (context) {
                        const torch::Tensor base =
                            contextSnap ? s.decaySum[l] - contextSnap->decaySum : s.decaySum[l];
                        contextProbes(L, contextSnap, base.to(accumulation()).unsqueeze(1) + cum, at, Cb, yb,
                                      xb, dtb, Bm.narrow(1, b, n), b, *probes);
                    }
                    if (snap) {
                        const torch::Tensor since =
                            (s.decaySum[l] - snap->decaySum).to(accumulation()).unsqueeze(1) + cum;
                        yb = yb - windowCorrection(L, *snap, since, at, Cb);
                    }
                    s.decaySum[l] = s.decaySum[l] + cum.select(1, n - 1).to(torch::kFloat64);
                }
                y.narrow(1, b, n).copy_(yb);
                if (probes)
                    normSq.narrow(1, b, n).copy_(states.pow(2).sum(-1));
                if (context)
                    probes->maxAbs.narrow(1, b, n).copy_(states.abs().amax(-1));
                b += n;
            }
            const torch::Tensor scale = settleState(s, l, position, m, m_tau, context ? &m_context : nullptr);
            if (scale.defined() && probes)
                normSq.select(1, end - 1).mul_(scale.pow(2));
            if (scale.defined() && context)
                probes->maxAbs.select(1, end - 1).mul_(scale);
        }
        y = y + L.D * x;
        if (probes) {
            probes->dt = dt;
            probes->logDecay = logDecayProbe(L, dt);
            probes->normSq = normSq;
        }
        return gatedOutput(L, y, xz[1]);
    }

    // Tokens per scan block: on the CPU a block bounds the [block, d_inner, d_state] temporaries; on
    // CUDA longer blocks mean fewer, larger kernels.
    int64_t scanBlock() const { return device().is_cuda() ? 256 : 64; }
    // As Mamba2Model::accumulation: float64 throughout with float64 weights, float32 otherwise.
    torch::ScalarType accumulation() const
    {
        return m_dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    }

    MambaConfig m_config;
    MambaWeights m_weights;
    torch::ScalarType m_dtype;
    ProbeDetail m_detail;
    int64_t m_units;

    friend class MambaArchitecture;
};

class MambaArchitecture : public Architecture {
public:
    std::string name() const override { return "mamba"; }
    std::string displayName() const override { return "Mamba"; }

    std::string recognise(const nlohmann::json& j) const override
    {
        if (j.value("model_type", std::string()) == "mamba")
            return "transformers";
        if (j.contains("ssm_cfg") && j.contains("d_model") && !j.contains("model_type")) {
            const auto& s = j["ssm_cfg"];
            if (s.is_object() && (!s.contains("layer") || s["layer"] == "Mamba1"))
                return "mamba_ssm";
        }
        return "";
    }

    ModelShape describe(const nlohmann::json& j, const std::string& layout, const std::string& file,
                        ProbeDetail detail) const override
    {
        const MambaConfig c = parseConfig(j, layout, file);
        ModelShape s;
        s.architecture = name();
        s.displayName = displayName();
        s.layout = layout;
        s.layers = c.nLayer;
        s.units = channelGroups(c.dInner(), detail);
        s.unitName = detail == ProbeDetail::Full ? "channel" : "channel group";
        s.vocabSize = c.vocabSize;
        s.stateSize = c.stateSize();
        s.minParameters = saturatedCount(c.minParameters());
        s.stateSizeDefinition = "per layer: d_inner x d_state (SSM) + d_inner x (d_conv - 1) (conv)";
        s.details = {{"d_model", std::to_string(c.dModel)},
                     {"layers", std::to_string(c.nLayer)},
                     {"d_state", std::to_string(c.dState)},
                     {"d_inner", std::to_string(c.dInner()) + " in " + std::to_string(s.units) + " probe " +
                                     s.unitName + (s.units == 1 ? "" : "s")},
                     {"dt_rank", std::to_string(c.dtRank)},
                     {"d_conv", std::to_string(c.dConv)}};
        s.probes = mamba1ProbeDescs(c.nLayer, s.units, detail);
        return s;
    }

    std::vector<std::string> shapeNames() const override
    {
        return {"130m", "370m", "790m", "1.4b", "2.8b", "tiny"};
    }

    nlohmann::json shapeConfig(const std::string& shape, const nlohmann::json& overrides) const override
    {
        struct Row {
            const char* name;
            int64_t d, l;
        };
        // state-spaces' mamba-130m ... mamba-2.8b.
        const Row rows[] = {{"130m", 768, 24},  {"370m", 1024, 48}, {"790m", 1536, 48},
                            {"1.4b", 2048, 48}, {"2.8b", 2560, 64}, {"tiny", 64, 2}};
        for (const auto& r : rows)
            if (shape == r.name) {
                const bool tiny = shape == "tiny";
                nlohmann::json c = {{"model_type", "mamba"},
                                    {"hidden_size", r.d},
                                    {"num_hidden_layers", r.l},
                                    {"vocab_size", tiny ? 512 : 50280}, // 50277 padded to a multiple of 8
                                    {"state_size", 16},
                                    {"expand", 2},
                                    {"conv_kernel", 4},
                                    {"time_step_rank", "auto"},
                                    {"tie_word_embeddings", true}};
                for (const auto& [key, value] : overrides.items())
                    c[key] = value;
                return c;
            }
        return nullptr;
    }

    std::unique_ptr<RecurrentModel> load(const ModelFolder& folder, const TorchTarget& target) const override
    {
        const MambaConfig c = parseConfig(parsePythonJson(folder.configJson, folder.configPath),
                                          folder.shape.layout, folder.configPath);
        WeightLoader w(readWeights(folder, stateSpacesName), target.device);
        const auto dtype = target.dtype, f32 = torch::kFloat32;
        const std::string embName = "backbone.embedding.weight";
        const int64_t vocab = w.embeddingRows(embName, c.dModel, c.vocabSize);
        MambaWeights mw;
        mw.embedding = w.take(embName, {vocab, c.dModel}, dtype);
        const int64_t dIn = c.dInner(), N = c.dState, R = c.dtRank;
        for (int64_t l = 0; l < c.nLayer; ++l) {
            const std::string p = "backbone.layers." + std::to_string(l) + ".";
            const std::string m = p + "mixer.";
            MambaLayer L;
            L.norm = w.take(p + "norm.weight", {c.dModel}, f32);
            L.inProj = w.take(m + "in_proj.weight", {2 * dIn, c.dModel}, dtype);
            if (c.bias)
                L.inProjBias = w.take(m + "in_proj.bias", {2 * dIn}, dtype);
            L.convWeight = w.take(m + "conv1d.weight", {dIn, 1, c.dConv}, f32).squeeze(1).contiguous();
            if (c.convBias)
                L.convBias = w.take(m + "conv1d.bias", {dIn}, f32);
            L.xProj = w.take(m + "x_proj.weight", {R + 2 * N, dIn}, dtype);
            L.dtProj = w.take(m + "dt_proj.weight", {dIn, R}, dtype);
            L.dtBias = w.take(m + "dt_proj.bias", {dIn}, f32);
            L.A = -w.take(m + "A_log", {dIn, N}, f32).exp();
            L.D = w.take(m + "D", {dIn}, f32);
            L.outProj = w.take(m + "out_proj.weight", {c.dModel, dIn}, dtype);
            if (c.bias)
                L.outProjBias = w.take(m + "out_proj.bias", {c.dModel}, dtype);
            mw.layers.push_back(std::move(L));
        }
        mw.normF = w.take("backbone.norm_f.weight", {c.dModel}, f32);
        if (!c.tieEmbeddings)
            mw.lmHead = w.take("lm_head.weight", {vocab, c.dModel}, dtype);
        else
            mw.lmHead = mw.embedding;
        return std::make_unique<MambaModel>(c, std::move(mw), dtype, target.probeDetail);
    }

    // Random weights initialised as mamba_ssm does (S4D-real A, log-uniform Delta in [1e-3, 0.1]).
    std::unique_ptr<RecurrentModel> random(const nlohmann::json& config, uint64_t seed,
                                           const TorchTarget& target) const override
    {
        const MambaConfig c = parseConfig(config, "transformers", "random model config");
        torch::manual_seed(seed);
        auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(target.device);
        const auto dtype = target.dtype;
        const int64_t dIn = c.dInner(), N = c.dState, R = c.dtRank;
        MambaWeights mw;
        mw.embedding = (torch::randn({c.vocabSize, c.dModel}, f32) * 0.02).to(dtype);
        for (int64_t l = 0; l < c.nLayer; ++l) {
            MambaLayer L;
            L.norm = torch::ones({c.dModel}, f32);
            L.inProj = (torch::randn({2 * dIn, c.dModel}, f32) / std::sqrt(double(c.dModel))).to(dtype);
            const double bound = 1.0 / std::sqrt(double(c.dConv));
            L.convWeight = torch::rand({dIn, c.dConv}, f32) * (2 * bound) - bound;
            L.convBias = torch::rand({dIn}, f32) * (2 * bound) - bound;
            L.xProj = (torch::randn({R + 2 * N, dIn}, f32) / std::sqrt(double(dIn))).to(dtype);
            const double dtStd = 1.0 / std::sqrt(double(R));
            L.dtProj = (torch::rand({dIn, R}, f32) * (2 * dtStd) - dtStd).to(dtype);
            torch::Tensor dt =
                (torch::rand({dIn}, f32) * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3)).exp();
            dt = dt.clamp_min(1e-4);
            L.dtBias = dt + torch::log(-torch::expm1(-dt));
            L.A = -torch::arange(1, N + 1, f32).expand({dIn, N}).contiguous();
            L.D = torch::ones({dIn}, f32);
            L.outProj =
                (torch::randn({c.dModel, dIn}, f32) / std::sqrt(double(dIn * 2 * c.nLayer))).to(dtype);
            mw.layers.push_back(std::move(L));
        }
        mw.normF = torch::ones({c.dModel}, f32);
        mw.lmHead = mw.embedding;
        return std::make_unique<MambaModel>(c, std::move(mw), dtype, target.probeDetail);
    }
};

} // namespace

const Architecture& mambaArchitecture()
{
    static const MambaArchitecture instance;
    return instance;
}

} // namespace statescope
