#pragma once

// The architecture registry (torch-free). Each architecture lives in one file under engine/models/
// and is listed once in Registry.cpp; the runner, the CLI and the window reach architectures only
// through this interface (docs/adding-an-architecture.md).
#include "probes/Probes.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace statescope {

class RecurrentModel;
struct TorchTarget; // models/RecurrentModel.h: device, weight dtype, probe options
struct ModelFolder;

// How much probe detail a model reports. Summary keeps a trace's bytes per token bounded
// (Mamba-1 sums its channels into groups); Full gives every unit (each Mamba-1 channel).
enum class ProbeDetail { Summary, Full };
const char* probeDetailName(ProbeDetail d); // "summary", "full"

// What the registry tells of a model from its config alone, whatever the architecture.
struct ModelShape {
    std::string architecture; // registry name: "mamba2", "mamba"
    std::string displayName;  // "Mamba-2", "Mamba"
    std::string layout;       // "transformers", "mamba_ssm", ...
    int64_t layers = 0;
    int64_t units = 0;               // per layer: the probes' second axis (heads, channel groups)
    std::string unitName;            // "head", "channel group"
    int64_t vocabSize = 0;           // as the config states it (before padding)
    int64_t stateSize = 0;           // N_S in elements, all layers
    std::string stateSizeDefinition; // how N_S was counted, one line
    // A lower bound on the weights' element count that the config implies (biases left out),
    // saturating at INT64_MAX: checked against the weight files' bytes and free memory before any
    // tensor is allocated, so that a hostile config.json cannot make the loader try 18 TB.
    int64_t minParameters = 0;
    std::vector<std::pair<std::string, std::string>> details; // key facts for `info`, in order
    std::vector<ProbeDesc> probes;
    // The tokenizer the model was trained with when its folder ships none: "world" (the RWKV World
    // vocabulary, tokenizers/WorldTokenizer.h), "bytes" (ids are bytes) or "" (the built-in GPT-NeoX BPE).
    std::string tokenizer;
    // Why the paper's T_forget fit (Mamba-2's, Fig. 11) does not apply to this architecture; "" where
    // it does.
    std::string forgetFitNote;
};

class Architecture {
public:
    virtual ~Architecture() = default;

    virtual std::string name() const = 0;        // "mamba2"
    virtual std::string displayName() const = 0; // "Mamba-2"
    // The layout name if config (a parsed config.json) is this architecture's, else "".
    virtual std::string recognise(const nlohmann::json& config) const = 0;
    // Parses and validates the config (throws Error naming file and field) and describes the model.
    virtual ModelShape describe(const nlohmann::json& config, const std::string& layout,
                                const std::string& file, ProbeDetail detail) const = 0;
    // Named shapes for bench, init and train ("130m", ..., "tiny"), and a config.json for each in the
    // architecture's transformers dialect, with overrides (keys of that dialect) merged in and what
    // follows from them recomputed (Mamba-2's head count from the width); null for an unknown shape.
    // Random weights of that shape are random(config).
    virtual std::vector<std::string> shapeNames() const = 0;
    // For checkpoints published without a config (BlinkDL's RWKV .pth): a config.json in this
    // architecture's dialect inferred from the tensors' names and shapes, with overrides (a config.json
    // beside the file, in the training code's own names) checked against them and applied. Null when
    // the tensors are not this architecture's; throws Error naming file for ones it recognises but
    // cannot run. The default recognises none.
    virtual nlohmann::json configFromTensors(const std::map<std::string, std::vector<int64_t>>& shapes,
                                             const nlohmann::json& overrides, const std::string& file) const;
    virtual nlohmann::json shapeConfig(const std::string& shape, const nlohmann::json& overrides) const = 0;

    // Engine-internal (torch): defined in the architecture's own .cpp.
    virtual std::unique_ptr<RecurrentModel> load(const ModelFolder& folder,
                                                 const TorchTarget& target) const = 0;
    virtual std::unique_ptr<RecurrentModel> random(const nlohmann::json& config, uint64_t seed,
                                                   const TorchTarget& target) const = 0;
};

// Every registered architecture, in Registry.cpp's order.
const std::vector<const Architecture*>& architectures();
// nullptr if none has this name.
const Architecture* findArchitecture(const std::string& name);
// The architecture and layout that read this config; throws Error naming file and listing what is
// supported if none does.
std::pair<const Architecture*, std::string> recogniseConfig(const nlohmann::json& config,
                                                            const std::string& file);
// "Mamba-2, Mamba" for messages.
std::string supportedArchitectures();

} // namespace statescope
