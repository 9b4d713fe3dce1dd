// The worker thread behind the window: a run streams every token once, in order, to the GUI thread
// and into the trace; cancel and pause act between chunks; errors come back as failed(); the trace
// records where its input came from.
#include "RunController.h"
#include "trace/TraceFile.h"

#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

using namespace statescope;

namespace {

const QString kTinyModel = QStringLiteral(STATESCOPE_TEST_DATA_DIR "/models/tiny-random");

RunRequest request(const QString& folder, const QString& text, int64_t chunk)
{
    RunRequest r;
    r.modelDir = kTinyModel;
    r.options.chunkSize = chunk;
    r.options.threads = 1;
    r.input.text = text.toStdString();
    r.input.textLabel = "test";
    r.traceFolder = folder;
    return r;
}

} // namespace

class TestRunController : public QObject {
    Q_OBJECT
private slots:
    void streamsEveryTokenInOrder();
    void cancelLeavesPartialTrace();
    void pauseHoldsTheRun();
    void badModelFails();
    void idsOutsideVocabularyFail();
    void traceRecordsItsInput();
    void adaptiveChunks();
};

void TestRunController::streamsEveryTokenInOrder()
{
    QTemporaryDir dir;
    RunController c;
    QSignalSpy started(&c, &RunController::runStarted);
    QSignalSpy finished(&c, &RunController::finished);
    QSignalSpy failed(&c, &RunController::failed);
    qint64 next = 0, chunks = 0;
    bool inOrder = true;
    int valueCount = -1;
    connect(&c, &RunController::chunkReady, this, [&](const ChunkProbes& ch) {
        inOrder = inOrder && ch.start == next;
        next = ch.start + ch.count();
        ++chunks;
        valueCount = static_cast<int>(ch.values.size());
        QCOMPARE(ch.offsets.size(), 2 * ch.ids.size());
    });
    // The byte-level tokenizer: one token per byte.
    const QString text = QString("abcdefghij").repeated(50);
    QVERIFY(c.start(request(dir.path(), text, 64)));
    QVERIFY(!c.start(request(dir.path(), text, 64))); // busy
    QTRY_COMPARE_WITH_TIMEOUT(finished.count() + failed.count(), 1, 120000);
    QCOMPARE(failed.count(), 0);
    QCOMPARE(started.count(), 1);
    QCOMPARE(started[0][0].value<RunStart>().totalTokens, qint64(500));
    QVERIFY(inOrder);
    QCOMPARE(next, qint64(500));
    QCOMPARE(chunks, qint64(8)); // 7 x 64 + 52
    // One value array per probe the header names, with the two every architecture reports.
    const RunStart start = started[0][0].value<RunStart>();
    QCOMPARE(valueCount, int(start.header.probes.size()));
    QStringList names;
    for (const ProbeDesc& p : start.header.probes)
        names << QString::fromStdString(p.name);
    QVERIFY(names.contains("decay") && names.contains("state_norm"));
    QCOMPARE(start.text, text.toUtf8()); // what the offsets index, for the token strip
    QCOMPARE(start.header.inputSource.kind, std::string("text"));
    QCOMPARE(start.header.units, int64_t(8));
    QCOMPARE(finished[0][1].toBool(), true);
    QCOMPARE(c.state(), RunController::State::Idle);

    const TraceReader reader(finished[0][0].toString().toStdString());
    QVERIFY(reader.completed());
    QCOMPARE(reader.tokens(), int64_t(500));
    QVERIFY(QFileInfo(reader.path().c_str()).fileName().startsWith("tiny-random-"));
    QCOMPARE(reader.ids(0, 3), (std::vector<int32_t>{'a', 'b', 'c'}));
}

void TestRunController::cancelLeavesPartialTrace()
{
    QTemporaryDir dir;
    RunController c;
    QSignalSpy finished(&c, &RunController::finished);
    qint64 seen = 0;
    connect(&c, &RunController::chunkReady, this, [&](const ChunkProbes& ch) {
        seen = ch.start + ch.count();
        if (seen >= 256)
            c.cancel();
    });
    QVERIFY(c.start(request(dir.path(), QString(20000, QChar('\n')), 64)));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 120000);
    QCOMPARE(finished[0][1].toBool(), false);
    const TraceReader reader(finished[0][0].toString().toStdString());
    QVERIFY(!reader.completed());
    QVERIFY(reader.tokens() >= 256);
    QVERIFY(reader.tokens() < 20000);
    QVERIFY(reader.tokens() >= seen); // what the window saw is on disk
}

void TestRunController::pauseHoldsTheRun()
{
    QTemporaryDir dir;
    RunController c;
    QSignalSpy finished(&c, &RunController::finished);
    qint64 seen = 0;
    connect(&c, &RunController::chunkReady, this, [&](const ChunkProbes& ch) {
        seen = ch.start + ch.count();
        if (seen == 128)
            c.pause();
    });
    QVERIFY(c.start(request(dir.path(), QString(2000, QChar('x')), 64)));
    QTRY_COMPARE_WITH_TIMEOUT(c.state(), RunController::State::Paused, 120000);
    QTest::qWait(500);
    // At most the chunks already queued arrive while paused.
    const qint64 atPause = seen;
    QVERIFY(atPause < 2000);
    QTest::qWait(500);
    QCOMPARE(seen, atPause);
    QCOMPARE(finished.count(), 0);
    c.resume();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 120000);
    QCOMPARE(seen, qint64(2000));
    QCOMPARE(finished[0][1].toBool(), true);
}

