// Every registered architecture against independent references: each fixture under
// tests/data/<architecture>/ holds transformers-checked float64 numbers (tools/make_*_fixtures.py),
// and the recurrent reference path is checked against the chunked one. Then what only one
// architecture has: Mamba-2's config errors, Mamba's channel groups.
#include "Error.h"
#include "models/Architecture.h"
#include "runtime/Runner.h"
#include "trace/ReferenceFile.h"

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <cstring>

#include <cmath>
#include <map>
#include <tuple>

using namespace statescope;

namespace {

struct Result {
    std::vector<float> nll;
    std::vector<std::string> names;
    std::vector<std::vector<float>> probes; // in the model's order
    std::vector<int64_t> shape;             // per token, of every probe

    const std::vector<float>& probe(const std::string& name) const
    {
        for (size_t i = 0; i < names.size(); ++i)
            if (names[i] == name)
                return probes[i];
        static const std::vector<float> kNone;
        return kNone;
    }
};

Result runUncached(const QString& dir, const std::vector<int32_t>& ids, int64_t chunk, bool reference,
                   ProbeDetail detail)
{
    RunOptions o;
    o.chunkSize = chunk;
    o.reference = reference;
    o.threads = 2;
    o.probeDetail = detail;
    auto runner = Runner::open(dir.toStdString(), o);
    Result r;
    for (const auto& d : runner->probes()) {
        r.names.push_back(d.name);
        r.shape = d.shape;
    }
    r.probes.resize(r.names.size());
    runner->run(ids, nullptr, [&](const ChunkProbes& c) {
        r.nll.insert(r.nll.end(), c.nll.begin(), c.nll.end());
        for (size_t p = 0; p < r.probes.size(); ++p)
            r.probes[p].insert(r.probes[p].end(), c.values[p].begin(), c.values[p].end());
    });
    return r;
}

// matchesReference and pathsAgree make the same runs (a fixture at its own detail, every path): each
// is made once per process. A run on the CPU is deterministic, so the second would only repeat it,
// and under the sanitizers these runs are most of CI's longest test.
Result runAll(const QString& dir, const std::vector<int32_t>& ids, int64_t chunk, bool reference,
              ProbeDetail detail = ProbeDetail::Summary)
{
    static std::map<std::tuple<QString, std::vector<int32_t>, int64_t, bool, int>, Result> done;
    const auto key = std::make_tuple(dir, ids, chunk, reference, int(detail));
    const auto it = done.find(key);
    if (it != done.end())
        return it->second;
    Result r = runUncached(dir, ids, chunk, reference, detail);
    done.emplace(key, r);
    return r;
}

// The detail a fixture's reference was made at: every unit (Mamba's channels) or the summary.
ProbeDetail detailFor(const QString& dir, const ReferenceData& ref)
{
    RunOptions o;
    auto runner = Runner::open(dir.toStdString(), o);
    return runner->probes().front().shape == ref.probeShape ? ProbeDetail::Summary : ProbeDetail::Full;
}

double maxRel(const std::vector<float>& a, const std::vector<float>& b, double atol = 1e-6)
{
    if (a.size() != b.size())
        return INFINITY;
    std::vector<double> bd(b.begin(), b.end());
    return maxRelativeError(a.data(), bd.data(), bd.size(), atol);
}

// tests/data/<architecture>/<fixture>/ for every registered architecture.
QStringList fixtures(const std::string& architecture = "")
{
    QStringList out;
    for (const Architecture* a : architectures()) {
        if (!architecture.empty() && a->name() != architecture)
            continue;
        QDir d(QStringLiteral(STATESCOPE_TEST_DATA_DIR "/") + QString::fromStdString(a->name()));
        for (const QString& e : d.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name))
            out << d.filePath(e);
    }
    return out;
}

QString fixtureName(const QString& dir)
{
    return QFileInfo(QFileInfo(dir).path()).fileName() + "/" + QFileInfo(dir).fileName();
}

