// Training-free mitigations (issue 11, models/Mitigation.h): at their defaults they give the original
// run bit for bit; each knob does to the first layer's probes what its formula says (the first
// layer's Delta depends on the input alone, so it is comparable across runs); and the one-token
// reference path and the chunked path agree under every knob, for Mamba-2 and Mamba-1.
#include "Error.h"
#include "ProbeRuns.h"
#include "models/Mitigation.h"
#include "runtime/Runner.h"
#include "tokenizers/Tokenizer.h"
#include "trace/TraceFile.h"

#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <cstring>

using namespace statescope;
using namespace statescope::testing;

namespace {

std::unique_ptr<Runner> open(const Mitigation& m, bool reference = false, int64_t chunk = 96)
{
    RunOptions o;
    o.threads = 2;
    o.chunkSize = chunk;
    o.reference = reference;
    o.mitigation = m;
    return Runner::open(kCollapseModel, o);
}

std::unique_ptr<Runner> openMamba1(const Mitigation& m, bool reference)
{
    RunOptions o;
    o.threads = 2;
    o.chunkSize = 40;
    o.reference = reference;
    o.mitigation = m;
    return Runner::openRandom("mamba", Runner::shapeConfig("mamba", "tiny", R"({"vocab_size": 256})"), 5, o);
}

// Bit for bit, NaN (the stream's first NLL) included.
bool bitEqual(const std::vector<float>& a, const std::vector<float>& b)
{
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// NLL and every probe of two runs agree to 1e-4 (relative).
void expectAgree(const Run& chunked, const Run& step)
{
    const double nll = maxRelative(chunked.nll, step.nll);
    QVERIFY2(nll < 1e-4, qPrintable(QString::number(nll)));
    for (const auto& [name, values] : step.probes) {
        const double d = maxRelative(chunked.probes.at(name), values);
        QVERIFY2(d < 1e-4, qPrintable(QString::fromStdString(name) + " " + QString::number(d)));
    }
}

Mitigation all()
{
    Mitigation m;
    m.alpha = 0.995;
    m.B = 0.7;
    m.dt = 0.6;
    m.A = 1.3;
    return m;
}

} // namespace

class TestMitigation : public QObject {
    Q_OBJECT

private slots:
    void parsesTheCliSyntax()
    {
        const Mitigation m = parseMitigation("alpha=0.9999,B=0.75");
        QCOMPARE(m.alpha, 0.9999);
        QCOMPARE(m.B, 0.75);
        QCOMPARE(m.dt, 1.0);
        QCOMPARE(m.describe(), std::string("alpha=0.9999,B=0.75"));
        QCOMPARE(parseMitigation(m.describe()).describe(), m.describe());
        QVERIFY(parseMitigation("none").isIdentity());
        QCOMPARE(parseMitigation("dt=0.2,A=2").describe(), std::string("dt=0.2,A=2"));
        for (const char* bad :
             {"alpha=1.5", "B=0", "dt=-1", "gamma=2", "alpha", "B=nan", "clip=-1", "window=4096.5"})
            QVERIFY_THROWS_EXCEPTION(Error, parseMitigation(bad));
    }

    void parsesThePositionalKnobs()
    {
        const Mitigation c = parseMitigation("clip=1.5,every=64");
        QCOMPARE(c.clip, 1.5);
        QCOMPARE(c.every, int64_t(64));
        QVERIFY(c.normalises() && c.positional() && !c.isIdentity());
        QCOMPARE(c.describe(), std::string("clip=1.5,every=64"));
        const Mitigation r = parseMitigation("renorm");
        QVERIFY(r.renorm);
        QCOMPARE(r.every, int64_t(1));
        QCOMPARE(r.describe(), std::string("renorm,every=1"));
        const Mitigation w = parseMitigation("window=4096");
        QCOMPARE(w.window, int64_t(4096));
        QCOMPARE(w.snapshotEvery(), int64_t(256)); // window / 16
        QCOMPARE(w.describe(), std::string("window=4096,snapshot=256"));
        QCOMPARE(parseMitigation("window=100").snapshotEvery(), int64_t(1)); // 16 does not divide it: exact
        QCOMPARE(parseMitigation("alpha=0.99,window=64,snapshot=8").describe(),
                 std::string("alpha=0.99,window=64,snapshot=8"));
        for (const std::string spec : {c.describe(), r.describe(), w.describe()})
            QCOMPARE(parseMitigation(spec).describe(), spec);
        for (const char* bad : {"clip=1,renorm", "every=4", "snapshot=8", "window=64,snapshot=3", "window=0",
                                "window=1.5", "clip=0", "clip=inf", "every=0", "renorm=1", "window=-4"})
            QVERIFY_THROWS_EXCEPTION(Error, parseMitigation(bad));
    }

