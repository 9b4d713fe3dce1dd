#pragma once

// Trains a model through the engine's own chunked path (LibTorch autograd). Torch-free header.
// Mamba-2 is the architecture it trains so far; it refuses the others by name.

#include <cstdint>
#include <functional>
#include <string>

namespace statescope {

struct TrainOptions {
    std::string architecture = "mamba2";
    std::string shape = "tiny"; // a named shape of the architecture (Runner::shapeConfig)
    std::string shapeOverrides; // JSON object of config keys in its transformers dialect; vocab_size is 256

    std::string data;            // training corpus (bytes = token ids)
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
    uint64_t seed = 0;
    int64_t logEvery = 50;
    int64_t saveEvery = 500;
    int64_t evalEvery = 0;
    int threads = 0;
};

struct TrainProgress {
    int64_t step = 0;
    int64_t steps = 0;       // planned in all (cut by a time budget)
    double loss = 0;         // nats per token, this step
    double heldOutLoss = -1; // nats per token, when evaluated
    double lr = 0;
    double tokensPerSecond = 0;
};

// Resumes from out/trainer_state.json when it exists. Throws Error for bad options or files.
void trainModel(const TrainOptions& options, const std::function<void(const TrainProgress&)>& log);

} // namespace statescope
