// Sweeps (runtime/Sweep.h): the plan is deterministic and shards partition it; the criterion on
// hand-made curves; the fit and the threshold interpolation recover known lines; the report of
// synthetic job results recovers the line they were made from; a real (tiny, CPU) sweep interrupted
// after one job resumes without redoing it.
#include "Error.h"
#include "io/FileLock.h"
#include "io/Json.h"
#include "runtime/LengthEval.h"
#include "runtime/Runner.h"
#include "runtime/Sweep.h"
#include "runtime/TokenCorpus.h"
#include "runtime/Trainer.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QTemporaryDir>
#include <QtTest>

#include <chrono>
#include <cmath>
#include <fstream>
#include <set>
#include <thread>

using namespace statescope;

namespace {

const char* const kText = STATESCOPE_RESOURCES_DIR "/texts/kjv-heldout.txt";

std::string writeSpec(const QTemporaryDir& dir, nlohmann::json spec)
{
    const std::string path = dir.filePath("spec.json").toStdString();
    std::ofstream(path) << spec.dump(1);
    return path;
}

nlohmann::json tinySpec()
{
    return {{"name", "tiny"},
            {"shape", "tiny"},
            {"overrides", {{"chunk_size", 32}}},
            {"axis", "d_state"},
            {"values", {16, 8}},
            {"train_lengths", {64, 32}},
            {"seeds", {0}},
            {"budget", "tokens"},
            {"tokens_per_run", 2048},
            {"tokens_per_step", 256},
            {"lr", 3e-3},
            {"data", kText},
            {"held_out", {{"kjv", kText}}},
            {"eval_multiple", 4},
            {"eval_samples", 1},
            {"eval_chunk", 128},
            {"criterion", {{"from", 2}, {"to", 4}}}};
}

// A curve of `length` tokens: NLL `within` before T, `after` from T on; norms `norm(t)` for every unit.
LengthEval curve(int64_t T, int64_t length, double within, double after, double normGrowth = 1)
{
    LengthEval e;
    e.trainingLength = T;
    e.length = length;
    e.layers = 2;
    e.heads = 3;
    e.windowStarts = {0};
    e.nll.assign(static_cast<size_t>(length), within);
    e.nll[0] = std::nan("");
    for (int64_t t = 0; t < 64 && t < T; ++t) // a cold start the reference must skip
        e.nll[t] = 5.0;
    for (int64_t t = T; t < length; ++t)
        e.nll[t] = after;
    e.windowNll = {e.nll};
    e.stateNorm.assign(static_cast<size_t>(length * 6), 1.0);
    for (int64_t t = T; t < length; ++t)
        e.stateNorm[t * 6 + 4] = normGrowth; // layer 1, head 1
    return e;
}

// A job.json as `sweep run` writes it for the tiny spec's folder: one evaluation per entry of `within`,
// its NLL that value before T and `within · after` from T on, every head's norm flat.
bool writeSyntheticJob(const QTemporaryDir& dir, const SweepJob& job, const std::vector<double>& within,
                       double after, const std::vector<std::vector<double>>& halfLives = {})
{
    const int64_t T = job.trainLength, L = job.evalLength, grain = std::max<int64_t>(16, T / 8);
    nlohmann::json evals = nlohmann::json::array();
    for (size_t e = 0; e < within.size(); ++e) {
        const double w = within[e];
        // Per unit (of halfLives[e], when given): the log share of token 0 left after L − 1 tokens.
        std::vector<double> logRetention;
        if (e < halfLives.size())
            for (double h : halfLives[e])
                logRetention.push_back(-(L - 1) * std::log(2.0) / h);
        nlohmann::json nll = nlohmann::json::array(), norms = nlohmann::json::array();
        for (int64_t t = 0; t < L; t += grain)
            nll.push_back(t < T ? w : w * after);
        for (int u = 0; u < 8; ++u)
            norms.push_back(std::vector<double>(static_cast<size_t>(L / grain), 1.0));
        evals.push_back({{"domain", "kjv"},
                         {"text", kText},
                         {"length", L},
                         {"training_length", T},
                         {"layers", 2},
                         {"heads", 4},
                         {"grain", grain},
                         {"windows", {0}},
                         {"windows_overlap", false},
                         {"nll", nll},
                         {"window_nll", {nll}},
                         {"state_norm", norms},
                         {"log_retention", logRetention.empty() ? nlohmann::json::array()
                                                                : nlohmann::json::array({logRetention})}});
    }
    const QString jobDir = dir.filePath(QString("tiny/jobs/%1").arg(QString::fromStdString(job.id)));
    if (!QDir().mkpath(jobDir))
        return false;
    std::ofstream out((jobDir + "/job.json").toStdString());
    out << nlohmann::json{{"evals", evals}, {"seconds", 60.0}}.dump();
    return bool(out);
}

// An evaluation of job.json re-bucketed to `grain` tokens, as sweep run stored every one before
// 2026-12-06: each bucket the mean of the finer ones it holds.
void coarsenStoredEval(nlohmann::json& e, int64_t grain)
{
    const int64_t factor = grain / e.at("grain").get<int64_t>();
    auto coarsen = [factor](const nlohmann::json& v) {
        nlohmann::json out = nlohmann::json::array();
        for (size_t from = 0; from < v.size(); from += size_t(factor)) {
            double sum = 0;
            int n = 0;
            for (size_t i = from; i < std::min(v.size(), from + size_t(factor)); ++i)
                if (v[i].is_number()) {
                    sum += v[i].get<double>();
                    ++n;
                }
            out.push_back(n ? nlohmann::json(sum / n) : nlohmann::json(nullptr));
        }
        return out;
    };
    for (const char* key : {"nll", "paired_nll"})
        if (e.contains(key))
            e[key] = coarsen(e[key]);
    for (const char* key : {"window_nll", "state_norm", "window_paired_nll"})
        if (e.contains(key))
            for (auto& v : e[key])
                v = coarsen(v);
    e["grain"] = grain;
}

// A run of the tiny sweep's jobs on two CPU threads.
SweepRunOptions cpuRun()
{
    SweepRunOptions o;
    o.device = "cpu";
    o.threads = 2;
    return o;
}

} // namespace

class TestSweep : public QObject {
    Q_OBJECT

private slots:
    // The specs that docs/sweeps.md tells users to run: each reads and plans, and its N_S rises with
    // its axis, so a spec edited for the next round cannot break only once it reaches the GPU machine.
    void shippedSpecsPlan()
    {
        const QDir specs(STATESCOPE_RESOURCES_DIR "/../tools/sweeps");
        const QStringList files = specs.entryList({"*.json"}, QDir::Files, QDir::Name);
        QVERIFY2(files.contains("neox-layers.json") && files.contains("neox-dstate.json"),
                 qPrintable(files.join(' ')));
        for (const QString& name : files) {
            SweepSpec spec;
            std::vector<SweepJob> jobs;
            try {
                spec = readSweepSpec(specs.filePath(name).toStdString());
                jobs = planSweep(spec);
            } catch (const std::exception& e) {
                QFAIL(e.what());
            }
            size_t planned = 0;
            for (int64_t value : spec.axisValues)
                planned += spec.lengthsFor(value).size() * spec.seeds.size();
            QVERIFY2(jobs.size() == planned, qPrintable(name));
            int64_t last = 0;
            for (const SweepJob& job : jobs) {
                QVERIFY2(job.stateSize >= last, qPrintable(name + ": " + QString::fromStdString(job.id)));
                last = job.stateSize;
            }
        }
    }

    void planIsDeterministic()
    {
        QTemporaryDir dir;
        const SweepSpec spec = readSweepSpec(writeSpec(dir, tinySpec()));
        const auto a = planSweep(spec), b = planSweep(spec);
        QCOMPARE(a.size(), size_t(4));
        for (size_t i = 0; i < a.size(); ++i) {
            QCOMPARE(a[i].id, b[i].id);
            QCOMPARE(a[i].index, int64_t(i));
            QCOMPARE(a[i].tokens, b[i].tokens);
        }
        // Sorted by state size, then T_train, whatever the spec's order.
        QCOMPARE(a[0].id, std::string("d_state-8_T-32_seed-0"));
        QCOMPARE(a[3].id, std::string("d_state-16_T-64_seed-0"));
        // N_S from the registry: 2 layers × (8 heads × 16 × d_state + conv (128 + 2 d_state) × 3).
        QCOMPARE(a[0].stateSize, int64_t(2 * (8 * 16 * 8 + (128 + 16) * 3)));
        QCOMPARE(a[3].stateSize, int64_t(2 * (8 * 16 * 16 + (128 + 32) * 3)));
        // Equal tokens: 256 tokens a step, 8 steps, whatever T_train.
        for (const auto& j : a) {
            QCOMPARE(j.tokens, int64_t(2048));
            QCOMPARE(j.batch * j.trainLength, int64_t(256));
            QCOMPARE(j.evalLength, 4 * j.trainLength);
        }
        // Equal steps: tokens grow with T_train.
        nlohmann::json s = tinySpec();
        s["budget"] = "steps";
        s["steps"] = 10;
        s["batch"] = 2;
        const auto c = planSweep(readSweepSpec(writeSpec(dir, s)));
        QCOMPARE(c[0].tokens, int64_t(10 * 2 * 32));
        QCOMPARE(c[1].tokens, int64_t(10 * 2 * 64));
    }

    void shardsPartition()
    {
        QTemporaryDir dir;
        nlohmann::json s = tinySpec();
        s["values"] = {4, 8, 16};
        s["train_lengths"] = {32, 64, 128};
        s["seeds"] = {0, 1};
        const auto jobs = planSweep(readSweepSpec(writeSpec(dir, s)));
        QCOMPARE(jobs.size(), size_t(18));
        for (int n = 1; n <= 7; ++n) {
            std::multiset<std::string> seen;
            for (int i = 0; i < n; ++i) {
                const auto shard = shardJobs(jobs, i, n);
                QVERIFY(shard.size() >= jobs.size() / n && shard.size() <= jobs.size() / n + 1);
                for (const auto& j : shard)
                    seen.insert(j.id);
            }
            QCOMPARE(seen.size(), jobs.size());
            for (const auto& j : jobs)
                QCOMPARE(seen.count(j.id), size_t(1));
        }
        QCOMPARE(parseShard("2/5", "--shard"), std::make_pair(2, 5));
        for (const char* bad : {"5/5", "-1/2", "1", "1/0", "1/2x"})
            QVERIFY_THROWS_EXCEPTION(Error, parseShard(bad, "--shard"));
    }