    // tau is the original model's state norm after the calibration tokens, head by head: the probe of
    // an unmitigated run (computed by the chunked scan's own norm formula) says the same.
    void calibrationIsTheStateNormAtItsEnd()
    {
        const std::vector<int32_t> ids = heldOutTokens(600);
        const std::vector<int32_t> calibration(ids.begin(), ids.begin() + 128);
        auto runner = open(parseMitigation("clip=1"));
        QVERIFY_THROWS_EXCEPTION(Error, runner->feed(calibration)); // not calibrated yet
        runner->calibrate(calibration, "test");
        const Mitigation& m = runner->mitigation();
        QCOMPARE(m.calibration, std::string("test (128 tokens)"));
        QCOMPARE(m.tau.size(), size_t(6));
        const Run plain = runAll(*open(Mitigation()), calibration);
        const size_t heads = m.tau[0].size();
        double worst = 0;
        for (size_t l = 0; l < m.tau.size(); ++l)
            for (size_t h = 0; h < heads; ++h) {
                const float probe = plain.probes.at("state_norm")[127 * 6 * heads + l * heads + h];
                worst = std::max(worst, double(std::abs(m.tau[l][h] - probe) / probe));
            }
        QVERIFY2(worst < 1e-4, qPrintable(QString::number(worst)));
    }

    // clip bounds every head's norm by c tau at the tokens it acts on, renorm sets it to tau, and both
    // change the run; a clip that never binds changes nothing, bit for bit.
    void normalisationBoundsTheNorm()
    {
        const std::vector<int32_t> ids = heldOutTokens(700);
        const std::vector<int32_t> calibration(ids.begin(), ids.begin() + 64);
        const Run original = runAll(*open(Mitigation()), ids);
        for (const char* spec : {"clip=0.5", "renorm,every=4"}) {
            auto runner = open(parseMitigation(spec));
            runner->calibrate(calibration, "test");
            const Mitigation& m = runner->mitigation();
            const Run r = runAll(*runner, ids);
            const size_t heads = m.tau[0].size(), layers = m.tau.size();
            double worst = 0;
            for (size_t t = 0; t < ids.size(); ++t) {
                if ((t + 1) % static_cast<size_t>(m.every) != 0)
                    continue;
                for (size_t l = 0; l < layers; ++l)
                    for (size_t h = 0; h < heads; ++h) {
                        const double norm = r.probes.at("state_norm")[(t * layers + l) * heads + h];
                        const double tau = m.tau[l][h];
                        worst =
                            std::max(worst, m.renorm ? std::abs(norm - tau) / tau : (norm - 0.5 * tau) / tau);
                    }
            }
            QVERIFY2(worst < 1e-4, qPrintable(QString(spec) + " " + QString::number(worst)));
            QVERIFY(!bitEqual(r.nll, original.nll));
        }
        // Step path, clip far above any norm: the scale is exactly 1 at every token.
        auto loose = open(parseMitigation("clip=1e30"), true);
        loose->calibrate(calibration, "test");
        const std::vector<int32_t> head(ids.begin(), ids.begin() + 120);
        QVERIFY(bitEqual(runAll(*loose, head).nll, runAll(*open(Mitigation(), true), head).nll));
    }

    // A window longer than the text (and its snapshot interval too) is the original run, bit for bit.
    void endlessWindowIsTheOriginal()
    {
        const std::vector<int32_t> ids = heldOutTokens(400);
        const Run original = runAll(*open(Mitigation()), ids);
        const Run windowed = runAll(*open(parseMitigation("window=1073741824")), ids);
        QVERIFY(bitEqual(windowed.nll, original.nll));
        QVERIFY(!bitEqual(runAll(*open(parseMitigation("window=64")), ids).nll, original.nll));
    }

