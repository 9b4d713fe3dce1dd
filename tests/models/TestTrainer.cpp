// The trainer learns (the loss falls well below ln 256 on real text), writes a folder the loader
// reads back, and resumes where it stopped.
#include "Error.h"
#include "io/Json.h"
#include "runtime/Runner.h"
#include "runtime/Trainer.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>

using namespace statescope;

class TestTrainer : public QObject {
    Q_OBJECT

    TrainOptions options(const QString& out, int64_t steps)
    {
        TrainOptions o;
        o.shape.dModel = 64;
        o.shape.nLayer = 2;
        o.shape.dState = 16;
        o.shape.headdim = 16;
        o.shape.chunkSize = 64;
        o.shape.vocabSize = 256;
        o.shape.padVocabSizeMultiple = 16;
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
        trainMamba2(options(out, 60), [&](const TrainProgress& p) { log.push_back(p); });
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

        log.clear();
        trainMamba2(options(out, 70), [&](const TrainProgress& p) { log.push_back(p); });
        QCOMPARE(log.size(), size_t(1));
        QCOMPARE(log.front().step, int64_t(70));
        QVERIFY(log.front().loss < 3.3);
    }

    void badCorpus()
    {
        QTemporaryDir tmp;
        TrainOptions o = options(tmp.filePath("m"), 1);
        o.data = tmp.filePath("none.txt").toStdString();
        QVERIFY_THROWS_EXCEPTION(Error, trainMamba2(o, [](const TrainProgress&) {}));
    }
};

QTEST_GUILESS_MAIN(TestTrainer)
#include "TestTrainer.moc"
