// The worker thread behind the window: a run streams every token once, in order, to the GUI thread
// and into the trace; cancel and pause act between chunks; errors come back as failed().
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
    r.text = text;
    r.inputDescription = "test";
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
    QCOMPARE(valueCount, 3);     // dt, decay, state_norm
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
    r.ids = {1, 2, 300}; // tiny-random has 256 ids
    QVERIFY(c.start(r));
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 60000);
    QVERIFY2(failed[0][0].toString().contains("300"), qPrintable(failed[0][0].toString()));
}

QTEST_MAIN(TestRunController)
#include "TestRunController.moc"