    void specRefusals_data()
    {
        QTest::addColumn<QString>("key");
        QTest::addColumn<QString>("value");
        QTest::addColumn<QString>("message");
        QTest::newRow("axis") << "axis"
                              << "\"d_conv\""
                              << "axis: expected d_state, n_layer";
        QTest::newRow("unknown key") << "epochs"
                                     << "3"
                                     << "epochs: expected a known key";
        QTest::newRow("budget") << "budget"
                                << "\"seconds\""
                                << "budget: expected \"tokens\" or \"steps\"";
        QTest::newRow("no lengths") << "train_lengths"
                                    << "[]"
                                    << "train_lengths: expected a non-empty list";
        QTest::newRow("duplicate") << "values"
                                   << "[8, 8]"
                                   << "values: expected distinct values";
        QTest::newRow("criterion beyond eval") << "eval_multiple"
                                               << "3"
                                               << "criterion: expected 1 <= from < to";
        QTest::newRow("architecture") << "architecture"
                                      << "\"rwkv6\""
                                      << "architecture: expected mamba2";
        QTest::newRow("held-out") << "held_out"
                                  << "{}"
                                  << "held_out: expected an object";
        QTest::newRow("grid of a value not swept")
            << "train_lengths_by_value"
            << "{\"12\": [64, 128]}"
            << "train_lengths_by_value.12: expected one of the spec's values";
        QTest::newRow("grid keyed by a name") << "train_lengths_by_value"
                                              << "{\"large\": [64]}"
                                              << "train_lengths_by_value.large: expected an axis value";
        QTest::newRow("empty grid of a value") << "train_lengths_by_value"
                                               << "{\"8\": []}"
                                               << "train_lengths_by_value.8: expected a non-empty list";
    }

