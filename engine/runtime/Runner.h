#pragma once

// The engine's public face (torch-free): open a model, stream tokens through it, get probes.
#include "io/DType.h"
#include "models/Mitigation.h"
#include "models/ModelFolder.h"
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
    int threads = 0;          // CPU threads; 0 = the cores free when the model is opened (util/Threads.h)
    bool reference = false;   // one-token recurrent path instead of the chunked one (slow; for checks)
    ProbeDetail probeDetail = ProbeDetail::Summary;
    // How the trace stores the probes (trace/ProbeEncoding.h); the probes are computed alike.
    ProbePrecision probePrecision = ProbePrecision::Auto; // resolved by traceHeader()
    // Which probes a run hands on, per unit or per layer (probes/Probes.h); all, per unit, by default.
    ProbeSelection probeSelection;
    // For a run whose chunks only go to a trace: once traceHeader() has decided how the trace stores
    // the probes, the chunks carry that and no more. A derived probe's values (ProbeDesc::derivedFrom)
    // are neither copied to the host nor handed on (empty), and in a half-precision trace the other
    // probes come encoded as it stores them (ChunkProbes::encoded), computed on the device.
    bool chunksForTraceOnly = false;
    Mitigation mitigation; // training-free mitigations, off by default (recorded in the trace)
    bool cudaGraph = true; // on CUDA, replay the decode step as one captured graph where it can be
    // > 0: the old-context probes over this window (RecurrentModel::setOldContext): retention,
    // old_share, old_readout_share, insertion. 0: off.
    int64_t oldContext = 0;
};

struct ModelInfo {
    ModelShape shape; // architecture, layout, layers, units, N_S, probes
    std::string path;
    std::string configJson;
    int64_t parameters = 0;
    int64_t vocabSize = 0;                 // padded: rows of the output layer
    std::optional<double> forgetThreshold; // tokens, the paper's fit
    std::optional<std::string> tokenizerPath;
    std::optional<int64_t> trainingLength; // tokens, from the model card
    std::string device;
    std::string dtype;
};

// How Runner::run walks an input: the one chunk loop of the CLI and the window.
struct RunLoop {
    // Before each chunk; may block (pause, back-pressure). Returning false stops the run, and run()
    // throws Cancelled.
    std::function<bool()> beforeChunk;
    // After each chunk, with its offsets filled in. The chunk is the callback's: it may move from it
    // (a trace writer takes its buffers); a callback taking const ChunkProbes& fits too.
    std::function<void(ChunkProbes&)> onChunk;
    // > 0: adapt the chunk size (multiples of 64 in [64, 16384]) so that a chunk takes about this
    // long, starting at 256 tokens; else options.chunkSize tokens per chunk.
    double targetChunkSeconds = 0;
    // On CUDA, leave each chunk's float probe values in the engine's page-locked buffer
    // (ChunkProbes::inPlace) instead of copying them into its values: for a callback that reads them
    // through probeValues() or hands them to a trace writer. The buffer stays the chunk's until it is
    // dropped.
    bool valuesInPlace = false;
};

// What Runner::generate returns.
// Where the calling thread's time went in run() since the runner was opened or resetTimings() was
// called: what bounds a traced run on the GPU, printed by `statescope-cli bench`.
struct RunTimings {
    int64_t chunks = 0;
    double launch = 0;     // checking and queuing chunks (on CUDA the model's kernel launches)
    double probes = 0;     // of launch: selecting, encoding and queuing the probes' copy to the host
    double waitDevice = 0; // waiting for a chunk's values to reach the host
    double copyOut = 0;    // copying them out of the page-locked buffer into the chunk
    double handOn = 0;     // in RunLoop::onChunk (a trace writer's append waits there for room)
};

struct Generation {
    std::vector<std::vector<int32_t>> tokens; // per prompt, the new tokens in order
    int64_t promptTokens = 0;                 // per prompt (all prompts of a batch are one length)
    double prefillSeconds = 0;                // wall time, the device waited for
    double decodeSeconds = 0;
    bool cudaGraph = false; // whether the decode steps were replayed as a CUDA graph
};

class RunnerImpl;

// One model and one stream. feed() keeps the state between calls, so a stream may arrive in pieces
// of any size and gives the same numbers as one piece. Memory does not grow with the stream.
class Runner {
public:
    static std::unique_ptr<Runner> open(const std::string& modelDir, const RunOptions& options);
    // Random weights of a registered architecture ("" = the first registered) for a config such as
    // shapeConfig() gives (benchmarks): nothing is read from disk.
    static std::unique_ptr<Runner> openRandom(const std::string& architecture, const std::string& configJson,
                                              uint64_t seed, const RunOptions& options);
    // Writes a model folder (config.json + model.safetensors) with random weights of this config.
    static void writeRandomModel(const std::string& architecture, const std::string& configJson,
                                 uint64_t seed, const std::string& dir);
    // The config.json (text) of a named shape, with overrides (a JSON object of config keys, may be "")
    // merged in. Throws Error(field "shape") listing the shapes for an unknown one.
    static std::string shapeConfig(const std::string& architecture, const std::string& shape,
                                   const std::string& overrides = "");
    ~Runner();

