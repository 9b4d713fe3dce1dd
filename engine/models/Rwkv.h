#pragma once

// Engine-internal (torch): what RWKV-5.2 (Rwkv5.cpp) and RWKV-6 (Rwkv6.cpp) share: the block
// (LayerNorms, token shift, wkv with per-key decays and the bonus u, GroupNorm over heads, the
// channel-mix FFN), both paths of the wkv, the loader of both checkpoint layouts and the config
// dialects. Each version's file holds only its own time-mix and its registry entry
// (stuffed-mamba.md §3.5, §6.4; docs/adding-an-architecture.md).
#include "models/ModelCommon.h"
#include "models/RecurrentModel.h"

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace statescope {

struct RwkvConfig {
    int version = 6; // 5: RWKV-5.2 (Eagle), 6: RWKV-6.0 (Finch)
    int64_t dModel = 0, nLayer = 0, dAtt = 0, headSize = 64, dFfn = 0, vocabSize = 65536;
    double headSizeDivisor = 8;
    double normEps = 1e-5;
    int64_t rescaleEvery = 6;
    // The chunked wkv's block length: a multiple of the 16-token sub-blocks its decays are taken in.
    int64_t chunkSize = 64;
    // RWKV-6's LoRA ranks (time_maa_w1 is [C, 5 x maaRank], time_decay_w1 [C, decayRank]); read from
    // the weights, or 32 / 64 (the World models' up to 3B) for random ones.
    int64_t maaRank = 32, decayRank = 64;

    int64_t nHeads() const { return dAtt / headSize; }
    // ln_x is a GroupNorm over heads of (x / head_size_divisor) with eps 1e-5; the same as eps
    // 1e-5 * divisor^2 on x itself.
    double groupNormEps() const { return 1e-5 * headSizeDivisor * headSizeDivisor; }
    // N_S counts the wkv matrices only (the paper's table); the two token-shift vectors (2 x d_model
    // per layer) are not counted.
    int64_t stateSize() const { return nLayer * nHeads() * headSize * headSize; }
    double minParameters() const;
    void validate(const std::string& file) const;
};

// config.json of the Hugging Face remote-code layout (model_type rwkv5 / rwkv6), or the one
// inferred from a native .pth (rwkvConfigFromTensors).
RwkvConfig parseRwkvConfig(const nlohmann::json& j, int version, const std::string& file);
nlohmann::ordered_json rwkvConfigJson(const RwkvConfig& c);

// BlinkDL's loader, in config form: a native checkpoint's version and sizes from its keys and shapes
// (`att.time_maa_x`: 6.0; `att.ln_x` with `att.gate` and a [H, S] `time_decay`: 5.2; the head count
// from `time_faaaa`). Null if the tensors are not this version's. overrides: a config.json beside the
// file with RWKV-LM's argument names, checked against the shapes; head_size_divisor only they give.
nlohmann::json rwkvConfigFromTensors(int version, const std::map<std::string, std::vector<int64_t>>& shapes,
                                     const nlohmann::json& overrides, const std::string& file);

// Every stored name (native "blocks.N.att.*", HF "rwkv.blocks.N.attention.*") as the native one.
std::string rwkvNativeName(const std::string& stored);

struct RwkvLayer {
    torch::Tensor ln1W, ln1B, ln2W, ln2B; // [C] f32
    // The time-mix's token-shift weights: RWKV-5 time_mix_{k,v,r,g}; RWKV-6 time_maa_{x,w,k,v,r,g}.
    std::vector<torch::Tensor> attMix; // [C] each, f32
    torch::Tensor maaW1, maaW2;        // RWKV-6: [C, 5 R], [5, R, C]
    torch::Tensor decay;               // RWKV-5: [H, S]; RWKV-6: [A] (w = exp(-exp(decay + ...)))
    torch::Tensor decayW1, decayW2;    // RWKV-6: [C, R2], [R2, A]
    torch::Tensor u;                   // [H, S] time_faaaa, the bonus of the current token
    torch::Tensor wr, wk, wv, wg, wo;  // [A, C] x 4, [C, A]; weight dtype
    torch::Tensor lnxW, lnxB;          // [A] f32
    torch::Tensor ffnMixK, ffnMixR;    // [C] f32 (RWKV-5 time_mix_*, RWKV-6 time_maa_*)
    torch::Tensor ffnK, ffnR, ffnV;    // [F, C], [C, C], [C, F]; weight dtype
};

struct RwkvWeights {
    torch::Tensor emb;        // [V, C] weight dtype
    torch::Tensor ln0W, ln0B; // [C] f32, on the embedding (block 0's ln0)
    std::vector<RwkvLayer> layers;
    torch::Tensor lnOutW, lnOutB; // [C] f32
    torch::Tensor head;           // [V, C] weight dtype
};

// Per layer: conv [B, 2, C], the token-shift states (the last token's ln1 and ln2 outputs), and ssm
// [B, H, S(key), S(value)], the wkv matrices; float32 (float64 for a float64 model).
using RwkvState = ScanState;

class RwkvModel : public RecurrentModel {
public:
    struct Mixed {
        torch::Tensor r, k, v; // [B, T, H, S]
        torch::Tensor g;       // [B, T, A], after silu
        torch::Tensor logw;    // [B, T, H, S] or broadcastable: log of the per-key decay, <= 0
    };

    RwkvModel(RwkvConfig config, RwkvWeights weights, torch::ScalarType dtype,
              ProbeDetail detail = ProbeDetail::Summary);

    std::string architecture() const override { return m_config.version == 5 ? "rwkv5" : "rwkv6"; }
    std::vector<ProbeDesc> probeDescs() const override;
    std::unique_ptr<ModelState> initialState(int64_t batch) const override;
    ForwardResult forward(const torch::Tensor& ids, ModelState& state, bool recurrent,
                          bool withProbes) override;
    torch::Tensor logits(const torch::Tensor& hidden) const override;
    int64_t parameterCount() const override;
    int64_t vocabSize() const override { return m_weights.emb.size(0); }
    torch::Device device() const override { return m_weights.emb.device(); }
    void saveFolder(const std::string& dir) const override;

    const RwkvConfig& config() const { return m_config; }
    torch::ScalarType accumulation() const
    {
        return m_dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    }

    // Reads either layout into weights (the version's attention through takeAttention).
    static RwkvWeights
    loadWeights(const ModelFolder& folder, const RwkvConfig& c, torch::Device device, torch::ScalarType dtype,
                const std::function<void(WeightLoader&, const std::string&, RwkvLayer&, const RwkvConfig&,
                                         torch::ScalarType)>& takeAttention);
    // Random weights of the shared parts (the version adds its attention's).
    static RwkvWeights randomWeights(const RwkvConfig& c, torch::Device device, torch::ScalarType dtype);

    // A [..] per-channel vector stored as [C], [1, 1, C] or [1, C]: read as [C].
    static torch::Tensor takeVector(WeightLoader& w, const std::string& name,
                                    const std::vector<int64_t>& shape, torch::ScalarType dtype);

protected:
    // The version's time-mix: r, k, v, silu(g) and the log decay from the ln1 output xx [B, T, C]
    // and the token shift sx (the previous token's xx) [B, T, C].
    virtual Mixed timeMix(const RwkvLayer& layer, const torch::Tensor& xx, const torch::Tensor& sx) const = 0;
    // The version's attention tensors under native names, for saveFolder.
    virtual void putAttention(const RwkvLayer& layer, const std::string& prefix,
                              std::vector<std::pair<std::string, torch::Tensor>>& out) const = 0;
    // x @ w^T in the weights' dtype, back in the accumulation dtype.
    torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w) const;

    RwkvConfig m_config;
    RwkvWeights m_weights;
    torch::ScalarType m_dtype;
    ProbeDetail m_detail = ProbeDetail::Summary;

private:
    torch::Tensor block(size_t l, torch::Tensor x, RwkvState& s, bool recurrent,
                        KeyDecayLayerProbes* probes) const;
    void applyKnobs(Mixed& m) const;
    void checkMitigation() const;
    // Whether the output projections and the residual are halved every rescale_every blocks (fp16 and
    // bf16 matrices, as the references do there).
    bool rescaled() const { return m_dtype == torch::kFloat16 || m_dtype == torch::kBFloat16; }
};

} // namespace statescope

namespace statescope {

// The registry's view of both versions (their Architecture subclasses call these).
ModelShape describeRwkv(const RwkvConfig& c, const std::string& layout, const std::string& name,
                        const std::string& displayName, ProbeDetail detail);
// The probes of a model of this config: decay and state_norm per head, and with full detail the
// decay of every key channel too.
std::vector<ProbeDesc> rwkvProbeDescs(const RwkvConfig& c, ProbeDetail detail);
// The named shapes of a version ("tiny" and the World models'), as a config.json with overrides.
nlohmann::json rwkvShapeConfig(int version, const std::string& shape, const nlohmann::json& overrides);
std::vector<std::string> rwkvShapeNames(int version);
// "transformers", or the layout a config inferred from a native .pth names.
std::string rwkvLayout(const nlohmann::json& j, const char* modelType);

} // namespace statescope
