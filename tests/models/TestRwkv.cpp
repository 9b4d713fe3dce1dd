// RWKV-5.2 and RWKV-6 beyond the fixtures TestArchitectures checks against their float64 references:
// the two paths on random weights of every chunking, a .pth given as a file, the World tokenizer for
// a 65,536 vocabulary, the mitigations RWKV takes and refuses, and the errors of the native layout.
// (The state-difference window's identity is TestMitigation's and the old-context probes are
// TestOldContext's, for every architecture.)
// torch before Qt: Qt's "slots" breaks LibTorch's headers.
#include "models/RecurrentModel.h"

#include "Error.h"
#include "ProbeRuns.h"
#include "io/DType.h"
#include "runtime/Input.h"
#include "runtime/Runner.h"
#include "tokenizers/ByteTokenizerJson.h"
#include "tokenizers/WorldTokenizer.h"

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>

using namespace statescope;
using namespace statescope::testing;

namespace {

const QString kData = QStringLiteral(STATESCOPE_TEST_DATA_DIR);

std::vector<int32_t> someIds(size_t n, int32_t vocab)
{
    std::vector<int32_t> ids(n);
    for (size_t i = 0; i < n; ++i)
        ids[i] = int32_t((i * 7919 + 13) % size_t(vocab));
    return ids;
}

// Relative to the larger of |b| and 1e-6: the paths must agree on small values too.
double maxRel(const std::vector<float>& a, const std::vector<float>& b)
{
    return maxRelative(a, b, 1e-6);
}

template <typename F> QString errorOf(F&& f)
{
    try {
        f();
    } catch (const std::exception& e) {
        return QString::fromStdString(e.what());
    }
    return QString();
}

} // namespace

class TestRwkv : public QObject {
    Q_OBJECT

private slots:
    // Random weights (data-dependent decays for RWKV-6): every chunk size gives the step's numbers to
    // 1e-5, including chunks that are not multiples of the 16-token sub-blocks.
    void pathsAgreeOnRandomWeights_data()
    {
        QTest::addColumn<QString>("arch");
        QTest::newRow("rwkv5") << "rwkv5";
        QTest::newRow("rwkv6") << "rwkv6";
    }
    void pathsAgreeOnRandomWeights()
    {
        QFETCH(QString, arch);
        const std::string config = Runner::shapeConfig(arch.toStdString(), "tiny");
        RunOptions o;
        o.threads = 2;
        o.reference = true;
        o.chunkSize = 500;
        auto step = Runner::openRandom(arch.toStdString(), config, 5, o);
        const std::vector<int32_t> ids = someIds(200, 512);
        const Run ref = runAll(*step, ids);
        QCOMPARE(ref.probes.size(), size_t(2));
        for (int64_t chunk : {1, 5, 16, 33, 64, 200, 1000}) {
            o.reference = false;
            o.chunkSize = chunk;
            auto chunked = Runner::openRandom(arch.toStdString(), config, 5, o);
            const Run got = runAll(*chunked, ids);
            const QString where = arch + " chunk " + QString::number(chunk);
            QVERIFY2(maxRel(got.nll, ref.nll) <= 1e-5, qPrintable(where + " nll"));
            for (const auto& [name, values] : ref.probes) {
                const double e = maxRel(got.probes.at(name), values);
                QVERIFY2(e <= 1e-5, qPrintable(where + " " + QString::fromStdString(name) +
                                               QString(" rel err %1").arg(e)));
            }
        }
    }
    // A .pth named on its own is a model: BlinkDL's layout, its config inferred from the keys.
    void pthGivenAsFile()
    {
        RunOptions o;
        auto r = Runner::open((kData + "/rwkv6/native-f32/model.pth").toStdString(), o);
        QCOMPARE(r->info().shape.architecture, std::string("rwkv6"));
        QCOMPARE(r->info().shape.layout, std::string("blinkdl"));
        QCOMPARE(r->info().shape.layers, int64_t(2));
        QCOMPARE(r->info().shape.units, int64_t(4)); // 64 wide, head size 16
        QCOMPARE(r->info().shape.stateSize, int64_t(2 * 4 * 16 * 16));
        auto v5 = Runner::open((kData + "/rwkv5/native-bf16-config").toStdString(), o);
        QCOMPARE(v5->info().shape.architecture, std::string("rwkv5"));
    }