QString copyFixture(const QTemporaryDir& tmp, const QString& from)
{
    const QString to = tmp.filePath(QFileInfo(from).fileName());
    QDir().mkpath(to);
    for (const QString& f : QDir(from).entryList(QDir::Files))
        QFile::copy(from + "/" + f, to + "/" + f);
    return to;
}

void rewrite(const QString& path, const QByteArray& from, const QByteArray& to)
{
    QFile f(path);
    QVERIFY(f.open(QIODevice::ReadOnly));
    QByteArray text = f.readAll();
    f.close();
    QVERIFY2(text.contains(from), qPrintable(path + " lacks " + from));
    text.replace(from, to);
    QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
    f.write(text);
}

template <typename F> QString errorOf(F&& f)
{
    try {
        f();
    } catch (const Error& e) {
        return QString::fromStdString(e.what());
    }
    return QString();
}

} // namespace

class TestArchitectures : public QObject {
    Q_OBJECT

private slots:
    void fixturesPresent()
    {
        // Per architecture four layouts: transformers safetensors (tied), transformers shards (untied),
        // mamba_ssm pytorch_model.bin float32 and bfloat16.
        for (const Architecture* a : architectures())
            QVERIFY2(fixtures(a->name()).size() == 4, a->name().c_str());
    }

    void matchesReference_data()
    {
        QTest::addColumn<QString>("dir");
        QTest::addColumn<qlonglong>("chunk");
        QTest::addColumn<bool>("reference");
        for (const QString& f : fixtures()) {
            const QString n = fixtureName(f);
            for (qlonglong c : {1, 7, 64, 256, 1000}) {
#if defined(__SANITIZE_ADDRESS__)
                // One token a chunk is half of this test's time under the sanitizers, and its scan is
                // LibTorch's bounds-checked tensor code: the Release run checks it.
                if (c == 1)
                    continue;
#endif
                QTest::newRow(qPrintable(n + " chunked " + QString::number(c))) << f << c << false;
            }
            QTest::newRow(qPrintable(n + " recurrent")) << f << qlonglong(300) << true;
        }
    }

    // CPU float32 agrees with the float64 reference to 1e-4 relative, on every path and chunk size.
    void matchesReference()
    {
        QFETCH(QString, dir);
        QFETCH(qlonglong, chunk);
        QFETCH(bool, reference);
        const ReferenceData ref = readReferenceFile((dir + "/reference.h5").toStdString());
        const Result r = runAll(dir, ref.ids, chunk, reference, detailFor(dir, ref));
        QVERIFY(std::isnan(r.nll[0]));
        const double nllErr = maxRelativeError(r.nll.data(), ref.nll.data(), ref.nll.size());
        QVERIFY2(nllErr <= 1e-4, qPrintable(QString("nll rel err %1").arg(nllErr)));
        QVERIFY(ref.probeNames.size() >= 2); // decay and state_norm at least
        for (size_t p = 0; p < ref.probeNames.size(); ++p) {
            const std::vector<float>& got = r.probe(ref.probeNames[p]);
            QCOMPARE(got.size(), ref.probes[p].size());
            const double e = maxRelativeError(got.data(), ref.probes[p].data(), ref.probes[p].size());
            QVERIFY2(e <= 1e-4,
                     qPrintable(QString::fromStdString(ref.probeNames[p]) + QString(" rel err %1").arg(e)));
        }
    }

