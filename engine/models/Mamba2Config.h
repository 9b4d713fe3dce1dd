#pragma once

// Mamba-2's shape (torch-free: the trainer's options carry one). The architecture itself is
// models/Mamba2.cpp.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

namespace statescope {

// The shape of a Mamba-2 language model, whichever of the two config.json dialects it came from
// (mamba_ssm / state-spaces or Hugging Face transformers). Keys that are absent take mamba_ssm's
// defaults; the padded vocabulary is set from the embedding's shape once the weights are read.
struct Mamba2Config {
    int64_t dModel = 0;
    int64_t nLayer = 0;
    int64_t vocabSize = 0;       // as the config states it (before padding)
    int64_t paddedVocabSize = 0; // rows of the embedding
    int64_t dState = 128;
    int64_t headdim = 64;
    int64_t ngroups = 1;
    int64_t dConv = 4;
    int64_t expand = 2;
    int64_t chunkSize = 256;
    int64_t padVocabSizeMultiple = 8;
    bool tieEmbeddings = true;
    bool residualInFp32 = true;
    bool bias = false; // in_proj / out_proj bias
    bool convBias = true;
    bool dHasHdim = false; // D per channel instead of per head
    double normEps = 1e-5;
    double dtLimitMin = 0.0;
    double dtLimitMax = 1.0 / 0.0; // +inf

    int64_t dInner() const { return expand * dModel; }
    int64_t nHeads() const { return dInner() / headdim; }
    int64_t convDim() const { return dInner() + 2 * ngroups * dState; }
    int64_t inProjRows() const { return 2 * dInner() + 2 * ngroups * dState + nHeads(); }
    // N_S of the paper: SSM state plus the conv state (d_conv - 1 inputs per channel), all layers.
    int64_t stateSize() const { return nLayer * (nHeads() * headdim * dState + convDim() * (dConv - 1)); }
    // Elements of the weights without biases (double: the validated bounds allow products past int64).
    double minParameters() const
    {
        const double d = double(dModel), inner = double(dInner()), h = double(nHeads());
        const double perLayer = d + double(inProjRows()) * d + double(convDim()) * double(dConv) + 3 * h +
                                inner + d * inner;
        return double(vocabSize) * d * (tieEmbeddings ? 1 : 2) + d + double(nLayer) * perLayer;
    }
    void validate(const std::string& file) const;
};

// Parses a config.json of either dialect ("mamba_ssm" or "transformers" layout), validated.
Mamba2Config parseMamba2Config(const nlohmann::json& config, const std::string& layout,
                               const std::string& file);

} // namespace statescope
