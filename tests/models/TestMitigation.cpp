// Training-free mitigations (issue 11, models/Mitigation.h): at their defaults they give the original
// run bit for bit; each knob does to the first layer's probes what its formula says (the first
// layer's Delta depends on the input alone, so it is comparable across runs); and the one-token
// reference path and the chunked path agree under every knob, for Mamba-2 and Mamba-1.
#include "Error.h"
#include "models/Mitigation.h"
#include "runtime/Runner.h"
#include "tokenizers/BpeTokenizer.h"

#include <QFile>
#include <QtTest>

#include <cmath>
#include <cstring>

using namespace statescope;

namespace {

const std::string kModel = STATESCOPE_RESOURCES_DIR "/models/tiny-collapse";

std::vector<int32_t> text(size_t bytes)
{
    QFile f(QStringLiteral(STATESCOPE_RESOURCES_DIR "/texts/kjv-heldout.txt"));
    if (!f.open(QIODevice::ReadOnly))
        return {};
    const QByteArray b = f.read(static_cast<qint64>(bytes));
    return BpeTokenizer::fromFile(kModel + "/tokenizer.json")
        .encode(std::string(b.constData(), b.size()))
        .ids;
}

struct Run {
    std::vector<float> nll;
    std::map<std::string, std::vector<float>> probes; // [T, layers, units]
    int64_t units = 0;                                // layers * units per layer
};

Run run(Runner& runner, const std::vector<int32_t>& ids)
{
    Run r;
    const std::vector<ProbeDesc> descs = runner.probes();
    runner.reset();
    runner.run(ids, nullptr, [&](const ChunkProbes& c) {
        r.nll.insert(r.nll.end(), c.nll.begin(), c.nll.end());
        for (size_t i = 0; i < descs.size(); ++i) {
            auto& v = r.probes[descs[i].name];
            v.insert(v.end(), c.values[i].begin(), c.values[i].end());
        }
    });
    r.units = static_cast<int64_t>(r.probes["dt"].size() / ids.size());
    return r;
}

std::unique_ptr<Runner> open(const Mitigation& m, bool reference = false, int64_t chunk = 96)
{
    RunOptions o;
    o.threads = 2;
    o.chunkSize = chunk;
    o.reference = reference;
    o.mitigation = m;
    return Runner::open(kModel, o);
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

double maxRelative(const std::vector<float>& a, const std::vector<float>& b)
{
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) && std::isnan(b[i]))
            continue;
        worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(1e-3, std::abs(double(b[i]))));
    }
    return worst;
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
             {"alpha=1.5", "B=0", "dt=-1", "gamma=2", "alpha", "B=nan", "clip=1.0", "window=4096"})
            QVERIFY_THROWS_EXCEPTION(Error, parseMitigation(bad));
    }

    void identityIsBitForBit()
    {
        const std::vector<int32_t> ids = text(400);
        const Run original = run(*open(Mitigation()), ids);
        Mitigation ones;
        ones.alpha = ones.B = ones.dt = ones.A = 1.0;
        const Run same = run(*open(ones), ids);
        QVERIFY(bitEqual(same.nll, original.nll));
        QCOMPARE(same.probes.size(), original.probes.size());
        for (const auto& [name, values] : original.probes)
            QVERIFY2(bitEqual(same.probes.at(name), values), name.c_str());
        // A knob that is on changes the run.
        Mitigation b;
        b.B = 0.7;
        QVERIFY(!bitEqual(run(*open(b), ids).nll, original.nll));
    }

    // Layer 0's Delta comes from the embedding and the conv alone: what each knob does to its dt and
    // decay probes is the formula, exactly (to float rounding).
    void firstLayerFollowsTheFormulas()
    {
        const std::vector<int32_t> ids = text(300);
        const Run original = run(*open(Mitigation()), ids);
        const int64_t units = original.units, heads = units / 6; // 6 layers
        Mitigation a;
        a.alpha = 0.9;
        Mitigation d;
        d.dt = 0.5;
        Mitigation e;
        e.A = 2.0;
        const Run ra = run(*open(a), ids), rd = run(*open(d), ids), re = run(*open(e), ids);
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
        const std::vector<int32_t> ids = text(260);
        const Run chunked = run(*open(all(), false, 96), ids);
        const Run step = run(*open(all(), true), ids);
        expectAgree(chunked, step);
        // The chunk size changes nothing either.
        const double other = maxRelative(run(*open(all(), false, 7), ids).nll, chunked.nll);
        QVERIFY2(other < 1e-4, qPrintable(QString::number(other)));
    }

    void stepAndChunkedAgreeMamba1()
    {
        std::vector<int32_t> ids = text(150);
        const Run chunked = run(*openMamba1(all(), false), ids);
        const Run step = run(*openMamba1(all(), true), ids);
        expectAgree(chunked, step);
        const Run original = run(*openMamba1(Mitigation(), false), ids);
        QVERIFY(bitEqual(run(*openMamba1(Mitigation(), false), ids).nll, original.nll));
        QVERIFY(!bitEqual(original.nll, chunked.nll));
    }
};

QTEST_GUILESS_MAIN(TestMitigation)
#include "TestMitigation.moc"
