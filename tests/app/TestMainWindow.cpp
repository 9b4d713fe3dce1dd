// The whole window, offscreen, on the built-in tiny model: a run fills every plot, cancelling leaves a
// partial trace and a live window, a saved trace shows the same data, exports are real files, and bad
// input of every kind ends in an error dialog (recorded here instead of shown), never a crash.
#include "GateView.h"
#include "InputPanel.h"
#include "LossView.h"
#include "MainWindow.h"
#include "ModelPanel.h"
#include "NormView.h"
#include "PlotGroup.h"
#include "Resources.h"
#include "RunsPanel.h"
#include "TokenStrip.h"
#include "TraceData.h"
#include "trace/TraceFile.h"

#include <QImage>
#include <QMimeData>
#include <QRegularExpression>
#include <QSignalSpy>
#include <QSvgRenderer>
#include <QTemporaryDir>
#include <QXmlStreamReader>
#include <QtTest>

#include <cmath>

using namespace statescope;

namespace {

const QString kTinyModel = QStringLiteral(STATESCOPE_TEST_DATA_DIR "/models/tiny-random");
const QString kData = QStringLiteral(STATESCOPE_TEST_DATA_DIR);
constexpr int kLayers = 2, kHeads = 8; // tiny-random
constexpr int kRunTokens = 300;        // one token per byte (byte-level tokenizer)
constexpr int kTimeoutMs = 120000;

QByteArray head(const QString& path, int n)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.read(n) : QByteArray();
}

int finitePoints(const QCPGraph* g)
{
    int n = 0;
    for (auto it = g->data()->constBegin(); it != g->data()->constEnd(); ++it)
        n += std::isfinite(it->value) ? 1 : 0;
    return n;
}

} // namespace

class TestMainWindow : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void cleanupTestCase();
    void runFillsEveryPlot();
    void cursorAndStrip();
    void cancelMidRunLeavesPartialTraceAndLiveWindow();
    void savedTraceShowsSameData();
    void overlaySecondTrace();
    void exportWritesValidFiles();
    void exportFiguresForDocs();
    void corruptTraceGivesError();
    void badModelGivesError();
    void modelFailingToLoadGivesError();
    void droppedFiles();
    void settingsRoundTrip();
    void modelSources();
    void inputGeneratorsAndTokenCount();
    void pauseAndResume();
    void shortcuts();

private:
    void runAndWait(const QString& text, int chunk = 64);
    void refreshAll();

    QTemporaryDir m_dir;
    MainWindow* m_window = nullptr;
    QString m_firstTrace;
    std::vector<float> m_firstNll;
};

void TestMainWindow::initTestCase()
{
    QVERIFY(m_dir.isValid());
    QStandardPaths::setTestModeEnabled(true);
    MainWindow::Options o;
    o.tracesFolder = m_dir.filePath("traces");
    o.settingsFile = m_dir.filePath("settings.ini");
    m_window = new MainWindow(o);
    m_window->setRecordErrors(true);
    m_window->resize(1500, 1000);
    m_window->show();
    QVERIFY(QTest::qWaitForWindowExposed(m_window));
}

void TestMainWindow::cleanupTestCase()
{
    delete m_window;
}

void TestMainWindow::refreshAll()
{
    for (TraceView* v : m_window->views())
        v->refresh();
}

void TestMainWindow::runAndWait(const QString& text, int chunk)
{
    QVERIFY(m_window->openModel(kTinyModel));
    m_window->modelPanel()->setChunkSize(chunk);
    m_window->setInputText(text, "test input");
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QVERIFY2(m_window->recordedErrors().isEmpty(), qPrintable(m_window->recordedErrors().join('\n')));
}

