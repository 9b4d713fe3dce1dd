#include "runtime/LengthEval.h"

#include "Error.h"
#include "models/ModelFolder.h"
#include "runtime/Input.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace statescope {

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

std::pair<int64_t, int64_t> referenceWindow(int64_t trainingLength)
{
    constexpr int64_t kColdStart = 64;
    const int64_t begin = std::max(trainingLength / 2, kColdStart);
    return {begin < trainingLength ? begin : trainingLength / 2, trainingLength};
}

LengthEval evaluateLengths(const LengthEvalOptions& o, const RunOptions& run,
                           const std::function<void(int, int64_t)>& progress, const std::atomic<bool>* cancel)
{
    if (o.length < 2)
        throw Error("--length", "length", "at least 2 tokens", std::to_string(o.length));
    if (o.samples < 1)
        throw Error("--samples", "samples", "at least 1", std::to_string(o.samples));
    const ModelFolder folder = inspectModelFolder(o.model);
    InputRequest request;
    request.textFile = o.textFile;
    request.tokenizer = o.tokenizer;
    const std::vector<int32_t> ids = prepareInput(request, folder.tokenizerPath).ids;
    const int64_t n = static_cast<int64_t>(ids.size());
    if (n < o.length)
        throw Error(o.textFile, "text length", "at least " + std::to_string(o.length) + " tokens (--length)",
                    std::to_string(n) + " tokens");
    LengthEval r;
    r.length = o.length;
    r.textTokens = n;
    // Windows spread evenly over the text: the same text, different starting points.
    for (int s = 0; s < o.samples; ++s)
        r.windowStarts.push_back(o.samples == 1 ? 0 : (n - o.length) * s / (o.samples - 1));
    r.windowsOverlap = o.samples > 1 && r.windowStarts[1] - r.windowStarts[0] < o.length;
    if (r.windowsOverlap && !o.allowOverlap)
        throw Error(o.textFile, "text length",
                    "at least " + std::to_string(o.length * o.samples) + " tokens for " +
                        std::to_string(o.samples) + " windows of " + std::to_string(o.length) +
                        " that do not overlap",
                    std::to_string(n) + " tokens");

    auto runner = Runner::open(o.model, run);
    runner->checkIds(ids, o.textFile);
    calibrateForRun(*runner, o.calibrate, chooseTokenizerPath(o.tokenizer, folder.tokenizerPath), ids,
                    o.textFile);
    const ModelInfo& info = runner->info();
    r.trainingLength = o.trainingLength > 0 ? o.trainingLength : info.trainingLength.value_or(0);
    r.layers = info.shape.layers;
    r.heads = info.shape.units;
    const int64_t per = r.layers * r.heads;
    r.nll.assign(static_cast<size_t>(o.length), 0.0);
    r.stateNorm.assign(static_cast<size_t>(o.length * per), 0.0);
    int normProbe = -1, decayProbe = -1;
    const auto descs = runner->probes();
    for (size_t d = 0; d < descs.size(); ++d) {
        if (descs[d].valuesPerToken() != per)
            continue;
        if (descs[d].name == kStateNormProbe)
            normProbe = static_cast<int>(d);
        if (descs[d].name == kDecayProbe)
            decayProbe = static_cast<int>(d);
    }

    const int64_t T = r.trainingLength;
    const bool paired = o.pairedEnd > 0;
    if (paired && (T < 2 || o.pairedBegin < T || o.pairedEnd > o.length || o.pairedBegin >= o.pairedEnd))
        throw Error("paired range", "range",
                    "[FROM, TO) with T_train <= FROM < TO <= " + std::to_string(o.length) +
                        " and T_train known",
                    std::to_string(o.pairedBegin) + ":" + std::to_string(o.pairedEnd) + " with T_train " +
                        std::to_string(T));
    if (paired) {
        r.pairedBegin = o.pairedBegin;
        r.pairedEnd = o.pairedEnd;
        r.pairedNll.assign(static_cast<size_t>(o.length), 0.0);
    }
    for (int s = 0; s < o.samples; ++s) {
        const int64_t start = r.windowStarts[s];
        runner->reset();
        std::vector<double> windowNll(static_cast<size_t>(o.length));
        std::vector<double> logRetention(decayProbe >= 0 ? per : 0, 0.0);
        const std::vector<int32_t> window(ids.begin() + start, ids.begin() + start + o.length);
        runner->run(
            window, nullptr,
            [&](const ChunkProbes& c) {
                for (int64_t i = 0; i < c.count(); ++i) {
                    windowNll[c.start + i] = c.nll[i];
                    r.nll[c.start + i] += c.nll[i] / o.samples;
                }
                if (normProbe >= 0) {
                    const auto& v = c.values[normProbe];
                    for (int64_t i = 0; i < c.count() * per; ++i)
                        r.stateNorm[c.start * per + i] += v[i] / o.samples;
                }
                if (decayProbe >= 0) {
                    const auto& v = c.values[decayProbe];
                    for (int64_t i = c.start == 0 ? 1 : 0; i < c.count(); ++i)
                        for (int64_t u = 0; u < per; ++u)
                            logRetention[u] += std::log(std::max<double>(v[i * per + u], 1e-300));
                }
                if (progress)
                    progress(s, c.start + c.count());
            },
            cancel);
        r.windowNll.push_back(std::move(windowNll));
        if (decayProbe >= 0)
            r.logRetention.push_back(std::move(logRetention));
        if (!paired)
            continue;
        // Stream k (0 or 1) restarts at positions j·T + k·T/2. A token at p is read by the stream in which
        // its context, p minus the stream's last restart, lies in [T/2, T): stream 0 when p mod T >= T/2.
        std::vector<double> shortNll(static_cast<size_t>(o.length), std::nan(""));
        const int64_t half = T / 2;
        for (int k = 0; k < 2; ++k) {
            const int64_t offset = k * half;
            // Restart points whose [restart + T/2, restart + T) meets the range.
            for (int64_t restart = offset + ((std::max<int64_t>(0, o.pairedBegin - T - offset)) / T) * T;
                 restart + half < o.pairedEnd; restart += T) {
                const int64_t from = std::max(restart + half, o.pairedBegin);
                const int64_t to = std::min({restart + T, o.pairedEnd, o.length});
                if (to <= from)
                    continue;
                runner->reset();
                const std::vector<int32_t> piece(ids.begin() + start + restart, ids.begin() + start + to);
                runner->run(
                    piece, nullptr,
                    [&](const ChunkProbes& c) {
                        for (int64_t i = 0; i < c.count(); ++i) {
                            const int64_t p = restart + c.start + i;
                            if (p >= from && p < to)
                                shortNll[p] = c.nll[i];
                        }
                    },
                    cancel);
            }
        }
        for (int64_t p = o.pairedBegin; p < o.pairedEnd; ++p)
            r.pairedNll[p] += shortNll[p] / o.samples;
        r.windowPairedNll.push_back(std::move(shortNll));
    }
    if (paired) // outside the range: not measured
        for (int64_t p = 0; p < o.length; ++p)
            if (p < o.pairedBegin || p >= o.pairedEnd)
                r.pairedNll[p] = std::nan("");
    return r;
}