    // The two paths and all chunkings agree with each other to 1e-5 in float32 on what a run records by
    // default (summary probes). Per channel, a Mamba state that cancels down to ~1e-5 of its scale carries
    // float32 noise of ~1.5e-5 relative in either path (both are that far from the float64 reference),
    // so full detail is held to the reference's 1e-4.
    void pathsAgree_data()
    {
        QTest::addColumn<QString>("dir");
        QTest::addColumn<int>("detail");
        for (const QString& f : fixtures()) {
            QTest::newRow(qPrintable(fixtureName(f) + " summary")) << f << int(ProbeDetail::Summary);
            QTest::newRow(qPrintable(fixtureName(f) + " full")) << f << int(ProbeDetail::Full);
        }
    }
    void pathsAgree()
    {
#if defined(__SANITIZE_ADDRESS__)
        // What this adds is numerical: the Release run checks it. Under the sanitizers its runs would
        // repeat matchesReference's code at the other probe detail, whose selection code
        // probeSelectionMatchesTheHostReference runs there; they were CI's longest minutes.
        QSKIP("numerical agreement of the paths: checked in the Release build");
#endif
        QFETCH(QString, dir);
        QFETCH(int, detail);
        const ProbeDetail d = ProbeDetail(detail);
        const double tol = d == ProbeDetail::Summary ? 1e-5 : 1e-4;
        const ReferenceData ref = readReferenceFile((dir + "/reference.h5").toStdString());
        const Result recurrent = runAll(dir, ref.ids, 300, true, d);
        for (int64_t chunk : {1, 7, 64, 256, 1000}) {
            const Result chunked = runAll(dir, ref.ids, chunk, false, d);
            const QString where = fixtureName(dir) + " chunk " + QString::number(chunk);
            QVERIFY2(maxRel(chunked.nll, recurrent.nll) <= 1e-5, qPrintable(where + " nll"));
            for (size_t p = 0; p < chunked.probes.size(); ++p) {
                const double e = maxRel(chunked.probes[p], recurrent.probes[p]);
                QVERIFY2(e <= tol, qPrintable(where + " " + QString::fromStdString(chunked.names[p]) +
                                              QString(" rel err %1").arg(e)));
            }
        }
    }

    void info()
    {
        RunOptions o;
        auto runner = Runner::open(fixtures("mamba2").first().toStdString(), o);
        const ModelInfo& i = runner->info();
        QCOMPARE(i.shape.architecture, std::string("mamba2"));
        QCOMPARE(i.shape.layers, int64_t(2));
        QCOMPARE(i.shape.units, int64_t(8));
        // N_S = L * (H*P*N + conv_dim*(d_conv-1)) = 2 * (8*16*16 + (128+32)*3)
        QCOMPARE(i.shape.stateSize, int64_t(2 * (8 * 16 * 16 + 160 * 3)));
        QCOMPARE(i.vocabSize, int64_t(512));

        runner = Runner::open(fixtures("mamba").first().toStdString(), o); // hf-tied: d_model 32, d_state 16
        const ModelInfo& m = runner->info();
        QCOMPARE(m.shape.architecture, std::string("mamba"));
        QCOMPARE(m.shape.layers, int64_t(2));
        QCOMPARE(m.shape.units, int64_t(1)); // d_inner 64: one group of 64 channels
        // N_S = L * (d_inner*d_state + d_inner*(d_conv-1)) = 2 * (64*16 + 64*3)
        QCOMPARE(m.shape.stateSize, int64_t(2 * (64 * 16 + 64 * 3)));
        QCOMPARE(m.vocabSize, int64_t(512));
        QCOMPARE(runner->probes()[0].name, std::string("dt"));
    }