void TestMainWindow::runFillsEveryPlot()
{
    QString text;
    for (int i = 0; i < kRunTokens; ++i)
        text += QChar('a' + i % 26);
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    runAndWait(text);
    // (runAndWait made its own spy; this one saw the same signal.)
    QCOMPARE(ended.count(), 1);
    QVERIFY(ended[0][1].toBool());
    m_firstTrace = ended[0][0].toString();
    QVERIFY(QFileInfo(m_firstTrace).fileName().startsWith("tiny-random-"));
    QCOMPARE(QFileInfo(m_firstTrace).absolutePath(), QFileInfo(m_dir.filePath("traces")).absoluteFilePath());

    TraceData* t = m_window->trace();
    QCOMPARE(t->tokens(), qint64(kRunTokens));
    QCOMPARE(t->layers(), kLayers);
    QCOMPARE(t->heads(), kHeads);
    m_window->plotGroup()->showAll();
    refreshAll();

    // The plot is wider than 300 px, so there is one point per token: nothing is decimated yet.
    // The first token has no NLL (nothing predicts it).
    LossView* loss = m_window->lossView();
    QVERIFY(loss->plot()->axisRect()->width() > kRunTokens);
    QCOMPARE(finitePoints(loss->nllGraph()), kRunTokens - 1);
    QVERIFY(loss->averageGraph()->dataCount() > 0);
    QVERIFY(loss->perplexityGraph()->dataCount() >= 1);

    GateView* gates = m_window->gateView();
    QCOMPARE(gates->headGraphs().size(), kHeads);
    for (QCPGraph* g : gates->headGraphs())
        QCOMPARE(finitePoints(g), kRunTokens);
    NormView* norms = m_window->normView();
    QCOMPARE(norms->headGraphs().size(), kHeads);
    for (QCPGraph* g : norms->headGraphs())
        QCOMPARE(finitePoints(g), kRunTokens);
    // Decay is a forget gate in (0, 1].
    for (auto it = gates->headGraphs()[0]->data()->constBegin();
         it != gates->headGraphs()[0]->data()->constEnd(); ++it)
        QVERIFY(it->value > 0 && it->value <= 1);

    // Heatmaps: one row per layer; each cell under a token holds that token's layer aggregate as
    // recorded in the trace (mean alpha over heads; sqrt(sum_h ||S_h||^2)).
    const TraceReader reader(m_firstTrace.toStdString());
    const std::vector<float> decay = reader.probe("decay");
    const std::vector<float> norm = reader.probe("state_norm");
    QCOMPARE(decay.size(), size_t(kRunTokens * kLayers * kHeads));
    QCOMPARE(gates->heatmap()->data()->valueSize(), kLayers);
    QCOMPARE(norms->heatmap()->data()->valueSize(), kLayers);
    QVERIFY(gates->heatmap()->data()->keySize() >= kRunTokens); // the plot is wider than 300 px
    for (int k : {0, 1, 150, kRunTokens - 1})
        for (int l = 0; l < kLayers; ++l) {
            double mean = 0, sumSq = 0;
            for (int h = 0; h < kHeads; ++h) {
                mean += decay[size_t((k * kLayers + l) * kHeads + h)] / kHeads;
                sumSq += std::pow(norm[size_t((k * kLayers + l) * kHeads + h)], 2);
            }
            int kc = -1, vc = -1;
            gates->heatmap()->data()->coordToCell(TraceData::tokenToX(k), 0, &kc, &vc);
            QVERIFY(kc >= 0);
            QVERIFY2(std::abs(gates->heatmap()->data()->cell(kc, l) - mean) < 1e-5 * std::max(1.0, mean),
                     qPrintable(QString("token %1 layer %2").arg(k).arg(l)));
            norms->heatmap()->data()->coordToCell(TraceData::tokenToX(k), 0, &kc, &vc);
            const double layerNorm = std::sqrt(sumSq);
            QVERIFY2(std::abs(norms->heatmap()->data()->cell(kc, l) - layerNorm) <
                         1e-4 * std::max(1.0, layerNorm),
                     qPrintable(QString("token %1 layer %2: %3 vs %4")
                                    .arg(k)
                                    .arg(l)
                                    .arg(norms->heatmap()->data()->cell(kc, l))
                                    .arg(layerNorm)));
        }

    // The trace on disk holds the same tokens.
    QVERIFY(reader.completed());
    QCOMPARE(reader.tokens(), int64_t(kRunTokens));
    QCOMPARE(reader.ids(0, 2), (std::vector<int32_t>{'a', 'b'}));
    m_firstNll = reader.nll();
    for (int i = 1; i < kRunTokens; ++i)
        QCOMPARE(t->nllValues()[i], m_firstNll[size_t(i)]);

    // The Runs panel lists it.
    const int row = m_window->runsPanel()->rowOf(m_firstTrace);
    QVERIFY(row >= 0);
    QCOMPARE(m_window->runsPanel()->statusAt(row), QString("complete"));
}