    // The state-difference identity: with one layer (so that the layer's input is the token's alone),
    // the windowed read-out at a token equals a fresh run started after the snapshot it reads
    // against, its SSM state zero and its conv context kept. Exact windows and snapshots, both
    // architectures, chunked and step paths.
    void windowEqualsAFreshRun_data()
    {
        QTest::addColumn<QString>("arch");
        QTest::addColumn<QString>("spec");
        QTest::addColumn<bool>("reference");
        QTest::addColumn<bool>("float64");
        for (const char* arch : {"mamba2", "mamba", "rwkv5", "rwkv6", "hgrn2", "gla"})
            // A = 0.01 (decays alpha^0.01) makes the random models remember far beyond the window.
            for (const char* spec : {"A=0.01,window=24,snapshot=1", "A=0.01,window=32,snapshot=8",
                                     "alpha=0.99,A=0.02,window=16,snapshot=4"})
                for (bool reference : {false, true})
                    // RWKV's channel mix shifts in the previous token's output, which read against the
                    // previous snapshot where a block starts: exact windows (snapshot 1) have no token
                    // whose predecessor read the same snapshot.
                    if (std::string(arch).rfind("rwkv", 0) != 0 ||
                        std::string(spec).find("snapshot=1") == std::string::npos)
                        for (bool float64 : {false, true})
                            QTest::newRow((std::string(arch) + " " + spec +
                                           (reference ? " step" : " chunked") +
                                           (float64 ? " float64" : " float32"))
                                              .c_str())
                                << QString(arch) << QString(spec) << reference << float64;
    }
    void windowEqualsAFreshRun()
    {
        QFETCH(QString, arch);
        QFETCH(QString, spec);
        QFETCH(bool, reference);
        QFETCH(bool, float64);
        const std::string a = arch.toStdString();
        const std::string config =
            Runner::shapeConfig(a, "tiny", R"({"vocab_size": 256, "num_hidden_layers": 1})");
        std::vector<int32_t> ids = heldOutTokens(600);
        ids.resize(110);
        const Mitigation m = parseMitigation(spec.toStdString());
        RunOptions o;
        o.threads = 2;
        o.chunkSize = 40;
        o.reference = reference;
        o.mitigation = m;
        o.dtype = float64 ? DType::Float64 : DType::Float32;
        const Run windowed = runAll(*Runner::openRandom(a, config, 3, o), ids);
        Mitigation plain;
        plain.alpha = m.alpha; // the gates as in the windowed run; only the window differs
        plain.A = m.A;
        o.mitigation = plain;
        o.reference = false;
        auto fresh = Runner::openRandom(a, config, 3, o);
        const int64_t s = m.snapshotEvery();
        o.mitigation = plain;
        const Run full = runAll(*Runner::openRandom(a, config, 3, o), ids);
        int checked = 0;
        double windowEffect = 0;
        const bool shiftsOutput = a.rfind("rwkv", 0) == 0;
        for (int64_t n : {int64_t(m.window + 1), int64_t(57), int64_t(80), int64_t(109)}) {
            // For RWKV, a token whose predecessor read the same snapshot (so did the fresh run's).
            if (shiftsOutput && (n - 1) % s == 0)
                n = n + 1 <= 109 ? n + 1 : n - 1;
            // The token at position n (from 1) reads the tokens after b; its hidden state predicts token n
            // + 1.
            const int64_t b = (n + s - 1) / s * s - m.window;
            QVERIFY(b > 0);
            fresh->reset();
            fresh->feed(std::vector<int32_t>(ids.begin(), ids.begin() + b));
            fresh->forgetRecurrentState();
            const ChunkProbes c = fresh->feed(std::vector<int32_t>(ids.begin() + b, ids.begin() + n + 1));
            const float want = c.nll.back();
            const float got = windowed.nll[static_cast<size_t>(n)];
            // In float64 the two differ only by the rounding of the stored float32 NLL.
            const double tolerance = float64 ? 1e-6 : 1e-4;
            QVERIFY2(std::abs(got - want) <= tolerance * std::max(1.0f, std::abs(want)),
                     qPrintable(QString("n %1: windowed %2, fresh %3").arg(n).arg(got).arg(want)));
            windowEffect = std::max(windowEffect, double(std::abs(full.nll[static_cast<size_t>(n)] - got)));
            ++checked;
        }
        QCOMPARE(checked, 4);
        // And the window does change the run there.
        QVERIFY2(windowEffect > 5e-3, qPrintable(QString::number(windowEffect)));
    }

