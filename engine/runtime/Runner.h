#pragma once

// The engine's public face (torch-free): open a model, stream tokens through it, get probes.
#include "io/DType.h"
#include "models/ModelConfig.h"
#include "probes/Probes.h"
#include "trace/TraceFile.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace statescope {

struct RunOptions {
    std::string device = "cpu"; // "cpu", "cuda", "cuda:1"
    DType dtype = DType::Float32;
    int64_t chunkSize = 2048; // tokens per engine call; bounds memory, not results
    int threads = 0;          // CPU threads; 0 = all cores
    bool reference = false;   // one-token recurrent path instead of chunked SSD (slow; for checks)
};

struct ModelInfo {
    std::string architecture;
    std::string path;
    std::string layout;
    std::string configJson;
    Mamba2Config mamba2;
    int64_t parameters = 0;
    int64_t layers = 0;
    int64_t heads = 0;
    int64_t vocabSize = 0; // padded
    int64_t stateSize = 0; // N_S: SSM plus conv state elements
    double forgetThreshold = 0; // tokens, the paper's fit
    std::optional<std::string> tokenizerPath;
    std::optional<int64_t> trainingLength;
    std::string device;
    std::string dtype;
};

class RunnerImpl;

// One model and one stream. feed() keeps the state between calls, so a stream may arrive in pieces
// of any size and gives the same numbers as one piece. Memory does not grow with the stream.
class Runner {
public:
    static std::unique_ptr<Runner> open(const std::string& modelDir, const RunOptions& options);
    // Random weights of a given shape (benchmarks): nothing is read from disk.
    static std::unique_ptr<Runner> openRandom(const Mamba2Config& config, uint64_t seed, const RunOptions& options);
    // Writes a model folder (config.json + model.safetensors) with random weights of this shape.
    static void writeRandomModel(const Mamba2Config& config, uint64_t seed, const std::string& dir);
    ~Runner();

    const ModelInfo& info() const;
    std::vector<ProbeDesc> probes() const;
    int64_t position() const; // tokens fed since the last reset
    // The header of a trace of this model's run: model, dtype, device, probes, start time (now).
    TraceHeader traceHeader(const std::string& input, bool hasOffsets) const;
    void reset();

    // Checks a whole input against the vocabulary before a run starts, so that a bad id fails before
    // any trace is written; `source` names the input in the message, `hint` is appended to it.
    void checkIds(const std::vector<int32_t>& ids, const std::string& source, const std::string& hint = "") const;

    // Runs ids as the next tokens of the stream. Throws Error (e.g. an id outside the vocabulary,
    // out of memory); the state is then unchanged.
    ChunkProbes feed(const std::vector<int32_t>& ids);

    // Feeds ids in pieces of options.chunkSize, calling onChunk after each; stops with Cancelled
    // between pieces once *cancel is true. offsets (2 per token) are copied into the chunks.
    void run(const std::vector<int32_t>& ids, const std::vector<int64_t>* offsets,
             const std::function<void(const ChunkProbes&)>& onChunk, const std::atomic<bool>* cancel = nullptr);

    // Wait for the device (benchmarks).
    void synchronize();
    static bool cudaAvailable();
    static std::string torchVersion();

private:
    explicit Runner(std::unique_ptr<RunnerImpl> impl);
    std::unique_ptr<RunnerImpl> m_impl;
};

} // namespace statescope
