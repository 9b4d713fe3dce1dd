#pragma once

// A model folder as found on disk (torch-free): which architecture and layout, its shape, where the
// weights and the tokenizer are. Reads config.json and the model card; never reads weights.
#include "models/Architecture.h"
#include "models/ModelCard.h"

#include <optional>
#include <string>
#include <vector>

namespace statescope {

struct ModelFolder {
    std::string path;
    std::string configPath;
    std::string configJson; // config.json as found, for the trace
    const Architecture* architecture = nullptr;
    ModelShape shape;
    std::vector<std::string> weightFiles; // safetensors shards or one pytorch_model.bin
    std::string weightsFormat;            // "safetensors" or "pytorch"
    std::optional<std::string> tokenizerPath;
    std::optional<std::string> cardPath;
    std::optional<ModelCard> card;
    std::optional<int64_t> trainingLength; // tokens, from the model card when it has one
};

// Throws Error naming the folder or file for anything missing, unknown or unsupported.
ModelFolder inspectModelFolder(const std::string& dir, ProbeDetail detail = ProbeDetail::Summary);

// Throws Error(config.json, "model size", ...) when the weights' stored bytes (the tensors the
// weight files' headers list) are fewer than two per parameter the config implies: loaders call it
// after reading the headers and before allocating anything.
void checkWeightBytes(const ModelFolder& m, uint64_t weightBytes);

// Throws Error(what, "memory", ...) when the weights shape implies (bytesPerElement each) exceed the
// memory this machine has available now: random weights are allocated only after this check.
void checkMemoryFor(const ModelShape& shape, int bytesPerElement, const std::string& what);

// The paper's linear fit (Stuffed Mamba, Fig. 11): T_forget[K tokens] = 5.172 * N_S[M] - 4.469 with K = 1024, in
// tokens; empty where the fit is not positive (N_S < 0.864 M).
std::optional<double> predictedForgetThreshold(int64_t stateSize);

} // namespace statescope
