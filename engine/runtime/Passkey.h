#pragma once

// Passkey retrieval (stuffed-mamba.md §3.7): the seed's template measured in the model's own tokens,
// a sweep over lengths and depths with greedy decoding, and its results file (passkey.h5) that an
// interrupted sweep resumes from. Torch-free: the model is reached through Runner.
#include "io/FileLock.h"
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace statescope {

class Tokenizer;
class Runner;

// One prompt of the sweep.
struct PasskeySample {
    int64_t length = 0; // the target in tokens (the seed's context_len)
    int64_t index = 0;  // sample index at this length
    double depth = 0;   // (index + 0.5) / samples
    std::string passkey;
    int64_t blocks = 0;      // haystack blocks, the needle's included
    int64_t needleBlock = 0; // int(depth * (blocks - 1))
    std::string text;
    std::vector<int32_t> ids;
    int64_t needleFirst = -1, needleLast = -1; // the tokens the needle sentence spans
};

// The 5-digit zero-padded key of sample `index` at `length`: a function of the three, so that a
// resumed sweep asks what the interrupted one asked.
std::string passkeyFor(uint64_t seed, int64_t length, int64_t index);

// As the seed builds it: prefix and suffix are subtracted from the length in tokens, the haystack is
// (rest // tokens of one block) blocks, and the needle replaces the block at int(depth*(blocks-1)).
// Throws Error if the length leaves no room for one block.
PasskeySample makePasskeySample(const Tokenizer& tokenizer, int64_t length, int64_t index, int64_t samples,
                                uint64_t seed);

// Greedy tokens a sweep decodes by default: the seed's 5, or as many as " 00000" takes if that is more
// (6 for a byte-level model, whose answer could never hold the key in 5).
int64_t passkeyAnswerTokens(const Tokenizer& tokenizer);

// A prediction is correct when it contains the key's digits.
bool passkeyCorrect(const std::string& prediction, const std::string& passkey);

// "1K:16K:1K" (from:to:step, inclusive), "1024,4096,8K" or one length; K = 1024, M = 1024^2.
// Throws Error naming the spec.
std::vector<int64_t> parseLengths(const std::string& spec);

struct PasskeyResult {
    int64_t length = 0;
    int64_t index = 0;
    double depth = 0;
    std::string passkey;
    std::string prediction;
    bool correct = false;
    int64_t promptTokens = 0;
    int64_t needleFirst = -1, needleLast = -1;
};

struct PasskeySettings {
    std::string model;     // as the user named it
    std::string tokenizer; // the tokenizer.json used
    std::vector<int64_t> lengths;
    int64_t samples = 10;
    uint64_t seed = 0;
    int64_t maxNewTokens = 5;
    int64_t batch = 1;               // prompts decoded at once (those of one length and one token count)
    std::string mitigation = "none"; // Mitigation::describe() of the run
};

// Accuracy per (length, depth bin): bins split [0, 1) evenly; NaN where a cell has no sample.
// Row-major [lengths.size(), bins].
std::vector<double> passkeyGrid(const std::vector<PasskeyResult>& results,
                                const std::vector<int64_t>& lengths, int bins);

// The paper's "last-k" accuracy: per length, the accuracy over the samples whose needle starts within
// the prompt's last k tokens (counted per sample from its tokens, where the seed rounds to depth
// rows); NaN where no sample does.
std::vector<double> passkeyLastK(const std::vector<PasskeyResult>& results,
                                 const std::vector<int64_t>& lengths, int64_t k);
// T_recall: the longest of lengths whose mean accuracy is at least threshold; 0 if none.
int64_t passkeyRecallLength(const std::vector<PasskeyResult>& results, const std::vector<int64_t>& lengths,
                            double threshold = 0.95);

// passkey.h5. write() replaces the file atomically (a temporary file, then rename), so an
// interrupted sweep leaves the last complete state. read() returns the results of a file written
// with the same model, tokenizer, seed, samples and decoding, and throws Error naming the setting
// that differs otherwise; a missing file is an empty sweep.
void writePasskeyFile(const std::string& path, const PasskeySettings& settings,
                      const std::vector<PasskeyResult>& results);

// A results file as it is, its settings (lengths included) with it: for looking at a sweep run
// elsewhere. Throws Error naming the file for anything that is not one.
struct PasskeySweep {
    PasskeySettings settings;
    std::vector<PasskeyResult> results;
};
PasskeySweep readPasskeySweep(const std::string& path);
// Whether path is an HDF5 file that says it is a passkey results file; never throws.
bool isPasskeyResultsFile(const std::string& path);

std::vector<PasskeyResult> readPasskeyFile(const std::string& path, const PasskeySettings& settings);

// One sweep writes a passkey file at a time: an open file description lock on PATH.lock, held
// while this object lives. Throws Error naming the file if another sweep holds it.
class PasskeyFileLock {
public:
    explicit PasskeyFileLock(const std::string& path);

private:
    FileLock m_lock;
};

// Runs every (length, index) of settings not yet in *results, length by length, appending to
// *results; afterLength (may be empty) is called after each length with everything so far, and
// the sweep stops (throws Cancelled) when *cancel turns true between batches.
void runPasskeySweep(Runner& runner, const Tokenizer& tokenizer, const PasskeySettings& settings,
                     std::vector<PasskeyResult>* results,
                     const std::function<void(const std::vector<PasskeyResult>&)>& afterLength,
                     const std::atomic<bool>* cancel = nullptr);

} // namespace statescope
