#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/DType.h"

namespace statescope {
struct RunOptions;
}

namespace statescope::cli {

// Exit codes: 0 success, 1 an error the user can fix (one line on stderr), 2 bad usage,
// 77 a requested device is absent and --skip-if-unavailable was given, 130 cancelled.
constexpr int kExitError = 1;
constexpr int kExitSkipped = 77;
constexpr int kExitCancelled = 130;

struct RunArgs {
    std::string mitigate;  // --mitigate: models/Mitigation.h
    std::string calibrate; // --calibrate: text whose first T_train tokens calibrate clip/renorm
    std::string model;
    std::string tokenizer;
    std::string textFile;
    std::string idsFile;
    std::string prompt;
    std::string out;
    std::string device = "cpu";
    std::string dtype = "float32";
    int64_t chunkSize = 2048;
    int threads = 0;
    bool reference = false;
    std::string probeDetail = "summary";
    std::string probes; // comma-separated; empty: every probe
    std::string probePrecision = "auto";
    int64_t oldContext = 0; // --old-context R: the old-context probes over R tokens
    bool quiet = false;
};

struct BenchArgs {
    std::string model;        // a model folder, or empty for random weights of `shape`
    std::string architecture; // a registry name; empty: the first registered
    std::string shape = "130m";
    std::vector<int64_t> tokens{2048};
    std::string device = "cpu";
    std::string dtype = "float32";
    int64_t chunkSize = 2048;
    int threads = 0;
    int repeat = 1;
    bool trace = true;
    std::string probeDetail = "summary";
    std::string probes;
    std::string probePrecision = "auto";
    std::string json;
    std::string profile;   // a Chrome trace of one more run of the last length, untimed
    std::string keepTrace; // where the last traced run's file goes, instead of being deleted
};

struct KernelCheckArgs {
    std::string device = "cuda";
    bool skipIfUnavailable = false;
};

struct CheckArgs {
    std::string fixture;
    std::string device = "cpu";
    std::string dtype = "float32";
    std::vector<int64_t> chunkSizes{256};
    bool reference = false;
    double rtol = 1e-4;
    bool skipIfUnavailable = false;
};

struct InitArgs {
    std::string out;
    std::string architecture; // empty: the first registered
    std::string shape = "tiny";
    int64_t dModel = 0, layers = 0, dState = 0, headdim = 0, ngroups = 0;
    bool byteVocab = true;
    uint64_t seed = 0;
};

struct EvalArgs {
    std::string mitigate;  // --mitigate: models/Mitigation.h
    std::string calibrate; // --calibrate
    std::string model;
    std::string tokenizer;
    std::string textFile;
    int64_t length = 32768;                 // tokens per window
    int samples = 4;                        // windows, spread evenly over the text
    int64_t bucket = 0;                     // 0: min(T_train, 256)
    int64_t trainingLength = 0;             // 0: the model card's
    int64_t rangeBegin = -1, rangeEnd = -1; // -1: the second half of the window
    std::string device = "cpu";
    std::string dtype = "float32";
    int64_t chunkSize = 4096;
    int threads = 0;
    bool quiet = false;
    bool noOverlap = false; // refuse windows that overlap
    bool paired = false;    // also the range's tokens read with a context of T/2 to T
    std::string json;
};

struct GenerateArgs {
    std::string mitigate;     // --mitigate: models/Mitigation.h
    std::string calibrate;    // --calibrate
    bool noCudaGraph = false; // --no-cuda-graph: launch each decode step's kernels one by one
    std::string model;        // a model folder, or empty for random weights of `shape`
    std::string architecture; // with `shape`: a registry name; empty: the first registered
    std::string shape;
    std::string tokenizer;
    std::string textFile;
    std::string idsFile;
    std::string prompt;
    int64_t promptTokens = 0; // random weights: a prompt of this many random ids
    int64_t batch = 1;        // random weights: prompts generated at once
    int64_t maxNewTokens = 32;
    std::string device = "cpu";
    std::string dtype = "float32";
    int64_t chunkSize = 2048;
    int threads = 0;
    bool reference = false;
    bool printIds = false;
    std::string json;
};

struct PasskeyArgs {
    std::string mitigate;  // --mitigate: models/Mitigation.h
    std::string calibrate; // --calibrate
    bool noCudaGraph = false;
    std::string model;
    std::string tokenizer;
    std::string lengths = "1K:4K:1K";
    int64_t samples = 10;
    uint64_t seed = 0;
    std::string out;
    int64_t batch = 1;
    int64_t maxNewTokens = 0; // 0: passkeyAnswerTokens() of the tokenizer
    std::string device = "cpu";
    std::string dtype = "float32";
    int64_t chunkSize = 2048;
    int threads = 0;
    std::vector<std::string> traces; // "LENGTH:INDEX": also write that sample's probe trace
    bool quiet = false;
};

struct SweepArgs {
    std::string action; // plan, run, judge, rejudge, report
    std::string spec;
    std::string shard = "0/1";
    std::vector<std::string>
        gpus; // run: one shard per GPU (and per-gpu shards on each); "cpu" for CPU shards
    int perGpu = 1;
    std::string device;
    int threads = 0;
    int maxJobs = 0;
    double takeFor = -1;              // run: take no new job after this many seconds (< 0: no limit)
    std::vector<std::string> jobs;    // run: only these job ids, in this order; plan --unfinished: the order
    bool unfinished = false;          // plan: the ids of jobs without a job.json, one line
    bool queue = false;               // run: take the next unclaimed job instead of a fixed share
    bool provisional = false;         // report: thresholds of seeds whose bracket is finished
    std::vector<std::string> earlier; // report: summary.json files of earlier reports of the sweep
    std::string json;  // plan: where the job list goes (default <sweep folder>/plan.json); judge: the verdict
    std::string model; // judge: the model folder
    int64_t trainLength = 0; // judge: T_train (default: the model card's)
    std::string out;         // report: folder for summary.json / summary.h5 (default the sweep's)
};

int runCommand(const RunArgs& args, const std::atomic<bool>& cancel);
int passkeyCommand(const PasskeyArgs& args, const std::atomic<bool>& cancel);
int generateCommand(const GenerateArgs& args);
int tokenizeCommand(const std::string& tokenizer, const std::string& textFile, bool stats);
int infoCommand(const std::string& model);
int benchCommand(const BenchArgs& args);
int checkCommand(const CheckArgs& args);
int kernelCheckCommand(const KernelCheckArgs& args);
int initCommand(const InitArgs& args);
int evalCommand(const EvalArgs& args, const std::atomic<bool>& cancel);
int sweepCommand(const SweepArgs& args, const std::atomic<bool>& cancel);

// Shared by the commands.
DType parseDTypeArg(const std::string& s);
// The options of a run from the flags every command shares; mitigate is --mitigate's spec.
RunOptions runOptions(const std::string& device, const std::string& dtype, int64_t chunkSize, int threads,
                      const std::string& mitigate = "none");

// Shape overrides from the size flags of init and train (0 = keep the shape's), as a JSON object of
// config keys in the transformers dialect the registered architectures share.
std::string shapeOverrides(int64_t dModel, int64_t layers, int64_t dState, int64_t headdim, int64_t ngroups);

// The engine names fields ("device", "chunk_size"); the CLI says which flag set them.
std::string flagMessage(const std::string& engineMessage);

} // namespace statescope::cli
