// The old-context probes (issue 11, stuffed-mamba.md §3.4; RecurrentModel::setOldContext): retention
// is the product of the forget gates over the window, as the decay probe of the same run gives them;
// the old share of a scalar-decay state is the retention times the state norm at the window's start
// over the norm now, as the state-norm probe gives them; the step and chunked paths agree on every
// probe; and the probes leave the run itself unchanged, bit for bit.
#include "ProbeRuns.h"
#include "models/Mitigation.h"
#include "runtime/Runner.h"
#include "tokenizers/Tokenizer.h"

#include <QFile>
#include <QtTest>

#include <cmath>
#include <cstring>
#include <map>

using namespace statescope;
using namespace statescope::testing;

namespace {

std::unique_ptr<Runner> open(const std::string& arch, int64_t context, bool reference, int64_t chunk)
{
    RunOptions o;
    o.threads = 2;
    o.chunkSize = chunk;
    o.reference = reference;
    o.oldContext = context;
    if (arch == "mamba2")
        return Runner::open(kCollapseModel, o);
    return Runner::openRandom(arch, Runner::shapeConfig(arch, "tiny", R"({"vocab_size": 256})"), 5, o);
}

} // namespace

class TestOldContext : public QObject {
    Q_OBJECT

private slots:
    void probesAreListed()
    {
        for (const char* arch : {"mamba2", "mamba"}) {
            QCOMPARE(open(arch, 0, false, 64)->probes().size(), size_t(3));
            const std::vector<ProbeDesc> d = open(arch, 64, false, 64)->probes();
            QCOMPARE(d.size(), size_t(10));
            QCOMPARE(d[3].name, std::string("retention"));
            QCOMPARE(d[4].name, std::string("old_share"));
            QCOMPARE(d[5].name, std::string("old_readout_share"));
            QCOMPARE(d[6].name, std::string("insertion"));
            QCOMPARE(d[7].name, std::string("b_norm"));
            QCOMPARE(d[8].name, std::string("conv_rms"));
            QCOMPARE(d[9].name, std::string("state_max_abs"));
            QVERIFY(d[4].description.find("61 to 64 tokens") != std::string::npos); // snapshots every 4
        }
        // RWKV, HGRN-2, GLA: decay and state_norm, then the same names less conv_rms (RWKV's token shift
        // has no conv; fla's short convolutions are not probed).
        for (const char* arch : {"rwkv5", "rwkv6", "hgrn2", "gla"}) {
            QCOMPARE(open(arch, 0, false, 64)->probes().size(), size_t(2));
            const std::vector<ProbeDesc> d = open(arch, 64, false, 64)->probes();
            QCOMPARE(d.size(), size_t(8));
            const char* names[] = {"retention", "old_share", "old_readout_share",
                                   "insertion", "b_norm",    "state_max_abs"};
            for (size_t i = 0; i < 6; ++i)
                QCOMPARE(d[i + 2].name, std::string(names[i]));
            QVERIFY(d[3].description.find("per key row") != std::string::npos);
        }
    }

    // Retention over the window (b, n] = the product of the decay probe there (b <= 0: since the start).
    void retentionIsTheProductOfTheGates_data()
    {
        QTest::addColumn<QString>("arch");
        for (const char* arch : {"mamba2", "mamba", "rwkv5", "rwkv6", "hgrn2", "gla"})
            QTest::newRow(arch) << arch;
    }
    void retentionIsTheProductOfTheGates()
    {
        QFETCH(QString, arch);
        const std::vector<int32_t> ids = heldOutTokens(300);
        const int64_t r = 64, s = 4;
        const Run run1 = runAll(*open(arch.toStdString(), r, false, 96), ids);
        const auto& decay = run1.probes.at("decay");
        const auto& retention = run1.probes.at("retention");
        const int64_t U = run1.units;
        double worst = 0;
        int checked = 0;
        for (int64_t n : {int64_t(10), int64_t(64), int64_t(65), int64_t(130), int64_t(299)}) {
            const int64_t b = std::max<int64_t>(0, (n + s - 1) / s * s - r);
            for (int64_t u = 0; u < U; ++u) {
                double product = 1;
                for (int64_t p = b + 1; p <= n; ++p)
                    product *= decay[static_cast<size_t>((p - 1) * U + u)];
                const double got = retention[static_cast<size_t>((n - 1) * U + u)];
                worst = std::max(worst, std::abs(got - product) / std::max(1e-12, product));
                ++checked;
            }
        }
        QVERIFY(checked > 0);
        QVERIFY2(worst < 1e-4, qPrintable(QString::number(worst)));
    }