void TestRunController::badModelFails()
{
    QTemporaryDir dir;
    RunController c;
    QSignalSpy failed(&c, &RunController::failed);
    RunRequest r = request(dir.path(), "hello", 64);
    r.modelDir = STATESCOPE_TEST_DATA_DIR "/bad/llama";
    QVERIFY(c.start(r));
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 60000);
    QVERIFY(failed[0][0].toString().contains("llama") || failed[0][0].toString().contains("config"));
    QCOMPARE(c.state(), RunController::State::Idle);
    QVERIFY(QDir(dir.path()).entryList({"*.h5"}).isEmpty()); // no trace for a run that never started
}

void TestRunController::idsOutsideVocabularyFail()
{
    QTemporaryDir dir;
    RunController c;
    QSignalSpy failed(&c, &RunController::failed);
    RunRequest r = request(dir.path(), QString(), 64);
    {
        QFile ids(dir.filePath("ids.txt"));
        QVERIFY(ids.open(QIODevice::WriteOnly));
        ids.write("1 2 300"); // tiny-random has 256 ids
    }
    r.input = InputRequest();
    r.input.idsFile = dir.filePath("ids.txt").toStdString();
    QVERIFY(c.start(r));
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 60000);
    QVERIFY2(failed[0][0].toString().contains("300"), qPrintable(failed[0][0].toString()));
}

void TestRunController::traceRecordsItsInput()
{
    QTemporaryDir dir;
    const QString textPath = dir.filePath("input.txt");
    {
        QFile f(textPath);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("from a file");
    }
    RunController c;
    QSignalSpy finished(&c, &RunController::finished);
    // A text file: its absolute path; a generator: its spec. The training length asked for wins
    // over the model card's (tiny-random's card has none).
    RunRequest r = request(dir.path(), QString(), 64);
    r.input = InputRequest();
    r.input.textFile = textPath.toStdString();
    r.trainingLength = 123;
    QVERIFY(c.start(r));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 120000);
    QVERIFY(finished[0][1].toBool());
    {
        const TraceReader reader(finished[0][0].toString().toStdString());
        QCOMPARE(reader.tokens(), int64_t(11));
        QCOMPARE(reader.header().inputSource.kind, std::string("text"));
        auto canonical = [](const std::string& path) {
            return QFileInfo(QString::fromStdString(path)).canonicalFilePath();
        };
        QVERIFY(QFileInfo(QString::fromStdString(reader.header().inputSource.path)).isAbsolute());
        QCOMPARE(canonical(reader.header().inputSource.path), QFileInfo(textPath).canonicalFilePath());
        QCOMPARE(canonical(reader.header().inputSource.tokenizerPath),
                 QFileInfo(kTinyModel + "/tokenizer.json").canonicalFilePath());
        QCOMPARE(reader.header().trainingLength, int64_t(123));
        QVERIFY(reader.header().hasOffsets);
    }
    r.input = InputRequest();
    r.input.prompt = "newlines:100";
    r.trainingLength = 0;
    QVERIFY(c.start(r));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 2, 120000);
    QVERIFY(finished[1][1].toBool());
    const TraceReader reader(finished[1][0].toString().toStdString());
    QCOMPARE(reader.tokens(), int64_t(100));
    QCOMPARE(reader.header().inputSource.kind, std::string("prompt"));
    QCOMPARE(reader.header().inputSource.prompt, std::string("newlines:100"));
    QCOMPARE(reader.header().trainingLength, int64_t(0));
}

void TestRunController::adaptiveChunks()
{
    // Chunk size 0: the engine's loop sizes chunks by time, in multiples of 64, starting at 256.
    QTemporaryDir dir;
    RunController c;
    QSignalSpy finished(&c, &RunController::finished);
    QVector<qint64> sizes;
    qint64 next = 0;
    bool inOrder = true;
    connect(&c, &RunController::chunkReady, this, [&](const ChunkProbes& ch) {
        inOrder = inOrder && ch.start == next;
        next = ch.start + ch.count();
        sizes << ch.count();
    });
    QVERIFY(c.start(request(dir.path(), QString(3000, QChar('z')), 0)));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 120000);
    QVERIFY(finished[0][1].toBool());
    QVERIFY(inOrder);
    QCOMPARE(next, qint64(3000));
    QCOMPARE(sizes.front(), qint64(256));
    for (int i = 0; i + 1 < sizes.size(); ++i) // all but the last, which takes what is left
        QCOMPARE(sizes[i] % 64, qint64(0));
}

QTEST_MAIN(TestRunController)
#include "TestRunController.moc"