    void specRefusals()
    {
        QFETCH(QString, key);
        QFETCH(QString, value);
        QFETCH(QString, message);
        QTemporaryDir dir;
        nlohmann::json s = tinySpec();
        s[key.toStdString()] = nlohmann::json::parse(value.toStdString());
        const std::string path = writeSpec(dir, s);
        try {
            readSweepSpec(path);
            QFAIL("accepted");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains(message), e.what());
            QVERIFY2(QString(e.what()).contains("spec.json"), e.what());
        }
    }

    void referenceWindowSkipsColdStart()
    {
        QCOMPARE(referenceWindow(4096), std::make_pair(int64_t(2048), int64_t(4096)));
        QCOMPARE(referenceWindow(256), std::make_pair(int64_t(128), int64_t(256)));
        QCOMPARE(referenceWindow(100), std::make_pair(int64_t(64), int64_t(100)));
        QCOMPARE(referenceWindow(64), std::make_pair(int64_t(32), int64_t(64))); // no room to skip
    }

    void criterionOnHandMadeCurves()
    {
        ForgetCriterion c; // ratio over [8T, 16T) within 10 %, growth <= 5x
        const int64_t T = 256, L = 32 * T;
        auto judge = [&](const LengthEval& e) {
            const auto [from, to] = criterionRange(c, T, L);
            return judgeForgetting(c, {lengthStats(e, T, from, to, 32)});
        };
        // Flat after T_train (the cold start's 5.0 is outside the reference [128, 256)).
        const ForgetVerdict flat = judge(curve(T, L, 2.0, 2.1));
        QVERIFY2(flat.forgets, flat.reason.c_str());
        QCOMPARE(flat.score, 1.05);
        // Loss 30 % up: collapses.
        const ForgetVerdict up = judge(curve(T, L, 2.0, 2.6));
        QVERIFY(!up.forgets);
        QVERIFY2(QString::fromStdString(up.reason).contains("loss ratio 1.300 > 1.100"), up.reason.c_str());
        // Flat loss, but one head's state 8x larger than within T_train: collapses on the norm test.
        const ForgetVerdict grows = judge(curve(T, L, 2.0, 2.0, 8.0));
        QVERIFY(!grows.forgets);
        QVERIFY2(QString::fromStdString(grows.reason).contains("state-norm growth 8.00x > 5.00x"),
                 grows.reason.c_str());
        const LengthStats st = lengthStats(curve(T, L, 2.0, 2.0, 8.0), T, 8 * T, 16 * T, 32);
        QCOMPARE(st.growthLayer, int64_t(1));
        QCOMPARE(st.growthHead, int64_t(1));
        QCOMPARE(st.growthNormShare, 1.0); // every unit starts at 1
        // The same growth from a head that holds a tenth of the others' norm within T_train.
        LengthEval muted = curve(T, L, 2.0, 2.0);
        for (int64_t t = 0; t < L; ++t)
            muted.stateNorm[t * 6 + 4] = t < T ? 0.1 : 0.8;
        const LengthStats ms = lengthStats(muted, T, 8 * T, 16 * T, 32);
        QCOMPARE(ms.growthLayer, int64_t(1));
        QCOMPARE(ms.growthHead, int64_t(1));
        QVERIFY(std::abs(ms.normGrowth - 8.0) < 1e-9);
        QVERIFY(std::abs(ms.growthNormShare - 0.1) < 1e-9);
        // Two domains: the worst one decides.
        const auto [from, to] = criterionRange(c, T, L);
        const ForgetVerdict two = judgeForgetting(c, {lengthStats(curve(T, L, 2.0, 2.0), T, from, to, 32),
                                                      lengthStats(curve(T, L, 2.0, 2.4), T, from, to, 32)});
        QVERIFY(!two.forgets);
        QCOMPARE(two.score, 1.2);
        // The paper's criterion: the end below 2x the worst bucket within T_train.
        ForgetCriterion paper;
        paper.kind = "paper";
        paper.maxNormGrowth = 0;
        const auto [pf, pt] = criterionRange(paper, T, L);
        QCOMPARE(pt, L);
        QVERIFY(judgeForgetting(paper, {lengthStats(curve(T, L, 2.0, 3.9), T, pf, pt, 32)}).forgets);
        QVERIFY(!judgeForgetting(paper, {lengthStats(curve(T, L, 2.0, 4.1), T, pf, pt, 32)}).forgets);
        // Window by window: two windows that disagree give the spread.
        LengthEval e = curve(T, L, 2.0, 2.2);
        e.windowNll.push_back(curve(T, L, 2.0, 2.6).nll);
        e.windowStarts.push_back(100);
        const LengthStats s = lengthStats(e, T, from, to, 32);
        QCOMPARE(s.ratioMin, 1.1);
        QCOMPARE(s.ratioMax, 1.3);
        QVERIFY(std::abs(s.ratioSpread - 0.2 / std::sqrt(2.0)) < 1e-9);
        // Nothing is read before position 0 or after the window.
        QVERIFY_THROWS_EXCEPTION(Error, lengthStats(e, 2 * L, from, to, 32));
        QVERIFY_THROWS_EXCEPTION(Error, lengthStats(e, T, 0, L + 1, 32));
    }

    // The paired reference: the text grows harder along the window, so the plain ratio reads a collapse
    // where the same tokens read with a training-length context are as hard as they are late.
    void pairedCriterionCancelsTheText()
    {
        const int64_t T = 256, L = 32 * T;
        LengthEval e = curve(T, L, 2.0, 2.6);
        e.pairedBegin = 8 * T;
        e.pairedEnd = 16 * T;
        e.pairedNll.assign(static_cast<size_t>(L), std::nan(""));
        for (int64_t p = e.pairedBegin; p < e.pairedEnd; ++p)
            e.pairedNll[p] = 2.5;
        e.windowPairedNll = {e.pairedNll};
        ForgetCriterion ratio, paired;
        paired.kind = "paired";
        const auto [from, to] = criterionRange(paired, T, L);
        const LengthStats st = lengthStats(e, T, from, to, 32);
        QVERIFY(std::abs(st.pairedRatio - 2.6 / 2.5) < 1e-12);
        QCOMPARE(st.pairedRatioMin, st.pairedRatio);
        QVERIFY(!judgeForgetting(ratio, {st}).forgets);
        const ForgetVerdict v = judgeForgetting(paired, {st});
        QVERIFY2(v.forgets, v.reason.c_str());
        // Without a paired measurement the paired criterion cannot say "forgets".
        const ForgetVerdict none =
            judgeForgetting(paired, {lengthStats(curve(T, L, 2.0, 2.0), T, from, to, 32)});
        QVERIFY(!none.forgets);
        QVERIFY2(QString::fromStdString(none.reason).contains("paired loss ratio inf"), none.reason.c_str());
    }

    // The short-context NLL of every paired position is that token's NLL after exactly the T/2 to T
    // tokens before it that the two staggered streams give it: checked against fresh runs of the model.
    void pairedNllReadsTrainingLengthContexts()
    {
        LengthEvalOptions o;
        o.model = STATESCOPE_RESOURCES_DIR "/models/tiny-collapse";
        o.textFile = kText;
        o.length = 2048;
        o.samples = 1;
        o.trainingLength = 256;
        o.pairedBegin = 1000;
        o.pairedEnd = 1600;
        RunOptions run;
        run.threads = 2;
        const LengthEval e = evaluateLengths(o, run);
        QCOMPARE(e.windowPairedNll.size(), size_t(1));
        QVERIFY(std::isnan(e.pairedNll[999]) && std::isnan(e.pairedNll[1600]));
        for (int64_t p = 1000; p < 1600; ++p)
            QVERIFY2(std::isfinite(e.pairedNll[p]), qPrintable(QString::number(p)));
        QFile f(kText);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray bytes = f.read(2048);
        auto runner = Runner::open(o.model, run);
        for (int64_t p : {1000, 1023, 1024, 1151, 1152, 1279, 1280, 1599}) {
            const int64_t context = p % 256 >= 128 ? p % 256 : p % 256 + 128;
            std::vector<int32_t> ids;
            for (int64_t t = p - context; t <= p; ++t)
                ids.push_back(static_cast<uint8_t>(bytes[static_cast<int>(t)]));
            runner->reset();
            const ChunkProbes c = runner->feed(ids);
            QVERIFY2(
                std::abs(c.nll.back() - e.pairedNll[p]) < 1e-4,
                qPrintable(QString("position %1: %2 vs %3").arg(p).arg(c.nll.back()).arg(e.pairedNll[p])));
            // The long-context NLL differs: the two readings are not the same run.
            if (p == 1599)
                QVERIFY(std::abs(e.nll[p] - e.pairedNll[p]) > 1e-6);
        }
        const LengthStats st = lengthStats(e, 256, 1024, 1536, 64);
        QVERIFY(st.pairedRatio > 0);
        // A range outside the paired one has no paired ratio.
        QCOMPARE(lengthStats(e, 256, 512, 1536, 64).pairedRatio, -1.0);
    }

    void fitRecoversKnownLine()
    {
        // y = 5.172 x − 4.469 with small alternating noise.
        std::vector<double> x{1.1, 1.6, 2.4, 4.8, 12.9}, y;
        for (size_t i = 0; i < x.size(); ++i)
            y.push_back(5.172 * x[i] - 4.469 + (i % 2 ? 0.05 : -0.05));
        const LineFit f = fitLine(x, y);
        QVERIFY2(std::abs(f.slope - 5.172) < 0.02, qPrintable(QString::number(f.slope)));
        QVERIFY2(std::abs(f.intercept + 4.469) < 0.1, qPrintable(QString::number(f.intercept)));
        QVERIFY(f.r2 > 0.999);
        QVERIFY(f.hasInterval());
        QVERIFY(f.slopeLow > 0 && f.slopeLow < 5.172 && f.slopeHigh > 5.172);
        QCOMPARE(f.residuals.size(), x.size());
        // Pure noise: the interval includes 0.
        const LineFit g = fitLine({1, 2, 3, 4}, {1, -1, -1, 1});
        QVERIFY(g.slopeLow < 0 && g.slopeHigh > 0);
        QCOMPARE(studentT95(3), 3.182);
        QVERIFY_THROWS_EXCEPTION(Error, fitLine({2, 2}, {1, 3}));
    }

    void thresholdInterpolatesOnLogScale()
    {
        // Scores linear in log T cross 1.1 at T = 1000 between the grid points 512 and 2048.
        const std::vector<int64_t> T{256, 512, 2048, 4096};
        auto score = [](double t) { return 1.1 + 0.2 * std::log(1000.0 / t); };
        std::vector<ForgetVerdict> v;
        for (int64_t t : T)
            v.push_back({score(double(t)) <= 1.1, score(double(t)), 1, ""});
        const ForgetThreshold f = forgetThreshold(T, v, 1.1);
        QVERIFY(f.inside && f.monotone);
        QCOMPARE(f.collapsesAt, int64_t(512));
        QCOMPARE(f.forgetsFrom, int64_t(2048));
        QVERIFY2(std::abs(f.interpolated - 1000) < 1e-6, qPrintable(QString::number(f.interpolated)));
        // Every length forgets: below the grid; a forgetting length below a collapsing one: not monotone.
        std::vector<ForgetVerdict> all(4, ForgetVerdict{true, 1.0, 1, ""});
        QVERIFY(!forgetThreshold(T, all, 1.1).inside);
        std::vector<ForgetVerdict> mixed{
            {true, 1, 1, ""}, {false, 2, 1, "x"}, {true, 1, 1, ""}, {true, 1, 1, ""}};
        const ForgetThreshold upsideDown = forgetThreshold(T, mixed, 1.1);
        QVERIFY(!upsideDown.monotone);
        QCOMPARE(upsideDown.interpolated, 0.0);
        QCOMPARE(upsideDown.interpolatedBy, std::string());
        QCOMPARE(f.interpolatedBy, std::string("loss"));

        // A collapse by the norm part alone: the largest head's growth, 20x at 512 and 2.5x at 1024,
        // crosses 5x on log-log scales two thirds of the way, at 512 * 2^(2/3).
        const std::vector<int64_t> T2{256, 512, 1024};
        const std::vector<ForgetVerdict> byNorm{
            {false, 1.0, 40, "norm"}, {false, 1.0, 20, "norm"}, {true, 1.0, 2.5, ""}};
        const ForgetThreshold n = forgetThreshold(T2, byNorm, 1.1, 5);
        QVERIFY(n.inside && n.monotone);
        QCOMPARE(n.interpolatedBy, std::string("norm"));
        QVERIFY2(std::abs(n.interpolated - 512 * std::pow(2.0, 2.0 / 3)) < 1e-6,
                 qPrintable(QString::number(n.interpolated)));
        // Without the norm part in the criterion nothing crosses: the bracket's geometric middle.
        const ForgetThreshold m = forgetThreshold(T2, byNorm, 1.1, 0);
        QCOMPARE(m.interpolatedBy, std::string("middle"));
        QVERIFY(std::abs(m.interpolated - 512 * std::sqrt(2.0)) < 1e-6);
        // Both parts fail at 512: the later crossing. The loss (1.3 -> 1.0 crosses 1.1 at 2/3) against
        // the norm (10x -> 2.5x crosses 5x at 1/2).
        const std::vector<ForgetVerdict> both{
            {false, 1.5, 40, "x"}, {false, 1.3, 10, "x"}, {true, 1.0, 2.5, ""}};
        const ForgetThreshold b = forgetThreshold(T2, both, 1.1, 5);
        QCOMPARE(b.interpolatedBy, std::string("loss"));
        QVERIFY(std::abs(b.interpolated - 512 * std::pow(2.0, 2.0 / 3)) < 1e-6);
        const std::vector<ForgetVerdict> bothNormLater{
            {false, 1.5, 40, "x"}, {false, 1.15, 10, "x"}, {true, 1.0, 2.5, ""}};
        const ForgetThreshold c = forgetThreshold(T2, bothNormLater, 1.1, 5);
        QCOMPARE(c.interpolatedBy, std::string("norm"));
        QVERIFY(std::abs(c.interpolated - 512 * std::sqrt(2.0)) < 1e-6);
    }

    // Job results written by hand, with scores made from a known line: the report finds it again.
    void reportRecoversLineFromSyntheticJobs()
    {
        QTemporaryDir dir;
        nlohmann::json s = tinySpec();
        s["values"] = {8, 16, 32, 64};
        s["train_lengths"] = {64, 128, 256, 512, 1024, 2048};
        s["seeds"] = {0, 1};
        s["eval_multiple"] = 16;
        s["criterion"] = {{"from", 8}, {"to", 16}};
        const SweepSpec spec = readSweepSpec(writeSpec(dir, s));
        const auto jobs = planSweep(spec);
        // T_forget[K] = a N_S[M] + b through the first and the last state size's chosen thresholds.
        const double ns0 = jobs.front().stateSize / 1e6, ns1 = jobs.back().stateSize / 1e6;
        const double a = (1500.0 / 1024 - 100.0 / 1024) / (ns1 - ns0), b = 100.0 / 1024 - a * ns0;
        for (const SweepJob& job : jobs) {
            const double tForget = 1024 * (a * job.stateSize / 1e6 + b);
            const double score = 1.1 + 0.3 * std::log(tForget / job.trainLength) * (job.seed ? 1.0 : 1.2);
            QVERIFY(writeSyntheticJob(dir, job, {2.0}, score));
        }
        const SweepReport r = reportSweep(spec);
        QCOMPARE(r.finished, int(jobs.size()));
        QCOMPARE(r.sizes.size(), size_t(4));
        for (const auto& size : r.sizes) {
            QVERIFY(size.seedsAgree);
            const double expected = 1024 * (a * size.stateSize / 1e6 + b);
            QVERIFY2(std::abs(size.tForget - expected) < 1e-6 * expected,
                     qPrintable(QString("%1 vs %2").arg(size.tForget).arg(expected)));
        }
        QVERIFY(r.monotoneInStateSize);
        QCOMPARE(r.fit.n, 4);
        QVERIFY2(std::abs(r.fit.slope - a) < 1e-6 * a, qPrintable(QString::number(r.fit.slope)));
        QVERIFY(std::abs(r.fit.intercept - b) < 1e-6);
        QVERIFY(r.fit.r2 > 0.999999);
        const auto files = writeSweepReport(r, dir.filePath("tiny").toStdString());
        const nlohmann::json summary = loadPythonJson(files[0]);
        QCOMPARE(summary.at("runs").size(), jobs.size());
        QVERIFY(std::abs(summary.at("fit").at("slope").get<double>() - a) < 1e-6 * a);
        QVERIFY(QFileInfo(QString::fromStdString(files[1])).size() > 1000);
        const std::string text = formatSweepReport(r);
        QVERIFY2(text.find("fit over 4 state sizes") != std::string::npos, text.c_str());

        // A sweep still running: the longest run of the first size's seed 0 and every run of the last
        // size's seed 1 unfinished. The report has no threshold for either size; a provisional one keeps
        // the first size's (the lengths around it are finished) and takes the last size's from seed 0.
        for (const SweepJob& job : jobs)
            if ((job.axisValue == 8 && job.seed == 0 && job.trainLength == 2048) ||
                (job.axisValue == 64 && job.seed == 1))
                QVERIFY(QFile::remove(
                    dir.filePath(QString("tiny/jobs/%1/job.json").arg(QString::fromStdString(job.id)))));
        const SweepReport strict = reportSweep(spec);
        QCOMPARE(strict.sizes[0].tForget, 0.0);
        QCOMPARE(strict.sizes[3].tForget, 0.0);
        QCOMPARE(strict.fit.n, 2);
        // Two sizes: a line without an interval, which the text and the summary say rather than print a
        // number (the figure once drew JSON's null as [0.000, 0.000]).
        QVERIFY(!strict.fit.hasInterval());
        QVERIFY(std::isinf(strict.fit.slopeLow) && std::isinf(strict.fit.slopeHigh));
        const std::string twoText = formatSweepReport(strict);
        QVERIFY2(twoText.find("fit over 2 state sizes") != std::string::npos &&
                     twoText.find("slope 95% CI: none (a line through two points has no error)") !=
                         std::string::npos,
                 twoText.c_str());
        QDir(dir.path()).mkpath("two");
        const nlohmann::json twoSummary =
            loadPythonJson(writeSweepReport(strict, dir.filePath("two").toStdString())[0]);
        QCOMPARE(twoSummary.at("fit").at("slope_ci95"), nlohmann::json({nullptr, nullptr}));
        const SweepReport p = reportSweep(spec, true);
        QVERIFY(p.provisional);
        QVERIFY(p.sizes[0].seeds[0].provisional && p.sizes[0].seeds[0].inside);
        QVERIFY(!p.sizes[0].seeds[1].provisional && p.sizes[0].seeds[1].inside);
        QVERIFY(std::abs(p.sizes[0].tForget - r.sizes[0].tForget) < 1e-6 * r.sizes[0].tForget);
        QVERIFY(!p.sizes[3].seeds[1].inside);
        QVERIFY(p.sizes[3].seedsAgree);
        QVERIFY(std::abs(p.sizes[3].tForget - p.sizes[3].seeds[0].interpolated) < 1e-9);
        QCOMPARE(p.fit.n, 4);
        QVERIFY(std::abs(p.fit.slope - a) < 1e-6 * a);
        // A seed without a threshold yet that collapsed at a length the other already forgot at, more
        // than a grid step past its threshold: the seeds disagree. The first size's seed 1 keeps its
        // collapse at 64, collapses at 512 too (64's result in its place), and 128-2048 are unfinished.
        auto jobFile = [&](int64_t value, uint64_t seed, int64_t T) {
            const auto it = std::find_if(jobs.begin(), jobs.end(), [&](const SweepJob& j) {
                return j.axisValue == value && j.seed == seed && j.trainLength == T;
            });
            return dir.filePath(QString("tiny/jobs/%1/job.json").arg(QString::fromStdString(it->id)));
        };
        QVERIFY(reportSweep(spec, true).sizes[0].seedsAgree);
        for (int64_t T : {128, 256, 512, 1024, 2048})
            QVERIFY(QFile::remove(jobFile(8, 1, T)));
        QVERIFY(QFile::copy(jobFile(8, 1, 64), jobFile(8, 1, 512)));
        {
            const SweepReport d = reportSweep(spec, true);
            QVERIFY(!d.sizes[0].seeds[1].inside);
            QVERIFY(!d.sizes[0].seedsAgree);
            QVERIFY(std::abs(d.sizes[0].tForget - d.sizes[0].seeds[0].interpolated) < 1e-9);
        }
        // That seed forgetting at 256 (seed 0's 1024 in its place), between its collapses at 64 and
        // 512: its bracket is upside down, and the report gives it no threshold.
        QVERIFY(QFile::copy(jobFile(8, 0, 1024), jobFile(8, 1, 256)));
        {
            const SweepReport d = reportSweep(spec, true);
            QVERIFY(!d.sizes[0].seeds[1].monotone);
            const nlohmann::json summary =
                loadPythonJson(writeSweepReport(d, dir.filePath("tiny").toStdString())[0]);
            QCOMPARE(summary.at("sizes")[0].at("seeds")[1].at("interpolated").get<double>(), 0.0);
            const std::string text = formatSweepReport(d);
            QVERIFY2(text.find("[512, 256]  not monotone in T_train, no threshold\n") != std::string::npos,
                     text.c_str());
        }
        const std::string provisionalText = formatSweepReport(p);
        QVERIFY2(provisionalText.find("provisional") != std::string::npos, provisionalText.c_str());
        QVERIFY(loadPythonJson(writeSweepReport(p, dir.filePath("tiny").toStdString())[0]).at("provisional"));
    }

    // A large state's threshold can lie past the lengths the small ones need (micro-width's d_model
    // 1024): train_lengths_by_value gives that size a longer grid, and the other sizes are finished
    // without the longer lengths rather than held back as unfinished.
    void sizesHaveTheirOwnGrids()
    {
        QTemporaryDir dir;
        nlohmann::json s = tinySpec();
        s["train_lengths"] = {64, 128};
        s["train_lengths_by_value"] = {{"16", {256, 64, 128}}};
        s["eval_multiple"] = 16;
        s["criterion"] = {{"from", 8}, {"to", 16}};
        const SweepSpec spec = readSweepSpec(writeSpec(dir, s));
        QCOMPARE(spec.trainLengths, std::vector<int64_t>({64, 128, 256}));
        QCOMPARE(spec.lengthsFor(8), std::vector<int64_t>({64, 128}));
        QCOMPARE(spec.lengthsFor(16), std::vector<int64_t>({64, 128, 256}));
        const auto jobs = planSweep(spec);
        std::vector<std::string> ids;
        for (const auto& j : jobs)
            ids.push_back(j.id);
        QCOMPARE(ids, std::vector<std::string>({"d_state-8_T-64_seed-0", "d_state-8_T-128_seed-0",
                                                "d_state-16_T-64_seed-0", "d_state-16_T-128_seed-0",
                                                "d_state-16_T-256_seed-0"}));
        // d_state 8 forgets from 128, d_state 16 from 256 only.
        for (const SweepJob& job : jobs) {
            const bool forgets = job.trainLength >= (job.axisValue == 8 ? 128 : 256);
            QVERIFY(writeSyntheticJob(dir, job, {2.0}, forgets ? 1.0 : 1.5));
        }
        const SweepReport r = reportSweep(spec);
        QCOMPARE(r.finished, 5);
        QCOMPARE(r.sizes.size(), size_t(2));
        QCOMPARE(r.sizes[0].seeds[0].planned, 2);
        QCOMPARE(r.sizes[0].seeds[0].finished, 2);
        QCOMPARE(r.sizes[1].seeds[0].planned, 3);
        QCOMPARE(r.sizes[0].seeds[0].forgetsFrom, int64_t(128));
        QCOMPARE(r.sizes[1].seeds[0].forgetsFrom, int64_t(256));
        QVERIFY(r.sizes[0].tForget > 64 && r.sizes[0].tForget < 128);
        QVERIFY(r.sizes[1].tForget > 128 && r.sizes[1].tForget < 256);
        QCOMPARE(r.fit.n, 2);
        // The tables have a column per length of any size, "-" where a size has no run.
        const std::string text = formatSweepReport(r);
        QVERIFY2(text.find("unfinished") == std::string::npos, text.c_str());
        QVERIFY2(text.find("T 256") != std::string::npos, text.c_str());
        // Without the longer grid, d_state 16 never forgets inside it.
        s.erase("train_lengths_by_value");
        const SweepReport narrow = reportSweep(readSweepSpec(writeSpec(dir, s)));
        QVERIFY(!narrow.sizes[1].seeds[0].inside);
        QCOMPARE(narrow.sizes[1].tForget, 0.0);
    }

    // job.json keeps the curves in buckets; the report judges those, so they must resolve every window
    // the run judged. At T 8 and 16 the 16-token buckets of before 2026-12-06 did not: the reference
    // [T/2, T) was averaged with the tokens before it, while the state was still filling.
    void storedCurvesKeepTheRunsStatistics()
    {
        QCOMPARE(storageGrain(8), int64_t(4));
        QCOMPARE(storageGrain(16), int64_t(8));
        QCOMPARE(storageGrain(32), int64_t(16));
        QCOMPARE(storageGrain(48), int64_t(8));
        QCOMPARE(storageGrain(128), int64_t(16));
        QCOMPARE(storageGrain(1024), int64_t(128));
        QVERIFY(!storedExactly(16, 16) && !storedExactly(8, 16));
        QVERIFY(storedExactly(16, 8) && storedExactly(32, 16) && storedExactly(2048, 256));
        ForgetCriterion c;
        c.kind = "paired";
        c.fromMultiple = 8;
        c.toMultiple = 16;
        c.maxNormGrowth = 5;
        for (const int64_t T : {8, 16, 32, 48, 128}) {
            const int64_t L = 32 * T;
            LengthEval e = curve(T, L, 2.0, 2.1);
            // Every head's norm rises while the state fills; head 4's keeps rising after T.
            for (int64_t t = 0; t < L; ++t)
                for (int64_t u = 0; u < 6; ++u)
                    e.stateNorm[t * 6 + u] = 0.1 + double(std::min(t, T)) / T +
                                             (u == 4 && t > T ? 3.0 * (t - T) / (L - T) : 0.0) +
                                             0.05 * std::sin(0.7 * t + u);
            for (int64_t t = 1; t < L; ++t)
                e.nll[t] += 0.3 * std::exp(-double(t) / T) + 0.02 * std::cos(1.3 * t);
            e.windowNll = {e.nll};
            e.pairedBegin = 8 * T;
            e.pairedEnd = 16 * T;
            e.pairedNll.assign(static_cast<size_t>(L), std::nan(""));
            for (int64_t t = e.pairedBegin; t < e.pairedEnd; ++t)
                e.pairedNll[t] = 2.0 + 0.01 * std::sin(0.3 * t);
            e.windowPairedNll = {e.pairedNll};
            const LengthStats run = runStats(e, c), stored = storedRunStats(e, c);
            const QString what = QString("T %1: growth %2 vs %3, reference NLL %4 vs %5")
                                     .arg(T)
                                     .arg(run.normGrowth)
                                     .arg(stored.normGrowth)
                                     .arg(run.referenceNll)
                                     .arg(stored.referenceNll);
            QVERIFY2(run.normGrowth > 1.5, qPrintable(what));
            QVERIFY2(std::abs(stored.normGrowth - run.normGrowth) < 1e-9 * run.normGrowth, qPrintable(what));
            QVERIFY2(std::abs(stored.referenceNll - run.referenceNll) < 1e-9, qPrintable(what));
            QVERIFY2(std::abs(stored.ratio - run.ratio) < 1e-9, qPrintable(what));
            QVERIFY2(std::abs(stored.pairedRatio - run.pairedRatio) < 1e-9, qPrintable(what));
        }
    }

    // Runs stored before that fix are marked, in the report's text and its summary, and stay marked when
    // a later report takes them from that summary.
    void reportMarksRunsStoredCoarsely()
    {
        QTemporaryDir dir;
        nlohmann::json s = tinySpec();
        s["values"] = {8};
        s["train_lengths"] = {16, 32};
        s["eval_multiple"] = 16;
        s["criterion"] = {{"from", 8}, {"to", 16}};
        const SweepSpec spec = readSweepSpec(writeSpec(dir, s));
        const auto jobs = planSweep(spec);
        QCOMPARE(jobs.size(), size_t(2));
        for (const SweepJob& job : jobs) // 16-token buckets, as sweep run wrote them before 2026-12-06
            QVERIFY(writeSyntheticJob(dir, job, {2.0}, 1.0));
        const SweepReport r = reportSweep(spec);
        QCOMPARE(r.finished, 2);
        for (const auto& run : r.runs)
            QCOMPARE(run.approximate, run.job.trainLength == 16);
        const std::string text = formatSweepReport(r);
        QVERIFY2(text.find("warning: 1 finished job was stored before 2026-12-06 in buckets coarser than the "
                           "reference window") != std::string::npos,
                 text.c_str());
        QVERIFY2(text.find("~forgets") != std::string::npos, text.c_str());
        QVERIFY2(text.find("[-, 16]  outside grid ~\n") != std::string::npos, text.c_str());
        const std::string summary = writeSweepReport(r, dir.filePath("tiny").toStdString())[0];
        nlohmann::json written = nlohmann::json::parse(std::ifstream(summary));
        for (const auto& run : written.at("runs"))
            QCOMPARE(run.at("approximate").get<bool>(), run.at("train_length").get<int64_t>() == 16);
        // A coarse job whose weights are not here is one to run again.
        const std::vector<std::string> again16 = {jobs[0].trainLength == 16 ? jobs[0].id : jobs[1].id};
        int rejudgeable = -1;
        QCOMPARE(unfinishedJobs(spec, jobs, {}, &rejudgeable), again16);
        QCOMPARE(rejudgeable, 0);
        // Without the job folders, from the summary; and from one written before the key existed.
        QVERIFY(QDir(dir.filePath("tiny/jobs")).removeRecursively());
        QCOMPARE(unfinishedJobs(spec, jobs, {}), (std::vector<std::string>{jobs[0].id, jobs[1].id}));
        QCOMPARE(unfinishedJobs(spec, jobs, {summary}), again16);
        for (auto& run : written.at("runs"))
            run.erase("approximate");
        const std::string older = dir.filePath("older.json").toStdString();
        std::ofstream(older) << written.dump();
        for (const std::string& earlier : {summary, older}) {
            const SweepReport again = reportSweep(spec, false, {earlier});
            QCOMPARE(again.finished, 2);
            for (const auto& run : again.runs)
                QCOMPARE(run.approximate, run.job.trainLength == 16);
        }
    }

    // Jobs stored coarsely are evaluated again from their weights, and the report then reads what the
    // run judged; a job without its weights (a GPU sweep's come back without) is named and kept.
    void rejudgeRestoresWhatTheRunJudged()
    {
        QTemporaryDir dir;
        nlohmann::json s = tinySpec();
        s["values"] = {8};
        s["train_lengths"] = {16};
        s["seeds"] = {0, 1};
        s["eval_multiple"] = 8;
        const SweepSpec spec = readSweepSpec(writeSpec(dir, s));
        const auto jobs = planSweep(spec);
        QCOMPARE(runSweep(spec, cpuRun(), [](const std::string&) {}), 2);
        const SweepReport exact = reportSweep(spec);
        QCOMPARE(exact.finished, 2);
        for (const auto& run : exact.runs)
            QVERIFY(!run.approximate);
        auto jobPath = [&](size_t i) {
            return dir.filePath(QString("tiny/jobs/%1").arg(QString::fromStdString(jobs[i].id)))
                .toStdString();
        };
        for (size_t i = 0; i < jobs.size(); ++i) {
            nlohmann::json j = loadPythonJson(jobPath(i) + "/job.json");
            for (auto& e : j.at("evals"))
                coarsenStoredEval(e, 16);
            std::ofstream(jobPath(i) + "/job.json") << j.dump();
        }
        const SweepReport coarse = reportSweep(spec);
        for (const auto& run : coarse.runs)
            QVERIFY(run.approximate);
        QVERIFY(QFile::remove(QString::fromStdString(jobPath(1) + "/model/model.safetensors")));
        std::vector<std::string> log;
        auto logger = [&](const std::string& line) { log.push_back(line); };
        int rejudgeable = -1;
        QCOMPARE(unfinishedJobs(spec, jobs, {}, &rejudgeable), std::vector<std::string>{jobs[1].id});
        QCOMPARE(rejudgeable, 1);
        QCOMPARE(rejudgeSweep(spec, {}, "cpu", 2, logger), 1);
        QCOMPARE(log.size(), size_t(2));
        QVERIFY2(log[0].rfind("rejudged " + jobs[0].id + ": ", 0) == 0, log[0].c_str());
        QVERIFY2(log[1].rfind("keep " + jobs[1].id + ": stored coarsely, and its model weights are not in",
                              0) == 0,
                 log[1].c_str());
        const SweepReport again = reportSweep(spec);
        QVERIFY(!again.runs[0].approximate);
        QVERIFY(again.runs[1].approximate);
        const LengthStats &a = again.runs[0].domains[0], &b = exact.runs[0].domains[0];
        const QString what = QString("growth %1 vs %2, ratio %3 vs %4")
                                 .arg(a.normGrowth)
                                 .arg(b.normGrowth)
                                 .arg(a.ratio)
                                 .arg(b.ratio);
        QVERIFY2(std::abs(a.normGrowth - b.normGrowth) < 1e-6 * b.normGrowth, qPrintable(what));
        QVERIFY2(std::abs(a.ratio - b.ratio) < 1e-6 * b.ratio, qPrintable(what));
        QCOMPARE(again.runs[0].verdict.forgets, exact.runs[0].verdict.forgets);
        // The training record is kept.
        QVERIFY(loadPythonJson(jobPath(0) + "/job.json").contains("train_seconds"));
        log.clear();
        QCOMPARE(rejudgeSweep(spec, {}, "cpu", 2, logger), 0);
    }

    // A sweep whose first session's job folders did not travel: its summary.json stands in for them.
    // The report from the summary and the remaining folders equals the report from all folders; runs
    // are judged again from the statistics the summary kept, a job.json here wins, and a summary of
    // another sweep, criterion range or plan is refused naming the file and the field.
    void reportTakesEarlierSummaries()
    {
        QTemporaryDir dir;
        nlohmann::json s = tinySpec();
        s["values"] = {8, 16, 32, 64};
        s["train_lengths"] = {64, 128, 256, 512};
        s["seeds"] = {0, 1};
        s["eval_multiple"] = 16;
        s["held_out"] = {{"kjv", kText}, {"kjv2", kText}};
        s["criterion"] = {{"from", 8}, {"to", 16}};
        const SweepSpec spec = readSweepSpec(writeSpec(dir, s));
        const auto jobs = planSweep(spec);
        for (const SweepJob& job : jobs) {
            // Thresholds near 100 · (1 + N_S / 20 K) tokens, different for the two seeds.
            const double tForget = 100 * (1 + job.stateSize / 2e4) * (job.seed ? 1.3 : 1.0);
            QVERIFY(writeSyntheticJob(dir, job, {2.0, 2.5}, 1.1 + 0.3 * std::log(tForget / job.trainLength),
                                      {{4, 8, 0.25 * job.trainLength}, {3, 9, 0.5 * job.trainLength}}));
        }
        const SweepReport full = reportSweep(spec);
        QCOMPARE(full.finished, int(jobs.size()));
        QVERIFY(full.fit.n >= 2);
        const std::string earlier = dir.filePath("earlier.json").toStdString();
        QVERIFY(
            QFile::copy(QString::fromStdString(writeSweepReport(full, dir.filePath("tiny").toStdString())[0]),
                        QString::fromStdString(earlier)));

        // Seed 1's folders and one of seed 0's are gone.
        std::set<std::string> gone;
        for (const SweepJob& job : jobs)
            if (job.seed == 1 || (job.axisValue == 16 && job.trainLength == 128)) {
                QVERIFY(QDir(dir.filePath(QString("tiny/jobs/%1").arg(QString::fromStdString(job.id))))
                            .removeRecursively());
                gone.insert(job.id);
            }
        QCOMPARE(reportSweep(spec).finished, int(jobs.size() - gone.size()));
        const SweepReport merged = reportSweep(spec, false, {earlier});
        QCOMPARE(merged.finished, full.finished);
        for (size_t i = 0; i < jobs.size(); ++i) {
            const SweepRunResult &a = full.runs[i], &b = merged.runs[i];
            QCOMPARE(b.source, gone.count(b.job.id) ? earlier : std::string());
            QCOMPARE(b.verdict.forgets, a.verdict.forgets);
            QCOMPARE(b.verdict.reason, a.verdict.reason);
            QVERIFY2(std::abs(b.verdict.score - a.verdict.score) < 1e-12, b.job.id.c_str());
            QCOMPARE(b.domains.size(), size_t(2));
            QVERIFY(std::abs(b.domains[1].halfLifeMax - a.domains[1].halfLifeMax) < 1e-9);
            QVERIFY(std::abs(b.domains[0].referenceNll - a.domains[0].referenceNll) < 1e-12);
        }
        for (size_t k = 0; k < full.sizes.size(); ++k) {
            QVERIFY(full.sizes[k].tForget > 0);
            QVERIFY(std::abs(merged.sizes[k].tForget - full.sizes[k].tForget) < 1e-9 * full.sizes[k].tForget);
            QCOMPARE(merged.sizes[k].seedsAgree, full.sizes[k].seedsAgree);
            for (size_t t = 0; t < spec.trainLengths.size(); ++t)
                QVERIFY(std::abs(merged.sizes[k].referenceNll[t] - full.sizes[k].referenceNll[t]) < 1e-12);
        }
        QCOMPARE(merged.fit.n, full.fit.n);
        QVERIFY(std::abs(merged.fit.slope - full.fit.slope) < 1e-9 * std::abs(full.fit.slope));
        const std::string text = formatSweepReport(merged);
        const std::string line = "  " + std::to_string(gone.size()) + " of them from " + earlier +
                                 " (an earlier report; their job folders are not here)\n";
        QVERIFY2(text.find(line) != std::string::npos, text.c_str());
        const nlohmann::json summary =
            loadPythonJson(writeSweepReport(merged, dir.filePath("tiny").toStdString())[0]);
        for (const auto& run : summary.at("runs")) {
            const bool fromEarlier = gone.count(run.at("id").get<std::string>()) > 0;
            QCOMPARE(run.contains("eval"), !fromEarlier);
            QCOMPARE(run.value("source", std::string()), fromEarlier ? earlier : std::string());
        }

        // Judged again, not copied: a stored growth past the limit makes a run collapse; and the same
        // change to a run whose job.json is here changes nothing.
        nlohmann::json e = loadPythonJson(earlier);
        const std::string judged = *gone.begin(), kept = jobs.front().id;
        QVERIFY(!gone.count(kept));
        for (auto& run : e["runs"])
            if (run["id"] == judged || run["id"] == kept) {
                run["domains"][1]["norm_growth"] = 7.0;
                run["domains"][0].erase("half_life"); // as in summaries older than the half-lives
            }
        const std::string edited = dir.filePath("edited.json").toStdString();
        std::ofstream(edited) << e.dump();
        {
            const SweepReport r = reportSweep(spec, false, {edited});
            for (const auto& run : r.runs) {
                if (run.job.id == judged) {
                    QCOMPARE(run.domains[0].halfLifeMax, -1.0);
                    QVERIFY(run.domains[1].halfLifeMax > 0);
                    QVERIFY(!run.verdict.forgets);
                    QVERIFY2(run.verdict.reason.find("state-norm growth 7.00x") != std::string::npos,
                             run.verdict.reason.c_str());
                }
                if (run.job.id == kept)
                    QCOMPARE(run.verdict.forgets, full.runs[0].verdict.forgets);
            }
        }

        // Refusals, each naming the summary and the field.
        auto refuses = [&](const SweepSpec& sp, const nlohmann::json& summaryJson, const std::string& field) {
            const std::string path = dir.filePath("refused.json").toStdString();
            std::ofstream(path) << summaryJson.dump();
            try {
                reportSweep(sp, false, {path});
            } catch (const Error& err) {
                return err.file() == path && err.field() == field;
            }
            return false;
        };
        nlohmann::json other = loadPythonJson(earlier);
        other["name"] = "another";
        QVERIFY(refuses(spec, other, "name"));
        nlohmann::json tokens = loadPythonJson(earlier);
        for (auto& run : tokens["runs"])
            if (run["id"] == judged)
                run["tokens"] = 4096;
        QVERIFY(refuses(spec, tokens, "runs[" + judged + "].tokens"));
        nlohmann::json texts = loadPythonJson(earlier);
        for (auto& run : texts["runs"])
            if (run["id"] == judged)
                run["domains"][1]["domain"] = "licences";
        QVERIFY(refuses(spec, texts, "runs[" + judged + "].domains[1]"));
        SweepSpec range = spec;
        range.criterion.fromMultiple = 4;
        QVERIFY(refuses(range, loadPythonJson(earlier), "criterion.from"));
        SweepSpec paper = spec;
        paper.criterion.kind = "paper";
        QVERIFY(refuses(paper, loadPythonJson(earlier), "criterion.kind"));
        QVERIFY(refuses(spec, nlohmann::json{{"model", "x"}}, "runs"));
    }

    // Each unit's half-life from the log share of token 0 left at the window's end, averaged over the
    // windows: the median, the 90th percentile (nearest rank) and the slowest, a unit without decay
    // unbounded; none without a decay probe.
    void halfLivesOfTheUnits()
    {
        LengthEval e = curve(64, 1025, 2.0, 2.0);
        e.heads = 5; // 10 units
        e.stateNorm.clear();
        QCOMPARE(lengthStats(e, 64, 512, 1024, 64).halfLifeMedian, -1.0);
        const std::vector<double> halfLives{3, 1, 2, 4, 5, 6, 7, 8, 9, 0};
        for (double scale : {0.5, 1.5}) { // two windows whose mean is the unit's decay
            std::vector<double> w;
            for (double h : halfLives)
                w.push_back(h > 0 ? -scale * 1024 * std::log(2.0) / h : 0.0);
            e.logRetention.push_back(w);
        }
        const LengthStats s = lengthStats(e, 64, 512, 1024, 64);
        QVERIFY2(std::abs(s.halfLifeMedian - 5.5) < 1e-9, qPrintable(QString::number(s.halfLifeMedian)));
        QVERIFY2(std::abs(s.halfLifeP90 - 9) < 1e-9, qPrintable(QString::number(s.halfLifeP90)));
        QVERIFY(std::isinf(s.halfLifeMax));
        QCOMPARE(s.retainedShare, 0.1); // the unit without decay, in both windows
    }

    // The report's table of the loss within T_train: per size and length the mean over the texts, then
    // over the finished seeds, "-" where none finished, and the change from the smallest state to the
    // largest.
    void reportTabulatesTheLossWithinTrainingLength()
    {
        QTemporaryDir dir;
        nlohmann::json s = tinySpec();
        s["values"] = {32, 8, 16}; // the plan sorts them
        s["train_lengths"] = {64, 128};
        s["seeds"] = {0, 1};
        s["held_out"] = {{"kjv", kText}, {"again", kText}};
        const SweepSpec spec = readSweepSpec(writeSpec(dir, s));
        for (const SweepJob& job : planSweep(spec)) {
            if (job.axisValue == 16 && job.trainLength == 128)
                continue; // unfinished
            if (job.axisValue == 8 && job.trainLength == 128 && job.seed == 1)
                continue;
            // Texts 0.2 apart, seed 1 0.1 above seed 0, 0.05 less per doubling of d_state, 0.5 less at T 128.
            const double w = 3.0 - 0.05 * std::log2(job.axisValue / 8.0) -
                             (job.trainLength == 128 ? 0.5 : 0) + 0.1 * job.seed;
            // Heads of half-lives 1-8 times d_state / 8 tokens on one text, 4 times those on the other.
            std::vector<double> a, b;
            for (int u = 1; u <= 8; ++u)
                a.push_back(u * job.axisValue / 8.0), b.push_back(4 * u * job.axisValue / 8.0);
            QVERIFY(writeSyntheticJob(dir, job, {w - 0.1, w + 0.1}, 1.0, {a, b}));
        }
        const SweepReport r = reportSweep(spec);
        QCOMPARE(r.sizes.size(), size_t(3));
        const auto& big = r.sizes[2];
        QCOMPARE(big.axisValue, int64_t(32));
        QCOMPARE(big.referenceRuns, (std::vector<int>{2, 2}));
        QVERIFY(std::abs(big.referenceNll[0] - 2.95) < 1e-9);
        QVERIFY(std::abs(big.referenceNll[1] - 2.45) < 1e-9);
        QCOMPARE(r.sizes[0].referenceRuns, (std::vector<int>{2, 1}));
        QVERIFY(std::abs(r.sizes[0].referenceNll[1] - 2.5) < 1e-9); // seed 0 alone
        QCOMPARE(r.sizes[1].referenceRuns, (std::vector<int>{2, 0}));
        QVERIFY(std::isnan(r.sizes[1].referenceNll[1]));
        // Median 4.5 and 90th percentile 8 half-lives of d_state / 8 on one text, 4 times that on the
        // other: geometric means 9 and 16 times d_state / 8.
        QVERIFY(std::abs(r.sizes[0].halfLifeMedian[1] - 9) < 1e-6);
        QVERIFY(std::abs(r.sizes[2].halfLifeP90[0] - 64) < 1e-6);
        QVERIFY(std::isnan(r.sizes[1].halfLifeP90[1]));

        const std::string text = formatSweepReport(r);
        for (const std::string& line :
             {std::string("held-out NLL within T_train by state size: nats per token over [T/2, T) (first 64 "
                          "tokens skipped), the mean of the texts, then of the finished seeds; each column "
                          "reads other tokens, so compare within a column\n"),
              std::string("d_state         N_S      T 64     T 128\n"),
              QString("16       %1     3.000         -\n").arg(r.sizes[1].stateSize, 10).toStdString(),
              std::string("largest - smallest     -0.100    -0.050\n"),
              QString("32       %1     36/64     36/64\n").arg(r.sizes[2].stateSize, 10).toStdString(),
              QString("16       %1     18/32         -\n").arg(r.sizes[1].stateSize, 10).toStdString(),
              // d_state 32's slowest head, on the second text: 32 · 32 / 8 = 128 tokens, 2 T_train.
              std::string(" 2.0T     1.00  forgets\n")})
            QVERIFY2(text.find(line) != std::string::npos, (line + " not in:\n" + text).c_str());

        const nlohmann::json summary =
            loadPythonJson(writeSweepReport(r, dir.filePath("tiny").toStdString())[0]);
        const nlohmann::json& nll = summary.at("sizes")[1].at("by_train_length");
        QCOMPARE(nll.size(), size_t(1)); // T 128 has no finished run
        QCOMPARE(nll[0].at("train_length").get<int64_t>(), int64_t(64));
        QCOMPARE(nll[0].at("runs").get<int>(), 2);
        QVERIFY(std::abs(nll[0].at("reference_nll").get<double>() - 3.0) < 1e-9);
        QVERIFY(std::abs(nll[0].at("half_life_p90").get<double>() - 32) < 1e-6);
        const nlohmann::json& run = summary.at("runs")[0]; // d_state 8, T 64, seed 0
        QVERIFY(std::abs(run.at("domains")[1].at("half_life").at("median").get<double>() - 18) < 1e-6);
        QVERIFY(std::abs(run.at("domains")[1].at("half_life").at("max").get<double>() - 32) < 1e-6);
    }

    // A real sweep on the CPU: tiny models, 8 steps each. Stopped after one job (as a killed shard
    // would be), the next run skips that job, resumes a half-trained one and runs the rest.
    // A spec's tokenizer (a path relative to the spec) reaches every job: its model reads the
    // tokenizer's ids, is judged on held-out text in them, and the plan says which tokenizer it was.
    void tokenizerReachesTheJobs()
    {
        QTemporaryDir dir;
        QVERIFY(
            QFile::copy(STATESCOPE_RESOURCES_DIR "/tokenizers/gpt-neox-20b.json", dir.filePath("neox.json")));
        QVERIFY(QFile::copy(kText, dir.filePath("kjv.txt")));
        nlohmann::json s = tinySpec();
        s["tokenizer"] = "neox.json";
        s["data"] = "kjv.txt";
        s["values"] = {8};
        s["train_lengths"] = {32};
        const SweepSpec spec = readSweepSpec(writeSpec(dir, s));
        QCOMPARE(spec.tokenizer, dir.filePath("neox.json").toStdString());
        const auto jobs = planSweep(spec);
        QCOMPARE(jobs.size(), size_t(1));
        const nlohmann::json plan = loadPythonJson(writeSweepPlan(spec, jobs));
        QCOMPARE(plan[0].at("tokenizer").get<std::string>(), std::string("neox.json"));
        SweepRunOptions o = cpuRun();
        QCOMPARE(runSweep(spec, o, [](const std::string&) {}), 1);
        const std::string job =
            dir.filePath(QString("tiny/jobs/%1").arg(QString::fromStdString(jobs[0].id))).toStdString();
        const nlohmann::json card = loadPythonJson(job + "/model/model_card.json");
        QCOMPARE(card.at("tokenizer").get<std::string>(), std::string("neox.json"));
        const nlohmann::json config = loadPythonJson(job + "/model/config.json");
        QCOMPARE(config.at("vocab_size").get<int64_t>(), int64_t(50288));
        const SweepReport r = reportSweep(spec);
        QCOMPARE(r.finished, 1);
        QVERIFY2(r.runs[0].domains[0].ratio > 0 && std::isfinite(r.runs[0].domains[0].ratio),
                 qPrintable(QString::number(r.runs[0].domains[0].ratio)));
        // The job's model keeps the tokenizer it was judged with.
        QFile kept(QString::fromStdString(job + "/model/tokenizer.json")), source(dir.filePath("neox.json"));
        QVERIFY(kept.open(QIODevice::ReadOnly) && source.open(QIODevice::ReadOnly));
        QVERIFY(kept.readAll() == source.readAll());
        QVERIFY(!QDir(dir.path()).entryList({"kjv.txt.tokens-*"}).isEmpty());
    }

    void queueTakesUnclaimedJobsInTheGivenOrder()
    {
        QTemporaryDir dir;
        const SweepSpec spec = readSweepSpec(writeSpec(dir, tinySpec()));
        const auto jobs = planSweep(spec);
        QCOMPARE(jobs.size(), size_t(4));
        QVERIFY_THROWS_EXCEPTION(Error, selectJobs(jobs, {"d_state-3_T-64_seed-0"}, "--jobs"));
        QVERIFY_THROWS_EXCEPTION(Error, selectJobs(jobs, {jobs[1].id, jobs[1].id}, "--jobs"));
        const auto picked = selectJobs(jobs, {jobs[3].id, jobs[1].id}, "--jobs");
        QCOMPARE(picked.size(), size_t(2));
        QCOMPARE(picked[0].id, jobs[3].id);
        QCOMPARE(picked[1].id, jobs[1].id);

        auto jobFile = [&](const SweepJob& job, const char* name) {
            return dir.filePath(QString("tiny/jobs/%1/%2").arg(QString::fromStdString(job.id), name));
        };
        std::vector<std::string> log;
        SweepRunOptions o = cpuRun();
        o.only = {jobs[3].id, jobs[1].id};
        o.queue = true;
        {
            // Another process is training jobs[3]: this one takes the next job of the list.
            QVERIFY(QDir().mkpath(jobFile(jobs[3], "")));
            FileLock other(jobFile(jobs[3], "claim.lock").toStdString(), FileLock::Mode::Try);
            QVERIFY(other.locked());
            QCOMPARE(runSweep(spec, o, [&](const std::string& line) { log.push_back(line); }), 1);
        }
        QCOMPARE(log[0], "skip " + jobs[3].id + " (claimed by another process)");
        QVERIFY2(log[1].rfind("train " + jobs[1].id, 0) == 0, log[1].c_str());
        QVERIFY(QFile::exists(jobFile(jobs[1], "job.json")));
        QVERIFY(!QFile::exists(jobFile(jobs[3], "job.json")));
        QVERIFY(!QFile::exists(jobFile(jobs[1], "claim.lock"))); // released with the job
        for (size_t k : {size_t(0), size_t(2)})                  // not on the list
            QVERIFY(!QFile::exists(jobFile(jobs[k], "")));

        // The claim released, the queue goes on with the job that was taken.
        log.clear();
        QCOMPARE(runSweep(spec, o, [&](const std::string& line) { log.push_back(line); }), 1);
        QVERIFY2(log[0].rfind("train " + jobs[3].id, 0) == 0, log[0].c_str());
        QCOMPARE(log[1].rfind("done " + jobs[3].id, 0), size_t(0));
        QCOMPARE(log.back(), "skip " + jobs[1].id + " (finished)");
    }

    void queueDefersAJobOutOfDeviceMemory()
    {
        QTemporaryDir dir;
        const SweepSpec spec = readSweepSpec(writeSpec(dir, tinySpec()));
        const auto jobs = planSweep(spec);
        SweepRunOptions o = cpuRun();
        std::vector<std::string> log;
        auto logger = [&](const std::string& line) { log.push_back(line); };
        o.only = {jobs[2].id, jobs[0].id};
        o.queue = true;
        o.deferWaitSeconds = 0;
        int calls = 0;
        o.beforeTraining = [&](const SweepJob& job) {
            if (calls++ == 0) {
                QCOMPARE(job.id, jobs[2].id);
                throw std::runtime_error("CUDA out of memory. Tried to allocate 6.14 GiB.");
            }
        };
        // The job out of memory goes back to the queue, which is then taken from the top: it runs first.
        QCOMPARE(runSweep(spec, o, logger), 2);
        QVERIFY2(log[0].rfind("train " + jobs[2].id, 0) == 0, log[0].c_str());
        QVERIFY2(log[1].rfind("defer " + jobs[2].id + ": out of device memory", 0) == 0, log[1].c_str());
        QVERIFY2(log[2].rfind("train " + jobs[2].id, 0) == 0, log[2].c_str());
        QVERIFY2(log[3].rfind("done " + jobs[2].id, 0) == 0, log[3].c_str());
        QVERIFY2(log[4].rfind("train " + jobs[0].id, 0) == 0, log[4].c_str());
        QCOMPARE(calls, 3);

        // Other failures, and any failure outside a queue, stop the run.
        o.only = {jobs[1].id};
        o.beforeTraining = [](const SweepJob&) { throw std::runtime_error("disk full"); };
        QVERIFY_THROWS_EXCEPTION(std::runtime_error, runSweep(spec, o, logger));
        o.queue = false;
        o.beforeTraining = [](const SweepJob&) { throw std::runtime_error("CUDA out of memory"); };
        QVERIFY_THROWS_EXCEPTION(std::runtime_error, runSweep(spec, o, logger));
        QVERIFY(!QFile::exists(
            dir.filePath(QString("tiny/jobs/%1/job.json").arg(QString::fromStdString(jobs[1].id)))));
    }

    void takeForStopsTakingJobs()
    {
        QTemporaryDir dir;
        const SweepSpec spec = readSweepSpec(writeSpec(dir, tinySpec()));
        const auto jobs = planSweep(spec);
        std::vector<std::string> log;
        auto logger = [&](const std::string& line) { log.push_back(line); };
        auto jobDir = [&](const SweepJob& job) {
            return dir.filePath(QString("tiny/jobs/%1").arg(QString::fromStdString(job.id)));
        };
        SweepRunOptions o = cpuRun();
        o.only = {jobs[0].id, jobs[1].id};
        o.queue = true;
        // No time at all: nothing is taken, not even a folder made.
        o.takeForSeconds = 0;
        QCOMPARE(runSweep(spec, o, logger), 0);
        QCOMPARE(log.size(), size_t(1));
        QCOMPARE(log[0], std::string("stop: no new job after 0 s (take-for)"));
        QVERIFY(!QFile::exists(jobDir(jobs[0])));

        // The first job outlasts the window: it still finishes, and the second is not started.
        log.clear();
        o.takeForSeconds = 0.3;
        o.beforeTraining = [](const SweepJob&) {
            std::this_thread::sleep_for(std::chrono::milliseconds(400));
        };
        QCOMPARE(runSweep(spec, o, logger), 1);
        QVERIFY(QFile::exists(jobDir(jobs[0]) + "/job.json"));
        QVERIFY(!QFile::exists(jobDir(jobs[1])));
        QCOMPARE(log.back(), std::string("stop: no new job after 0.3 s (take-for)"));

        // Without a limit the rest runs; the finished job is skipped, not taken again.
        log.clear();
        o.takeForSeconds = -1;
        o.beforeTraining = nullptr;
        QCOMPARE(runSweep(spec, o, logger), 1);
        QCOMPARE(log[0], "skip " + jobs[0].id + " (finished)");
        QVERIFY(QFile::exists(jobDir(jobs[1]) + "/job.json"));
    }

    // Every job records the text it was trained on; jobs of one sweep trained on different texts (a
    // corpus rebuilt between two sessions) are named in the report, the summary and the figure's data.
    void reportNamesTheTrainingTexts()
    {
        QTemporaryDir dir;
        QVERIFY(QFile::copy(kText, dir.filePath("kjv.txt")));
        nlohmann::json s = tinySpec();
        s["data"] = "kjv.txt";
        const SweepSpec spec = readSweepSpec(writeSpec(dir, s));
        const auto jobs = planSweep(spec);
        SweepRunOptions o = cpuRun();
        o.only = {jobs[0].id};
        QCOMPARE(runSweep(spec, o, [](const std::string&) {}), 1);
        const std::string before = TokenCorpus::fingerprint(dir.filePath("kjv.txt").toStdString());
        {
            const SweepReport r = reportSweep(spec);
            QCOMPARE(r.trainingTexts.size(), size_t(1));
            QCOMPARE(r.trainingTexts[0].first, before);
            QCOMPARE(r.runs[0].data, before);
            const std::string text = formatSweepReport(r);
            QVERIFY2(text.find("trained on: " + before + "\n") != std::string::npos, text.c_str());
            QVERIFY2(text.find("warning") == std::string::npos, text.c_str());
        }
        // The corpus rebuilt: one line more, the same name and nearly the same size.
        {
            std::ofstream(dir.filePath("kjv.txt").toStdString(), std::ios::app) << "Amen.\n";
        }
        const std::string after = TokenCorpus::fingerprint(dir.filePath("kjv.txt").toStdString());
        QVERIFY(after != before);
        QCOMPARE(after.substr(0, 9), std::string("kjv.txt, "));
        o.only = {jobs[1].id};
        std::vector<std::string> log;
        QCOMPARE(runSweep(spec, o, [&](const std::string& line) { log.push_back(line); }), 1);
        // Said before the job is trained.
        QCOMPARE(log[0], "warning: 1 finished job was trained on another text than " + after + " (" +
                             jobs[0].id + " read " + before + ")");
        QVERIFY2(log[1].rfind("train " + jobs[1].id, 0) == 0, log[1].c_str());
        // A job.json from before texts were recorded.
        o.only = {jobs[2].id};
        QCOMPARE(runSweep(spec, o, [](const std::string&) {}), 1);
        const std::string third =
            dir.filePath(QString("tiny/jobs/%1/job.json").arg(QString::fromStdString(jobs[2].id)))
                .toStdString();
        nlohmann::json old = loadPythonJson(third);
        QCOMPARE(old.at("data").get<std::string>(), after);
        old.erase("data");
        std::ofstream(third) << old.dump();

        const SweepReport r = reportSweep(spec);
        const std::vector<std::pair<std::string, int>> expected{{before, 1}, {after, 1}, {"", 1}};
        QCOMPARE(r.trainingTexts, expected);
        const std::string text = formatSweepReport(r);
        for (const std::string& line :
             {std::string("warning: the finished jobs were trained on 3 different texts; thresholds across "
                          "them are not comparable\n"),
              "  1 job: " + before + "\n", "  1 job: " + after + "\n",
              std::string("  1 job: not recorded\n")})
            QVERIFY2(text.find(line) != std::string::npos, (line + " not in:\n" + text).c_str());
        const nlohmann::json summary =
            loadPythonJson(writeSweepReport(r, dir.filePath("tiny").toStdString())[0]);
        QCOMPARE(summary.at("training_texts").size(), size_t(3));
        QCOMPARE(summary.at("training_texts")[1].at("data").get<std::string>(), after);
        QCOMPARE(summary.at("runs")[0].at("data").get<std::string>(), before);
    }

    void interruptedSweepResumes()
    {
        QTemporaryDir dir;
        const SweepSpec spec = readSweepSpec(writeSpec(dir, tinySpec()));
        const auto jobs = planSweep(spec);
        std::vector<std::string> log;
        auto logger = [&](const std::string& line) { log.push_back(line); };
        SweepRunOptions o = cpuRun();
        o.maxJobs = 1;
        QCOMPARE(runSweep(spec, o, logger), 1);
        const QString first =
            dir.filePath(QString("tiny/jobs/%1/job.json").arg(QString::fromStdString(jobs[0].id)));
        QVERIFY(QFile::exists(first));
        {
            // d_state 8 has no finished job yet; its row still shows the N_S of the plan.
            const SweepReport partial = reportSweep(spec);
            QCOMPARE(partial.finished, 1);
            QCOMPARE(partial.sizes.size(), size_t(2));
            // A size whose lengths are not all finished has no threshold yet, and says so.
            QCOMPARE(partial.sizes[0].seeds[0].finished, 1);
            QCOMPARE(partial.sizes[0].seeds[0].planned, 2);
            QVERIFY(!partial.sizes[0].seeds[0].inside);
            const std::string text = formatSweepReport(partial);
            QVERIFY2(text.find("unfinished, 1 of 2 lengths") != std::string::npos, text.c_str());
            for (const auto& size : partial.sizes) {
                const auto planned = std::find_if(jobs.begin(), jobs.end(), [&](const SweepJob& j) {
                    return j.axisValue == size.axisValue;
                });
                QVERIFY(size.stateSize > 0);
                QCOMPARE(size.stateSize, planned->stateSize);
            }
        }
        const QDateTime firstTime = QFileInfo(first).lastModified();
        QFile f(first);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray firstBytes = f.readAll();
        f.close();

        // Job 1 stopped half-way: its model folder holds a checkpoint at step 4 of 8.
        TrainOptions t;
        t.shape = "tiny";
        t.shapeOverrides = R"({"chunk_size": 32, "state_size": 8})";
        t.data = kText;
        t.out =
            dir.filePath(QString("tiny/jobs/%1/model").arg(QString::fromStdString(jobs[1].id))).toStdString();
        t.trainLength = jobs[1].trainLength;
        t.batch = jobs[1].batch;
        t.steps = 4;
        t.threads = 2;
        trainModel(t, [](const TrainProgress&) {});
        QVERIFY(trainedSeconds(t.out) > 0);
        // Say the first part took 1000 s, so that the resumed job's count cannot pass by chance.
        {
            nlohmann::json state = loadPythonJson(t.out + "/trainer_state.json");
            state["seconds"] = 1000.0;
            std::ofstream(t.out + "/trainer_state.json") << state.dump();
        }
        const double firstPart = 1000;

        log.clear();
        o.maxJobs = 0;
        QCOMPARE(runSweep(spec, o, logger), 3);
        QCOMPARE(log[0], "skip " + jobs[0].id + " (finished)");
        QVERIFY2(log[1].rfind("resume " + jobs[1].id, 0) == 0, log[1].c_str());
        QFile g(first);
        QVERIFY(g.open(QIODevice::ReadOnly));
        QCOMPARE(g.readAll(), firstBytes);
        QCOMPARE(QFileInfo(first).lastModified(), firstTime);
        const nlohmann::json card = loadPythonJson(
            dir.filePath(
                   QString("tiny/jobs/%1/model/model_card.json").arg(QString::fromStdString(jobs[1].id)))
                .toStdString());
        QCOMPARE(card.at("steps").get<int64_t>(), jobs[1].steps);
        {
            // The resumed job's minutes are the whole run's: the first process's part is counted too.
            const auto jobJsonOf = [&](size_t i) {
                return loadPythonJson(
                    dir.filePath(QString("tiny/jobs/%1/job.json").arg(QString::fromStdString(jobs[i].id)))
                        .toStdString());
            };
            const nlohmann::json resumed = jobJsonOf(1);
            QVERIFY(resumed.at("resumed").get<bool>());
            QVERIFY(!jobJsonOf(0).at("resumed").get<bool>());
            const double trained = resumed.at("train_seconds").get<double>();
            QVERIFY2(trained > firstPart && trained < firstPart + 600,
                     qPrintable(QString("%1 after a first part of %2").arg(trained).arg(firstPart)));
            QVERIFY(resumed.at("seconds").get<double>() >= trained);
        }

        // Everything finished: nothing more runs, and the report sees all four.
        QCOMPARE(runSweep(spec, o, logger), 0);
        // The plan and every job.json describe a job alike.
        const nlohmann::json plan = loadPythonJson(writeSweepPlan(spec, jobs));
        QCOMPARE(plan.size(), jobs.size());
        for (size_t i = 0; i < jobs.size(); ++i) {
            const nlohmann::json done = loadPythonJson(
                dir.filePath(QString("tiny/jobs/%1/job.json").arg(QString::fromStdString(jobs[i].id)))
                    .toStdString());
            QCOMPARE(QString::fromStdString(plan[i].dump()), QString::fromStdString(done.at("job").dump()));
            QCOMPARE(plan[i].at("state_size").get<int64_t>(), jobs[i].stateSize);
        }
        const SweepReport r = reportSweep(spec);
        QCOMPARE(r.finished, 4);
        for (const auto& run : r.runs) {
            QCOMPARE(run.domains.size(), size_t(1));
            QVERIFY(std::isfinite(run.domains[0].ratio) && run.domains[0].ratio > 0);
            QVERIFY(run.domains[0].retainedShare >= 0 && run.domains[0].retainedShare <= 1);
            // Every job measured the paired reading too, so the report can judge it that way as well.
            QVERIFY(run.domains[0].pairedRatio > 0 && std::isfinite(run.domains[0].pairedRatio));
        }
    }
};

QTEST_GUILESS_MAIN(TestSweep)
#include "TestSweep.moc"
