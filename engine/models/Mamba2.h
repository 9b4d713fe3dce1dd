#pragma once

// Engine-internal: includes torch.
#include "models/Mamba2Config.h"
#include "models/ModelCommon.h"
#include "models/ModelFolder.h"
#include "models/RecurrentModel.h"

#include <nlohmann/json.hpp>

namespace statescope {

struct Mamba2Layer {
    torch::Tensor norm;                 // [d] f32, pre-mixer RMSNorm
    torch::Tensor inProj, inProjBias;   // [z | xBC | dt rows, d] weight dtype
    torch::Tensor convWeight, convBias; // [conv_dim, d_conv], [conv_dim] f32
    torch::Tensor dtBias, ALog, D;      // [H] f32 (A = -exp(A_log)); D [H] or [d_inner]
    torch::Tensor gateNorm;             // [d_inner] f32, gated RMSNorm per group
    torch::Tensor outProj, outProjBias; // [d, d_inner] weight dtype
};

struct Mamba2Weights {
    torch::Tensor embedding; // [V, d] weight dtype
    std::vector<Mamba2Layer> layers;
    torch::Tensor normF;  // [d] f32
    torch::Tensor lmHead; // [V, d] weight dtype (the embedding when tied)
};

// Per layer: the conv left context [B, conv_dim, d_conv - 1] (the last raw xBC inputs) and the SSM
// state [B, H, headdim, d_state], float32; the window's decay sums are per head.
using Mamba2State = ScanState;

// Mamba-2 as mamba_ssm computes it (reference: shared/reference/stuffed-mamba.md §7).
class Mamba2Model : public RecurrentModel {
public:
    Mamba2Model(Mamba2Config config, Mamba2Weights weights, torch::ScalarType weightDtype);

    static std::unique_ptr<Mamba2Model> load(const ModelFolder& folder, torch::Device device,
                                             torch::ScalarType weightDtype);
    // Random weights initialised the way mamba_ssm does, for benchmarks and training.
    static std::unique_ptr<Mamba2Model> random(const Mamba2Config& config, uint64_t seed,
                                               torch::Device device, torch::ScalarType weightDtype);

    std::string architecture() const override { return "mamba2"; }
    std::vector<ProbeDesc> probeDescs() const override;
    std::unique_ptr<ModelState> initialState(int64_t batch) const override;
    ForwardResult forward(const torch::Tensor& ids, ModelState& state, bool recurrent,
                          bool withProbes) override;
    torch::Tensor logits(const torch::Tensor& hidden) const override;
    torch::Tensor nativeLogits(const torch::Tensor& hidden) const override;
    bool probeDerivation(const std::string& probe, std::string* from,
                         std::vector<float>* scale) const override;
    int64_t parameterCount() const override;
    int64_t vocabSize() const override { return m_weights.embedding.size(0); }
    torch::Device device() const override { return m_weights.embedding.device(); }

    // Writes config.json (transformers layout) and model.safetensors (float32) into dir, which the
    // loader reads back; the tokenizer and the model card are the caller's.
    void saveFolder(const std::string& dir) const override;
    // Trainable tensors (the tied output layer once).
    std::vector<torch::Tensor> parameters() const;
    // Matmuls in this dtype over the stored weights (bfloat16 over float32 master weights when
    // training on CUDA); the casts are differentiable.
    void setComputeDtype(torch::ScalarType t) { m_dtype = t; }
    torch::ScalarType computeDtype() const { return m_dtype; }
    // The trainer's forward: while autograd records, a chunked forward from a fresh state takes
    // trainingScalarDecayScan (zero state in, none out; bfloat16 GEMMs under bfloat16 compute) and
    // leaves the state where it was. Forwards without autograd are unchanged.
    void setTraining(bool on) { m_training = on; }
    // Activations and states: float32 under any weight type, float64 with float64 weights (the
    // precision the identity tests check at).
    torch::ScalarType accumulation() const
    {
        return m_dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    }

    const Mamba2Config& config() const { return m_config; }
    // config.json in the transformers dialect.
    nlohmann::ordered_json configJson() const;
    Mamba2Weights& weights() { return m_weights; }

private:
    struct MixerProbes {
        torch::Tensor dt, decay, stateNorm; // [B, T, H]
        // The old-context probes, when on: pieces along T, joined by whoever collects them.
        std::vector<torch::Tensor> retention, oldShare, readoutShare, insertion, bNorm, convRms, maxAbs;
    };
    // Layer l over T tokens that follow count0 tokens of the stream (the step: the token at position
    // count0 + 1).
    // native: the output in the model's dtype (out_proj's own), for the fused residual step.
    torch::Tensor mixerChunked(size_t l, const torch::Tensor& u, Mamba2State& s, int64_t count0,
                               MixerProbes* probes, bool native = false) const;
    torch::Tensor mixerStep(size_t l, const torch::Tensor& u, Mamba2State& s, int64_t count0,
                            MixerProbes* probes) const;
    // The chunked scan cut at the positional mitigations' positions (normalisation, window snapshots)
    // and the old-context probes' snapshots; fills probes' state norm and old-context probes.
    torch::Tensor positionalScan(size_t l, const torch::Tensor& x, const torch::Tensor& dt,
                                 const torch::Tensor& logAlpha, const torch::Tensor& B,
                                 const torch::Tensor& C, Mamba2State& s, int64_t count0,
                                 MixerProbes* probes) const;
    void contextProbes(const StateSnapshot* snap, const torch::Tensor& sumBefore, const torch::Tensor& cum,
                       const torch::Tensor& Ch, const torch::Tensor& y, const torch::Tensor& norm,
                       MixerProbes& p) const;
    torch::Tensor gatedOutput(const Mamba2Layer& layer, const torch::Tensor& y, const torch::Tensor& z,
                              bool native = false) const;
    torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const;
    // The same product left in the model's dtype (what the fused kernels and the NLL kernel read).
    torch::Tensor projectNative(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const;
    torch::Tensor discretize(const Mamba2Layer& layer, const torch::Tensor& dtRaw) const;
    torch::Tensor logDecay(const Mamba2Layer& layer, const torch::Tensor& dt) const;
    // Tokens per chunk of the SSD scan: the config's chunk_size, at most kCpuScanChunk on the CPU and
    // kCudaScanChunk in the tensor-core scan.
    int64_t scanChunk(bool tensorCores = false) const;
    torch::Tensor forwardChunked(const torch::Tensor& ids, Mamba2State& s, std::vector<MixerProbes>* probes);
    torch::Tensor forwardRecurrent(const torch::Tensor& ids, Mamba2State& s,
                                   std::vector<MixerProbes>* probes);

    Mamba2Config m_config;
    Mamba2Weights m_weights;
    torch::ScalarType m_dtype;
    bool m_training = false;
};

} // namespace statescope