    void identityIsBitForBit()
    {
        const std::vector<int32_t> ids = heldOutTokens(400);
        const Run original = runAll(*open(Mitigation()), ids);
        Mitigation ones;
        ones.alpha = ones.B = ones.dt = ones.A = 1.0;
        const Run same = runAll(*open(ones), ids);
        QVERIFY(bitEqual(same.nll, original.nll));
        QCOMPARE(same.probes.size(), original.probes.size());
        for (const auto& [name, values] : original.probes)
            QVERIFY2(bitEqual(same.probes.at(name), values), name.c_str());
        // A knob that is on changes the run.
        Mitigation b;
        b.B = 0.7;
        QVERIFY(!bitEqual(runAll(*open(b), ids).nll, original.nll));
    }

    // Layer 0's Delta comes from the embedding and the conv alone: what each knob does to its dt and
    // decay probes is the formula, exactly (to float rounding).
    void firstLayerFollowsTheFormulas()
    {
        const std::vector<int32_t> ids = heldOutTokens(300);
        const Run original = runAll(*open(Mitigation()), ids);
        const int64_t units = original.units, heads = units / 6; // 6 layers
        Mitigation a;
        a.alpha = 0.9;
        Mitigation d;
        d.dt = 0.5;
        Mitigation e;
        e.A = 2.0;
        const Run ra = runAll(*open(a), ids), rd = runAll(*open(d), ids), re = runAll(*open(e), ids);
        double worstA = 0, worstD = 0, worstE = 0;
        for (size_t t = 0; t < ids.size(); ++t)
            for (int64_t h = 0; h < heads; ++h) {
                const size_t k = t * static_cast<size_t>(units) + static_cast<size_t>(h);
                const double decay = original.probes.at("decay")[k], dt = original.probes.at("dt")[k];
                worstA = std::max(worstA, std::abs(ra.probes.at("decay")[k] - 0.9 * decay) / decay);
                worstD = std::max(worstD, std::abs(rd.probes.at("dt")[k] - 0.5 * dt) / dt);
                worstD = std::max(worstD, std::abs(rd.probes.at("decay")[k] - std::sqrt(decay)) / decay);
                worstE =
                    std::max(worstE, std::abs(re.probes.at("decay")[k] - decay * decay) / (decay * decay));
            }
        QVERIFY2(worstA < 1e-5, qPrintable(QString::number(worstA)));
        QVERIFY2(worstD < 1e-5, qPrintable(QString::number(worstD)));
        QVERIFY2(worstE < 1e-5, qPrintable(QString::number(worstE)));
    }

    void stepAndChunkedAgreeMamba2()
    {
        const std::vector<int32_t> ids = heldOutTokens(260);
        const Run chunked = runAll(*open(all(), false, 96), ids);
        const Run step = runAll(*open(all(), true), ids);
        expectAgree(chunked, step);
        // The chunk size changes nothing either.
        const double other = maxRelative(runAll(*open(all(), false, 7), ids).nll, chunked.nll);
        QVERIFY2(other < 1e-4, qPrintable(QString::number(other)));
    }