    const ModelInfo& info() const;
    const Mitigation& mitigation() const; // as set, with tau once calibrated
    std::vector<ProbeDesc> probes() const;
    int64_t position() const; // tokens fed since the last reset
    // The header of a trace of this model's run: model, shape, markers, input, settings, start time,
    // and how the probes will be stored (the precision resolved, derived probes). Not const: with
    // RunOptions::chunksForTraceOnly the chunks after it carry the probes as this trace stores them.
    TraceHeader traceHeader(const TraceInput& input, const std::string& inputDescription, bool hasOffsets);
    void reset();

    // Checks a whole input against the vocabulary before a run starts, so that a bad id fails before
    // any trace is written; `source` names the input in the message, `hint` is appended to it.
    void checkIds(const std::vector<int32_t>& ids, const std::string& source,
                  const std::string& hint = "") const;

    // Runs ids as the next tokens of the stream. Throws Error (e.g. an id outside the vocabulary,
    // out of memory); the state is then unchanged.
    ChunkProbes feed(const std::vector<int32_t>& ids);

    // Feeds ids in chunks as loop says. offsets (2 per token) are copied into the chunks. Throws
    // Cancelled when loop.beforeChunk returns false.
    void run(const std::vector<int32_t>& ids, const std::vector<int64_t>* offsets, const RunLoop& loop);
    // The same, stopping with Cancelled between chunks once *cancel is true.
    void run(const std::vector<int32_t>& ids, const std::vector<int64_t>* offsets,
             const std::function<void(ChunkProbes&)>& onChunk, const std::atomic<bool>* cancel = nullptr);

    // Greedy decoding. The prompts, one batch, all of one length, are prefilled through the chunked
    // path (the recurrent one under options.reference) in chunks of options.chunkSize tokens, then
    // each new token is the argmax of the logits over ids below vocabLimit (0: the padded
    // vocabulary; a tokenizer's size keeps padding rows out) and goes through the one-token step.
    // Tokens stay on the device until the end: the decode loop never waits for the host. Runs on
    // its own state: the stream of feed() and run() is untouched. Throws Error as feed() does.
    Generation generate(const std::vector<std::vector<int32_t>>& prompts, int64_t maxNewTokens,
                        int64_t vocabLimit = 0);

    // State normalisation's calibration (Mitigation::clip, renorm): runs ids through the model without
    // any mitigation on a fresh state and takes each layer's and unit's final state norm as tau.
    // `source` says what the ids are, for the trace. Needed before feed(), run() or generate() when
    // the options normalise; resets the stream. Throws Error for no ids or one outside the vocabulary.
    void calibrate(const std::vector<int32_t>& ids, const std::string& source);
    // Replaces the mitigations (tau included: a normalising one needs calibrate() again) and resets
    // the stream; the model stays loaded.
    void setMitigation(const Mitigation& m);
    // Turns the old-context probes on over this window (0: off) and resets the stream; probes() then
    // lists them.
    void setOldContext(int64_t window);
    // Zeroes the recurrent state of the stream and keeps its convolution context (the state-difference
    // window's identity is checked against such a fresh start).
    void forgetRecurrentState();
    // Wait for the device (benchmarks).
    void synchronize();
    RunTimings timings() const;
    void resetTimings();
    static bool cudaAvailable();
    // Returns the CUDA caching allocator's unused blocks to the driver, so that other processes on the
    // GPU can have them (a sweep's shards after each job); a no-op without CUDA.
    static void releaseCachedDeviceMemory();
    static std::string torchVersion();

private:
    explicit Runner(std::unique_ptr<RunnerImpl> impl);
    std::unique_ptr<RunnerImpl> m_impl;
};

// State normalisation's calibration before a run (Mitigation::clip, renorm), as the CLI and the window
// do it: tau from the first T_train tokens of calibrateFile (tokenized with tokenizerPath) or else of
// `input`. T_train is trainingLength if > 0, else the model card's; without one the whole file is
// used, and the input cannot be. Does nothing when the runner does not normalise. Throws Error.
void calibrateForRun(Runner& runner, const std::string& calibrateFile, const std::string& tokenizerPath,
                     const std::vector<int32_t>& input, const std::string& inputName,
                     int64_t trainingLength = 0);

} // namespace statescope
