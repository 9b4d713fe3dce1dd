#pragma once

// Engine-internal (torch): what HGRN-2 (Hgrn2.cpp) and GLA (Gla.cpp) share, as flash-linear-attention
// (fla) builds both: the pre-norm block with RMSNorms and the SwiGLU MLP, the short convolutions,
// the GLA recurrence S_t = diag(g_t) S_{t-1} + k_t^T v_t read out as o_t = q_t . S_t per head (through
// models/ModelCommon.h's KeyDecayRecurrence), the loader of fla-hub's checkpoints and the config
// dialect. Each architecture's file holds only its token mixer and its registry entry
// (stuffed-mamba.md §3.5, §6.5; docs/adding-an-architecture.md).
#include "models/ModelCommon.h"
#include "models/RecurrentModel.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace statescope {

struct FlaConfig {
    enum class Kind { Hgrn2, Gla };
    Kind kind = Kind::Hgrn2;
    int64_t dModel = 2048, nLayer = 24, nHeads = 16, vocabSize = 32000, dFfn = 5632;
    double normEps = 1e-6;
    bool useShortConv = false, convBias = false;
    int64_t convSize = 4;
    bool tieEmbeddings = false;
    bool elementwiseAffine = true; // the output norm has a weight
    // HGRN-2: each head's key (forget) width; the value width is d_model / heads.
    int64_t expandRatio = 128;
    bool useLowerBound = true;
    // GLA: the key and value widths of all heads together, the key/value heads they are shared by, the
    // gate's low-rank width and its logit normaliser.
    int64_t dKey = 1024, dValue = 2048, nKvHeads = 4, gateLowRank = 16;
    double gateLogitNormalizer = 16;
    std::optional<double> clampMin;
    bool useOutputGate = true;
    std::string featureMap; // "" (none), "swish", "relu"
    // The chunked scan's block length (models/ModelCommon.h chunkedKeyDecayScan).
    int64_t chunkSize = 64;

    bool hgrn2() const { return kind == Kind::Hgrn2; }
    int64_t headK() const { return hgrn2() ? expandRatio : dKey / nHeads; }
    int64_t headV() const { return hgrn2() ? dModel / nHeads : dValue / nHeads; }
    // Widths of the three projections the recurrence reads: q, k (HGRN-2: f), v (HGRN-2: i).
    int64_t qWidth() const { return nHeads * headK(); }
    int64_t kWidth() const { return hgrn2() ? qWidth() : dKey / (nHeads / nKvHeads); }
    int64_t vWidth() const { return hgrn2() ? dModel : dValue / (nHeads / nKvHeads); }
    int64_t convChannels() const { return useShortConv ? qWidth() + kWidth() + vWidth() : 0; }
    // N_S: the K x V matrix of every head, plus the short convolutions' left context when there are
    // any (as the paper counts Mamba-2's conv state).
    int64_t stateSize() const
    {
        return nLayer * (nHeads * headK() * headV() + (useShortConv ? (convSize - 1) * convChannels() : 0));
    }
    double minParameters() const;
    void validate(const std::string& file) const;
};

// fla's config.json (model_type hgrn2 / gla). Options this engine does not compute are refused by name.
FlaConfig parseFlaConfig(const nlohmann::json& j, FlaConfig::Kind kind, const std::string& file);
nlohmann::ordered_json flaConfigJson(const FlaConfig& c);

struct FlaLayer {
    torch::Tensor attnNorm, mlpNorm; // [C] f32
    // The mixer's projections [out, C]; weight dtype. HGRN-2: q_proj, f_proj, i_proj; GLA: q_proj,
    // k_proj, v_proj and g_proj (the output gate).
    torch::Tensor wq, wk, wv, wg, wo;
    torch::Tensor gk0, gk1, gk1Bias;               // GLA's low-rank gate: [R, C], [K, R], [K] f32
    torch::Tensor gNorm;                           // HGRN-2: [C]; GLA: [head V], shared by the heads; f32
    torch::Tensor convQ, convK, convV;             // [D, W] f32, with use_short_conv
    torch::Tensor convQBias, convKBias, convVBias; // [D] f32, with conv_bias
    torch::Tensor lowerBound;                      // HGRN-2: [C] f32, this layer's lb (layer 0: zeros)
    torch::Tensor mlpGate, mlpUp, mlpDown;         // [I, C], [I, C], [C, I]; weight dtype
};