    // A config.json beside a .pth (RWKV-LM's names) must agree with the shapes; each error names the
    // file, the field and both values.
    void nativeLayoutErrors()
    {
        QTemporaryDir tmp;
        const QString dir = tmp.filePath("m");
        QDir().mkpath(dir);
        const QString from = kData + "/rwkv6/native-bf16-config";
        QVERIFY(QFile::copy(from + "/RWKV-x060-test.pth", dir + "/RWKV-x060-test.pth"));
        QFile cfg(dir + "/config.json");
        QVERIFY(cfg.open(QIODevice::WriteOnly));
        cfg.write(R"({"n_layer": 3, "n_embd": 64})");
        cfg.close();
        RunOptions o;
        QString e = errorOf([&] { Runner::open(dir.toStdString(), o); });
        QVERIFY2(e.contains("config.json") && e.contains("n_layer") &&
                     e.contains("2 (from the checkpoint's shapes)") && e.contains("3"),
                 qPrintable(e));

        // Two checkpoints: which one is meant is not guessed.
        QVERIFY(cfg.remove());
        QVERIFY(QFile::copy(from + "/RWKV-x060-test.pth", dir + "/other.pth"));
        e = errorOf([&] { Runner::open(dir.toStdString(), o); });
        QVERIFY2(e.contains("one .pth") && e.contains("other.pth"), qPrintable(e));

        // RWKV-5.1 (one decay per head) is refused by name.
        e = errorOf([&] { Runner::open((kData + "/bad/rwkv-5.1.pth").toStdString(), o); });
        QVERIFY2(e.contains("rwkv-5.1.pth") && e.contains("RWKV-5.1") && e.contains("5.2"), qPrintable(e));

        // A .pth whose keys name no architecture (a Mamba-2 state dict).
        const QString mamba = tmp.filePath("mamba.pth");
        QVERIFY(QFile::copy(kData + "/mamba2/ssm-g1-tied/pytorch_model.bin", mamba));
        e = errorOf([&] { Runner::open(mamba.toStdString(), o); });
        QVERIFY2(e.contains("mamba.pth") && e.contains("tensors") && e.contains("backbone."), qPrintable(e));

        // A checkpoint whose tensor is cut short.
        const QString cut = tmp.filePath("cut.pth");
        QFile src(kData + "/rwkv6/native-f32/model.pth");
        QVERIFY(src.open(QIODevice::ReadOnly));
        QFile dst(cut);
        QVERIFY(dst.open(QIODevice::WriteOnly));
        dst.write(src.read(src.size() / 2));
        dst.close();
        e = errorOf([&] { Runner::open(cut.toStdString(), o); });
        QVERIFY2(e.contains("cut.pth"), qPrintable(e));
    }

    // RWKV checkpoints ship no tokenizer: a 65,536 vocabulary gets the World one, and the input is
    // tokenized with it.
    void worldTokenizerChosen()
    {
        QTemporaryDir tmp;
        const std::string dir = tmp.filePath("world").toStdString();
        Runner::writeRandomModel(
            "rwkv6", Runner::shapeConfig("rwkv6", "tiny", R"({"vocab_size": 65536, "hidden_size": 32})"), 1,
            dir);
        QFile::remove(QString::fromStdString(dir) + "/tokenizer.json");
        RunOptions o;
        auto r = Runner::open(dir, o);
        QVERIFY(r->info().tokenizerPath.has_value());
        QVERIFY2(QString::fromStdString(*r->info().tokenizerPath).endsWith("rwkv-world-vocab-v20230424.txt"),
                 r->info().tokenizerPath->c_str());
        InputRequest req;
        req.text = "Hello, world! 你好";
        const PreparedInput in = prepareInput(req, r->info().tokenizerPath);
        const WorldTokenizer world = WorldTokenizer::fromFile(*r->info().tokenizerPath);
        QCOMPARE(in.ids, world.encode(*req.text).ids);
        QVERIFY(in.source.tokenizer.find("RWKV World") != std::string::npos);
        const ChunkProbes c = r->feed(in.ids);
        QVERIFY(std::isfinite(c.nll.back()));
        // Greedy decoding through the step path gives World ids the tokenizer decodes.
        const Generation g = r->generate({in.ids}, 4);
        QCOMPARE(g.tokens.size(), size_t(1));
        QCOMPARE(g.tokens[0].size(), size_t(4));
        QVERIFY(!world.decode(g.tokens[0]).empty() || g.tokens[0][0] == WorldTokenizer::kEndOfText);
    }

