// statescope-cli eval: loss against position, averaged over several windows of one text, the way the
// paper measures state collapse (per-token loss averaged over samples, then bucketed).
#include "Commands.h"

#include "Error.h"
#include "models/Mitigation.h"
#include "runtime/LengthEval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

namespace statescope::cli {

namespace {

std::string fmt(double v, int precision = 3)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", precision, v);
    return buf;
}

// A half-life in tokens; a unit that does not decay keeps everything.
std::string tokens(double halfLife)
{
    return std::isinf(halfLife) ? std::string("unbounded (no decay)") : fmt(halfLife, 1);
}

LengthEval evaluateLengths(const EvalArgs& args, const std::atomic<bool>& cancel)
{
    if (args.rangeEnd > args.length)
        throw Error("--range", "range",
                    "within the window of --length " + std::to_string(args.length) + " tokens",
                    std::to_string(args.rangeBegin) + ":" + std::to_string(args.rangeEnd));
    LengthEvalOptions o;
    o.model = args.model;
    o.textFile = args.textFile;
    o.tokenizer = args.tokenizer;
    o.calibrate = args.calibrate;
    o.length = args.length;
    o.samples = args.samples;
    o.trainingLength = args.trainingLength;
    o.allowOverlap = !args.noOverlap;
    if (args.paired) {
        o.pairedBegin = args.rangeBegin >= 0 ? args.rangeBegin : args.length / 2;
        o.pairedEnd = args.rangeEnd >= 0 ? args.rangeEnd : args.length;
    }
    const bool tty = isatty(2);
    LengthEval r = statescope::evaluateLengths(
        o, runOptions(args.device, args.dtype, args.chunkSize, args.threads, args.mitigate),
        [&](int window, int64_t done) {
            if (!args.quiet && (tty || done == args.length))
                std::fprintf(stderr, "%s[eval] window %d/%d: %lld/%lld tokens%s", tty ? "\r" : "", window + 1,
                             args.samples, static_cast<long long>(done), static_cast<long long>(args.length),
                             tty ? "" : "\n");
        },
        &cancel);
    if (!args.quiet && tty)
        std::fprintf(stderr, "\n");
    return r;
}

} // namespace