    // Mamba-2's decay is a scalar per head, so |alpha h_b| = alpha |h_b|: the old share is retention x
    // state norm at b / state norm at n, read from the state-norm probe (the scan's own formula).
    void oldShareOfAScalarDecay()
    {
        const std::vector<int32_t> ids = heldOutTokens(400);
        const int64_t r = 64, s = 4;
        const Run run1 = runAll(*open("mamba2", r, false, 128), ids);
        const auto& norm = run1.probes.at("state_norm");
        const auto& retention = run1.probes.at("retention");
        const auto& share = run1.probes.at("old_share");
        const auto& readout = run1.probes.at("old_readout_share");
        const auto& insertion = run1.probes.at("insertion");
        const int64_t U = run1.units;
        double worst = 0;
        for (int64_t n = 1; n <= static_cast<int64_t>(ids.size()); ++n) {
            const int64_t b = (n + s - 1) / s * s - r;
            for (int64_t u = 0; u < U; ++u) {
                const size_t k = static_cast<size_t>((n - 1) * U + u);
                QVERIFY(std::isfinite(readout[k]) && readout[k] >= 0);
                QVERIFY(std::isfinite(insertion[k]) && insertion[k] >= 0);
                if (b <= 0) {
                    QCOMPARE(share[k], 0.0f);
                    QCOMPARE(readout[k], 0.0f);
                    continue;
                }
                const double want = retention[k] * norm[static_cast<size_t>((b - 1) * U + u)] / norm[k];
                worst = std::max(worst, std::abs(share[k] - want) / std::max(1e-6, want));
            }
        }
        QVERIFY2(worst < 1e-4, qPrintable(QString::number(worst)));
        // max |S| of a head lies between its norm / sqrt(headdim x d_state) and its norm (32 x 256 here).
        const auto& maxAbs = run1.probes.at("state_max_abs");
        for (size_t k = 0; k < maxAbs.size(); ++k)
            QVERIFY2(maxAbs[k] <= norm[k] * (1 + 1e-5) &&
                         maxAbs[k] >= norm[k] / std::sqrt(32.0 * 256) * (1 - 1e-5),
                     qPrintable(QStringLiteral("%1: %2 vs %3").arg(k).arg(maxAbs[k]).arg(norm[k])));
        // A model that remembers: some head keeps a visible share of what is 64 tokens old.
        QVERIFY(*std::max_element(share.begin(), share.end()) > 0.05f);
    }

    // With the positional mitigations on as well (normalisation rescales the state the probes read).
    void stepAndChunkedAgreeUnderMitigations_data()
    {
        QTest::addColumn<QString>("arch");
        for (const char* arch : {"mamba2", "mamba", "rwkv5", "rwkv6", "hgrn2", "gla"})
            QTest::newRow(arch) << arch;
    }
    void stepAndChunkedAgreeUnderMitigations()
    {
        QFETCH(QString, arch);
        const std::vector<int32_t> ids = heldOutTokens(160);
        auto make = [&](bool reference, int64_t chunk) {
            RunOptions o;
            o.threads = 2;
            o.chunkSize = chunk;
            o.reference = reference;
            o.oldContext = 32;
            o.mitigation = parseMitigation("alpha=0.99,clip=0.8,every=5,window=48,snapshot=6");
            std::unique_ptr<Runner> r =
                arch == "mamba2"
                    ? Runner::open(kCollapseModel, o)
                    : Runner::openRandom(
                          arch.toStdString(),
                          Runner::shapeConfig(arch.toStdString(), "tiny", R"({"vocab_size": 256})"), 5, o);
            r->calibrate(std::vector<int32_t>(ids.begin(), ids.begin() + 40), "test");
            return r;
        };
        const Run chunked = runAll(*make(false, 29), ids);
        const Run step = runAll(*make(true, 64), ids);
        QCOMPARE(chunked.probes.size(), size_t(arch.startsWith("mamba") ? 10 : 8));
        for (const auto& [name, values] : step.probes) {
            const double d = maxRelative(chunked.probes.at(name), values);
            QVERIFY2(d < 1e-4, qPrintable(QString::fromStdString(name) + " " + QString::number(d)));
        }
        QVERIFY(maxRelative(chunked.nll, step.nll) < 1e-4);
    }

    void stepAndChunkedAgree_data()
    {
        QTest::addColumn<QString>("arch");
        for (const char* arch : {"mamba2", "mamba", "rwkv5", "rwkv6", "hgrn2", "gla"})
            QTest::newRow(arch) << arch;
    }
    void stepAndChunkedAgree()
    {
        QFETCH(QString, arch);
        const std::vector<int32_t> ids = heldOutTokens(180);
        const Run chunked = runAll(*open(arch.toStdString(), 48, false, 37), ids);
        const Run step = runAll(*open(arch.toStdString(), 48, true, 64), ids);
        for (const auto& [name, values] : step.probes) {
            const double d = maxRelative(chunked.probes.at(name), values);
            QVERIFY2(d < 1e-4, qPrintable(QString::fromStdString(name) + " " + QString::number(d)));
        }
        // The probes leave the run as it was: the same NLL and first three probes, bit for bit.
        const Run plain = runAll(*open(arch.toStdString(), 0, false, 37), ids);
        QVERIFY(std::memcmp(chunked.nll.data(), plain.nll.data(), plain.nll.size() * sizeof(float)) == 0);
        for (const char* name : {"dt", "decay", "state_norm"})
            if (plain.probes.count(name))
                QVERIFY2(chunked.probes.at(name) == plain.probes.at(name), name);
    }
};

QTEST_GUILESS_MAIN(TestOldContext)
#include "TestOldContext.moc"