    // Mamba's summary probes are its channels' values in groups: the arithmetic mean of Delta, the
    // geometric mean of the decays, the root-sum-square of the state norms (so that a layer's total is
    // recoverable). Checked on random weights of 2 groups per layer against full detail.
    void mambaChannelGroups()
    {
        const std::string config = Runner::shapeConfig("mamba", "tiny"); // d_inner 128
        RunOptions o;
        o.threads = 2;
        auto summary = Runner::openRandom("mamba", config, 7, o);
        o.probeDetail = ProbeDetail::Full;
        auto full = Runner::openRandom("mamba", config, 7, o);
        QCOMPARE(summary->info().shape.units, int64_t(2));
        QCOMPARE(full->info().shape.units, int64_t(128));
        QCOMPARE(full->probes()[2].axes[1], std::string("channel"));
        std::vector<int32_t> ids(40);
        for (size_t i = 0; i < ids.size(); ++i)
            ids[i] = int32_t((i * 37) % 500);
        const ChunkProbes s = summary->feed(ids), f = full->feed(ids);
        for (size_t i = 1; i < ids.size(); ++i) // nll[0] is NaN
            QCOMPARE(s.nll[i], f.nll[i]);
        const int64_t L = 2, G = 2, C = 128, per = C / G;
        double worst = 0;
        for (int64_t t = 0; t < 40; ++t)
            for (int64_t l = 0; l < L; ++l)
                for (int64_t g = 0; g < G; ++g) {
                    double dt = 0, logDecay = 0, sq = 0;
                    for (int64_t c = g * per; c < (g + 1) * per; ++c) {
                        const size_t k = size_t((t * L + l) * C + c);
                        dt += f.values[0][k] / per;
                        logDecay += std::log(double(f.values[1][k])) / per;
                        sq += double(f.values[2][k]) * f.values[2][k];
                    }
                    const size_t k = size_t((t * L + l) * G + g);
                    worst = std::max(worst, std::abs(s.values[0][k] - dt) / dt);
                    worst =
                        std::max(worst, std::abs(s.values[1][k] - std::exp(logDecay)) / std::exp(logDecay));
                    worst =
                        std::max(worst, std::abs(s.values[2][k] - std::sqrt(sq)) / (std::sqrt(sq) + 1e-6));
                }
        QVERIFY2(worst < 1e-4, qPrintable(QString("rel err %1").arg(worst)));
    }

    // Random weights of every architecture's named shapes are what bench runs.
    void namedShapes()
    {
        for (const Architecture* a : architectures()) {
            QVERIFY(!a->shapeNames().empty());
            for (const auto& shape : a->shapeNames())
                QVERIFY2(!Runner::shapeConfig(a->name(), shape).empty(), shape.c_str());
            const QString e = errorOf([&] { Runner::shapeConfig(a->name(), "huge"); });
            QVERIFY2(e.contains(QString::fromStdString(a->shapeNames().front())) && e.contains("huge"),
                     qPrintable(e));
        }
        QVERIFY(errorOf([] { Runner::shapeConfig("transformer", "tiny"); }).contains("mamba2"));
    }

    // A model folder written from random weights reads back with the same numbers, for each architecture.
    void writeRandomModelRoundTrip()
    {
        QTemporaryDir tmp;
        for (const Architecture* a : architectures()) {
            const std::string dir = tmp.filePath(QString::fromStdString(a->name())).toStdString();
            const std::string config = Runner::shapeConfig(a->name(), "tiny");
            Runner::writeRandomModel(a->name(), config, 3, dir);
            RunOptions o;
            auto fromDisk = Runner::open(dir, o);
            auto inMemory = Runner::openRandom(a->name(), config, 3, o);
            QCOMPARE(fromDisk->info().shape.architecture, a->name());
            const std::vector<int32_t> ids{1, 2, 3, 4, 5, 6, 7, 8};
            const ChunkProbes x = fromDisk->feed(ids), y = inMemory->feed(ids);
            for (size_t i = 1; i < ids.size(); ++i)
                QVERIFY2(std::abs(x.nll[i] - y.nll[i]) <= 1e-5f * std::abs(y.nll[i]), a->name().c_str());
        }
    }