    // A 256-token vocabulary maps ids to bytes; the paper's T_forget fit is not claimed for RWKV.
    void byteVocabularyAndNoForgetFit()
    {
        QTemporaryDir tmp;
        const std::string dir = tmp.filePath("bytes").toStdString();
        Runner::writeRandomModel("rwkv5", Runner::shapeConfig("rwkv5", "tiny", R"({"vocab_size": 256})"), 1,
                                 dir);
        QFile::remove(QString::fromStdString(dir) + "/tokenizer.json");
        RunOptions o;
        auto r = Runner::open(dir, o);
        QVERIFY(r->info().tokenizerPath.has_value());
        QVERIFY2(QString::fromStdString(*r->info().tokenizerPath).endsWith("byte-level.json"),
                 r->info().tokenizerPath->c_str());
        InputRequest req;
        req.text = "h\xc3\xa9\n"; // "hé\n"
        QCOMPARE(prepareInput(req, r->info().tokenizerPath).ids, (std::vector<int32_t>{104, 195, 169, 10}));
        QVERIFY(!r->info().forgetThreshold.has_value());
        QVERIFY(r->info().shape.forgetFitNote.find("Mamba-2") != std::string::npos);
        // The shipped byte-level tokenizer is the one the engine writes for its own models.
        QFile f(QStringLiteral(STATESCOPE_RESOURCES_DIR "/tokenizers/byte-level.json"));
        QVERIFY(f.open(QIODevice::ReadOnly));
        QCOMPARE(f.readAll().toStdString(), byteLevelTokenizerJson());
    }

    // The knobs RWKV takes: lambda_alpha multiplies every key channel's decay (so the first layer's
    // decay probe, whose input is the token's alone, by exactly lambda_alpha), and those it refuses by name.
    void mitigations()
    {
        const std::string config = Runner::shapeConfig("rwkv6", "tiny");
        RunOptions o;
        o.threads = 2;
        auto plain = Runner::openRandom("rwkv6", config, 3, o);
        o.mitigation = parseMitigation("alpha=0.9");
        auto mitigated = Runner::openRandom("rwkv6", config, 3, o);
        const std::vector<int32_t> ids = someIds(40, 512);
        const ChunkProbes a = plain->feed(ids), b = mitigated->feed(ids);
        const int64_t L = 2, H = 4;
        double worst = 0;
        for (int64_t t = 0; t < 40; ++t)
            for (int64_t h = 0; h < H; ++h) {
                const size_t k = size_t((t * L + 0) * H + h);
                worst = std::max(worst, std::abs(b.values[0][k] - 0.9 * a.values[0][k]) / a.values[0][k]);
            }
        QVERIFY2(worst < 1e-5, qPrintable(QString("rel err %1").arg(worst)));

        o.mitigation = parseMitigation("dt=0.5");
        auto dt = Runner::openRandom("rwkv6", config, 3, o);
        QString e = errorOf([&] { dt->feed(ids); });
        QVERIFY2(e.contains("dt") && e.contains("Delta"), qPrintable(e));
    }