int evalCommand(const EvalArgs& args, const std::atomic<bool>& cancel)
{
    const LengthEval r = evaluateLengths(args, cancel);
    const int64_t T = r.trainingLength;
    const int64_t b =
        args.bucket > 0 ? args.bucket : std::max<int64_t>(1, T > 0 ? std::min<int64_t>(T, 256) : 256);
    const int64_t rangeBegin = args.rangeBegin >= 0 ? args.rangeBegin : args.length / 2;
    const int64_t rangeEnd = args.rangeEnd >= 0 ? args.rangeEnd : args.length;
    const int64_t per = r.layers * r.heads;

    auto layerNorm = [&](int64_t begin, int64_t end, int64_t l) { // sqrt(sum_h |S_h|^2), mean over tokens
        double s = 0;
        int64_t cnt = 0;
        for (int64_t t = std::max<int64_t>(begin, 0); t < std::min<int64_t>(end, args.length); ++t, ++cnt) {
            double sq = 0;
            for (int64_t h = 0; h < r.heads; ++h) {
                const double v = r.stateNorm[t * per + l * r.heads + h];
                sq += v * v;
            }
            s += std::sqrt(sq);
        }
        return cnt ? s / cnt : 0.0;
    };

    std::printf("eval: %s on %s: %d windows of %lld tokens (starts", args.model.c_str(),
                args.textFile.c_str(), args.samples, static_cast<long long>(args.length));
    for (int64_t s : r.windowStarts)
        std::printf(" %lld", static_cast<long long>(s));
    std::printf("), training length %s\n", T > 0 ? std::to_string(T).c_str() : "unknown");
    if (r.windowsOverlap)
        std::printf("note: the windows overlap (the text has %lld tokens, %d windows need %lld to be "
                    "disjoint): they are not independent samples (--no-overlap refuses this)\n",
                    static_cast<long long>(r.textTokens), args.samples,
                    static_cast<long long>(args.length * args.samples));
    std::printf("%10s %10s %9s %9s", "from", "to", "mean nll", "ppl");
    for (int64_t l = 0; l < r.layers; ++l)
        std::printf("  |S| L%-3lld", static_cast<long long>(l));
    std::printf("\n");
    nlohmann::ordered_json buckets = nlohmann::json::array();
    // Buckets of b up to 4 b, then doubling, so that a 32K curve fits a screen.
    for (int64_t from = 0, width = b; from < args.length; from += width) {
        if (from >= 4 * b && width < from / 2)
            width *= 2;
        const int64_t to = std::min<int64_t>(from + width, args.length);
        const double m = meanOver(r.nll, from, to);
        std::printf("%10lld %10lld %9.3f %9.2f", static_cast<long long>(from), static_cast<long long>(to), m,
                    std::exp(m));
        nlohmann::ordered_json row{{"from", from}, {"to", to}, {"mean_nll", m}};
        std::vector<double> norms;
        for (int64_t l = 0; l < r.layers; ++l) {
            norms.push_back(layerNorm(from, to, l));
            std::printf("  %9.3g", norms.back());
        }
        row["layer_state_norm"] = norms;
        buckets.push_back(row);
        std::printf("\n");
    }

    nlohmann::ordered_json j;
    j["model"] = args.model;
    j["text"] = args.textFile;
    j["text_tokens"] = r.textTokens;
    j["windows"] = r.windowStarts;
    j["windows_overlap"] = r.windowsOverlap;
    j["length"] = args.length;
    j["bucket"] = b;
    j["training_length"] = T;
    j["buckets"] = buckets;
    if (T > 0 && T <= args.length) {
        const LengthStats st = lengthStats(r, T, rangeBegin, rangeEnd, b);
        std::printf(
            "mean nll [%lld, %lld) = %s (the second half of the training length, without the first 64 "
            "tokens)\n",
            static_cast<long long>(st.referenceBegin), static_cast<long long>(st.referenceEnd),
            fmt(st.referenceNll).c_str());
        std::printf("mean nll [%lld, %lld) = %s\n", static_cast<long long>(rangeBegin),
                    static_cast<long long>(rangeEnd), fmt(st.rangeNll).c_str());
        std::printf("ratio = %s", fmt(st.ratio).c_str());
        if (args.samples > 1)
            std::printf(" (window by window: %s to %s, sd %s)", fmt(st.ratioMin).c_str(),
                        fmt(st.ratioMax).c_str(), fmt(st.ratioSpread).c_str());
        std::printf("\n");
        std::printf("largest state-norm growth from [%lld, %lld) to the last %lld tokens: %sx (layer %lld, "
                    "head %lld, whose norm over [%lld, %lld) is %s of the median head's)\n",
                    static_cast<long long>(st.referenceBegin), static_cast<long long>(st.referenceEnd),
                    static_cast<long long>(std::min(b, rangeEnd - rangeBegin)), fmt(st.normGrowth, 2).c_str(),
                    static_cast<long long>(st.growthLayer), static_cast<long long>(st.growthHead),
                    static_cast<long long>(st.referenceBegin), static_cast<long long>(st.referenceEnd),
                    fmt(st.growthNormShare, 3).c_str());
        if (st.pairedRatio > 0)
            std::printf(
                "paired ratio = %s (the range over the same tokens read with a context of T/2 to T; window "
                "by window %s to %s)\n",
                fmt(st.pairedRatio).c_str(), fmt(st.pairedRatioMin).c_str(), fmt(st.pairedRatioMax).c_str());
        if (st.retainedShare >= 0)
            std::printf("units keeping > 1%% of token 0 at position %lld: %s%%\n",
                        static_cast<long long>(args.length), fmt(100 * st.retainedShare, 1).c_str());
        if (st.halfLifeMedian >= 0)
            std::printf(
                "units' memory, the half-life of what they hold (ln 2 over the mean log decay per token): "
                "median %s, 90th percentile %s, slowest %s tokens\n",
                tokens(st.halfLifeMedian).c_str(), tokens(st.halfLifeP90).c_str(),
                tokens(st.halfLifeMax).c_str());
        j["reference"] = {st.referenceBegin, st.referenceEnd};
        j["reference_nll"] = st.referenceNll;
        j["range"] = {rangeBegin, rangeEnd};
        j["range_nll"] = st.rangeNll;
        j["ratio"] = st.ratio;
        j["ratio_windows"] = {{"min", st.ratioMin}, {"max", st.ratioMax}, {"sd", st.ratioSpread}};
        j["max_state_norm_growth"] = {{"factor", st.normGrowth},
                                      {"layer", st.growthLayer},
                                      {"head", st.growthHead},
                                      {"norm_share", st.growthNormShare}};
        if (st.retainedShare >= 0)
            j["retained_share"] = st.retainedShare;
        if (st.halfLifeMedian >= 0) // a unit that does not decay: null, as JSON has no infinity
            j["half_life"] = {
                {"median", st.halfLifeMedian}, {"p90", st.halfLifeP90}, {"max", st.halfLifeMax}};
        if (st.pairedRatio > 0)
            j["paired_ratio"] = {
                {"ratio", st.pairedRatio}, {"min", st.pairedRatioMin}, {"max", st.pairedRatioMax}};
    } else {
        std::printf("no ratio: the training length is unknown (--train-length) or beyond --length\n");
    }
    if (!args.json.empty()) {
        std::ofstream out(args.json);
        if (!out)
            throw Error(args.json, "cannot write the JSON file");
        out << j.dump(2) << "\n";
    }
    return 0;
}

} // namespace statescope::cli
