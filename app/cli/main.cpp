// statescope-cli: run recurrent language models token by token and record what they do.
#include "Commands.h"

#include "Error.h"
#include "kernels/KernelCheck.h"
#include "models/Architecture.h"
#include "runtime/CudaInfo.h"
#include "runtime/Runner.h"
#include "runtime/Trainer.h"
#include "util/Allocator.h"
#include "util/Threads.h"
#include "util/Warnings.h"

#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>
#include <unistd.h>

namespace {

const char* const kMitigateHelp =
    "Training-free mitigations, comma-separated (docs/mitigations.md): alpha=X,B=X,dt=X,A=X scale the "
    "gates; clip=C or renorm normalise each state unit (every=N tokens, default 1); window=R "
    "reads out the last R tokens' state (snapshot=S, default R/16)";
const char* const kCalibrateHelp =
    "Text whose first T_train tokens calibrate clip/renorm (default: the input's)";

std::string archNames()
{
    std::string s;
    for (const statescope::Architecture* a : statescope::architectures())
        s += (s.empty() ? "" : ", ") + a->name() + " (" + a->displayName() + ")";
    return s;
}

std::string shapeNames()
{
    std::string s;
    for (const statescope::Architecture* a : statescope::architectures()) {
        s += (s.empty() ? "" : "; ") + a->name() + ":";
        for (const auto& n : a->shapeNames())
            s += " " + n;
    }
    return s;
}
std::atomic<bool> g_cancel{false};
std::atomic<int> g_signal{0};
// What a SIGTERM leaves behind, in the words of the command that was running.
std::atomic<const char*> g_termNote{"\nstatescope-cli: terminated\n"};
extern "C" void onSignal(int sig)
{
    // A second Ctrl-C does not wait for the chunk in progress.
    if (sig == SIGINT && g_cancel.load())
        std::_Exit(130);
    g_signal.store(sig);
    g_cancel.store(true);
}

// A run stops between chunks; a chunk of a large model on the CPU can take many seconds. Whoever sent
// SIGTERM (a wrapper, Slurm, systemd) expects the process gone promptly, so after half a second the
// watchdog ends it the way kill -9 would: every chunk appended so far is on disk and the trace stays
// readable, marked completed = 0.
void startTermWatchdog()
{
    std::thread([] {
        while (true) {
            const int sig = g_signal.load();
            if (sig == SIGTERM || sig == SIGHUP) {
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
                const char* msg = g_termNote.load();
                (void)!::write(2, msg, std::strlen(msg));
                std::_Exit(128 + sig);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }).detach();
}

std::vector<int64_t> parseList(const std::string& s)
{
    std::vector<int64_t> v;
    size_t start = 0;
    while (start <= s.size()) {
        const size_t comma = s.find(',', start);
        const std::string item =
            s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        size_t used = 0;
        long long n = 0;
        try {
            n = std::stoll(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != item.size() || item.empty() || n <= 0)
            throw statescope::Error("", "list item", "a positive integer", "\"" + item + "\"");
        v.push_back(n);
        if (comma == std::string::npos)
            break;
        start = comma + 1;
    }
    return v;
}

// "A:B" as two numbers; false unless both parse whole.
bool splitPair(const std::string& s, double* a, double* b)
{
    const size_t colon = s.find(':');
    if (colon == std::string::npos)
        return false;
    char* e1 = nullptr;
    char* e2 = nullptr;
    *a = std::strtod(s.c_str(), &e1);
    *b = std::strtod(s.c_str() + colon + 1, &e2);
    return e1 == s.c_str() + colon && e1 != s.c_str() && e2 != s.c_str() + colon + 1 && *e2 == '\0';
}

// "MIN:MAX" of two positive numbers; an empty string keeps the defaults.
void parseRange(const std::string& s, const char* option, double* lo, double* hi)
{
    if (s.empty())
        return;
    double a = 0, b = 0;
    if (!splitPair(s, &a, &b) || !(a > 0) || !(b >= a))
        throw statescope::Error(option, "range", "MIN:MAX with 0 < MIN <= MAX", "\"" + s + "\"");
    *lo = a;
    *hi = b;
}

// "FROM:TO" token positions with 0 <= FROM < TO; an empty string keeps the defaults.
void parsePositions(const std::string& s, const char* option, int64_t* from, int64_t* to)
{
    if (s.empty())
        return;
    double a = 0, b = 0;
    if (!splitPair(s, &a, &b) || a < 0 || b <= a || a != std::floor(a) || b != std::floor(b))
        throw statescope::Error(option, "range", "FROM:TO with 0 <= FROM < TO", "\"" + s + "\"");
    *from = static_cast<int64_t>(a);
    *to = static_cast<int64_t>(b);
}
} // namespace

int runMain(int argc, char** argv);

int main(int argc, char** argv)
{
    statescope::preferPassiveOpenMp(argv);
    statescope::keepFreedMemoryForReuse();
    std::signal(SIGINT, onSignal);
    std::signal(SIGTERM, onSignal);
    std::signal(SIGHUP, onSignal);
    startTermWatchdog();
    statescope::setWarningHandler(
        [](const std::string& message) { std::cerr << "statescope-cli: warning: " << message << "\n"; });
    const int rc = runMain(argc, argv);
    const int sig = g_signal.load();
    return rc == statescope::cli::kExitCancelled && (sig == SIGTERM || sig == SIGHUP) ? 128 + sig : rc;
}

int runMain(int argc, char** argv)
{
    using namespace statescope::cli;
    CLI::App app{
        "StateScope: watch a recurrent language model's loss, forget gates and state norms, token by token"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("statescope-cli ") + STATESCOPE_VERSION);

    RunArgs run;
    auto* runCmd = app.add_subcommand("run", "Run a model over an input and write an HDF5 trace");
    runCmd->add_option("--model", run.model, "Model folder (config.json + weights)")->required();
    runCmd->add_option("--tokenizer", run.tokenizer,
                       "tokenizer.json (default: the model's, else GPT-NeoX-20B)");
    auto* text = runCmd->add_option("--text", run.textFile, "UTF-8 text file");
    auto* ids = runCmd->add_option("--ids", run.idsFile, "File of whitespace-separated token ids");
    auto* prompt =
        runCmd->add_option("--prompt", run.prompt, "newlines:N | capitals:N | passkey:BLOCKS[:DEPTH[:SEED]]");
    text->excludes(ids)->excludes(prompt);
    ids->excludes(prompt);
    runCmd->add_option("--out", run.out, "Trace file to write (.h5)")->required();
    runCmd->add_option("--mitigate", run.mitigate, kMitigateHelp);
    runCmd->add_option("--calibrate", run.calibrate, kCalibrateHelp);
    runCmd->add_option(
        "--old-context", run.oldContext,
        "Also probe how much of the state is older than this many tokens: retention, old_share, "
        "old_readout_share, insertion (docs/mitigations.md)");
    runCmd->add_option("--device", run.device, "cpu or cuda[:N]");
    runCmd->add_option(
        "--dtype", run.dtype,
        "float32, bfloat16 or float16 (the last two on CUDA), float64 (CPU, for exactness checks)");
    runCmd->add_option("--chunk-size", run.chunkSize, "Tokens per engine call")->check(CLI::PositiveNumber);
    runCmd->add_option("--threads", run.threads, "CPU threads (default: all cores)");
    runCmd->add_flag("--reference", run.reference, "Use the one-token recurrent reference path (slow)");
    runCmd->add_option("--probe-detail", run.probeDetail,
                       "summary (bounded bytes per token: channel groups where an architecture has many "
                       "channels), full (every unit) or layer (one value per layer: each probe's summary "
                       "over its units)");
    runCmd->add_option("--probes", run.probes,
                       "Comma-separated probes to keep (default: all); decay and state_norm always");
    runCmd->add_option("--probe-precision", run.probePrecision,
                       "How the trace stores probes: float32; float16 (half the bytes; gates as -ln "
                       "alpha, norms as ln; Mamba-2's dt derived from its gates); or auto (default: float16 "
                       "when the probes take over 16 KiB a token in float32, the 1.3b shape and larger; "
                       "docs/trace-format.md gives the errors)");
    runCmd->add_flag("--quiet", run.quiet, "No progress on stderr");

    GenerateArgs gen;
    auto* genCmd =
        app.add_subcommand("generate", "Greedy decoding: a chunked prefill, then the one-token step");
    genCmd->add_option("--model", gen.model, "Model folder (default: random weights of --shape)");
    genCmd->add_option("--arch", gen.architecture, "Architecture of --shape: " + archNames());
    genCmd->add_option("--shape", gen.shape, "Random model shape: " + shapeNames());
    genCmd->add_option("--tokenizer", gen.tokenizer,
                       "tokenizer.json (default: the model's, else GPT-NeoX-20B)");
    auto* genText = genCmd->add_option("--text", gen.textFile, "UTF-8 text file: the prompt");
    auto* genIds = genCmd->add_option("--ids", gen.idsFile, "File of whitespace-separated token ids");
    auto* genPrompt =
        genCmd->add_option("--prompt", gen.prompt, "newlines:N | capitals:N | passkey:BLOCKS[:DEPTH[:SEED]]");
    genText->excludes(genIds)->excludes(genPrompt);
    genIds->excludes(genPrompt);
    genCmd->add_option("--prompt-tokens", gen.promptTokens, "With --shape: a prompt of N random ids");
    genCmd->add_option("--batch", gen.batch, "With --shape: prompts decoded at once")
        ->check(CLI::PositiveNumber);
    genCmd->add_option("--max-new-tokens", gen.maxNewTokens, "Tokens to generate");
    genCmd->add_option("--mitigate", gen.mitigate, kMitigateHelp);
    genCmd->add_option("--calibrate", gen.calibrate, kCalibrateHelp);
    genCmd->add_option("--device", gen.device, "cpu or cuda[:N]");
    genCmd->add_option(
        "--dtype", gen.dtype,
        "float32, bfloat16 or float16 (the last two on CUDA), float64 (CPU, for exactness checks)");
    genCmd->add_option("--chunk-size", gen.chunkSize, "Prefill tokens per engine call")
        ->check(CLI::PositiveNumber);
    genCmd->add_option("--threads", gen.threads, "CPU threads (default: all cores)");
    genCmd->add_flag("--reference", gen.reference, "Prefill through the one-token recurrent path too");
    genCmd->add_flag("--print-ids", gen.printIds, "Print the new token ids, not their text");
    genCmd->add_flag("--no-cuda-graph", gen.noCudaGraph, "Launch each decode step's kernels one by one");
    genCmd->add_option("--json", gen.json, "Also write the tokens and the timings as JSON to this file");

    PasskeyArgs pk;
    auto* pkCmd =
        app.add_subcommand("passkey", "Passkey retrieval over lengths and depths (the paper's Fig. 2)");
    pkCmd->add_option("--model", pk.model, "Model folder")->required();
    pkCmd->add_option("--tokenizer", pk.tokenizer,
                      "tokenizer.json (default: the model's, else GPT-NeoX-20B)");
    pkCmd->add_option("--lengths", pk.lengths,
                      "Prompt lengths in tokens: FROM:TO:STEP (1K:16K:1K) or a list");
    pkCmd->add_option("--samples", pk.samples, "Samples (depths) per length")->check(CLI::PositiveNumber);
    pkCmd->add_option("--seed", pk.seed, "Seed of the passkeys");
    pkCmd->add_option("--out", pk.out, "Results file (.h5); an interrupted sweep resumes from it")
        ->required();
    pkCmd->add_option("--batch", pk.batch, "Prompts decoded at once")->check(CLI::PositiveNumber);
    pkCmd
        ->add_option("--max-new-tokens", pk.maxNewTokens,
                     "Greedy tokens per answer (default: 5, or more if \" 00000\" takes more tokens, as "
                     "with byte-level models)")
        ->check(CLI::PositiveNumber);
    pkCmd->add_option("--mitigate", pk.mitigate, kMitigateHelp);
    pkCmd->add_option("--calibrate", pk.calibrate, kCalibrateHelp);
    pkCmd->add_option("--device", pk.device, "cpu or cuda[:N]");
    pkCmd->add_option(
        "--dtype", pk.dtype,
        "float32, bfloat16 or float16 (the last two on CUDA), float64 (CPU, for exactness checks)");
    pkCmd->add_option("--chunk-size", pk.chunkSize, "Prefill tokens per engine call")
        ->check(CLI::PositiveNumber);
    pkCmd->add_option("--threads", pk.threads, "CPU threads (default: all cores)");
    pkCmd->add_option("--trace", pk.traces,
                      "LENGTH:INDEX: also write that sample's probe trace beside --out (repeatable)");
    pkCmd->add_flag("--quiet", pk.quiet, "No progress on stderr");
    pkCmd->add_flag("--no-cuda-graph", pk.noCudaGraph, "Launch each decode step's kernels one by one");

    std::string tokTokenizer, tokText;
    auto* tokCmd = app.add_subcommand("tokenize", "Print the token ids of a text file");
    bool tokStats = false;
    tokCmd->add_option("--tokenizer", tokTokenizer,
                       "tokenizer.json (default: GPT-NeoX-20B), or a World-tokenizer vocabulary .txt");
    tokCmd->add_option("--text", tokText, "UTF-8 text file")->required();
    tokCmd->add_flag("--stats", tokStats, "Print bytes, tokens and MB/s to stderr");

    std::string infoModel;
    auto* infoCmd = app.add_subcommand("info", "Describe a model folder");
    infoCmd->add_option("--model", infoModel, "Model folder")->required();

    BenchArgs bench;
    std::string benchTokens = "2048";
    bool noTrace = false;
    auto* benchCmd = app.add_subcommand("bench", "Tokens per second of a run with every probe");
    benchCmd->add_option("--model", bench.model, "Model folder (default: random weights of --shape)");
    benchCmd->add_option("--arch", bench.architecture, "Architecture of --shape: " + archNames());
    benchCmd->add_option("--shape", bench.shape, "Random model shape: " + shapeNames());
    benchCmd->add_option("--tokens", benchTokens, "Comma-separated stream lengths");
    benchCmd->add_option("--device", bench.device, "cpu or cuda[:N]");
    benchCmd->add_option("--dtype", bench.dtype, "float32, bfloat16 or float16");
    benchCmd->add_option("--chunk-size", bench.chunkSize, "Tokens per engine call")
        ->check(CLI::PositiveNumber);
    benchCmd->add_option("--threads", bench.threads, "CPU threads (default: all cores)");
    benchCmd->add_option("--repeat", bench.repeat, "Timed repetitions (best is reported)")
        ->check(CLI::PositiveNumber);
    benchCmd->add_flag("--no-trace", noTrace, "Do not write the trace (measures the engine alone)");
    benchCmd->add_option("--probe-precision", bench.probePrecision, "float32, float16 or auto (as run's)");
    benchCmd->add_option("--probe-detail", bench.probeDetail, "summary, full or layer (as run's)");
    benchCmd->add_option("--probes", bench.probes, "Probes to keep (as run's)");
    benchCmd->add_option("--json", bench.json, "Also write the results as JSON to this file");
    benchCmd->add_option("--keep-trace", bench.keepTrace,
                         "Keep the last traced run's file here (same file system as the temp folder)");
    benchCmd->add_option("--profile", bench.profile,
                         "Run the last length once more under PyTorch's profiler and write its Chrome trace "
                         "here (tools/profile_summary.py reads it)");

    CheckArgs check;
    std::string checkChunks = "256";
    auto* checkCmd = app.add_subcommand("check", "Compare a run with a fixture's stored reference numbers");
    checkCmd->add_option("--fixture", check.fixture, "Fixture folder (a model + reference.h5)")->required();
    checkCmd->add_option("--device", check.device, "cpu or cuda[:N]");
    checkCmd->add_option("--dtype", check.dtype, "float32, bfloat16 or float16");
    checkCmd->add_option("--chunk-sizes", checkChunks, "Comma-separated chunk sizes to try");
    checkCmd->add_flag("--reference", check.reference, "Use the recurrent reference path");
    checkCmd->add_option("--rtol", check.rtol, "Largest relative error allowed");
    checkCmd->add_flag("--skip-if-unavailable", check.skipIfUnavailable, "Exit 77 when the device is absent");
    bool noFused = false;
    const std::string noFusedHelp = "Use the LibTorch path instead of the fused CUDA kernels (the reference)";
    checkCmd->add_flag("--no-fused-kernels", noFused, noFusedHelp);
    benchCmd->add_flag("--no-fused-kernels", noFused, noFusedHelp);
    runCmd->add_flag("--no-fused-kernels", noFused, noFusedHelp);
    bool noTensorCoreScan = false;
    const std::string noTcHelp =
        "Half-precision models: scan with the float32 kernels instead of the tensor-core scan";
    checkCmd->add_flag("--no-tensor-core-scan", noTensorCoreScan, noTcHelp);
    benchCmd->add_flag("--no-tensor-core-scan", noTensorCoreScan, noTcHelp);
    runCmd->add_flag("--no-tensor-core-scan", noTensorCoreScan, noTcHelp);
    KernelCheckArgs kernelCheck;
    auto* kernelCheckCmd = app.add_subcommand(
        "kernel-check",
        "Compare every fused CUDA kernel with the LibTorch code it replaces, on random inputs");
    kernelCheckCmd->add_option("--device", kernelCheck.device, "cuda[:N]");
    kernelCheckCmd->add_flag("--skip-if-unavailable", kernelCheck.skipIfUnavailable,
                             "Exit 77 without a CUDA device or without the kernels");

    InitArgs init;
    std::string initVocab = "byte";
    auto* initCmd = app.add_subcommand("init", "Write a model folder with random weights of a given shape");
    initCmd->add_option("--out", init.out, "Model folder to create")->required();
    initCmd->add_option("--arch", init.architecture, "Architecture: " + archNames());
    initCmd->add_option("--shape", init.shape, "Base shape: " + shapeNames());
    initCmd->add_option("--d-model", init.dModel, "Override d_model");
    initCmd->add_option("--layers", init.layers, "Override n_layer");
    initCmd->add_option("--d-state", init.dState, "Override d_state");
    initCmd->add_option("--headdim", init.headdim, "Override headdim");
    initCmd->add_option("--ngroups", init.ngroups, "Override ngroups");
    initCmd->add_option(
        "--vocab", initVocab,
        "byte (256 byte tokens + tokenizer.json), or the shape's own vocabulary: gpt-neox (50277, "
        "Mamba), world (65536, the World tokenizer's) or llama (32000, with the built-in "
        "SentencePiece-style tokenizer)");
    initCmd->add_option("--seed", init.seed, "Random seed");

    statescope::TrainOptions train;
    int64_t tDModel = 0, tLayers = 0, tDState = 0, tHeaddim = 0;
    auto* trainCmd = app.add_subcommand(
        "train", "Train a model (byte-level, or with --tokenizer) through the engine's chunked path");
    trainCmd->add_option("--data", train.data, "Training corpus (UTF-8 text)")->required();
    trainCmd->add_option("--held-out", train.heldOut, "Held-out text evaluated while training");
    trainCmd->add_option("--tokenizer", train.tokenizer,
                         "tokenizer.json whose ids the model reads (default: bytes); the corpus is tokenised "
                         "once into a cache file beside it");
    trainCmd
        ->add_option("--out", train.out, "Model folder to write (resumed when it holds trainer_state.json)")
        ->required();
    trainCmd->add_option("--data-description", train.dataDescription,
                         "What the corpus is, for the model card");
    trainCmd->add_option("--arch", train.architecture, "Architecture (the trainer says which it can train)");
    trainCmd->add_option("--shape", train.shape, "Base shape (tiny, 130m, ...)");
    trainCmd->add_option("--d-model", tDModel, "d_model");
    trainCmd->add_option("--layers", tLayers, "n_layer");
    trainCmd->add_option("--d-state", tDState, "d_state");
    trainCmd->add_option("--headdim", tHeaddim, "headdim");
    trainCmd->add_option("--train-length", train.trainLength, "T_train: tokens per sequence")
        ->check(CLI::PositiveNumber);
    trainCmd->add_option("--batch", train.batch, "Sequences per step")->check(CLI::PositiveNumber);
    trainCmd->add_option("--steps", train.steps, "Optimizer steps")->check(CLI::PositiveNumber);
    trainCmd->add_option("--warmup", train.warmup, "Warm-up steps");
    trainCmd->add_option("--schedule", train.schedule, "cosine or wsd")
        ->check(CLI::IsMember({"cosine", "wsd"}));
    trainCmd->add_option("--lr", train.lr, "Peak learning rate");
    trainCmd->add_option("--weight-decay", train.weightDecay, "AdamW weight decay");
    trainCmd->add_option("--clip", train.clip, "Gradient norm clip");
    trainCmd->add_option("--device", train.device, "cpu or cuda[:N]");
    trainCmd->add_flag("--bf16", train.bf16, "bfloat16 matmuls over float32 master weights (CUDA)");
    std::string dtInit, aInit;
    trainCmd->add_option("--dt-init", dtInit,
                         "MIN:MAX, initial Delta range (log-uniform; default 0.001:0.1)");
    trainCmd->add_option("--a-init", aInit, "MIN:MAX, initial -A range (uniform; default 1:16)");
    trainCmd->add_option("--time-budget", train.timeBudget,
                         "Seconds of training: the step count is cut to fit");
    trainCmd
        ->add_option("--passkey-fraction", train.passkeyFraction,
                     "Share of sequences that start with a passkey prompt and its answer (0 to 1)")
        ->check(CLI::Range(0.0, 1.0));
    trainCmd->add_option("--passkey-min-length", train.passkeyMinLength,
                         "Shortest passkey prompt in tokens (default: the shortest that holds one block)");
    trainCmd
        ->add_option("--passkey-answer-weight", train.passkeyAnswerWeight,
                     "Weight of the answers' mean NLL added to the loss (0: plain LM loss)")
        ->check(CLI::NonNegativeNumber);
    trainCmd->add_option("--seed", train.seed, "Random seed");
    trainCmd->add_option("--log-every", train.logEvery, "Steps between log lines")
        ->check(CLI::PositiveNumber);
    trainCmd->add_option("--save-every", train.saveEvery, "Steps between checkpoints")
        ->check(CLI::PositiveNumber);
    trainCmd
        ->add_option("--snapshot-every", train.snapshotEvery,
                     "Keep a copy of the model every N steps in OUT/snapshots/step-NNNNNNN (0: none)")
        ->check(CLI::Range(0, 1000000000));
    trainCmd->add_option("--eval-every", train.evalEvery, "Steps between held-out evaluations");
    trainCmd->add_option("--threads", train.threads, "CPU threads");
    bool checkForward = false;
    trainCmd->add_flag("--check-forward", checkForward,
                       "After training, compare the trainer's forward with the inference forward on 8 rows");
    trainCmd->add_option(
        "--profile", train.profile,
        "Chrome trace of steps 6-8 by PyTorch's profiler (tools/profile_summary.py reads it)");

    EvalArgs eval;
    std::string evalRange; // default: the second half of the window
    auto* evalCmd = app.add_subcommand(
        "eval", "Mean loss against position over windows of a text: the state-collapse curve and ratio");
    evalCmd->add_option("--model", eval.model, "Model folder")->required();
    evalCmd->add_option("--text", eval.textFile, "UTF-8 text file (held-out text)")->required();
    evalCmd->add_option("--tokenizer", eval.tokenizer, "tokenizer.json (default: the model's)");
    evalCmd->add_option("--length", eval.length, "Tokens per window")->check(CLI::PositiveNumber);
    evalCmd->add_option("--samples", eval.samples, "Windows, spread evenly over the text")
        ->check(CLI::PositiveNumber);
    evalCmd->add_option("--bucket", eval.bucket, "Bucket size in tokens (default: min(T_train, 256))");
    evalCmd->add_option("--train-length", eval.trainingLength, "Training length (default: the model card's)");
    evalCmd->add_option("--range", evalRange,
                        "FROM:TO, the positions compared with the bucket ending at T_train (default: the "
                        "window's second half)");
    evalCmd->add_option("--mitigate", eval.mitigate, kMitigateHelp);
    evalCmd->add_option("--calibrate", eval.calibrate, kCalibrateHelp);
    evalCmd->add_option("--device", eval.device, "cpu or cuda[:N]");
    evalCmd->add_option("--dtype", eval.dtype, "float32, bfloat16 or float16 (CUDA), float64 (CPU)");
    evalCmd->add_option("--chunk-size", eval.chunkSize, "Tokens per engine call")->check(CLI::PositiveNumber);
    evalCmd->add_option("--threads", eval.threads, "CPU threads (default: all cores)");
    evalCmd->add_option("--json", eval.json, "Also write the curve and the ratio as JSON to this file");
    evalCmd->add_flag("--quiet", eval.quiet, "No progress on stderr");
    evalCmd->add_flag(
        "--paired", eval.paired,
        "Also read the range's tokens with a context of T/2 to T (state reset every T_train, two "
        "staggered streams) and print the paired ratio");
    evalCmd->add_flag("--no-overlap", eval.noOverlap,
                      "Refuse windows that overlap (a text shorter than --samples x --length)");

    SweepArgs sweep;
    std::string sweepGpus;
    auto* sweepCmd = app.add_subcommand(
        "sweep", "Trainings over state size x training length, and the fit of T_forget (docs/sweeps.md)");
    sweepCmd->require_subcommand(1);
    auto* sweepPlan = sweepCmd->add_subcommand("plan", "Write and print the job list of a sweep spec");
    sweepPlan->add_option("spec", sweep.spec, "Sweep spec (JSON)")->required();
    sweepPlan->add_option("--json", sweep.json,
                          "Where the job list goes (default: <sweep folder>/plan.json)");
    sweepPlan->add_flag("--unfinished", sweep.unfinished,
                        "Print only the ids of jobs without a job.json, comma-separated on one line (for "
                        "run --jobs on a machine that has none of the results); no plan.json");
    sweepPlan
        ->add_option("--jobs", sweep.jobs,
                     "With --unfinished: comma-separated job ids, the order to keep (default: the plan's)")
        ->delimiter(',');
    sweepPlan->add_option("--earlier", sweep.earlier,
                          "With --unfinished: summary.json of an earlier report (repeatable); its finished "
                          "runs count as finished");
    auto* sweepRun =
        sweepCmd->add_subcommand("run", "Run a share of the jobs; finished jobs are skipped, others resume");
    sweepRun->add_option("spec", sweep.spec, "Sweep spec (JSON)")->required();
    sweepRun->add_option("--shard", sweep.shard, "I/N: the I-th (0-based) of N shares of the jobs");
    sweepRun->add_option("--gpus", sweepGpus,
                         "Comma-separated GPU indices (or cpu): one shard per GPU, each in its own process");
    sweepRun->add_option("--per-gpu", sweep.perGpu, "With --gpus: shards per GPU (small jobs share one)")
        ->check(CLI::PositiveNumber);
    sweepRun->add_option("--device", sweep.device, "cpu or cuda[:N] (default: cuda if there is one)");
    sweepRun->add_option("--threads", sweep.threads, "CPU threads");
    sweepRun->add_option("--max-jobs", sweep.maxJobs, "Stop after running this many jobs");
    sweepRun
        ->add_option("--take-for", sweep.takeFor,
                     "Take (or resume) no job after this many seconds; the running ones finish")
        ->check(CLI::NonNegativeNumber);
    sweepRun
        ->add_option("--jobs", sweep.jobs, "Comma-separated job ids (sweep plan): only these, in this order")
        ->delimiter(',');
    sweepRun->add_flag("--queue", sweep.queue,
                       "Take the next job no other process has claimed instead of the --shard share "
                       "(processes on one file system; --gpus does this)");
    auto* sweepJudge = sweepCmd->add_subcommand(
        "judge", "Evaluate one model folder as the sweep evaluates its jobs, and print the verdict");
    sweepJudge->add_option("spec", sweep.spec, "Sweep spec (JSON): held-out texts, windows, criterion")
        ->required();
    sweepJudge->add_option("--model", sweep.model, "Model folder")->required();
    sweepJudge->add_option("--train-length", sweep.trainLength, "T_train (default: the model card's)")
        ->check(CLI::PositiveNumber);
    sweepJudge->add_option("--device", sweep.device, "cpu or cuda[:N] (default: cuda if there is one)");
    sweepJudge->add_option("--threads", sweep.threads, "CPU threads");
    sweepJudge->add_option("--json", sweep.json, "Also write the verdict and the evaluations here");
    auto* sweepRejudge = sweepCmd->add_subcommand(
        "rejudge", "Evaluate again the finished jobs stored before 2026-12-06 at T_train 8 and 16, whose "
                   "stored curves the report could only read approximately, from their model weights");
    sweepRejudge->add_option("spec", sweep.spec, "Sweep spec (JSON)")->required();
    sweepRejudge->add_option("--jobs", sweep.jobs, "Comma-separated job ids (default: every finished job)")
        ->delimiter(',');
    sweepRejudge->add_option("--device", sweep.device, "cpu or cuda[:N] (default: cuda if there is one)");
    sweepRejudge->add_option("--threads", sweep.threads, "CPU threads");
    auto* sweepReport =
        sweepCmd->add_subcommand("report", "Gather the finished jobs, find T_forget, fit the line");
    sweepReport->add_option("spec", sweep.spec, "Sweep spec (JSON)")->required();
    sweepReport->add_flag("--provisional", sweep.provisional,
                          "While a sweep runs: a seed's threshold once the two lengths around it are "
                          "finished, a size's from the seeds that have one");
    sweepReport->add_option("--earlier", sweep.earlier,
                            "summary.json of an earlier report of this sweep (repeatable): its finished runs "
                            "stand in for jobs whose folders are not here, judged again by the spec");
    sweepReport->add_option("--out", sweep.out,
                            "Folder for summary.json and summary.h5 (default: the sweep's)");

    auto* devicesCmd = app.add_subcommand("devices", "List the devices a run can use");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (noFused)
        statescope::setFusedKernels(false);
    if (noTensorCoreScan)
        statescope::setTensorCoreScan(false);
    try {
        if (*devicesCmd) {
            std::printf("cpu: %u hardware threads; libtorch %s\n", std::thread::hardware_concurrency(),
                        statescope::Runner::torchVersion().c_str());
            const auto gpus = statescope::cudaDevices(true);
            for (size_t i = 0; i < gpus.size(); ++i)
                std::printf("cuda:%zu: %s, %.1f GiB, %.1f GiB free%s\n", i, gpus[i].name.c_str(),
                            gpus[i].totalBytes / 1073741824.0, gpus[i].freeBytes / 1073741824.0,
                            statescope::Runner::cudaAvailable() ? ""
                                                                : " (this build of LibTorch has no CUDA)");
            if (gpus.empty())
                std::printf("cuda: none (no NVIDIA driver found)\n");
            return 0;
        }
        constexpr const char* kTraceNote =
            "\nstatescope-cli: terminated; the trace keeps every finished chunk (completed = 0)\n";
        if (*runCmd || *pkCmd)
            g_termNote = kTraceNote;
        if (*trainCmd)
            g_termNote = "\nstatescope-cli: terminated; the model folder keeps its last checkpoint, from "
                         "which the same command resumes\n";
        if (*sweepCmd)
            g_termNote = "\nstatescope-cli: terminated; finished jobs are kept, and the same command "
                         "resumes the others from their last checkpoints\n";
        if (*runCmd)
            return runCommand(run, g_cancel);
        if (*tokCmd)
            return tokenizeCommand(tokTokenizer, tokText, tokStats);
        if (*genCmd)
            return generateCommand(gen);
        if (*pkCmd)
            return passkeyCommand(pk, g_cancel);
        if (*infoCmd)
            return infoCommand(infoModel);
        if (*benchCmd) {
            bench.tokens = parseList(benchTokens);
            bench.trace = !noTrace;
            return benchCommand(bench);
        }
        if (*initCmd) {
            if (initVocab != "byte" && initVocab != "gpt-neox" && initVocab != "world" &&
                initVocab != "llama")
                throw statescope::Error("--vocab", "vocab", "byte, gpt-neox, world or llama",
                                        "\"" + initVocab + "\"");
            init.byteVocab = initVocab == "byte";
            return initCommand(init);
        }
        if (*trainCmd) {
            train.shapeOverrides = shapeOverrides(tDModel, tLayers, tDState, tHeaddim, 0);
            parseRange(dtInit, "--dt-init", &train.dtInitMin, &train.dtInitMax);
            parseRange(aInit, "--a-init", &train.aInitMin, &train.aInitMax);
            statescope::trainModel(train, [](const statescope::TrainProgress& p) {
                std::printf("step %6lld/%lld  loss %.4f  held-out %s  lr %.2e  %.0f tokens/s",
                            static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss,
                            p.heldOutLoss >= 0 ? std::to_string(p.heldOutLoss).c_str() : "-", p.lr,
                            p.tokensPerSecond);
                if (p.answerLoss >= 0)
                    std::printf("  passkey answers %.4f", p.answerLoss);
                std::printf("\n");
                std::fflush(stdout);
            });
            if (checkForward) {
                // The trained model through the trainer's forward and the inference forward, on rows
                // of the run's own kind: the two scans must give the same per-token loss.
                const auto rows = statescope::drawTrainingRows(train, 8, 1);
                const auto f = statescope::trainingAndInferenceNll(train.out, rows, train.device, train.bf16);
                double worst = 0, mean = 0, nll = 0;
                for (size_t i = 0; i < f.training.size(); ++i) {
                    const double d = std::abs(f.training[i] - f.inference[i]);
                    worst = std::max(worst, d);
                    mean += d / double(f.training.size());
                    nll += f.inference[i] / double(f.training.size());
                }
                std::printf("forward check (%zu tokens, %s): inference NLL %.4f, |training - inference| "
                            "mean %.2e, max %.2e\n",
                            f.training.size(), train.bf16 ? "bfloat16 training forward" : "float32", nll,
                            mean, worst);
            }
            return 0;
        }
        if (*evalCmd) {
            parsePositions(evalRange, "--range", &eval.rangeBegin, &eval.rangeEnd);
            try {
                return evalCommand(eval, g_cancel);
            } catch (const statescope::Cancelled&) {
                std::cerr << "\nstatescope-cli: cancelled\n";
                return kExitCancelled;
            }
        }
        if (*sweepCmd) {
            sweep.action = *sweepPlan      ? "plan"
                           : *sweepRun     ? "run"
                           : *sweepJudge   ? "judge"
                           : *sweepRejudge ? "rejudge"
                                           : "report";
            for (size_t at = 0; !sweepGpus.empty() && at != std::string::npos;) {
                const size_t comma = sweepGpus.find(',', at);
                sweep.gpus.push_back(sweepGpus.substr(at, comma == std::string::npos ? comma : comma - at));
                at = comma == std::string::npos ? comma : comma + 1;
            }
            try {
                return sweepCommand(sweep, g_cancel);
            } catch (const statescope::Cancelled&) {
                std::cerr << "\nstatescope-cli: cancelled; the job resumes from its last checkpoint\n";
                return kExitCancelled;
            }
        }
        if (*kernelCheckCmd)
            return kernelCheckCommand(kernelCheck);
        if (*checkCmd) {
            check.chunkSizes = parseList(checkChunks);
            return checkCommand(check);
        }
    } catch (const statescope::Error& e) {
        std::cerr << "statescope-cli: error: " << flagMessage(e.what()) << "\n";
        return kExitError;
    } catch (const std::bad_alloc&) {
        std::cerr << "statescope-cli: error: out of memory\n";
        return kExitError;
    } catch (const std::exception& e) {
        std::cerr << "statescope-cli: error: " << statescope::errorLine(e) << "\n";
        return kExitError;
    }
    return 0;
}