    // State normalisation acts in both paths alike: clipped runs agree chunked and step by step.
    void normalisationPathsAgree()
    {
        const std::string config = Runner::shapeConfig("rwkv6", "tiny");
        const std::vector<int32_t> ids = someIds(120, 512);
        std::vector<Run> runs;
        for (int64_t chunk : {0, 7, 100}) {
            RunOptions o;
            o.threads = 2;
            o.reference = chunk == 0;
            o.chunkSize = chunk == 0 ? 200 : chunk;
            o.mitigation = parseMitigation("clip=0.5,every=4");
            auto r = Runner::openRandom("rwkv6", config, 9, o);
            r->calibrate(std::vector<int32_t>(ids.begin(), ids.begin() + 64), "test ids");
            runs.push_back(runAll(*r, ids));
        }
        for (size_t i = 1; i < runs.size(); ++i) {
            QVERIFY2(maxRel(runs[i].nll, runs[0].nll) <= 1e-5, qPrintable(QString("run %1 nll").arg(i)));
            for (const auto& [name, values] : runs[0].probes)
                QVERIFY2(maxRel(runs[i].probes.at(name), values) <= 1e-5,
                         qPrintable(QString("run %1 ").arg(i) + QString::fromStdString(name)));
        }
    }
    // Full detail adds every key channel's decay; its geometric mean over a head's keys is the head's
    // decay probe.
    void keyDecayOptIn()
    {
        const std::string config = Runner::shapeConfig("rwkv6", "tiny");
        RunOptions o;
        o.threads = 2;
        auto summary = Runner::openRandom("rwkv6", config, 4, o);
        QCOMPARE(summary->probes().size(), size_t(2));
        o.probeDetail = ProbeDetail::Full;
        auto full = Runner::openRandom("rwkv6", config, 4, o);
        QCOMPARE(full->probes().size(), size_t(3));
        QCOMPARE(full->probes()[2].name, std::string("key_decay"));
        QCOMPARE(full->probes()[2].shape, (std::vector<int64_t>{2, 4 * 16}));
        const ChunkProbes c = full->feed(someIds(30, 512));
        double worst = 0;
        for (int64_t t = 0; t < 30; ++t)
            for (int64_t l = 0; l < 2; ++l)
                for (int64_t h = 0; h < 4; ++h) {
                    double logSum = 0;
                    for (int64_t k = 0; k < 16; ++k)
                        logSum += std::log(double(c.values[2][size_t((t * 2 + l) * 64 + h * 16 + k)]));
                    const double head = c.values[0][size_t((t * 2 + l) * 4 + h)];
                    worst = std::max(worst, std::abs(std::exp(logSum / 16) - head) / head);
                }
        QVERIFY2(worst < 1e-5, qPrintable(QString("rel err %1").arg(worst)));
    }

    // bf16 halves the output matrices and the residual every rescale_every blocks, as the references do
    // there; the LayerNorms make that the same model. The runner keeps the CPU in float32, so the model
    // is driven directly: with a halving after each of 4 blocks the final hidden states stay within
    // bf16's rounding of float32's, as they do without halving.
    void rescaleInBfloat16()
    {
        const std::vector<int32_t> ids = someIds(48, 512);
        auto hidden = [&](torch::ScalarType dtype, int every) {
            const nlohmann::json config = nlohmann::json::parse(Runner::shapeConfig(
                "rwkv6", "tiny",
                R"({"num_hidden_layers": 4, "rescale_every": )" + std::to_string(every) + "}"));
            TorchTarget target;
            target.dtype = dtype;
            auto model = findArchitecture("rwkv6")->random(config, 8, target);
            auto state = model->initialState(1);
            const torch::Tensor t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).view({1, -1});
            return model->forward(t, *state, false, false).hidden;
        };
        const torch::Tensor f32 = hidden(torch::kFloat32, 1);
        auto relErr = [&](const torch::Tensor& h) { return ((h - f32).norm() / f32.norm()).item<double>(); };
        const double halved = relErr(hidden(torch::kBFloat16, 1)),
                     plain = relErr(hidden(torch::kBFloat16, 0));
        qInfo("bf16 vs float32, final hidden states: %.4f halving every block, %.4f never", halved, plain);
        QVERIFY2(halved < 0.03 && plain < 0.03, qPrintable(QString("%1, %2").arg(halved).arg(plain)));
    }
};

QTEST_GUILESS_MAIN(TestRwkv)
#include "TestRwkv.moc"