    // Under normalisation and the window the chunked path cuts its scans where the step path acts, so
    // the two agree for any interval.
    void positionalStepAndChunkedAgree_data()
    {
        QTest::addColumn<QString>("arch");
        QTest::addColumn<QString>("spec");
        for (const char* arch : {"mamba2", "mamba", "rwkv5", "rwkv6", "hgrn2", "gla"})
            for (const char* spec :
                 {"clip=0.7,every=16", "renorm,every=8", "window=64,snapshot=8", "window=30,snapshot=1",
                  "alpha=0.99,clip=1,every=5,window=48,snapshot=16"})
                QTest::newRow((std::string(arch) + " " + spec).c_str()) << QString(arch) << QString(spec);
    }
    void positionalStepAndChunkedAgree()
    {
        QFETCH(QString, arch);
        QFETCH(QString, spec);
        const Mitigation m = parseMitigation(spec.toStdString());
        const bool mamba2 = arch == "mamba2";
        const std::vector<int32_t> ids = heldOutTokens(mamba2 ? 200 : 150);
        const std::vector<int32_t> calibration(ids.begin(), ids.begin() + 50);
        auto make = [&](bool reference, int64_t chunk) {
            std::unique_ptr<Runner> r;
            if (mamba2) {
                r = open(m, reference, chunk);
            } else {
                RunOptions o;
                o.threads = 2;
                o.chunkSize = chunk;
                o.reference = reference;
                o.mitigation = m;
                const std::string a = arch.toStdString();
                r = Runner::openRandom(a, Runner::shapeConfig(a, "tiny", R"({"vocab_size": 256})"), 5, o);
            }
            if (m.normalises())
                r->calibrate(calibration, "test");
            return r;
        };
        const Run chunked = runAll(*make(false, 64), ids);
        const Run step = runAll(*make(true, 64), ids);
        expectAgree(chunked, step);
        expectAgree(runAll(*make(false, 23), ids), step); // chunks that cut segments anywhere
    }

    void stepAndChunkedAgreeMamba1()
    {
        std::vector<int32_t> ids = heldOutTokens(150);
        const Run chunked = runAll(*openMamba1(all(), false), ids);
        const Run step = runAll(*openMamba1(all(), true), ids);
        expectAgree(chunked, step);
        const Run original = runAll(*openMamba1(Mitigation(), false), ids);
        QVERIFY(bitEqual(runAll(*openMamba1(Mitigation(), false), ids).nll, original.nll));
        QVERIFY(!bitEqual(original.nll, chunked.nll));
    }

