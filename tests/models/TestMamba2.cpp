// Mamba-2 against independent references: transformers-checked float64 numbers stored with each
// fixture (tools/make_mamba2_fixtures.py), and the recurrent reference path against the chunked one.
#include "Error.h"
#include "runtime/Runner.h"
#include "trace/ReferenceFile.h"

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>

using namespace statescope;

namespace {

struct Result {
    std::vector<float> nll;
    std::vector<std::vector<float>> probes; // dt, decay, state_norm
};

Result runAll(const QString& dir, const std::vector<int32_t>& ids, int64_t chunk, bool reference)
{
    RunOptions o;
    o.chunkSize = chunk;
    o.reference = reference;
    o.threads = 2;
    auto runner = Runner::open(dir.toStdString(), o);
    Result r;
    r.probes.resize(3);
    runner->run(ids, nullptr, [&](const ChunkProbes& c) {
        r.nll.insert(r.nll.end(), c.nll.begin(), c.nll.end());
        for (size_t p = 0; p < 3; ++p)
            r.probes[p].insert(r.probes[p].end(), c.values[p].begin(), c.values[p].end());
    });
    return r;
}

double maxRel(const std::vector<float>& a, const std::vector<float>& b, double atol = 1e-6)
{
    if (a.size() != b.size())
        return INFINITY;
    std::vector<double> bd(b.begin(), b.end());
    return maxRelativeError(a.data(), bd.data(), bd.size(), atol);
}

QStringList fixtures()
{
    QDir d(QStringLiteral(STATESCOPE_TEST_DATA_DIR "/mamba2"));
    QStringList out;
    for (const QString& e : d.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name))
        out << d.filePath(e);
    return out;
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

template <typename F>
QString errorOf(F&& f)
{
    try {
        f();
    } catch (const Error& e) {
        return QString::fromStdString(e.what());
    }
    return QString();
}

} // namespace

class TestMamba2 : public QObject {
    Q_OBJECT

private slots:
    void fixturesPresent()
    {
        // Four layouts: transformers safetensors (tied), transformers shards (untied, ngroups 2),
        // mamba_ssm pytorch_model.bin float32 and bfloat16.
        QCOMPARE(fixtures().size(), 4);
    }

