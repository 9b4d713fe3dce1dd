// statescope-cli eval: loss against position, averaged over several windows of one text, the way the
// paper measures state collapse (per-token loss averaged over samples, then bucketed).
#include "Commands.h"

#include "Error.h"
#include "models/Mitigation.h"
#include "runtime/Input.h"
#include "runtime/Runner.h"
#include "tokenizers/Tokenizer.h"

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

double meanOver(const std::vector<double>& v, int64_t begin, int64_t end)
{
    double s = 0;
    int64_t n = 0;
    for (int64_t i = std::max<int64_t>(begin, 0); i < std::min<int64_t>(end, static_cast<int64_t>(v.size()));
         ++i)
        if (std::isfinite(v[i])) {
            s += v[i];
            ++n;
        }
    return n ? s / n : std::numeric_limits<double>::quiet_NaN();
}

std::string fmt(double v, int precision = 3)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", precision, v);
    return buf;
}

} // namespace

EvalResult evaluateLengths(const EvalArgs& args, const std::atomic<bool>& cancel)
{
    if (args.length < 2)
        throw Error("--length", "length", "at least 2 tokens", std::to_string(args.length));
    if (args.samples < 1)
        throw Error("--samples", "samples", "at least 1", std::to_string(args.samples));
    if (args.rangeEnd > args.length)
        throw Error("--range", "range",
                    "within the window of --length " + std::to_string(args.length) + " tokens",
                    std::to_string(args.rangeBegin) + ":" + std::to_string(args.rangeEnd));
    RunOptions options = runOptions(args.device, args.dtype, args.chunkSize, args.threads, args.mitigate);

    const ModelFolder folder = inspectModelFolder(args.model);
    InputRequest request;
    request.textFile = args.textFile;
    request.tokenizer = args.tokenizer;
    const std::vector<int32_t> ids = prepareInput(request, folder.tokenizerPath).ids;
    const int64_t n = static_cast<int64_t>(ids.size());
    if (n < args.length)
        throw Error(args.textFile, "text length",
                    "at least " + std::to_string(args.length) + " tokens (--length)",
                    std::to_string(n) + " tokens");

    auto runner = Runner::open(args.model, options);
    runner->checkIds(ids, args.textFile);
    calibrateForRun(*runner, args.calibrate, chooseTokenizerPath(args.tokenizer, folder.tokenizerPath), ids,
                    args.textFile);
    const ModelInfo& info = runner->info();
    EvalResult r;
    r.trainingLength = args.trainingLength > 0 ? args.trainingLength : info.trainingLength.value_or(0);
    r.layers = info.shape.layers;
    r.heads = info.shape.units;
    r.nll.assign(static_cast<size_t>(args.length), 0.0);
    r.stateNorm.assign(static_cast<size_t>(args.length * r.layers * r.heads), 0.0);
    const auto descs = runner->probes();
    int normProbe = -1;
    for (size_t d = 0; d < descs.size(); ++d)
        if (descs[d].name == kStateNormProbe)
            normProbe = static_cast<int>(d);

    const bool tty = isatty(2);
    // Windows spread evenly over the text; the same text, different starting points.
    for (int s = 0; s < args.samples; ++s) {
        const int64_t start = args.samples == 1 ? 0 : (n - args.length) * s / (args.samples - 1);
        r.windowStarts.push_back(start);
        runner->reset();
        const std::vector<int32_t> window(ids.begin() + start, ids.begin() + start + args.length);
        runner->run(
            window, nullptr,
            [&](const ChunkProbes& c) {
                for (int64_t i = 0; i < c.count(); ++i)
                    r.nll[c.start + i] += c.nll[i] / args.samples;
                if (normProbe >= 0) {
                    const auto& v = c.values[normProbe];
                    const int64_t per = r.layers * r.heads;
                    for (int64_t i = 0; i < c.count() * per; ++i)
                        r.stateNorm[c.start * per + i] += v[i] / args.samples;
                }
                const bool done = c.start + c.count() == args.length;
                if (!args.quiet && (tty || done))
                    std::fprintf(stderr, "%s[eval] window %d/%d: %lld/%lld tokens%s", tty ? "\r" : "", s + 1,
                                 args.samples, static_cast<long long>(c.start + c.count()),
                                 static_cast<long long>(args.length), tty ? "" : "\n");
            },
            &cancel);
    }
    if (!args.quiet && tty)
        std::fprintf(stderr, "\n");
    return r;
}

int evalCommand(const EvalArgs& args, const std::atomic<bool>& cancel)
{
    const EvalResult r = evaluateLengths(args, cancel);
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
    j["windows"] = r.windowStarts;
    j["length"] = args.length;
    j["bucket"] = b;
    j["training_length"] = T;
    j["buckets"] = buckets;
    if (T > 0 && T <= args.length) {
        const double ref = meanOver(r.nll, T - b, T);
        const double late = meanOver(r.nll, rangeBegin, rangeEnd);
        // The head whose state grew most between the training length and the end of the range.
        double growth = 0;
        int64_t gl = 0, gh = 0;
        for (int64_t l = 0; l < r.layers; ++l)
            for (int64_t h = 0; h < r.heads; ++h) {
                double a = 0, z = 0;
                for (int64_t t = T - b; t < T; ++t)
                    a += r.stateNorm[t * per + l * r.heads + h] / b;
                const int64_t tail = std::min<int64_t>(b, rangeEnd);
                for (int64_t t = rangeEnd - tail; t < rangeEnd; ++t)
                    z += r.stateNorm[t * per + l * r.heads + h] / tail;
                if (a > 0 && z / a > growth) {
                    growth = z / a;
                    gl = l;
                    gh = h;
                }
            }
        std::printf("mean nll [%lld, %lld) = %s (the bucket ending at the training length)\n",
                    static_cast<long long>(T - b), static_cast<long long>(T), fmt(ref).c_str());
        std::printf("mean nll [%lld, %lld) = %s\n", static_cast<long long>(rangeBegin),
                    static_cast<long long>(rangeEnd), fmt(late).c_str());
        std::printf("ratio = %s\n", fmt(late / ref).c_str());
        std::printf("largest state-norm growth from [%lld, %lld) to the last %lld tokens: %sx (layer %lld, "
                    "head %lld)\n",
                    static_cast<long long>(T - b), static_cast<long long>(T), static_cast<long long>(b),
                    fmt(growth, 2).c_str(), static_cast<long long>(gl), static_cast<long long>(gh));
        j["reference_nll"] = ref;
        j["range"] = {rangeBegin, rangeEnd};
        j["range_nll"] = late;
        j["ratio"] = late / ref;
        j["max_state_norm_growth"] = {{"factor", growth}, {"layer", gl}, {"head", gh}};
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