LengthStats lengthStats(const LengthEval& e, int64_t T, int64_t rangeBegin, int64_t rangeEnd, int64_t bucket)
{
    if (T <= 0 || T > e.length)
        throw Error("--train-length", "training length",
                    "known and within the window of " + std::to_string(e.length) + " tokens",
                    std::to_string(T));
    if (rangeBegin < 0 || rangeEnd > e.length || rangeBegin >= rangeEnd)
        throw Error("--range", "range",
                    "FROM:TO within the window of " + std::to_string(e.length) + " tokens",
                    std::to_string(rangeBegin) + ":" + std::to_string(rangeEnd));
    if (bucket <= 0)
        throw Error("--bucket", "bucket", "at least 1 token", std::to_string(bucket));
    LengthStats s;
    std::tie(s.referenceBegin, s.referenceEnd) = referenceWindow(T);
    s.rangeBegin = rangeBegin;
    s.rangeEnd = rangeEnd;
    s.referenceNll = meanOver(e.nll, s.referenceBegin, s.referenceEnd);
    s.rangeNll = meanOver(e.nll, rangeBegin, rangeEnd);
    s.ratio = s.rangeNll / s.referenceNll;

    std::vector<double> ratios;
    for (const auto& w : e.windowNll)
        ratios.push_back(meanOver(w, rangeBegin, rangeEnd) / meanOver(w, s.referenceBegin, s.referenceEnd));
    if (ratios.empty())
        ratios.push_back(s.ratio);
    s.ratioMin = *std::min_element(ratios.begin(), ratios.end());
    s.ratioMax = *std::max_element(ratios.begin(), ratios.end());
    double mean = 0, sq = 0;
    for (double x : ratios)
        mean += x / ratios.size();
    for (double x : ratios)
        sq += (x - mean) * (x - mean);
    s.ratioSpread = ratios.size() > 1 ? std::sqrt(sq / (ratios.size() - 1)) : 0.0;

    const int64_t per = e.layers * e.heads;
    const int64_t tail = std::min(bucket, rangeEnd - rangeBegin);
    if (per > 0 && static_cast<int64_t>(e.stateNorm.size()) == e.length * per) {
        std::vector<double> atReference(static_cast<size_t>(per));
        for (int64_t u = 0; u < per; ++u) {
            double a = 0, z = 0;
            for (int64_t t = s.referenceBegin; t < s.referenceEnd; ++t)
                a += e.stateNorm[t * per + u] / (s.referenceEnd - s.referenceBegin);
            for (int64_t t = rangeEnd - tail; t < rangeEnd; ++t)
                z += e.stateNorm[t * per + u] / tail;
            atReference[u] = a;
            if (a > 0 && z / a > s.normGrowth) {
                s.normGrowth = z / a;
                s.growthLayer = u / e.heads;
                s.growthHead = u % e.heads;
            }
        }
        std::vector<double> sorted = atReference;
        std::sort(sorted.begin(), sorted.end());
        const size_t n = sorted.size();
        const double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
        if (median > 0 && s.normGrowth > 0)
            s.growthNormShare = atReference[s.growthLayer * e.heads + s.growthHead] / median;
    }
    if (!e.logRetention.empty()) {
        const double threshold = std::log(0.01);
        double kept = 0;
        for (const auto& w : e.logRetention)
            for (double v : w)
                kept += v > threshold ? 1.0 : 0.0;
        s.retainedShare = kept / static_cast<double>(e.logRetention.size() * e.logRetention[0].size());
        // Each window sums log α over its length - 1 tokens after token 0.
        const double tokens = static_cast<double>(e.logRetention.size()) * std::max<int64_t>(1, e.length - 1);
        std::vector<double> halfLives;
        for (size_t u = 0; u < e.logRetention[0].size(); ++u) {
            double decay = 0; // mean log α per token, <= 0
            for (const auto& w : e.logRetention)
                decay += u < w.size() ? w[u] / tokens : 0.0;
            halfLives.push_back(decay < 0 ? std::log(2.0) / -decay : std::numeric_limits<double>::infinity());
        }
        std::sort(halfLives.begin(), halfLives.end());
        const size_t n = halfLives.size();
        if (n > 0) {
            s.halfLifeMedian = n % 2 ? halfLives[n / 2] : 0.5 * (halfLives[n / 2 - 1] + halfLives[n / 2]);
            s.halfLifeP90 = halfLives[static_cast<size_t>(std::ceil(0.9 * n)) - 1];
            s.halfLifeMax = halfLives.back();
        }
    }
    s.maxNllWithinTraining = -std::numeric_limits<double>::infinity();
    for (int64_t from = std::min<int64_t>(64, T - 1); from < T; from += bucket)
        s.maxNllWithinTraining =
            std::max(s.maxNllWithinTraining, meanOver(e.nll, from, std::min(from + bucket, T)));
    s.endNll = meanOver(e.nll, e.length - std::min(bucket, e.length), e.length);
    if (!e.pairedNll.empty() && e.pairedBegin <= rangeBegin && rangeEnd <= e.pairedEnd) {
        s.pairedRatio = s.rangeNll / meanOver(e.pairedNll, rangeBegin, rangeEnd);
        s.pairedRatioMin = s.pairedRatioMax = s.pairedRatio;
        for (size_t w = 0; w < e.windowPairedNll.size() && w < e.windowNll.size(); ++w) {
            const double x = meanOver(e.windowNll[w], rangeBegin, rangeEnd) /
                             meanOver(e.windowPairedNll[w], rangeBegin, rangeEnd);
            s.pairedRatioMin = w == 0 ? x : std::min(s.pairedRatioMin, x);
            s.pairedRatioMax = w == 0 ? x : std::max(s.pairedRatioMax, x);
        }
    }
    return s;
}

} // namespace statescope
