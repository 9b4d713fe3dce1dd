#pragma once

// Loss and state norms against position over windows of one text: the paper's collapse curve, and the
// numbers a sweep decides "forgets" from. Torch-free header; the statistics are plain arithmetic so
// that tests can feed them hand-made curves.

#include "runtime/Runner.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace statescope {

struct LengthEvalOptions {
    std::string model;
    std::string textFile;
    std::string tokenizer;      // "" = the model's
    std::string calibrate;      // text whose first T_train tokens calibrate clip/renorm ("" = the input's)
    int64_t length = 32768;     // tokens per window
    int samples = 4;            // windows, spread evenly over the text
    int64_t trainingLength = 0; // 0 = the model card's
    // Windows overlap when the text holds fewer than samples × length tokens. Overlapping windows are
    // not independent samples: false refuses them instead of only saying so.
    bool allowOverlap = true;
    // > 0 (with trainingLength known): also read the tokens of [pairedBegin, pairedEnd) with a short
    // context, each one after between T/2 and T tokens of its own window (two staggered streams whose
    // state is reset every T tokens). The ratio of the two losses then compares the same text with a
    // long and a training-length context, free of how the text itself varies along the window.
    int64_t pairedBegin = 0, pairedEnd = 0;
};

struct LengthEval {
    int64_t trainingLength = 0; // 0 = unknown
    int64_t length = 0;
    int64_t layers = 0, heads = 0; // heads: the probes' units (heads, channel groups)
    int64_t textTokens = 0;
    std::vector<int64_t> windowStarts;
    bool windowsOverlap = false;
    std::vector<std::vector<double>> windowNll; // [window][length]; NaN at 0
    std::vector<double> nll;                    // [length], the mean over windows
    std::vector<double> stateNorm;              // [length, layers, heads], the mean over windows
    // Per window and unit, Σ log α over tokens 1 .. length-1: log of the share of token 0 still in the
    // state at the window's end (Mamba-2: exp(A·ΣΔ)). Empty if the model reports no decay probe.
    std::vector<std::vector<double>> logRetention; // [window][layers * heads]
    // With LengthEvalOptions::pairedEnd > 0: per window, the short-context NLL of the positions
    // [pairedBegin, pairedEnd) (NaN elsewhere), and their mean over windows.
    int64_t pairedBegin = 0, pairedEnd = 0;
    std::vector<std::vector<double>> windowPairedNll; // [window][length]
    std::vector<double> pairedNll;                    // [length]
};

// Runs the model over the windows. progress(window, tokens done) after each chunk. Throws Error
// naming the text or the option for a text too short, windows that would overlap when refused, or a
// bad length; Cancelled when *cancel turns true.
LengthEval evaluateLengths(const LengthEvalOptions& options, const RunOptions& run,
                           const std::function<void(int, int64_t)>& progress = {},
                           const std::atomic<bool>* cancel = nullptr);

// The positions whose loss stands for "within the training length": [T/2, T), without the first 64
// tokens (the cold start inflates small T's reference) when T leaves room for it.
std::pair<int64_t, int64_t> referenceWindow(int64_t trainingLength);

// Mean of v over [begin, end) ∩ [0, size), finite values only; NaN if none.
double meanOver(const std::vector<double>& v, int64_t begin, int64_t end);

struct LengthStats {
    int64_t referenceBegin = 0, referenceEnd = 0;
    int64_t rangeBegin = 0, rangeEnd = 0;
    double referenceNll = 0, rangeNll = 0;
    double ratio = 0;                        // rangeNll / referenceNll on the mean curve
    double ratioMin = 0, ratioMax = 0;       // the same ratio window by window
    double ratioSpread = 0;                  // standard deviation of the windows' ratios (0 for one window)
    double normGrowth = 0;                   // the largest unit's mean |S| over the range's last `tail`
    int64_t growthLayer = 0, growthHead = 0; // tokens over its mean over the reference window
    // That unit's mean |S| over the reference window over the median unit's: a growth from a state
    // that carries little (the sweeps' muted heads) reads far below 1. -1: no norms.
    double growthNormShare = -1;
    double retainedShare = -1; // units keeping > 1 % of token 0 at the window's end; -1: unknown
    // How far back the units reach: each one's half-life in tokens, ln 2 over its mean decay per token
    // (−Σ log α / (length − 1), over the windows), of the median unit, the 90th percentile (nearest
    // rank) and the slowest; +inf for a unit that does not decay, -1 unknown (no decay probe).
    double halfLifeMedian = -1, halfLifeP90 = -1, halfLifeMax = -1;
    double maxNllWithinTraining = 0; // the largest bucket mean inside [64, T) (the paper's criterion)
    double endNll = 0;               // the mean over the window's last bucket
    // The range's NLL over the same tokens' NLL with a context of T/2 to T (LengthEval::pairedNll);
    // -1 when the evaluation has none for the whole range.
    double pairedRatio = -1;
    double pairedRatioMin = -1, pairedRatioMax = -1; // window by window
};

// Statistics of an evaluation against training length T (> 0, at most e.length) over the range
// [rangeBegin, rangeEnd). bucket (> 0) sets the tail over which the norm growth and end NLL are taken
// and the buckets of maxNllWithinTraining. Throws Error naming the field for a range or T outside
// the window.
LengthStats lengthStats(const LengthEval& e, int64_t trainingLength, int64_t rangeBegin, int64_t rangeEnd,
                        int64_t bucket);

} // namespace statescope
