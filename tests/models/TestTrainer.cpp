// The trainer learns (the loss falls well below ln 256 on real text), writes a folder the loader
// reads back, resumes where it stopped, starts the forget gates where it is told and decays only matrices.
#include "Error.h"
#include "io/Json.h"
#include "io/SafeTensors.h"
#include "runtime/Prompts.h"
#include "runtime/Runner.h"
#include "runtime/Trainer.h"

#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

using namespace statescope;

class TestTrainer : public QObject {
    Q_OBJECT

    TrainOptions options(const QString& out, int64_t steps)
    {
        TrainOptions o;
        o.shape = "tiny"; // d_model 64, 2 layers, d_state 16, headdim 16
        o.shapeOverrides = R"({"chunk_size": 64})";
        o.data = STATESCOPE_RESOURCES_DIR "/texts/kjv-heldout.txt";
        o.out = out.toStdString();
        o.trainLength = 64;
        o.batch = 8;
        o.steps = steps;
        o.warmup = 5;
        o.lr = 3e-3;
        o.logEvery = 10;
        o.saveEvery = 1000;
        o.threads = 2;
        return o;
    }

private slots:
    void learnsAndResumes()
    {
        QTemporaryDir tmp;
        const QString out = tmp.filePath("m");
        std::vector<TrainProgress> log;
        TrainOptions first = options(out, 60);
        first.snapshotEvery = 30;
        trainModel(first, [&](const TrainProgress& p) { log.push_back(p); });
        QCOMPARE(log.size(), size_t(6));
        // Uniform over bytes is ln 256 = 5.55 nats; 60 steps on English text get far below.
        QVERIFY2(log.front().loss > 4.0, qPrintable(QString::number(log.front().loss)));
        QVERIFY2(log.back().loss < 3.3, qPrintable(QString::number(log.back().loss)));

        const nlohmann::json card = loadPythonJson((out + "/model_card.json").toStdString());
        QCOMPARE(card.at("training_length").get<int64_t>(), int64_t(64));
        QCOMPARE(card.at("steps").get<int64_t>(), int64_t(60));

        // The folder loads like any model, tokenizer included, and its card sets the marker.
        RunOptions ro;
        auto runner = Runner::open(out.toStdString(), ro);
        QVERIFY(runner->info().tokenizerPath.has_value());
        QCOMPARE(*runner->info().trainingLength, int64_t(64));

        // Snapshots: the one at the last step holds the final weights, the earlier one other weights,
        // and each loads as a model whose card says where in the schedule it was taken.
        const auto fileBytes = [](const std::string& path) {
            QFile f(QString::fromStdString(path));
            return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
        };
        const std::string s30 = snapshotFolder(out.toStdString(), 30),
                          s60 = snapshotFolder(out.toStdString(), 60);
        const std::string tail = "/m/snapshots/step-0000030";
        QVERIFY2(s30.size() > tail.size() && s30.substr(s30.size() - tail.size()) == tail, s30.c_str());
        const QByteArray final = fileBytes(out.toStdString() + "/model.safetensors");
        QVERIFY(final.size() > 1000);
        QCOMPARE(fileBytes(s60 + "/model.safetensors"), final);
        QVERIFY(fileBytes(s30 + "/model.safetensors") != final);
        QCOMPARE(fileBytes(s30 + "/model.safetensors").size(), final.size());
        const nlohmann::json snapCard = loadPythonJson(s30 + "/model_card.json");
        QCOMPARE(snapCard.at("steps").get<int64_t>(), int64_t(30));
        QCOMPARE(snapCard.at("snapshot").at("planned_steps").get<int64_t>(), int64_t(60));
        auto snap = Runner::open(s30, ro);
        QCOMPARE(*snap->info().trainingLength, int64_t(64));
        QVERIFY(!QFile::exists(QString::fromStdString(s30 + "/optimizer.pt")));

        log.clear();
        trainModel(options(out, 70), [&](const TrainProgress& p) { log.push_back(p); });
        QCOMPARE(log.size(), size_t(1));
        QCOMPARE(log.front().step, int64_t(70));
        QVERIFY(log.front().loss < 3.3);
    }