    // The runner applies a probe selection where the probes are computed (the device); selectChunk is
    // its readable host reference. Both give the same chunks: the probes kept, and each layer's
    // summary by its probe's rule (mean, geometric mean, root sum of squares) in float64.
    void probeSelectionMatchesTheHostReference()
    {
        const std::vector<int32_t> ids = [] {
            std::vector<int32_t> v;
            for (int i = 0; i < 300; ++i)
                v.push_back((i * 37 + 11) % 200);
            return v;
        }();
        for (const char* a : {"mamba2", "mamba", "rwkv6"}) {
            RunOptions o;
            o.chunkSize = 128;
            o.threads = 2;
            const std::string config = Runner::shapeConfig(a, "tiny", R"({"vocab_size": 256})");
            std::vector<ChunkProbes> full;
            const std::vector<ProbeDesc> all = Runner::openRandom(a, config, 7, o)->probes();
            Runner::openRandom(a, config, 7, o)->run(ids, nullptr, [&](const ChunkProbes& c) {
                full.push_back(c);
            });
            ProbeSelection selection;
            selection.names = {"decay", "state_norm"};
            selection.layerSummaries = true;
            o.probeSelection = selection;
            std::vector<ChunkProbes> selected;
            auto runner = Runner::openRandom(a, config, 7, o);
            QCOMPARE(runner->probes().size(), size_t(2));
            runner->run(ids, nullptr, [&](const ChunkProbes& c) { selected.push_back(c); });
            QCOMPARE(selected.size(), full.size());
            for (size_t k = 0; k < full.size(); ++k) {
                selectChunk(all, selection, &full[k]);
                QCOMPARE(selected[k].values.size(), full[k].values.size());
                for (size_t p = 0; p < full[k].values.size(); ++p) {
                    const std::vector<float>& want = full[k].values[p];
                    const std::vector<float>& got = selected[k].values[p];
                    QCOMPARE(got.size(), want.size());
                    for (size_t i = 0; i < want.size(); ++i)
                        QVERIFY2(std::abs(got[i] - want[i]) <= 2e-7f * std::abs(want[i]),
                                 qPrintable(QString("%1 chunk %2 probe %3 value %4: %5, host %6")
                                                .arg(a)
                                                .arg(k)
                                                .arg(p)
                                                .arg(i)
                                                .arg(got[i])
                                                .arg(want[i])));
                }
            }
        }
    }

    // A run asked to leave its chunks' values in the engine's buffer (RunLoop::valuesInPlace) hands
    // on the same values as one that copies them, and each chunk keeps its buffer after the runner
    // is gone.
    void valuesInPlaceMatchCopies()
    {
        std::vector<int32_t> ids;
        for (int i = 0; i < 300; ++i)
            ids.push_back((i * 37 + 11) % 200);
        RunOptions o;
        o.chunkSize = 128;
        o.threads = 2;
        const std::string config = Runner::shapeConfig("mamba2", "tiny", R"({"vocab_size": 256})");
        std::vector<ChunkProbes> copied, inPlace;
        Runner::openRandom("mamba2", config, 7, o)->run(ids, nullptr, [&](const ChunkProbes& c) {
            copied.push_back(c);
        });
        {
            RunLoop loop;
            loop.onChunk = [&](ChunkProbes& c) { inPlace.push_back(std::move(c)); };
            loop.valuesInPlace = true;
            Runner::openRandom("mamba2", config, 7, o)->run(ids, nullptr, loop);
        }
        QCOMPARE(inPlace.size(), copied.size());
        QCOMPARE(inPlace.size(), size_t(3));
        for (size_t k = 0; k < copied.size(); ++k) {
            QCOMPARE(inPlace[k].ids, copied[k].ids);
            QCOMPARE(inPlace[k].nll.size(), copied[k].nll.size());
            QVERIFY(std::memcmp(inPlace[k].nll.data(), copied[k].nll.data(), copied[k].nll.size() * 4) == 0);
            QCOMPARE(inPlace[k].values.size(), copied[k].values.size());
            for (size_t p = 0; p < copied[k].values.size(); ++p) {
                QVERIFY(inPlace[k].isInPlace(p));
                QVERIFY(inPlace[k].values[p].empty());
                const ChunkProbes::Floats f = inPlace[k].probeValues(p);
                QCOMPARE(f.size, copied[k].values[p].size());
                QVERIFY(f.size > 0);
                QVERIFY(std::memcmp(f.data, copied[k].values[p].data(), f.size * sizeof(float)) == 0);
            }
        }
    }

    void cancelBetweenChunks()
    {
        RunOptions o;
        o.chunkSize = 50;
        auto runner = Runner::open(fixtures("mamba2").first().toStdString(), o);
        std::vector<int32_t> ids(300, 5);
        std::atomic<bool> cancel{false};
        int chunks = 0;
        bool cancelled = false;
        try {
            runner->run(
                ids, nullptr,
                [&](const ChunkProbes&) {
                    ++chunks;
                    cancel = true;
                },
                &cancel);
        } catch (const Cancelled&) {
            cancelled = true;
        }
        QVERIFY(cancelled);
        QCOMPARE(chunks, 1);
        QCOMPARE(runner->position(), int64_t(50));
    }