void TestMainWindow::cursorAndStrip()
{
    QVERIFY(m_window->trace()->tokens() > 0);
    m_window->plotGroup()->setCursor(123);
    QTRY_COMPARE(m_window->tokenStrip()->cursorToken(), qint64(123));
    // The strip lays out the token text with its id and NLL in the tooltip.
    const QString tip = m_window->tokenStrip()->toolTipFor(123);
    QVERIFY2(tip.contains("123"), qPrintable(tip));
    QCOMPARE(m_window->trace()->tokenText(0), QString("a"));

    // One selected layer across the views and the strip.
    m_window->gateView()->setLayer(1);
    QCOMPARE(m_window->normView()->layer(), 1);
    QCOMPARE(m_window->tokenStrip()->layer(), 1);
    m_window->normView()->setLayer(0);
    QCOMPARE(m_window->gateView()->layer(), 0);
    QCOMPARE(m_window->tokenStrip()->layer(), 0);
}

void TestMainWindow::cancelMidRunLeavesPartialTraceAndLiveWindow()
{
    QVERIFY(m_window->openModel(kTinyModel));
    m_window->modelPanel()->setChunkSize(64);
    m_window->setInputText(QString(20000, QChar('\n')), "20000 newlines");
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    RunController* c = m_window->runController();
    qint64 chunks = 0;
    QString liveStatus;
    auto conn = connect(c, &RunController::chunkReady, this, [&](const ChunkProbes&) {
        // The Runs panel reads the trace the worker is writing (same process, SWMR).
        if (++chunks == 2) {
            RunsPanel* runs = m_window->runsPanel();
            runs->refresh();
            liveStatus = runs->statusAt(runs->rowOf(c->tracePath()));
        }
        if (chunks == 3)
            m_window->cancelRun();
    });
    // The event loop keeps running while the model works: count timer ticks.
    int ticks = 0;
    QTimer tick;
    connect(&tick, &QTimer::timeout, this, [&] { ++ticks; });
    tick.start(5);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    disconnect(conn);
    tick.stop();
    QVERIFY(ticks > 0);
    QCOMPARE(liveStatus, QString("recording"));
    QCOMPARE(ended[0][1].toBool(), false);
    QCOMPARE(c->state(), RunController::State::Idle);

    const QString path = ended[0][0].toString();
    const TraceReader reader(path.toStdString());
    QVERIFY(!reader.completed());
    QVERIFY(reader.tokens() >= 3 * 64);
    QVERIFY(reader.tokens() < 20000);
    // Once the run is over the panel reads it from disk: partial, with its token count.
    RunsPanel* runs = m_window->runsPanel();
    QCOMPARE(runs->statusAt(runs->rowOf(path)), QString("partial"));
    // Everything shown is on disk (chunks in flight when cancelled may add a few more there).
    QVERIFY(m_window->trace()->tokens() >= 3 * 64);
    QVERIFY(m_window->trace()->tokens() <= reader.tokens());

    // The window still answers: events are processed and a new run can start.
    QSignalSpy again(m_window, &MainWindow::runEnded);
    m_window->setInputText("hello", "hello");
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(again.count(), 1, kTimeoutMs);
    QVERIFY(again[0][1].toBool());
    QCOMPARE(m_window->trace()->tokens(), qint64(5));
    QVERIFY(m_window->recordedErrors().isEmpty());
}

void TestMainWindow::savedTraceShowsSameData()
{
    QVERIFY(!m_firstTrace.isEmpty());
    QCOMPARE(m_firstNll.size(), size_t(kRunTokens));
    QVERIFY(m_window->openTrace(m_firstTrace));
    TraceData* t = m_window->trace();
    QCOMPARE(t->tokens(), qint64(kRunTokens));
    QCOMPARE(t->layers(), kLayers);
    QCOMPARE(t->heads(), kHeads);
    QVERIFY(std::isnan(t->nllValues()[0]));
    for (int i = 1; i < kRunTokens; ++i)
        QCOMPARE(t->nllValues()[i], m_firstNll[size_t(i)]);
    m_window->plotGroup()->showAll();
    refreshAll();
    QCOMPARE(finitePoints(m_window->lossView()->nllGraph()), kRunTokens - 1);
    for (QCPGraph* g : m_window->gateView()->headGraphs())
        QCOMPARE(finitePoints(g), kRunTokens);
    for (QCPGraph* g : m_window->normView()->headGraphs())
        QCOMPARE(finitePoints(g), kRunTokens);
    QCOMPARE(m_window->normView()->heatmap()->data()->valueSize(), kLayers);
    // Without the input text the strip decodes ids with the model's tokenizer.
    QCOMPARE(t->tokenText(0), QString("a"));
}

