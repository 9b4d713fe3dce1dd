// The trainer learns (the loss falls well below ln 256 on real text), writes a folder the loader
// reads back, resumes where it stopped, starts the forget gates where it is told and decays only matrices.
#include "Error.h"
#include "io/Json.h"
#include "io/SafeTensors.h"
#include "runtime/Prompts.h"
#include "runtime/Runner.h"
#include "runtime/Trainer.h"
#include "tokenizers/Tokenizer.h"

#include <QDir>
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

    // A sweep's shard is stopped wherever its call's time runs out, and the job resumes from its last
    // checkpoint. The resumed run must draw the batches the uninterrupted one drew, or a job's
    // result would depend on where it was stopped.
    void resumedRunMatchesAnUninterruptedOne()
    {
        QTemporaryDir tmp;
        const QString whole = tmp.filePath("whole"), cut = tmp.filePath("cut");
        TrainOptions a = options(whole, 40);
        a.saveEvery = 20;
        trainModel(a, [](const TrainProgress&) {});

        struct Stopped {};
        TrainOptions b = options(cut, 40);
        b.saveEvery = 20;
        try {
            trainModel(b, [](const TrainProgress& p) {
                if (p.step == 30) // past the checkpoint at 20: steps 21-30 are lost, as in a kill
                    throw Stopped();
            });
            QFAIL("the run was not stopped");
        } catch (const Stopped&) {
        }
        const nlohmann::json state = loadPythonJson((cut + "/trainer_state.json").toStdString());
        QCOMPARE(state.at("step").get<int64_t>(), int64_t(20));
        const double firstPart = trainedSeconds(cut.toStdString());
        QVERIFY2(firstPart > 0, qPrintable(QString::number(firstPart)));
        trainModel(b, [](const TrainProgress&) {});

        const auto bytes = [](const QString& path) {
            QFile f(path);
            return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
        };
        const QByteArray expected = bytes(whole + "/model.safetensors");
        QVERIFY(expected.size() > 1000);
        QVERIFY2(bytes(cut + "/model.safetensors") == expected,
                 "the resumed run's weights differ from the uninterrupted run's");
        // Its seconds add the first process's, up to the checkpoint, to the second's.
        QVERIFY2(
            trainedSeconds(cut.toStdString()) > firstPart,
            qPrintable(QString("%1 after, %2 before").arg(trainedSeconds(cut.toStdString())).arg(firstPart)));
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

    // With a tokenizer.json the model reads its ids: the corpus is tokenised (into a cache beside it),
    // the rows are windows of those tokens, the folder keeps the tokenizer and loads with it, and the
    // loss falls from ln |V| as on bytes.
    void learnsTokenizerIds()
    {
        QTemporaryDir tmp;
        const std::string corpus = tmp.filePath("kjv.txt").toStdString();
        QVERIFY(
            QFile::copy(STATESCOPE_RESOURCES_DIR "/texts/kjv-heldout.txt", QString::fromStdString(corpus)));
        const std::string tokenizerPath = STATESCOPE_RESOURCES_DIR "/tokenizers/gpt-neox-20b.json";
        const Tokenizer tokenizer = Tokenizer::fromFile(tokenizerPath);
        const QString out = tmp.filePath("m");
        TrainOptions o = options(out, 40);
        o.data = corpus;
        o.tokenizer = tokenizerPath;

        // Rows are windows of the text's own tokens: each decodes to a piece of the corpus.
        QFile f(QString::fromStdString(corpus));
        QVERIFY(f.open(QIODevice::ReadOnly));
        const std::string text = f.readAll().toStdString();
        const auto rows = drawTrainingRows(o, 8, 5);
        QCOMPARE(rows.size(), size_t(8));
        for (const auto& row : rows) {
            QCOMPARE(row.size(), size_t(65));
            const std::string piece = tokenizer.decode(std::vector<int32_t>(row.begin(), row.end()));
            QVERIFY2(piece.size() > 65 && text.find(piece) != std::string::npos, piece.c_str());
        }
        QVERIFY(std::any_of(rows.front().begin(), rows.front().end(), [](int64_t id) { return id >= 256; }));

        std::vector<TrainProgress> log;
        trainModel(o, [&](const TrainProgress& p) { log.push_back(p); });
        // Uniform over 50,277 ids is 10.8 nats; 40 steps learn at least the words' frequencies.
        QVERIFY2(log.front().loss > 9.5, qPrintable(QString::number(log.front().loss)));
        QVERIFY2(log.back().loss < 7.5, qPrintable(QString::number(log.back().loss)));
        const nlohmann::json card = loadPythonJson((out + "/model_card.json").toStdString());
        QCOMPARE(card.at("tokenizer").get<std::string>(), std::string("gpt-neox-20b.json"));
        const nlohmann::json config = loadPythonJson((out + "/config.json").toStdString());
        QCOMPARE(tokenizer.vocabSize(), 50277);
        QCOMPARE(config.at("vocab_size").get<int64_t>(), int64_t(50288)); // padded to 16, as mamba_ssm does
        QFile kept(out + "/tokenizer.json"), source(QString::fromStdString(tokenizerPath));
        QVERIFY(kept.open(QIODevice::ReadOnly) && source.open(QIODevice::ReadOnly));
        QVERIFY(kept.readAll() == source.readAll());
        QVERIFY(!QDir(tmp.path()).entryList({"kjv.txt.tokens-*"}).isEmpty());

        // It loads as a model of that tokenizer, which a prompt is encoded with.
        RunOptions ro;
        auto runner = Runner::open(out.toStdString(), ro);
        QVERIFY(runner->info().tokenizerPath.has_value());
        QCOMPARE(Tokenizer::fromFile(*runner->info().tokenizerPath).vocabSize(), tokenizer.vocabSize());

        // Resuming with other ids is refused, naming the field.
        TrainOptions bytes = options(out, 41);
        try {
            trainModel(bytes, [](const TrainProgress&) {});
            QFAIL("resumed a tokenizer model on bytes");
        } catch (const Error& e) {
            QVERIFY2(e.field() == "vocab_size", e.what());
        }
        TrainOptions world = o;
        world.tokenizer = STATESCOPE_RESOURCES_DIR "/tokenizers/rwkv-world-vocab-v20230424.txt";
        QVERIFY_THROWS_EXCEPTION(Error, trainModel(world, [](const TrainProgress&) {}));
    }

    // The trainer's forward (zero state in, none out, states passed only between chunks) gives the
    // inference forward's NLL, token by token: in one chunk, in four, and in four with padding. In
    // bfloat16 it stays within bfloat16's rounding of it.
    void trainingPathMatchesInference()
    {
        QTemporaryDir tmp;
        const QString out = tmp.filePath("m");
        TrainOptions o = options(out, 30);
        o.shapeOverrides = R"({"chunk_size": 16})";
        trainModel(o, [](const TrainProgress&) {});
        for (int64_t width : {17, 65, 51}) { // T = 16 (one chunk), 64 (four), 50 (four, padded)
            TrainOptions rowsOf = o;
            rowsOf.trainLength = width - 1;
            const auto rows = drawTrainingRows(rowsOf, 4, 11);
            const ForwardPair f = trainingAndInferenceNll(out.toStdString(), rows, "cpu", false);
            QCOMPARE(f.training.size(), size_t(4 * (width - 1)));
            QCOMPARE(f.inference.size(), f.training.size());
            double worst = 0, mean = 0;
            for (size_t i = 0; i < f.training.size(); ++i) {
                worst = std::max(worst, std::abs(f.training[i] - f.inference[i]));
                mean += f.inference[i] / double(f.training.size());
            }
            QVERIFY2(worst < 2e-5, qPrintable(QString("T %1: %2").arg(width - 1).arg(worst)));
            QVERIFY2(mean > 1.0 && mean < 4.0, qPrintable(QString::number(mean)));
            const ForwardPair h = trainingAndInferenceNll(out.toStdString(), rows, "cpu", true);
            double bfWorst = 0, bfMean = 0;
            for (size_t i = 0; i < h.training.size(); ++i) {
                bfWorst = std::max(bfWorst, std::abs(h.training[i] - h.inference[i]));
                bfMean += std::abs(h.training[i] - h.inference[i]) / double(h.training.size());
            }
            QVERIFY2(
                bfMean > 0 && bfMean < 0.02 && bfWorst < 0.2,
                qPrintable(QString("T %1: bf16 mean %2 worst %3").arg(width - 1).arg(bfMean).arg(bfWorst)));
        }
    }

    void outputCrossEntropyMatchesAutograd()
    {
        // 50 rows in chunks of 7 (the last one short), against F::linear + cross_entropy.
        const int64_t vocab = 97, chunkElements = 7 * vocab;
        const CrossEntropyCheck f = checkOutputCrossEntropy("float32", 50, 24, vocab, chunkElements, 3);
        QVERIFY2(f.loss < 1e-6 && f.hidden < 1e-5 && f.weight < 1e-5,
                 qPrintable(QString("loss %1 hidden %2 weight %3").arg(f.loss).arg(f.hidden).arg(f.weight)));
        // bfloat16 GEMMs: the kept gradient is rounded before its rows are scaled, autograd's after.
        const CrossEntropyCheck h = checkOutputCrossEntropy("bfloat16", 50, 24, vocab, chunkElements, 4);
        QVERIFY2(h.loss < 1e-6 && h.hidden < 2e-2 && h.weight < 2e-2,
                 qPrintable(QString("loss %1 hidden %2 weight %3").arg(h.loss).arg(h.hidden).arg(h.weight)));
        QVERIFY_THROWS_EXCEPTION(Error, checkOutputCrossEntropy("float16", 4, 4, 4, 16, 0));
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