    // --dt-init / --a-init set where the forget gates start: after one step at a negligible learning
    // rate, every head's decay alpha = exp(-Delta A) lies where the ranges put it, and the card says so.
    void initialForgetGates()
    {
        QTemporaryDir tmp;
        const QString out = tmp.filePath("m");
        TrainOptions o = options(out, 1);
        o.lr = 1e-12;
        o.warmup = 0;
        o.dtInitMin = 1e-5;
        o.dtInitMax = 1e-4;
        o.aInitMin = o.aInitMax = 1;
        trainModel(o, [](const TrainProgress&) {});
        RunOptions ro;
        ro.threads = 2;
        auto runner = Runner::open(out.toStdString(), ro);
        const ChunkProbes c = runner->feed({72, 101, 108, 108, 111});
        const auto descs = runner->probes();
        QCOMPARE(descs[1].name, std::string("decay"));
        // Delta = softplus(dt + dt_bias) moves with the input (a raw dt of 1 multiplies it by e), so the
        // bounds allow 8x either way of [1e-5, 1e-4]; mamba_ssm's init puts every head below exp(-8e-4).
        for (float a : c.values[1])
            QVERIFY2(a > std::exp(-8e-4) && a < std::exp(-1e-6), qPrintable(QString::number(a, 'g', 9)));
        const nlohmann::json card = loadPythonJson((out + "/model_card.json").toStdString());
        QCOMPARE(card.at("dt_init")[0].get<double>(), 1e-5);
        QCOMPARE(card.at("a_init")[1].get<double>(), 1.0);

        // mamba_ssm's defaults: alpha from exp(-0.1 * 16) = 0.2 up to exp(-0.001) = 0.999.
        const QString def = tmp.filePath("d");
        TrainOptions d = options(def, 1);
        d.lr = 1e-12;
        d.warmup = 0;
        trainModel(d, [](const TrainProgress&) {});
        auto r2 = Runner::open(def.toStdString(), ro);
        const ChunkProbes c2 = r2->feed({72, 101, 108, 108, 111});
        const auto [lo, hi] = std::minmax_element(c2.values[1].begin(), c2.values[1].end());
        QVERIFY(*lo < 0.9 && *hi > 0.95 && *hi < 0.9995);

        TrainOptions bad = options(tmp.filePath("b"), 1);
        bad.dtInitMin = 0.1;
        bad.dtInitMax = 0.01;
        QVERIFY_THROWS_EXCEPTION(Error, trainModel(bad, [](const TrainProgress&) {}));
    }

    // Weight decay shrinks matrices only: with decay 500 at lr 1e-3 one step halves in_proj, while
    // A_log and dt_bias (1-D) move by no more than Adam's step, lr.
    void weightDecayOnMatricesOnly()
    {
        QTemporaryDir tmp;
        auto tensors = [](const QString& dir) {
            std::map<std::string, std::vector<float>> m;
            for (const RawTensor& t : readSafeTensors((dir + "/model.safetensors").toStdString())) {
                const float* f = reinterpret_cast<const float*>(t.data);
                m[t.name].assign(f, f + t.numel());
            }
            return m;
        };
        TrainOptions o = options(tmp.filePath("a"), 1);
        o.lr = 1e-12; // the initial weights, saved
        trainModel(o, [](const TrainProgress&) {});
        o = options(tmp.filePath("b"), 1);
        o.lr = 1e-3;
        o.warmup = 0;
        o.weightDecay = 500;
        trainModel(o, [](const TrainProgress&) {});
        auto before = tensors(tmp.filePath("a")), after = tensors(tmp.filePath("b"));
        const std::string m = "backbone.layers.0.mixer.";
        double n0 = 0, n1 = 0;
        for (size_t i = 0; i < before[m + "in_proj.weight"].size(); ++i) {
            n0 += std::pow(before[m + "in_proj.weight"][i], 2);
            n1 += std::pow(after[m + "in_proj.weight"][i], 2);
        }
        QVERIFY2(std::abs(std::sqrt(n1 / n0) - 0.5) < 0.05, qPrintable(QString::number(std::sqrt(n1 / n0))));
        for (const char* name : {"A_log", "dt_bias", "D"})
            for (size_t i = 0; i < before[m + name].size(); ++i)
                QVERIFY2(std::abs(after[m + name][i] - before[m + name][i]) <= 1.01e-3, name);
    }