void TestMainWindow::overlaySecondTrace()
{
    QVERIFY(m_window->openTrace(m_firstTrace));
    QVERIFY(m_window->overlayTrace(m_firstTrace));
    QVERIFY(m_window->overlay());
    refreshAll();
    QVERIFY(m_window->lossView()->overlayAverageGraph());
    QVERIFY(m_window->lossView()->overlayAverageGraph()->dataCount() > 0);
    QCOMPARE(m_window->normView()->overlayGraphs().size(), kHeads);
    m_window->clearOverlay();
    QVERIFY(!m_window->overlay());
}

void TestMainWindow::exportWritesValidFiles()
{
    QVERIFY(m_window->openTrace(m_firstTrace));
    m_window->plotGroup()->showAll();
    refreshAll();
    const QString folder = m_dir.filePath("export");
    QStringList written;
    QVERIFY(m_window->exportViews(
        folder, "fig", {ExportFormat::Png, ExportFormat::Svg, ExportFormat::Pdf, ExportFormat::Csv},
        ExportStyle::paperPreset(), &written));
    QCOMPARE(written.size(), 12);
    for (const QString& path : written) {
        const QFileInfo fi(path);
        QVERIFY2(fi.size() > 500, qPrintable(path));
        const QString suffix = fi.suffix();
        if (suffix == "png") {
            QCOMPARE(head(path, 8), QByteArray("\x89PNG\r\n\x1a\n", 8));
            QImage img(path);
            QVERIFY(!img.isNull());
            QVERIFY(img.width() > 300 && img.height() > 200);
        } else if (suffix == "svg") {
            QFile f(path);
            QVERIFY(f.open(QIODevice::ReadOnly));
            QXmlStreamReader xml(&f);
            bool sawSvg = false;
            while (!xml.atEnd()) {
                xml.readNext();
                if (xml.isStartElement() && xml.name() == QLatin1String("svg"))
                    sawSvg = true;
            }
            QVERIFY2(!xml.hasError(), qPrintable(path + ": " + xml.errorString()));
            QVERIFY(sawSvg);
            QVERIFY(QSvgRenderer(path).isValid());
        } else if (suffix == "pdf") {
            QCOMPARE(head(path, 5), QByteArray("%PDF-"));
        } else if (suffix == "csv") {
            QFile f(path);
            QVERIFY(f.open(QIODevice::ReadOnly | QIODevice::Text));
            const QStringList lines = QString::fromUtf8(f.readAll()).split('\n', Qt::SkipEmptyParts);
            QVERIFY(lines[0].startsWith("token"));
            QCOMPARE(lines.size(), kRunTokens + 1); // all tokens are visible
            QCOMPARE(lines[1].split(',').size(), lines[0].split(',').size());
        }
    }
    // The screen look too.
    QVERIFY(m_window->exportViews(folder, "screen", {ExportFormat::Png}, ExportStyle::screen(), &written));
    QVERIFY(!QImage(QDir(folder).filePath("screen-loss.png")).isNull());
}

void TestMainWindow::exportFiguresForDocs()
{
    QVERIFY(m_window->openTrace(m_firstTrace));
    LossView* loss = m_window->lossView();
    loss->setTokenNllVisible(false);
    QVERIFY(!loss->nllGraph()->visible());
    QVERIFY(loss->averageGraph()->visible());
    const QString prefix = m_dir.filePath("figures/run");
    QVERIFY(m_window->exportFigures(prefix));
    for (const char* view : {"loss", "gates", "norms"})
        for (const char* suffix : {".png", ".svg"}) {
            const QString path = prefix + "-" + view + suffix;
            QVERIFY2(QFileInfo(path).size() > 500, qPrintable(path));
        }
    QVERIFY(!QImage(prefix + "-loss.png").isNull());
    // The whole trace is in view, and perplexity's log axis is the NLL axis in other units.
    QVERIFY(loss->plot()->xAxis->range().upper >= kRunTokens &&
            loss->plot()->xAxis->range().upper <= kRunTokens + 1);
    const QCPRange nll = loss->plot()->yAxis->range(), ppl = loss->plot()->yAxis2->range();
    QVERIFY(std::abs(ppl.lower - std::exp(nll.lower)) <= 1e-9 * std::exp(nll.lower));
    QVERIFY(std::abs(ppl.upper - std::exp(nll.upper)) <= 1e-9 * std::exp(nll.upper));
    loss->setTokenNllVisible(true);
    QVERIFY(loss->nllGraph()->visible());

    // A folder that cannot be made: one error, no crash.
    m_window->clearRecordedErrors();
    QFile blocker(m_dir.filePath("blocker"));
    QVERIFY(blocker.open(QIODevice::WriteOnly));
    blocker.close();
    QVERIFY(!m_window->exportFigures(m_dir.filePath("blocker/sub/run")));
    QCOMPARE(m_window->recordedErrors().size(), 1);
    QVERIFY(m_window->recordedErrors()[0].contains("blocker"));
}

