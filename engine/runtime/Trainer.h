#pragma once

// Trains a model through the engine's own chunked path (LibTorch autograd). Torch-free header.
// Mamba-2 is the architecture it trains so far; it refuses the others by name.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace statescope {

struct TrainOptions {
    std::string architecture = "mamba2";
    std::string shape = "tiny"; // a named shape of the architecture (Runner::shapeConfig)
    std::string shapeOverrides; // JSON object of config keys in its transformers dialect; vocab_size is the
                                // tokenizer's

    std::string data; // training corpus: UTF-8 text
    // A Hugging Face tokenizer.json (GPT-NeoX's, say) whose ids the model reads; empty = bytes, 256 ids.
    // The corpus is tokenised once into a cache beside it (TokenCorpus), and the model folder keeps
    // this file as its tokenizer.json, so that eval, the sweep's judge and the window read the model's
    // own tokens.
    std::string tokenizer;
    std::string heldOut;         // optional: evaluated every evalEvery steps
    std::string out;             // model folder written (and resumed from)
    std::string dataDescription; // goes into the model card
    int64_t trainLength = 256;   // T_train, tokens per sequence
    int64_t batch = 32;
    int64_t steps = 1000;
    int64_t warmup = 100;
    std::string schedule = "cosine"; // or "wsd": constant, then linear decay over the last 20 %
    double lr = 1e-3;
    double minLrRatio = 0.1;
    double weightDecay = 0.1;
    double clip = 1.0;
    std::string device = "cpu";
    bool bf16 = false; // bfloat16 matmuls over float32 master weights (CUDA)
    // Initial forget gates: Delta log-uniform in [dtInitMin, dtInitMax] and A = -uniform[aInitMin, aInitMax]
    // per head (mamba_ssm's defaults below). A narrow, slow range (A = 1, Delta ~ 1e-5) starts every head
    // near alpha = 1, never forgetting, so forgetting has to be learned: what a short T_train never teaches.
    double dtInitMin = 1e-3, dtInitMax = 0.1;
    double aInitMin = 1, aInitMax = 16;
    // Seconds of training: after a few steps the step count is cut to what fits, so that the schedule
    // still warms up and decays. 0 = run all steps.
    double timeBudget = 0;
    // Passkey documents (stuffed-mamba.md §3.7, the evaluation's template): this share of the sequences
    // starts with a passkey prompt of a random length in [passkeyMinLength, T_train - answer] at a random
    // depth, followed by its answer " KEY.\n" and corpus text up to T_train. Document-aligned, so the
    // state is zero at the prompt's first token, as in the sweep. 0 = text only.
    double passkeyFraction = 0;
    int64_t passkeyMinLength = 0; // 0 = the shortest prompt that holds one block
    // The answers' mean NLL joins the loss with this weight: a document's 8 answer tokens are <1 % of
    // its row, too little of the LM loss's gradient for a small model to learn the copy in minutes.
    double passkeyAnswerWeight = 1;
    uint64_t seed = 0;
    int64_t logEvery = 50;
    int64_t saveEvery = 500;
    // Keeps a loadable copy of the model every this many steps in snapshotFolder(out, step), so that
    // one long run shows how forgetting changes with the budget. 0 = none.
    int64_t snapshotEvery = 0;
    int64_t evalEvery = 0;
    int threads = 0;
    // A Chrome trace of three steps (after five of warm-up) by PyTorch's profiler (runtime/Profiler.h),
    // for ranking the trainer's costs; empty = none.
    std::string profile;
};

struct TrainProgress {
    int64_t step = 0;
    int64_t steps = 0;       // planned in all (cut by a time budget)
    double loss = 0;         // nats per token, this step
    double heldOutLoss = -1; // nats per token, when evaluated
    double answerLoss = -1;  // nats per token of this step's passkey answers, if it had any
    double lr = 0;
    double tokensPerSecond = 0;
};

// Rows of T_train + 1 token ids, as the trainer draws one batch of `rows` from options.data with the
// random stream `seed`: for tests and for looking at what the model is taught. Throws Error as
// trainModel does for bad passkey or corpus settings.
std::vector<std::vector<int64_t>> drawTrainingRows(const TrainOptions& options, int64_t rows, uint64_t seed);

// The per-token NLL of `rows` (T + 1 ids each) under the Mamba-2 model in `folder`, once through the
// trainer's forward (autograd recording: trainingScalarDecayScan, bfloat16 GEMMs with bf16) and once
// through the inference forward (chunkedScalarDecayScan, float32), on `device`: for tests and checks
// that hold the training path to the reference. Row-major, T values a row.
struct ForwardPair {
    std::vector<double> training, inference;
};
ForwardPair trainingAndInferenceNll(const std::string& folder, const std::vector<std::vector<int64_t>>& rows,
                                    const std::string& device, bool bf16);

// The trainer's output cross-entropy (each chunk of rows reduced to its loss and its logits'
// gradient, the logits not kept) against autograd through F::linear and cross_entropy, on random
// hidden states and weights with a random upstream gradient per token, on the CPU. Each field: the
// largest difference relative to the reference's largest magnitude. computeDtype: "float32" or
// "bfloat16"; chunkElements sets the chunk to chunkElements / vocab rows.
struct CrossEntropyCheck {
    double loss = 0, hidden = 0, weight = 0;
};
CrossEntropyCheck checkOutputCrossEntropy(const std::string& computeDtype, int64_t rows, int64_t dModel,
                                          int64_t vocab, int64_t chunkElements, uint64_t seed);

// <out>/snapshots/step-0001234: where TrainOptions::snapshotEvery keeps the model after `step` steps.
std::string snapshotFolder(const std::string& out, int64_t step);

// The seconds a trained (or partly trained) folder's steps took, summed over the processes that
// resumed it, up to its last checkpoint: work lost after a checkpoint is not counted. 0 when the
// folder's checkpoint predates this count.
double trainedSeconds(const std::string& out);

// Resumes from out/trainer_state.json when it exists. Throws Error for bad options or files.
void trainModel(const TrainOptions& options, const std::function<void(const TrainProgress&)>& log);

} // namespace statescope