    // A half-precision trace of a Mamba-2 stores dt as scale * (-ln alpha) with scale = 1 / |A| per
    // head, under the mitigations that keep ln alpha = Delta * A (lambda_Delta, lambda_A) and not
    // under the one that adds to ln alpha (lambda_alpha). What the trace gives back is the run's own
    // dt to float16's precision plus float32 alpha's rounding (docs/trace-format.md).
    void derivedStepSizesMatchTheRun()
    {
        QTemporaryDir dir;
        const std::vector<int32_t> ids = heldOutTokens(400);
        Mitigation keeps;
        keeps.dt = 0.6;
        keeps.A = 1.3;
        Mitigation breaks;
        breaks.alpha = 0.995;
        const std::pair<const char*, Mitigation> cases[] = {
            {"none", Mitigation()}, {"dt, A", keeps}, {"alpha", breaks}};
        for (const auto& [name, m] : cases) {
            RunOptions o;
            o.threads = 2;
            o.chunkSize = 96;
            o.mitigation = m;
            o.probePrecision = ProbePrecision::Float16;
            auto runner = Runner::open(kCollapseModel, o);
            const TraceHeader h = runner->traceHeader(TraceInput{"ids"}, "test", false);
            QCOMPARE(h.probes[0].name, std::string("dt"));
            const bool derived = std::string(name) != "alpha";
            QCOMPARE(h.probes[0].derivedFrom, std::string(derived ? "decay" : ""));
            const std::string path = (dir.path() + "/" + name + ".h5").toStdString();
            Run run;
            {
                TraceWriter w(path, h);
                runner->reset();
                runner->run(ids, nullptr, [&](const ChunkProbes& c) {
                    w.append(c);
                    run.probes["dt"].insert(run.probes["dt"].end(), c.values[0].begin(), c.values[0].end());
                });
                w.finish();
            }
            TraceReader r(path);
            QCOMPARE(r.header().schemaVersion, derived ? 4 : 3);
            QCOMPARE(r.header().probes.size(), h.probes.size());
            QCOMPARE(r.header().probes[0].name, std::string("dt"));
            QCOMPARE(r.header().probes[0].derivedFrom, h.probes[0].derivedFrom);
            const std::vector<float> dt = r.probe("dt");
            const std::vector<float>& want = run.probes["dt"];
            QCOMPARE(dt.size(), want.size());
            const size_t units = h.probes[0].derivedScale.size();
            double worst = 0;
            for (size_t i = 0; i < dt.size(); ++i) {
                // float16 of -ln alpha: 2^-11 relative, 2^-25 absolute; float32 alpha: 2^-24 relative,
                // so 2^-24 absolute in -ln alpha. Both times the scale, for Delta.
                const double scale = derived ? h.probes[0].derivedScale[i % units] : 0;
                // Stored (not derived): float16's 2^-11 relative, 2^-25 absolute below 2^-14.
                const double tol = 1.02 * (std::ldexp(double(want[i]), -11) +
                                           (derived ? scale * (std::ldexp(1.0, -24) + std::ldexp(1.0, -25))
                                                    : std::ldexp(1.0, -25)));
                const double err = std::abs(double(dt[i]) - want[i]);
                QVERIFY2(
                    err <= tol,
                    qPrintable(
                        QString("%1: value %2: dt %3, read %4").arg(name).arg(i).arg(want[i]).arg(dt[i])));
                worst = std::max(worst, err / std::max(1e-30, double(want[i])));
            }
            qInfo("%s: dt %s, worst relative error %.3g over %zu values", name,
                  derived ? "derived" : "stored", worst, dt.size());
            if (derived)
                QVERIFY(worst > 0); // read back through the derivation, not stored
        }
        // A run whose chunks only go to the trace leaves the derived values on the device, and hands
        // on the others already encoded (computed where the probes were, here by LibTorch on the
        // CPU): the chunks carry no floats, and the trace holds what the writer's own encoding
        // (encodeHalves, the host reference) stores, to within one rounding of a half.
        {
            RunOptions o;
            o.threads = 2;
            o.chunkSize = 96;
            o.probePrecision = ProbePrecision::Float16;
            o.chunksForTraceOnly = true;
            auto runner = Runner::open(kCollapseModel, o);
            const TraceHeader h = runner->traceHeader(TraceInput{"ids"}, "test", false);
            const std::string path = (dir.path() + "/omitted.h5").toStdString();
            {
                TraceWriter w(path, h);
                runner->run(ids, nullptr, [&](const ChunkProbes& c) {
                    QVERIFY(c.values[0].empty());
                    QVERIFY(!c.isEncoded(0));
                    for (size_t p = 1; p < h.probes.size(); ++p) {
                        QVERIFY(c.values[p].empty());
                        QVERIFY(c.isEncoded(p));
                        QCOMPARE(c.encoded[p].size,
                                 c.ids.size() * static_cast<size_t>(h.probes[p].valuesPerToken()));
                    }
                    w.append(c);
                });
                w.finish();
            }
            const std::string first = (dir.path() + "/none.h5").toStdString();
            TraceReader encoded(path), host(first);
            for (const char* name : {"dt", "decay", "state_norm"}) {
                const std::vector<float> a = encoded.probe(name), b = host.probe(name);
                QCOMPARE(a.size(), b.size());
                size_t same = 0;
                for (size_t i = 0; i < a.size(); ++i) {
                    same += a[i] == b[i];
                    // One step of a half in the stored value: 2^-10 relative in -ln alpha, ln |S| or
                    // Delta (the first two then in alpha and |S|: 2^-10 |ln x| relative).
                    const double x = std::max(std::abs(double(b[i])), 1e-30);
                    const double stored = name == std::string("dt") ? 1.0 : std::abs(std::log(x));
                    const double tol = std::ldexp(1.0, -10) * (stored + 1e-6) * x + std::ldexp(1.0, -24);
                    QVERIFY2(std::abs(double(a[i]) - b[i]) <= tol,
                             qPrintable(QString("%1 value %2: %3 encoded in the run, %4 by the writer")
                                            .arg(name)
                                            .arg(i)
                                            .arg(a[i])
                                            .arg(b[i])));
                }
                qInfo("%s: %zu of %zu values the same bits as the writer's encoding", name, same, a.size());
                QVERIFY(same >= a.size() * 99 / 100);
            }
        }
        // Auto keeps a model this small in float32, every probe stored.
        RunOptions o;
        o.threads = 2;
        const TraceHeader h = Runner::open(kCollapseModel, o)->traceHeader(TraceInput{"ids"}, "test", false);
        QCOMPARE(h.probePrecision, ProbePrecision::Float32);
        QVERIFY(h.probes[0].derivedFrom.empty());
    }
};

QTEST_GUILESS_MAIN(TestMitigation)
#include "TestMitigation.moc"