    // The passkey documents are the sweep's template (prefix, filler blocks with one needle, suffix),
    // begin their row, end in the key, and are followed by corpus text; other rows are corpus text.
    void passkeyDocuments()
    {
        QFile f(STATESCOPE_RESOURCES_DIR "/texts/kjv-heldout.txt");
        QVERIFY(f.open(QIODevice::ReadOnly));
        const std::string corpus = f.readAll().toStdString();
        auto inCorpus = [&](const std::string& piece) { return corpus.find(piece) != std::string::npos; };
        const std::string prefix = kPasskeyPrefix, filler = kPasskeyFiller, suffix = kPasskeySuffix;

        TrainOptions o = options("", 1);
        o.trainLength = 512;
        o.passkeyFraction = 0.5;
        const auto rows = drawTrainingRows(o, 200, 3);
        int documents = 0;
        std::set<size_t> needleBlocks, promptLengths;
        for (const auto& row : rows) {
            QCOMPARE(row.size(), size_t(513));
            const std::string text(row.begin(), row.end());
            if (text.compare(0, prefix.size(), prefix) != 0) {
                QVERIFY2(inCorpus(text), text.c_str());
                continue;
            }
            ++documents;
            const size_t end = text.find(suffix);
            QVERIFY(end != std::string::npos);
            const std::string key = text.substr(end + suffix.size() + 1, 5);
            QCOMPARE(text.substr(end + suffix.size(), 8), " " + key + ".\n");
            QVERIFY(std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; }));
            // Between prefix and suffix: filler blocks and the one needle.
            std::string haystack = text.substr(prefix.size(), end - prefix.size());
            const std::string needle = passkeyNeedle(key);
            const size_t at = haystack.find(needle);
            QVERIFY(at != std::string::npos && at % filler.size() == 0);
            needleBlocks.insert(at / filler.size());
            haystack.replace(at, needle.size(), filler);
            QCOMPARE(haystack.size() % filler.size(), size_t(0));
            for (size_t b = 0; b < haystack.size(); b += filler.size())
                QCOMPARE(haystack.substr(b, filler.size()), filler);
            const size_t promptLength = end + suffix.size();
            QVERIFY(promptLength >= prefix.size() + needle.size() + suffix.size() && promptLength + 8 <= 513);
            promptLengths.insert(promptLength);
            QVERIFY2(inCorpus(text.substr(promptLength + 8)), text.c_str());
        }
        QVERIFY2(documents >= 70 && documents <= 130, qPrintable(QString::number(documents)));
        // Lengths and depths spread over what T_train allows: 1 to 4 blocks of 90 bytes here, the needle
        // in blocks 0 to 2 (int(depth * (blocks - 1)) never reaches the last block, as in the seed).
        QCOMPARE(promptLengths.size(), size_t(4));
        QCOMPARE(needleBlocks.size(), size_t(3));

        // Without documents the rows are the text-only trainer's.
        o.passkeyFraction = 0;
        for (const auto& row : drawTrainingRows(o, 20, 3))
            QVERIFY(inCorpus(std::string(row.begin(), row.end())));

        // A T_train that holds no document, and a fraction outside [0, 1], are refused by name.
        o.passkeyFraction = 0.3;
        o.trainLength = 200;
        try {
            drawTrainingRows(o, 1, 3);
            QFAIL("no error for T_train 200");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("T_train"), e.what());
        }
        o.trainLength = 512;
        o.passkeyFraction = 1.5;
        QVERIFY_THROWS_EXCEPTION(Error, drawTrainingRows(o, 1, 3));

        // A training run with documents records them in the model card.
        QTemporaryDir tmp;
        o = options(tmp.filePath("m"), 2);
        o.trainLength = 256;
        o.passkeyFraction = 0.3;
        trainModel(o, [](const TrainProgress&) {});
        const nlohmann::json card = loadPythonJson(tmp.filePath("m/model_card.json").toStdString());
        QCOMPARE(card.at("passkey_fraction").get<double>(), 0.3);
        QCOMPARE(card.at("passkey_lengths").dump(), std::string("[220,249]"));
    }

    void badCorpus()
    {
        QTemporaryDir tmp;
        TrainOptions o = options(tmp.filePath("m"), 1);
        o.data = tmp.filePath("none.txt").toStdString();
        QVERIFY_THROWS_EXCEPTION(Error, trainModel(o, [](const TrainProgress&) {}));
    }
};

QTEST_GUILESS_MAIN(TestTrainer)
#include "TestTrainer.moc"