    void badIdsLeaveStateUntouched()
    {
        RunOptions o;
        auto runner = Runner::open(fixtures("mamba").first().toStdString(), o);
        const ChunkProbes a = runner->feed({1, 2, 3});
        QVERIFY(errorOf([&] { runner->feed({4, 99999}); }).contains("99999"));
        QCOMPARE(runner->position(), int64_t(3));
        // The stream continues as if the bad call never happened.
        const ChunkProbes b = runner->feed({4});
        runner->reset();
        const ChunkProbes whole = runner->feed({1, 2, 3, 4});
        QCOMPARE(b.nll[0], whole.nll[3]);
    }

    void badModels()
    {
        QTemporaryDir tmp;
        const QString hf = copyFixture(tmp, fixtures("mamba2").filter("hf-g1").first());
        RunOptions o;
        auto open = [&](const QString& d) { return errorOf([&] { Runner::open(d.toStdString(), o); }); };

        QString e = open(tmp.filePath("nope"));
        QVERIFY2(e.contains("does not exist"), qPrintable(e));

        rewrite(hf + "/config.json", "\"state_size\": 16", "\"state_size\": 32");
        e = open(hf);
        QVERIFY2(e.contains("in_proj.weight") && e.contains("[328, 64]") && e.contains("[296, 64]"),
                 qPrintable(e));
        rewrite(hf + "/config.json", "\"state_size\": 32", "\"state_size\": 16");

        rewrite(hf + "/config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
        e = open(hf);
        QVERIFY2(e.contains("backbone.layers.2.") && e.contains("missing"), qPrintable(e));
        rewrite(hf + "/config.json", "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 2");

        rewrite(hf + "/config.json", "\"model_type\": \"mamba2\"", "\"model_type\": \"llama\"");
        e = open(hf);
        QVERIFY2(e.contains("config.json") && e.contains("llama") && e.contains("unsupported"),
                 qPrintable(e));
        rewrite(hf + "/config.json", "\"model_type\": \"llama\"", "\"model_type\": \"mamba2\"");

        QFile::resize(hf + "/model.safetensors", 1000);
        e = open(hf);
        QVERIFY2(e.contains("model.safetensors"), qPrintable(e));

        QFile::remove(hf + "/model.safetensors");
        e = open(hf);
        QVERIFY2(e.contains("no weights"), qPrintable(e));

        QFile::remove(hf + "/config.json");
        e = open(hf);
        QVERIFY2(e.contains("config.json"), qPrintable(e));

        const QString ssm = copyFixture(tmp, fixtures("mamba2").filter("ssm-g1").first());
        rewrite(ssm + "/config.json", "\"layer\": \"Mamba2\"", "\"layer\": \"Mamba3\"");
        e = open(ssm);
        QVERIFY2(e.contains("Mamba3") && e.contains("unsupported"), qPrintable(e));
        // Mamba-2 weights under a Mamba-1 config: the first tensor that does not fit is named.
        rewrite(ssm + "/config.json", "\"layer\": \"Mamba3\"", "\"layer\": \"Mamba1\"");
        e = open(ssm);
        QVERIFY2(e.contains("pytorch_model.bin") && e.contains("in_proj.weight"), qPrintable(e));
    }

    void badDevice()
    {
        RunOptions o;
        o.dtype = DType::BFloat16;
        QString e = errorOf([&] { Runner::open(fixtures("mamba").first().toStdString(), o); });
        QVERIFY2(e.contains("cuda"), qPrintable(e));
        if (!Runner::cudaAvailable()) {
            RunOptions c;
            c.device = "cuda";
            e = errorOf([&] { Runner::open(fixtures("mamba").first().toStdString(), c); });
            QVERIFY2(e.contains("CUDA is not available"), qPrintable(e));
        }
    }
};

QTEST_GUILESS_MAIN(TestArchitectures)
#include "TestArchitectures.moc"