struct FlaWeights {
    torch::Tensor emb; // [V, C] weight dtype
    std::vector<FlaLayer> layers;
    torch::Tensor norm;        // [C] f32
    torch::Tensor head;        // [V, C] weight dtype (the embedding when tied)
    torch::Tensor lowerBounds; // HGRN-2: the stored [L, C] parameter (saveFolder writes it back)
};

class FlaModel : public RecurrentModel {
public:
    struct Mixed {
        torch::Tensor q, k, logw; // [B, T, H, K]; q already scaled by K^-1/2
        torch::Tensor v;          // [B, T, H, V]
        torch::Tensor gate;       // GLA: [B, T, H, V] output gate before swish; HGRN-2: undefined
    };

    FlaModel(FlaConfig config, FlaWeights weights, torch::ScalarType dtype, ProbeDetail detail);

    std::vector<ProbeDesc> probeDescs() const override;
    std::unique_ptr<ModelState> initialState(int64_t batch) const override;
    ForwardResult forward(const torch::Tensor& ids, ModelState& state, bool recurrent,
                          bool withProbes) override;
    torch::Tensor logits(const torch::Tensor& hidden) const override;
    int64_t parameterCount() const override;
    int64_t vocabSize() const override { return m_weights.emb.size(0); }
    torch::Device device() const override { return m_weights.emb.device(); }
    void saveFolder(const std::string& dir) const override;

    const FlaConfig& config() const { return m_config; }
    torch::ScalarType accumulation() const
    {
        return m_dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    }

    // Reads an fla checkpoint (current or older names: a fused [2I, C] gate_proj is split).
    static FlaWeights load(const ModelFolder& folder, const FlaConfig& c, torch::Device device,
                           torch::ScalarType dtype);
    static FlaWeights random(const FlaConfig& c, torch::Device device, torch::ScalarType dtype);

protected:
    // The architecture's token mixer up to the recurrence, from the attn_norm output h [B, T, C] and the
    // layer's conv left context (which it replaces).
    virtual Mixed mix(size_t l, const torch::Tensor& h, torch::Tensor& convState) const = 0;
    // From the recurrence's output o [B, T, H, V] to the mixer's output [B, T, C].
    virtual torch::Tensor output(size_t l, const torch::Tensor& o, const Mixed& m) const = 0;

    // x @ w^T in the weights' dtype, back in the accumulation dtype.
    torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w) const;
    // The causal depthwise convolutions of q, k and v over [left context | chunk], the context carried
    // in convState [B, Dq + Dk + Dv, W - 1]; the inputs [B, T, D] each.
    void shortConvs(size_t l, torch::Tensor& q, torch::Tensor& k, torch::Tensor& v,
                    torch::Tensor& convState) const;

    FlaConfig m_config;
    FlaWeights m_weights;
    torch::ScalarType m_dtype;
    ProbeDetail m_detail = ProbeDetail::Summary;

private:
    torch::Tensor block(size_t l, torch::Tensor x, ScanState& s, bool recurrent,
                        KeyDecayLayerProbes* probes) const;
    void checkMitigation() const;
};

// The registry's view of both (their Architecture subclasses call these).
ModelShape describeFla(const FlaConfig& c, const std::string& name, const std::string& displayName,
                       ProbeDetail detail);
std::vector<ProbeDesc> flaProbeDescs(const FlaConfig& c, ProbeDetail detail);
nlohmann::json flaShapeConfig(FlaConfig::Kind kind, const std::string& shape,
                              const nlohmann::json& overrides);
std::vector<std::string> flaShapeNames(FlaConfig::Kind kind);

} // namespace statescope