void TestMainWindow::corruptTraceGivesError()
{
    QVERIFY(m_window->openTrace(m_firstTrace));
    const QString bad = m_dir.filePath("corrupt.h5");
    {
        QFile f(bad);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray(4096, 'x'));
    }
    m_window->clearRecordedErrors();
    QVERIFY(!m_window->openTrace(bad));
    QCOMPARE(m_window->recordedErrors().size(), 1);
    QVERIFY2(m_window->recordedErrors()[0].contains("corrupt.h5"), qPrintable(m_window->recordedErrors()[0]));
    // The plots still show the trace that was open.
    QCOMPARE(m_window->trace()->tokens(), qint64(kRunTokens));

    // A real HDF5 file that is not a schema-1 trace.
    m_window->clearRecordedErrors();
    QVERIFY(!m_window->openTrace(kData + "/trace/no_schema.h5"));
    QCOMPARE(m_window->recordedErrors().size(), 1);
    QVERIFY(!m_window->overlayTrace(bad));
    QCOMPARE(m_window->recordedErrors().size(), 2);
    m_window->clearRecordedErrors();
}

void TestMainWindow::badModelGivesError()
{
    m_window->clearRecordedErrors();
    QVERIFY(!m_window->openModel(kData + "/bad/llama"));
    QCOMPARE(m_window->recordedErrors().size(), 1);
    QVERIFY2(m_window->recordedErrors()[0].contains("llama"), qPrintable(m_window->recordedErrors()[0]));
    // The model that was chosen stays chosen.
    QCOMPARE(QFileInfo(m_window->modelPanel()->modelDir()).canonicalFilePath(),
             QFileInfo(kTinyModel).canonicalFilePath());
    m_window->clearRecordedErrors();
}

void TestMainWindow::modelFailingToLoadGivesError()
{
    // Its config is fine, so it is chosen; its weights are cut short, so loading fails in the worker.
    m_window->clearRecordedErrors();
    QVERIFY(m_window->openModel(kData + "/bad/truncated"));
    m_window->setInputText("hello", "hello");
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QCOMPARE(ended[0][1].toBool(), false);
    QCOMPARE(m_window->recordedErrors().size(), 1);
    QVERIFY2(m_window->recordedErrors()[0].contains("model.safetensors") ||
                 m_window->recordedErrors()[0].contains("truncated"),
             qPrintable(m_window->recordedErrors()[0]));
    QCOMPARE(m_window->runController()->state(), RunController::State::Idle);
    m_window->clearRecordedErrors();
    QVERIFY(m_window->openModel(kTinyModel));
}