    void matchesReference_data()
    {
        QTest::addColumn<QString>("dir");
        QTest::addColumn<qlonglong>("chunk");
        QTest::addColumn<bool>("reference");
        for (const QString& f : fixtures()) {
            const QString n = QFileInfo(f).fileName();
            for (qlonglong c : {1, 7, 64, 256, 1000})
                QTest::newRow(qPrintable(n + " chunked " + QString::number(c))) << f << c << false;
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
        const Result r = runAll(dir, ref.ids, chunk, reference);
        QVERIFY(std::isnan(r.nll[0]));
        const double nllErr = maxRelativeError(r.nll.data(), ref.nll.data(), ref.nll.size());
        QVERIFY2(nllErr <= 1e-4, qPrintable(QString("nll rel err %1").arg(nllErr)));
        for (size_t p = 0; p < 3; ++p) {
            QCOMPARE(r.probes[p].size(), ref.probes[p].size());
            const double e = maxRelativeError(r.probes[p].data(), ref.probes[p].data(), ref.probes[p].size());
            QVERIFY2(e <= 1e-4, qPrintable(QString::fromStdString(ref.probeNames[p]) + QString(" rel err %1").arg(e)));
        }
    }

    // The two paths and all chunkings agree with each other to 1e-5 in float32.
    void pathsAgree()
    {
        for (const QString& dir : fixtures()) {
            const ReferenceData ref = readReferenceFile((dir + "/reference.h5").toStdString());
            const Result recurrent = runAll(dir, ref.ids, 300, true);
            for (int64_t chunk : {1, 7, 64, 256, 1000}) {
                const Result chunked = runAll(dir, ref.ids, chunk, false);
                const QString where = QFileInfo(dir).fileName() + " chunk " + QString::number(chunk);
                QVERIFY2(maxRel(chunked.nll, recurrent.nll) <= 1e-5, qPrintable(where + " nll"));
                for (size_t p = 0; p < 3; ++p) {
                    const double e = maxRel(chunked.probes[p], recurrent.probes[p]);
                    QVERIFY2(e <= 1e-5, qPrintable(where + QString(" probe %1 rel err %2").arg(p).arg(e)));
                }
            }
        }
    }

    void info()
    {
        RunOptions o;
        auto runner = Runner::open(fixtures().first().toStdString(), o);
        const ModelInfo& i = runner->info();
        QCOMPARE(i.architecture, std::string("mamba2"));
        QCOMPARE(i.layers, int64_t(2));
        QCOMPARE(i.heads, int64_t(8));
        // N_S = L * (H*P*N + conv_dim*(d_conv-1)) = 2 * (8*16*16 + (128+32)*3)
        QCOMPARE(i.stateSize, int64_t(2 * (8 * 16 * 16 + 160 * 3)));
        QCOMPARE(i.vocabSize, int64_t(512));
    }

    void cancelBetweenChunks()
    {
        RunOptions o;
        o.chunkSize = 50;
        auto runner = Runner::open(fixtures().first().toStdString(), o);
        std::vector<int32_t> ids(300, 5);
        std::atomic<bool> cancel{false};
        int chunks = 0;
        bool cancelled = false;
        try {
            runner->run(ids, nullptr, [&](const ChunkProbes&) {
                ++chunks;
                cancel = true;
            }, &cancel);
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
        auto runner = Runner::open(fixtures().first().toStdString(), o);
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
        const QString hf = copyFixture(tmp, fixtures().filter("hf-g1").first());
        RunOptions o;
        auto open = [&](const QString& d) { return errorOf([&] { Runner::open(d.toStdString(), o); }); };

        QString e = open(tmp.filePath("nope"));
        QVERIFY2(e.contains("does not exist"), qPrintable(e));

        rewrite(hf + "/config.json", "\"state_size\": 16", "\"state_size\": 32");
        e = open(hf);
        QVERIFY2(e.contains("in_proj.weight") && e.contains("[328, 64]") && e.contains("[296, 64]"), qPrintable(e));
        rewrite(hf + "/config.json", "\"state_size\": 32", "\"state_size\": 16");

        rewrite(hf + "/config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
        e = open(hf);
        QVERIFY2(e.contains("backbone.layers.2.") && e.contains("missing"), qPrintable(e));
        rewrite(hf + "/config.json", "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 2");

        rewrite(hf + "/config.json", "\"model_type\": \"mamba2\"", "\"model_type\": \"llama\"");
        e = open(hf);
        QVERIFY2(e.contains("config.json") && e.contains("llama") && e.contains("unsupported"), qPrintable(e));
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

        const QString ssm = copyFixture(tmp, fixtures().filter("ssm-g1").first());
        rewrite(ssm + "/config.json", "\"layer\": \"Mamba2\"", "\"layer\": \"Mamba1\"");
        e = open(ssm);
        QVERIFY2(e.contains("Mamba1") && e.contains("ssm_cfg.layer"), qPrintable(e));
    }

    void badDevice()
    {
        RunOptions o;
        o.dtype = DType::BFloat16;
        QString e = errorOf([&] { Runner::open(fixtures().first().toStdString(), o); });
        QVERIFY2(e.contains("cuda"), qPrintable(e));
        if (!Runner::cudaAvailable()) {
            RunOptions c;
            c.device = "cuda";
            e = errorOf([&] { Runner::open(fixtures().first().toStdString(), c); });
            QVERIFY2(e.contains("CUDA is not available"), qPrintable(e));
        }
    }
};

QTEST_GUILESS_MAIN(TestMamba2)
#include "TestMamba2.moc"