void TestMainWindow::droppedFiles()
{
    auto drop = [this](const QString& path) {
        QMimeData mime;
        mime.setUrls({QUrl::fromLocalFile(path)});
        const QPoint at = m_window->rect().center();
        QDragEnterEvent enter(at, Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
        QApplication::sendEvent(m_window, &enter);
        QVERIFY(enter.isAccepted());
        QDropEvent dropEvent(at, Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
        QApplication::sendEvent(m_window, &dropEvent);
    };
    m_window->clearRecordedErrors();

    const QString odd = m_dir.filePath("notes.docx");
    {
        QFile f(odd);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("PK\x03\x04 not for us");
    }
    drop(odd);
    QTRY_COMPARE(m_window->recordedErrors().size(), 1);
    QVERIFY(m_window->recordedErrors()[0].contains("notes.docx"));

    // A folder without config.json is not a model.
    drop(m_dir.filePath("traces"));
    QTRY_COMPARE(m_window->recordedErrors().size(), 2);

    // A .txt goes to the input, a model folder to the model panel, a trace to the plots.
    const QString txt = m_dir.filePath("input.txt");
    {
        QFile f(txt);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("dropped text");
    }
    drop(txt);
    QTRY_COMPARE(m_window->inputPanel()->text(), QString("dropped text"));
    drop(kTinyModel);
    drop(m_firstTrace);
    QTRY_COMPARE(m_window->trace()->filePath(), m_firstTrace);
    QCOMPARE(m_window->recordedErrors().size(), 2);
    m_window->clearRecordedErrors();
}

void TestMainWindow::settingsRoundTrip()
{
    m_window->lossView()->setBucketSize(2048);
    m_window->lossView()->setTokenNllVisible(false);
    m_window->saveSettings();
    m_window->lossView()->setTokenNllVisible(true);
    MainWindow::Options o;
    o.tracesFolder = m_dir.filePath("traces");
    o.settingsFile = m_dir.filePath("settings.ini");
    MainWindow second(o);
    QCOMPARE(QFileInfo(second.modelPanel()->modelDir()).canonicalFilePath(),
             QFileInfo(kTinyModel).canonicalFilePath());
    QCOMPARE(second.lossView()->bucketSize(), 2048);
    QVERIFY(!second.lossView()->tokenNllVisible());
    QVERIFY(second.modelPanel()->recentModels().contains(QFileInfo(kTinyModel).absoluteFilePath()));
}

void TestMainWindow::modelSources()
{
    // Built-in models come from resources/models: the two trained ones, nothing else.
    QStringList names;
    for (const ModelEntry& e : builtInModels()) {
        names << e.name;
        QCOMPARE(QFileInfo(e.path).canonicalFilePath(),
                 QFileInfo(QStringLiteral(STATESCOPE_RESOURCES_DIR "/models/") + e.name).canonicalFilePath());
    }
    QCOMPARE(names, QStringList({"tiny-collapse", "tiny-forget"}));

    // Hugging Face cache: $HF_HOME/hub/models--ORG--NAME/snapshots/REV with a config.json.
    const QString hf = m_dir.filePath("hf");
    const QString snap = hf + "/hub/models--state-spaces--mamba2-130m/snapshots/0123456789abcdef";
    QVERIFY(QDir().mkpath(snap));
    QVERIFY(QFile::copy(kTinyModel + "/config.json", snap + "/config.json"));
    QVERIFY(QDir().mkpath(hf + "/hub/models--no--config/snapshots/abc")); // not listed: no config.json
    const QString llama = hf + "/hub/models--meta--llama/snapshots/abc";  // not listed: not a Mamba
    QVERIFY(QDir().mkpath(llama));
    QVERIFY(QFile::copy(kData + "/bad/llama/config.json", llama + "/config.json"));
    const QByteArray old = qgetenv("HF_HOME");
    qputenv("HF_HOME", hf.toUtf8());
    const QList<ModelEntry> cached = huggingFaceCacheModels();
    if (old.isEmpty())
        qunsetenv("HF_HOME");
    else
        qputenv("HF_HOME", old);
    QCOMPARE(cached.size(), 1);
    QCOMPARE(cached[0].name, QString("state-spaces/mamba2-130m"));
    QCOMPARE(cached[0].path, snap);

    // $STATESCOPE_RESOURCES comes first.
    const QString res = m_dir.filePath("res");
    QVERIFY(QDir().mkpath(res + "/texts"));
    QFile marker(res + "/texts/demo.txt");
    QVERIFY(marker.open(QIODevice::WriteOnly));
    marker.close();
    qputenv("STATESCOPE_RESOURCES", res.toUtf8());
    QCOMPARE(resourcePath("texts/demo.txt"), QDir::cleanPath(res + "/texts/demo.txt"));
    QCOMPARE(QFileInfo(resourcePath("models/tiny-collapse")).canonicalFilePath(),
             QFileInfo(QStringLiteral(STATESCOPE_RESOURCES_DIR "/models/tiny-collapse")).canonicalFilePath());
    // (it falls through to the source tree)
    qunsetenv("STATESCOPE_RESOURCES");

    // Trace names: <model>-<yyyyMMdd-HHmmss>.h5, never overwriting.
    const QString a = newTracePath(m_dir.path(), "my model");
    QVERIFY(QRegularExpression("my_model-\\d{8}-\\d{6}\\.h5$").match(a).hasMatch());
    QFile(a).open(QIODevice::WriteOnly);
    QVERIFY(newTracePath(m_dir.path(), "my model") != a);
}

void TestMainWindow::inputGeneratorsAndTokenCount()
{
    QVERIFY(m_window->openModel(kTinyModel));
    InputPanel* in = m_window->inputPanel();
    QCOMPARE(in->tokenizerPath(), kTinyModel + "/tokenizer.json");
    QString error;
    QVERIFY(in->generate(InputPanel::Generator::Newlines, 1000, 0, 0, &error));
    QCOMPARE(in->text(), QString(1000, QChar('\n')));
    QTRY_COMPARE_WITH_TIMEOUT(in->tokenCount(), qint64(1000), 10000);

    // A long input is kept whole behind a short read-only preview.
    QVERIFY(in->generate(InputPanel::Generator::Newlines, 300000, 0, 0, &error));
    QVERIFY(in->isPreview());
    QCOMPARE(in->text().size(), 300000);
    QTRY_COMPARE_WITH_TIMEOUT(in->tokenCount(), qint64(300000), 30000);
    in->setText("short", "typed");
    QVERIFY(!in->isPreview());
    QCOMPARE(in->text(), QString("short"));

    QVERIFY(in->generate(InputPanel::Generator::Capitals, 3, 0, 0, &error));
    QCOMPARE(in->text().count("The capital of Norway is Oslo."), 3);

    // A haystack of about 5000 tokens (one block of filler is 90 bytes here) with the passkey in it.
    QVERIFY(in->generate(InputPanel::Generator::Passkey, 5000, 0.25, 7, &error));
    QTRY_VERIFY_WITH_TIMEOUT(in->tokenCount() > 0, 10000);
    QVERIFY2(std::abs(in->tokenCount() - 5000) <= 90, qPrintable(QString::number(in->tokenCount())));
    QVERIFY(in->text().contains("The passkey is "));
    QVERIFY(in->description().contains("depth 0.25"));

    // A file that is not text is refused with an error, and the input stays as it was.
    const QString binary = m_dir.filePath("binary.txt");
    {
        QFile f(binary);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray("ab\0cd", 5));
    }
    const QString before = in->text();
    m_window->clearRecordedErrors();
    QVERIFY(!m_window->openText(binary));
    QCOMPARE(m_window->recordedErrors().size(), 1);
    QCOMPARE(in->text(), before);
    m_window->clearRecordedErrors();
}

void TestMainWindow::pauseAndResume()
{
    QVERIFY(m_window->openModel(kTinyModel));
    m_window->modelPanel()->setChunkSize(64);
    m_window->setInputText(QString(3000, QChar('x')), "x");
    RunController* c = m_window->runController();
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    auto conn = connect(c, &RunController::chunkReady, this, [&](const ChunkProbes& ch) {
        if (ch.start == 0)
            m_window->pauseOrResume();
    });
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(c->state(), RunController::State::Paused, kTimeoutMs);
    disconnect(conn);
    QTest::qWait(300);
    const qint64 held = m_window->trace()->tokens();
    QTest::qWait(300);
    QCOMPARE(m_window->trace()->tokens(), held);
    QVERIFY(held < 3000);
    m_window->pauseOrResume();
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QVERIFY(ended[0][1].toBool());
    QCOMPARE(m_window->trace()->tokens(), qint64(3000));
}

void TestMainWindow::shortcuts()
{
    QVERIFY(m_window->openModel(kTinyModel));
    m_window->modelPanel()->setChunkSize(64);
    m_window->setInputText(QString(20000, QChar('y')), "y");
    m_window->activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(m_window));
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    QTest::keyClick(m_window, Qt::Key_R, Qt::ControlModifier); // Run
    QVERIFY(m_window->runController()->isBusy());
    QTest::keyClick(m_window, Qt::Key_Escape); // Cancel
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QCOMPARE(ended[0][1].toBool(), false);
    QVERIFY(m_window->trace()->tokens() < 20000);
}

QTEST_MAIN(TestMainWindow)
#include "TestMainWindow.moc"
