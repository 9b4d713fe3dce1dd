// The whole window, offscreen, on the built-in tiny model: a run fills every plot, cancelling leaves a
// partial trace and a live window, a saved trace shows the same data, exports are real files, and bad
// input of every kind ends in an error dialog (recorded here instead of shown), never a crash. Traces
// show from their own header: schema 1, without their model folder, written by the command line, of
// another architecture, with probes the views have no code for.
#include "ExportDialog.h"
#include "ForgetThresholdView.h"
#include "InputPanel.h"
#include "LossView.h"
#include "MainWindow.h"
#include "MitigationsPanel.h"
#include "ModelPanel.h"
#include "PasskeyDialog.h"
#include "PasskeyView.h"
#include "PlotGroup.h"
#include "ProbeView.h"
#include "Resources.h"
#include "RunsPanel.h"
#include "SweepDialog.h"
#include "TokenStrip.h"
#include "TraceData.h"
#include "trace/TraceFile.h"
#include "util/Resources.h"

#include <hdf5.h>

#include <QCheckBox>
#include <QComboBox>
#include <QDockWidget>
#include <QImage>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMimeData>
#include <QProcess>
#include <QRadioButton>
#include <QRegularExpression>
#include <QScrollArea>
#include <QScrollBar>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QStatusBar>
#include <QSvgRenderer>
#include <QTemporaryDir>
#include <QTextBrowser>
#include <QToolBar>
#include <QTreeWidget>
#include <QXmlStreamReader>
#include <QtTest>

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <set>

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

// A probe's summary over n units, as docs/trace-format.md defines it (independent of TraceData).
double summaryOf(ProbeSummary s, const float* v, int n)
{
    double acc = 0;
    for (int i = 0; i < n; ++i)
        acc += s == ProbeSummary::GeoMean ? std::log(double(v[i]))
               : s == ProbeSummary::Mean  ? v[i]
                                          : double(v[i]) * v[i];
    return s == ProbeSummary::GeoMean ? std::exp(acc / n)
           : s == ProbeSummary::Mean  ? acc / n
                                      : std::sqrt(acc);
}

const ProbeDesc& probeNamed(const TraceHeader& h, const char* name)
{
    for (const ProbeDesc& p : h.probes)
        if (p.name == name)
            return p;
    static const ProbeDesc none;
    return none;
}

bool near(double a, double b, double rel = 1e-5)
{
    return std::abs(a - b) <= rel * std::max(1.0, std::abs(b));
}

// The value a view's graph draws at a token (one point per token: the plot is wide enough).
double graphAt(const QCPGraph* g, qint64 token)
{
    const auto it = g->data()->findBegin(TraceData::tokenToX(token), false);
    return it != g->data()->constEnd() && it->key == TraceData::tokenToX(token)
               ? it->value
               : std::numeric_limits<double>::quiet_NaN();
}

// Turns a trace StateScope wrote into one as StateScope wrote before schema 2: schema_version 1,
// only the schema-1 attributes (docs/trace-format.md, "Reading schema 1"), `input` as given.
void downgradeToSchema1(const QString& path, const std::string& input)
{
    const hid_t file = H5Fopen(path.toUtf8().constData(), H5F_ACC_RDWR, H5P_DEFAULT);
    QVERIFY(file >= 0);
    auto keepOnly = [](hid_t object, const std::set<std::string>& keep) {
        std::vector<std::string> names;
        H5O_info_t info;
        H5Oget_info(object, &info);
        for (hsize_t i = 0; i < info.num_attrs; ++i) {
            char name[256] = {};
            H5Aget_name_by_idx(object, ".", H5_INDEX_CRT_ORDER, H5_ITER_INC, i, name, sizeof(name),
                               H5P_DEFAULT);
            if (!name[0])
                H5Aget_name_by_idx(object, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof(name),
                                   H5P_DEFAULT);
            names.push_back(name);
        }
        for (const std::string& n : names)
            if (!keep.count(n))
                H5Adelete(object, n.c_str());
    };
    keepOnly(file, {"schema_version", "architecture", "model_config", "model_path", "dtype", "device",
                    "start_time", "software_version", "completed", "tokens", "end_time"});
    const int one = 1;
    const hid_t version = H5Aopen(file, "schema_version", H5P_DEFAULT);
    H5Awrite(version, H5T_NATIVE_INT, &one);
    H5Aclose(version);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(file, "input", type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char* value = input.c_str();
    H5Awrite(attr, type, &value);
    H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    const hid_t probes = H5Gopen2(file, "probes", H5P_DEFAULT);
    H5G_info_t group;
    H5Gget_info(probes, &group);
    for (hsize_t i = 0; i < group.nlinks; ++i) {
        char name[256] = {};
        H5Lget_name_by_idx(probes, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof(name), H5P_DEFAULT);
        const hid_t d = H5Dopen2(probes, name, H5P_DEFAULT);
        keepOnly(d, {"description", "axes", "head_meaning"});
        H5Dclose(d);
    }
    H5Gclose(probes);
    QCOMPARE(H5Fclose(file), 0);
}

// Writes a trace of a made-up architecture of another shape (3 layers of 6 channel groups), as an
// engine would for a Mamba-1 model: decay, state_norm and dt by formula.
float otherDecay(qint64 t, int l, int u)
{
    return 0.3f + 0.1f * float(u) + 0.05f * float(l) + 0.001f * float(t % 5);
}
float otherNorm(qint64 t, int l, int u)
{
    return float(1 + l + u) * (1.0f + 0.02f * float(t));
}
TraceHeader otherHeader(qint64 tokens)
{
    const int L = 3, U = 6;
    auto desc = [&](const char* name, const char* label, ProbeSummary s) {
        ProbeDesc d;
        d.name = name;
        d.description = std::string("the other architecture's ") + name;
        d.shape = {L, U};
        d.axes = {"layer", "channel_group"};
        d.headMeaning = "a group of channels";
        d.summary = s;
        d.label = label;
        return d;
    };
    TraceHeader h;
    h.architecture = "other";
    h.architectureName = "Other-1";
    h.modelConfigJson = "{}";
    h.modelPath = "/nonexistent/other";
    h.dtype = "float32";
    h.device = "cpu";
    h.input = "prompt: newlines:" + std::to_string(tokens);
    h.inputSource.kind = "prompt";
    h.inputSource.prompt = "newlines:" + std::to_string(tokens);
    h.layers = L;
    h.units = U;
    h.unitName = "channel group";
    h.trainingLength = 100;
    h.forgetThreshold = 150;
    h.vocabSize = 256;
    h.probes = {desc("decay", "α", ProbeSummary::GeoMean),
                desc("state_norm", "‖S‖", ProbeSummary::RootSumSquare), desc("dt", "Δ", ProbeSummary::Mean)};
    return h;
}

ChunkProbes otherChunk(qint64 begin, qint64 end, float nll = 2.0f)
{
    const int L = 3, U = 6;
    ChunkProbes c;
    c.start = begin;
    c.values.resize(3);
    for (qint64 t = begin; t < end; ++t) {
        c.ids.push_back(10);
        c.nll.push_back(t ? nll : std::numeric_limits<float>::quiet_NaN());
        for (int l = 0; l < L; ++l)
            for (int u = 0; u < U; ++u) {
                c.values[0].push_back(otherDecay(t, l, u));
                c.values[1].push_back(otherNorm(t, l, u));
                c.values[2].push_back(0.01f * float(u));
            }
    }
    return c;
}

void writeOtherArchitecture(const QString& path, qint64 tokens, float nll = 2.0f)
{
    TraceWriter w(path.toStdString(), otherHeader(tokens));
    w.append(otherChunk(0, tokens, nll));
    w.finish();
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
    void exportFiguresDefaults();
    void exportDialogPaperChoices();
    void corruptTraceGivesError();
    void badModelGivesError();
    void modelFailingToLoadGivesError();
    void droppedFiles();
    void settingsRoundTrip();
    void modelSources();
    void inputGeneratorsAndTokenCount();
    void pauseAndResume();
    void shortcuts();
    void schemaOneTraceOpens();
    void traceWithoutItsModelFolder();
    void cliTraceFindsItsText();
    void overlayOtherArchitecture();
    void overlayMambaOneFixture();
    void rwkvRunBesideMamba2();
    void hgrn2RunBesideMamba2();
    void glaRunBesideMamba2();
    void extraProbeInAView();
    void runsPanelShowsWholeNames();
    void markerFollowsTheTraceShown();
    void statusBarSaysPausedAndClearsTimeLeft();
    void newRunClearsOverlay();
    void runNameIsTheFileName();
    void linkLayersToggle();
    void windowTraceAsSmallAsCliTrace();
    void runIconsVisibleInBothThemes();
    void guideExplainsPlotsAndShortcuts();
    void passkeyNeedleMarked();
    void followsGrowingTrace();
    void findTextAndGoToToken();
    void interactionFrameTimes();
    void runTableComparesManyRuns();
    void usableOnSmallScreens();
    void damagedTraceInFolder();
    void namedFilesReadOnlyWhenAsked();
    void compareWithOriginalOverlays();
    void mitigationsPanelRunsNormalisation();
    void passkeySweepInTheWindow();
    void passkeyResultsOpened();
    void sweepResultsOpened();
    void oldContextProbesInTheWindow();

private:
    void runAndWait(const QString& text, int chunk = 64);
    // A fixture model (300 ids, so the built-in byte-level tokenizer) run in the window with the first
    // Mamba-2 run overlaid: every view draws the values of the trace, per unit.
    void fixtureRunBesideMamba2(const QString& fixtureDir, const std::string& architecture, int units);
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

// The H200 pilot's summary.json (docs/bench) dropped on the window: the sweep results window shows its
// 24 runs and the fit; a click on a run whose job folder is not here reports the missing job.json and
// the window stays up; a JSON file that is not a sweep summary is refused in one message.
void TestMainWindow::sweepResultsOpened()
{
    m_window->clearRecordedErrors();
    const QString summary =
        QStringLiteral(STATESCOPE_RESOURCES_DIR "/../docs/bench/sweep-pilot-h200-x2-2026-11-30.json");
    QVERIFY(m_window->openDroppedPath(summary));
    SweepDialog* d = m_window->sweepDialog();
    QVERIFY(d->isVisible());
    QVERIFY(QTest::qWaitForWindowExposed(d));
    ForgetThresholdView* v = d->view();
    QCOMPARE(v->data().runs.size(), 24);
    QCOMPARE(v->forgetsGraph()->data()->size(), 16);  // T_train 512 and 2048
    QCOMPARE(v->collapsesGraph()->data()->size(), 8); // T_train 128
    QCOMPARE(v->thresholdGraph()->data()->size(), 4);
    QVERIFY2(v->equationLabel()->text().contains("T_forget[K] = -0.035·N_S[M] + 0.436, R² = 0.156"),
             qPrintable(v->equationLabel()->text()));
    QVERIFY(d->windowTitle().contains("pilot-h200-x2"));
    QTest::mouseClick(v->plot(), Qt::LeftButton, Qt::NoModifier, v->runPixel(0).toPoint());
    QCOMPARE(m_window->recordedErrors().size(), 1);
    QVERIFY2(m_window->recordedErrors()[0].contains("job.json: cannot open the file"),
             qPrintable(m_window->recordedErrors()[0]));
    m_window->clearRecordedErrors();
    const QString other = m_dir.filePath("not-a-sweep.json");
    {
        QFile f(other);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("{\"model\": \"x\"}");
    }
    QVERIFY(!m_window->openDroppedPath(other));
    QCOMPARE(m_window->recordedErrors().size(), 1);
    QVERIFY2(m_window->recordedErrors()[0].contains("not-a-sweep.json: runs: expected a sweep summary"),
             qPrintable(m_window->recordedErrors()[0]));
    QCOMPARE(v->data().runs.size(), 24); // the sweep shown before stays
    m_window->clearRecordedErrors();
    d->hide();
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
    QCOMPARE(t->units(), kHeads);
    QCOMPARE(t->unitName(), QString("head"));
    m_window->plotGroup()->showAll();
    refreshAll();

    // The plot is wider than 300 px, so there is one point per token: nothing is decimated yet.
    // The first token has no NLL (nothing predicts it).
    LossView* loss = m_window->lossView();
    QVERIFY(loss->plot()->axisRect()->width() > kRunTokens);
    QCOMPARE(finitePoints(loss->nllGraph()), kRunTokens - 1);
    QVERIFY(loss->averageGraph()->dataCount() > 0);
    QVERIFY(loss->perplexityGraph()->dataCount() >= 1);

    // One view for decay and one for state_norm, by default.
    QCOMPARE(m_window->probeViews().size(), 2);
    ProbeView* gates = m_window->probeView("decay");
    ProbeView* norms = m_window->probeView("state_norm");
    QVERIFY(gates && norms);
    QCOMPARE(gates->unitGraphs().size(), kHeads);
    for (QCPGraph* g : gates->unitGraphs())
        QCOMPARE(finitePoints(g), kRunTokens);
    QCOMPARE(norms->unitGraphs().size(), kHeads);
    for (QCPGraph* g : norms->unitGraphs())
        QCOMPARE(finitePoints(g), kRunTokens);
    // Decay is a forget gate in (0, 1].
    for (auto it = gates->unitGraphs()[0]->data()->constBegin();
         it != gates->unitGraphs()[0]->data()->constEnd(); ++it)
        QVERIFY(it->value > 0 && it->value <= 1);

    // Heatmaps: one row per layer; each cell under a token holds that token's layer summary as the
    // trace's descriptors define it (geometric mean of the gates; root sum of squares of the norms).
    const TraceReader reader(m_firstTrace.toStdString());
    const std::vector<float> decay = reader.probe("decay");
    const std::vector<float> norm = reader.probe("state_norm");
    const ProbeSummary decaySummary = probeNamed(reader.header(), "decay").summary;
    const ProbeSummary normSummary = probeNamed(reader.header(), "state_norm").summary;
    QCOMPARE(decay.size(), size_t(kRunTokens * kLayers * kHeads));
    QCOMPARE(gates->heatmap()->data()->valueSize(), kLayers);
    QCOMPARE(norms->heatmap()->data()->valueSize(), kLayers);
    QVERIFY(gates->heatmap()->data()->keySize() >= kRunTokens); // the plot is wider than 300 px
    for (int k : {0, 1, 150, kRunTokens - 1})
        for (int l = 0; l < kLayers; ++l) {
            const size_t at = size_t((k * kLayers + l) * kHeads);
            const double layerDecay = summaryOf(decaySummary, &decay[at], kHeads);
            const double layerNorm = summaryOf(normSummary, &norm[at], kHeads);
            int kc = -1, vc = -1;
            gates->heatmap()->data()->coordToCell(TraceData::tokenToX(k), 0, &kc, &vc);
            QVERIFY(kc >= 0);
            QVERIFY2(near(gates->heatmap()->data()->cell(kc, l), layerDecay),
                     qPrintable(QString("token %1 layer %2").arg(k).arg(l)));
            norms->heatmap()->data()->coordToCell(TraceData::tokenToX(k), 0, &kc, &vc);
            QVERIFY2(near(norms->heatmap()->data()->cell(kc, l), layerNorm, 1e-4),
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
    m_window->probeViews()[0]->setLayer(1);
    QCOMPARE(m_window->probeViews()[1]->layer(), 1);
    QCOMPARE(m_window->tokenStrip()->layer(), 1);
    m_window->probeViews()[1]->setLayer(0);
    QCOMPARE(m_window->probeViews()[0]->layer(), 0);
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
    QCOMPARE(t->units(), kHeads);
    QVERIFY(std::isnan(t->nllValues()[0]));
    for (int i = 1; i < kRunTokens; ++i)
        QCOMPARE(t->nllValues()[i], m_firstNll[size_t(i)]);
    m_window->plotGroup()->showAll();
    refreshAll();
    QCOMPARE(finitePoints(m_window->lossView()->nllGraph()), kRunTokens - 1);
    for (ProbeView* v : m_window->probeViews()) {
        QCOMPARE(v->unitGraphs().size(), kHeads);
        for (QCPGraph* g : v->unitGraphs())
            QCOMPARE(finitePoints(g), kRunTokens);
        QCOMPARE(v->heatmap()->data()->valueSize(), kLayers);
    }
    // The trace names the model's tokenizer (outside the built-in ones): it is read when asked.
    QCOMPARE(m_window->namedFiles().size(), 1);
    QVERIFY(m_window->readNamedFiles());
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
    // The probe views show the overlay as its layer summary: here the same numbers as the trace's.
    for (ProbeView* v : m_window->probeViews()) {
        QVERIFY(v->overlaySummaryGraph());
        QCOMPARE(finitePoints(v->overlaySummaryGraph()), kRunTokens);
        QCOMPARE(graphAt(v->overlaySummaryGraph(), 77), graphAt(v->summaryGraph(), 77));
    }
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
    QCOMPARE(m_window->viewNames(), QStringList({"loss", "decay", "state_norm"}));
    for (const char* view : {"loss", "decay", "state_norm"})
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

void TestMainWindow::exportFiguresDefaults()
{
    QVERIFY(m_window->openTrace(m_firstTrace));
    PlotGroup* group = m_window->plotGroup();
    LossView* loss = m_window->lossView();
    group->setLogX(false);
    loss->setTokenNllVisible(true);
    group->setCursor(120);
    refreshAll();
    // What the loss plot looks like each time it is laid out at the figure's size (89 x 60 mm in
    // points), that is while the figure is drawn.
    struct Seen {
        QCPAxis::ScaleType x;
        bool tokenNll;
        bool cursor;
        bool legendAbove;
        QString firstEntry;
    };
    QList<Seen> seen;
    QSize figure(252, 170);
    const auto c = connect(loss->plot(), &QCustomPlot::afterLayout, this, [&] {
        if (loss->plot()->viewport().size() != figure)
            return;
        QCPLegend* legend = loss->plot()->legend;
        auto* first = qobject_cast<QCPPlottableLegendItem*>(legend->item(0));
        seen.push_back({loss->plot()->xAxis->scaleType(), loss->nllGraph()->visible(),
                        loss->plot()->layer(QString::fromLatin1(kCursorLayer))->visible(),
                        loss->plot()->plotLayout()->elements(false).contains(legend),
                        first ? first->plottable()->name() : QString()});
    });
    const QString prefix = m_dir.filePath("defaults/run");
    QVERIFY(m_window->exportFigures(prefix));
    QVERIFY(!seen.isEmpty());
    for (const Seen& s : seen) {
        QCOMPARE(s.x, QCPAxis::stLogarithmic);
        QVERIFY(!s.tokenNll);
        QVERIFY(!s.cursor);
        QVERIFY(s.legendAbove);
        // The run's short name, not its file's.
        QVERIFY2(s.firstEntry.startsWith(QStringLiteral("tiny-random: ")), qPrintable(s.firstEntry));
    }
    // One column at 300 dpi.
    const QImage png(prefix + "-loss.png");
    QVERIFY(std::abs(png.width() - 1051) <= 2);
    // The window is as it was.
    QVERIFY(!group->logX());
    QCOMPARE(loss->plot()->xAxis->scaleType(), QCPAxis::stLinear);
    QVERIFY(loss->tokenNllVisible() && loss->nllGraph()->visible());
    QCOMPARE(group->cursor(), qint64(120));
    QVERIFY(group->cursorLine(loss->plot()->axisRect())->visible());
    QVERIFY(loss->plot()->layer(QString::fromLatin1(kCursorLayer))->visible());
    QVERIFY(loss->plot()->axisRect()->insetLayout()->elements(false).contains(loss->plot()->legend));

    // What main() makes of --linear-x --token-nll --figure-width 183.
    ExportStyle asked = ExportStyle::paperWidePreset();
    asked.logX = false;
    asked.tokenNll = true;
    figure = QSize(519, 198);
    seen.clear();
    QVERIFY(m_window->exportFigures(m_dir.filePath("asked/run"), asked));
    QVERIFY(!seen.isEmpty());
    for (const Seen& s : seen) {
        QCOMPARE(s.x, QCPAxis::stLinear);
        QVERIFY(s.tokenNll);
        QVERIFY(!s.cursor);
    }
    QVERIFY(std::abs(QImage(m_dir.filePath("asked/run-decay.png")).width() - 2161) <= 2);
    disconnect(c);
    group->setCursor(-1);
}

void TestMainWindow::exportDialogPaperChoices()
{
    ExportDialog dialog(m_dir.path(), "fig", false);
    dialog.setTraceLabels("tiny-collapse-20261129-192634", QString());
    QCOMPARE(dialog.traceLabelEdit()->text(), QString("tiny-collapse"));
    QVERIFY(!dialog.overlayLabelEdit()->isEnabled());
    ExportStyle s = dialog.style();
    QVERIFY(s.paper);
    QCOMPARE(s.widthMm, 89.0);
    QCOMPARE(s.legend, LegendPlace::OutsideTop);
    QVERIFY(s.logX.has_value() && *s.logX);
    QVERIFY(s.tokenNll.has_value() && !*s.tokenNll);
    QCOMPARE(s.traceLabel, QString("tiny-collapse"));
    // Two columns, the legend inside at the top right, linear, every token, the user's own name.
    dialog.widthBox()->setCurrentIndex(1);
    dialog.legendBox()->setCurrentIndex(dialog.legendBox()->findData(int(LegendPlace::TopRight)));
    dialog.tokenAxisBox()->setCurrentIndex(dialog.tokenAxisBox()->findData(0));
    dialog.tokenNllBox()->setChecked(true);
    dialog.traceLabelEdit()->setText("ours");
    s = dialog.style();
    QCOMPARE(s.widthMm, 183.0);
    QCOMPARE(s.heightMm, ExportStyle::paperWidePreset().heightMm);
    QCOMPARE(s.legend, LegendPlace::TopRight);
    QVERIFY(s.logX.has_value() && !*s.logX);
    QVERIFY(*s.tokenNll);
    QCOMPARE(s.traceLabel, QString("ours"));
    // An overlay's name too.
    dialog.setTraceLabels("a-20261129-192634", "b-20261129-192700 (Mamba, 2×8 heads)");
    QVERIFY(dialog.overlayLabelEdit()->isEnabled());
    QCOMPARE(dialog.style().overlayLabel, QString("b (Mamba, 2×8 heads)"));
    // The screen look leaves the axis and the NLL line as they are.
    dialog.screenButton()->setChecked(true);
    s = dialog.style();
    QVERIFY(!s.paper);
    QVERIFY(!s.logX.has_value());
    QVERIFY(!s.tokenNll.has_value());
    QVERIFY(!dialog.legendBox()->isEnabled());
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
    // What the registry says of a model, for any architecture: its name, layout, layers and units,
    // and how its state size is counted.
    QVERIFY(m_window->openModel(kTinyModel));
    const QString shape = m_window->modelPanel()->shapeText();
    QVERIFY2(shape.contains("Mamba-2") && shape.contains("2 layers") && shape.contains("8 heads"),
             qPrintable(shape));
    QVERIFY2(m_window->modelPanel()->stateSizeText().startsWith(QLocale().toString(5056)),
             qPrintable(m_window->modelPanel()->stateSizeText()));

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
    m_window->probeViews()[1]->setLogY(true);
    m_window->probeViews()[0]->setReduce(ProbeView::Reduce::Min);
    ProbeView* extra = m_window->addProbeView("dt");
    m_window->saveSettings();
    m_window->lossView()->setTokenNllVisible(true);
    m_window->probeViews()[1]->setLogY(false);
    m_window->probeViews()[0]->setReduce(ProbeView::Reduce::Summary);
    m_window->removeProbeView(extra);
    MainWindow::Options o;
    o.tracesFolder = m_dir.filePath("traces");
    o.settingsFile = m_dir.filePath("settings.ini");
    MainWindow second(o);
    QCOMPARE(QFileInfo(second.modelPanel()->modelDir()).canonicalFilePath(),
             QFileInfo(kTinyModel).canonicalFilePath());
    QCOMPARE(second.lossView()->bucketSize(), 2048);
    QVERIFY(!second.lossView()->tokenNllVisible());
    QCOMPARE(second.probeViewNames(), QStringList({"decay", "state_norm", "dt"}));
    QVERIFY(second.probeViews()[1]->logY());
    QCOMPARE(second.probeViews()[0]->reduce(), ProbeView::Reduce::Min);
    m_window->saveSettings(); // back to two views for the window the next tests use
    QVERIFY(second.modelPanel()->recentModels().contains(QFileInfo(kTinyModel).absoluteFilePath()));
}

void TestMainWindow::modelSources()
{
    // Built-in models come from resources/models: the three trained ones, nothing else.
    QStringList names;
    for (const ModelEntry& e : builtInModels()) {
        names << e.name;
        QCOMPARE(QFileInfo(e.path).canonicalFilePath(),
                 QFileInfo(QStringLiteral(STATESCOPE_RESOURCES_DIR "/models/") + e.name).canonicalFilePath());
    }
    QCOMPARE(names, QStringList({"tiny-collapse", "tiny-forget", "tiny-passkey"}));

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

void TestMainWindow::schemaOneTraceOpens()
{
    // A trace as StateScope wrote it before schema 2 (the run above, its schema-2 attributes taken
    // away), of a text file: everything the reader derives from schema 1 is enough for the views.
    QVERIFY(!m_firstTrace.isEmpty());
    const QString textPath = m_dir.filePath("schema1-input.txt");
    {
        QFile f(textPath);
        QVERIFY(f.open(QIODevice::WriteOnly));
        for (int i = 0; i < kRunTokens; ++i)
            f.putChar(char('a' + i % 26));
    }
    const QString path = m_dir.filePath("schema1.h5");
    QFile::remove(path);
    QVERIFY(QFile::copy(m_firstTrace, path));
    downgradeToSchema1(path, ("text: " + textPath).toStdString()); // as the window wrote it
    {
        const TraceReader reader(path.toStdString());
        QCOMPARE(reader.header().schemaVersion, 1);
    }
    const TraceReader original(m_firstTrace.toStdString());
    const std::vector<float> decay = original.probe("decay");
    const std::vector<float> norm = original.probe("state_norm");

    m_window->clearRecordedErrors();
    QVERIFY(m_window->openTrace(path));
    TraceData* t = m_window->trace();
    QCOMPARE(t->tokens(), qint64(kRunTokens));
    QCOMPARE(t->layers(), kLayers);
    QCOMPARE(t->units(), kHeads);
    QCOMPARE(t->unitName(), QString("head"));
    QVERIFY(!t->trainingLength());
    QVERIFY(!t->forgetThreshold());
    m_window->plotGroup()->showAll();
    m_window->probeViews()[0]->setLayer(1);
    refreshAll();
    ProbeView* gates = m_window->probeView("decay");
    ProbeView* norms = m_window->probeView("state_norm");
    QVERIFY(gates && norms);
    QCOMPARE(gates->unitGraphs().size(), kHeads);
    for (int k : {0, 99, kRunTokens - 1}) {
        const size_t at = size_t((k * kLayers + 1) * kHeads);
        for (int u = 0; u < kHeads; ++u)
            QCOMPARE(graphAt(gates->unitGraphs()[u], k), double(decay[at + size_t(u)]));
        // Schema 1 knows no summaries: by name, the gates' geometric mean and the norms' root sum of
        // squares.
        QVERIFY(
            near(graphAt(gates->summaryGraph(), k), summaryOf(ProbeSummary::GeoMean, &decay[at], kHeads)));
        QVERIFY(near(graphAt(norms->summaryGraph(), k),
                     summaryOf(ProbeSummary::RootSumSquare, &norm[at], kHeads), 1e-4));
    }
    QCOMPARE(gates->linesRect()->axis(QCPAxis::atLeft)->label(), QString("α"));
    // The text file named in the old `input` is read for the strip when asked.
    QVERIFY(t->text().isEmpty());
    QVERIFY(m_window->readNamedFiles());
    QCOMPARE(t->text().size(), kRunTokens);
    QCOMPARE(t->tokenText(2), QString("c"));
    QVERIFY(m_window->tokenStrip()->toolTipFor(2).contains("<b>c</b>"));

    // A schema-1 trace another program wrote (h5py), with a [layer, head] probe no view knows: the
    // first view shows it, by its descriptor.
    QVERIFY(m_window->openTrace(kData + "/trace/h5py_complete.h5"));
    QCOMPARE(m_window->trace()->tokens(), qint64(50));
    refreshAll();
    ProbeView* alpha = m_window->probeView("alpha");
    QVERIFY(alpha);
    QCOMPARE(alpha, m_window->probeViews()[0]);
    QCOMPARE(alpha->unitGraphs().size(), 3);
    QCOMPARE(alpha->layerBox()->count(), 2);
    alpha->setLayer(1);
    for (int k : {13, 30, 49})
        for (int j = 0; j < 3; ++j)
            QCOMPARE(graphAt(alpha->unitGraphs()[j], k), double(float(k + 0.125 * (3 + j))));
    QCOMPARE(alpha->summaryGraph()->dataCount(), 50);
    // The views keep asking for decay and state_norm: the next trace with them shows them again.
    QCOMPARE(m_window->probeViewNames(), QStringList({"decay", "state_norm"}));
    QVERIFY(m_window->openTrace(m_firstTrace));
    QCOMPARE(m_window->probeViews()[0]->probeName(), QString("decay"));
    QCOMPARE(m_window->probeViews()[1]->probeName(), QString("state_norm"));
    QVERIFY(m_window->recordedErrors().isEmpty());
}

void TestMainWindow::traceWithoutItsModelFolder()
{
    // A model folder that goes away after the run: the trace alone has everything the window shows.
    const QString model = m_dir.filePath("gone/tiny-copy");
    QVERIFY(QDir().mkpath(model));
    for (const QString& f : QDir(kTinyModel).entryList(QDir::Files))
        QVERIFY(QFile::copy(kTinyModel + "/" + f, model + "/" + f));
    {
        // The model card states a training length, which the trace records.
        QFile card(model + "/model_card.json");
        QVERIFY(card.open(QIODevice::ReadOnly));
        QByteArray json = card.readAll();
        card.close();
        json.replace("\"training_length\": null", "\"training_length\": 200");
        QVERIFY(json.contains("\"training_length\": 200"));
        QVERIFY(card.open(QIODevice::WriteOnly | QIODevice::Truncate));
        card.write(json);
    }
    const QString textPath = m_dir.filePath("gone/input.txt");
    QByteArray text;
    for (int i = 0; i < 250; ++i)
        text.append(char('A' + i % 26));
    {
        QFile f(textPath);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(text);
    }
    QVERIFY(m_window->openModel(model));
    QCOMPARE(m_window->modelPanel()->trainingLength(), qint64(200));
    QVERIFY(m_window->openText(textPath));
    m_window->modelPanel()->setChunkSize(64);
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QVERIFY(ended[0][1].toBool());
    const QString trace = ended[0][0].toString();
    QVERIFY(m_window->openModel(kTinyModel));
    QVERIFY(QDir(model).removeRecursively());
    QVERIFY(!QFileInfo::exists(model));

    const TraceReader reader(trace.toStdString());
    const std::vector<float> decay = reader.probe("decay");
    const std::vector<float> norm = reader.probe("state_norm");
    const std::vector<float> nll = reader.nll();
    m_window->clearRecordedErrors();
    QVERIFY(m_window->openTrace(trace));
    QVERIFY(m_window->recordedErrors().isEmpty());
    TraceData* t = m_window->trace();
    // Markers: the training length from the card, no T_forget (the fit does not cover so small a
    // state); the loss plot draws one marker.
    QCOMPARE(t->trainingLength(), std::optional<qint64>(200));
    QVERIFY(!t->forgetThreshold());
    QCOMPARE(m_window->plotGroup()->trainingLength(), std::optional<qint64>(200));
    QCOMPARE(m_window->plotGroup()->markerCount(m_window->lossView()->plot()), 1);
    QCOMPARE(t->header().architectureName.isEmpty(), false);
    // Tokens: the text is still there, so the strip shows it once asked to.
    QVERIFY(m_window->readNamedFiles());
    QCOMPARE(t->tokens(), qint64(250));
    QCOMPARE(t->ids()[3], qint32('D'));
    QCOMPARE(t->tokenText(3), QString("D"));
    QVERIFY(m_window->tokenStrip()->toolTipFor(3).contains("<b>D</b>"));
    // Probes and loss, as drawn.
    m_window->plotGroup()->showAll();
    m_window->probeViews()[0]->setLayer(1);
    refreshAll();
    ProbeView* gates = m_window->probeView("decay");
    ProbeView* norms = m_window->probeView("state_norm");
    for (int k : {1, 64, 249}) {
        QCOMPARE(graphAt(m_window->lossView()->nllGraph(), k), double(nll[size_t(k)]));
        const size_t at = size_t((k * kLayers + 1) * kHeads);
        for (int u : {0, 5})
            QCOMPARE(graphAt(gates->unitGraphs()[u], k), double(decay[at + size_t(u)]));
        QCOMPARE(graphAt(norms->unitGraphs()[7], k), double(norm[at + 7]));
        QVERIFY(near(graphAt(gates->summaryGraph(), k),
                     summaryOf(probeNamed(reader.header(), "decay").summary, &decay[at], kHeads)));
    }
    // Without the text either: the tokenizer went with the folder, so the strip shows ids.
    QVERIFY(QFile::remove(textPath));
    QVERIFY(m_window->openTrace(trace));
    QCOMPARE(m_window->trace()->tokenText(3), QString("#%1").arg(int('D')));
    QCOMPARE(m_window->trace()->tokens(), qint64(250));
    QCOMPARE(m_window->trace()->trainingLength(), std::optional<qint64>(200));
}

void TestMainWindow::cliTraceFindsItsText()
{
    // The command line records its input file (named relative to where it ran) absolutely: the
    // window finds the text and shows each token's text from it.
    QTemporaryDir work;
    QByteArray text = "The command line wrote this trace.\nIts tokens are bytes: ";
    for (int i = 0; i < 40; ++i)
        text.append(char('0' + i % 10));
    {
        QFile f(work.filePath("cli-input.txt"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(text);
    }
    QProcess cli;
    cli.setWorkingDirectory(work.path());
    cli.start(STATESCOPE_CLI, {"run", "--model", kTinyModel, "--text", "cli-input.txt", "--out", "cli.h5"});
    QVERIFY(cli.waitForFinished(kTimeoutMs));
    QVERIFY2(cli.exitCode() == 0, cli.readAllStandardError().constData());
    const QString trace = work.filePath("cli.h5");
    m_window->clearRecordedErrors();
    QVERIFY(m_window->openTrace(trace));
    TraceData* t = m_window->trace();
    QCOMPARE(QFileInfo(t->header().inputPath).canonicalFilePath(),
             QFileInfo(work.filePath("cli-input.txt")).canonicalFilePath());
    QCOMPARE(t->tokens(), qint64(text.size()));
    QVERIFY(m_window->statusBar()->currentMessage().contains("cli-input.txt"));
    QVERIFY(m_window->readNamedFiles());
    QCOMPARE(t->text(), text);
    QCOMPARE(t->tokenText(4), QString("c"));
    QCOMPARE(t->tokenText(34), QString("\n"));
    m_window->plotGroup()->setCursor(4);
    QVERIFY(m_window->tokenStrip()->toolTipFor(4).contains("<b>c</b>"));
    refreshAll();
    QCOMPARE(finitePoints(m_window->probeView("decay")->unitGraphs()[0]), int(text.size()));
    QVERIFY(m_window->recordedErrors().isEmpty());
}

void TestMainWindow::overlayOtherArchitecture()
{
    // A trace of another architecture (3 layers of 6 channel groups) over a run of tiny-random
    // (2 layers of 8 heads), and the other way round.
    const QString other = m_dir.filePath("other-arch.h5");
    writeOtherArchitecture(other, 200);
    QVERIFY(m_window->openTrace(m_firstTrace));
    QVERIFY(m_window->overlayTrace(other));
    TraceData* o = m_window->overlay();
    QVERIFY(o);
    QCOMPARE(o->units(), 6);
    QCOMPARE(o->unitName(), QString("channel group"));
    QVERIFY2(o->label().contains("Other-1") && o->label().contains("3×6 channel groups"),
             qPrintable(o->label()));
    m_window->plotGroup()->showAll();
    m_window->probeViews()[0]->setLayer(1);
    refreshAll();
    ProbeView* gates = m_window->probeView("decay");
    ProbeView* norms = m_window->probeView("state_norm");
    QCOMPARE(gates->unitGraphs().size(), kHeads); // the trace's own units
    QCOMPARE(finitePoints(gates->overlaySummaryGraph()), 200);
    for (int k : {0, 57, 199}) {
        std::vector<float> d, n;
        for (int u = 0; u < 6; ++u) {
            d.push_back(otherDecay(k, 1, u));
            n.push_back(otherNorm(k, 1, u));
        }
        QVERIFY(
            near(graphAt(gates->overlaySummaryGraph(), k), summaryOf(ProbeSummary::GeoMean, d.data(), 6)));
        QVERIFY(near(graphAt(norms->overlaySummaryGraph(), k),
                     summaryOf(ProbeSummary::RootSumSquare, n.data(), 6)));
    }
    QVERIFY(gates->overlaySummaryGraph()->name().contains("geometric mean over channel groups"));
    QVERIFY(gates->summaryGraph()->name().contains("over heads"));
    QCOMPARE(finitePoints(m_window->lossView()->overlayNllGraph()), 199);
    m_window->clearOverlay();

    // Opened as the trace, with the run over it: the views take its shape, units and markers.
    QVERIFY(m_window->openTrace(other));
    QVERIFY(m_window->overlayTrace(m_firstTrace));
    m_window->plotGroup()->showAll();
    m_window->probeViews()[0]->setLayer(2);
    refreshAll();
    gates = m_window->probeView("decay");
    QCOMPARE(gates->unitGraphs().size(), 6);
    QCOMPARE(gates->layerBox()->count(), 3);
    QCOMPARE(gates->unitGraphs()[5]->name(), QString("channel group 5"));
    QCOMPARE(graphAt(gates->unitGraphs()[5], 42), double(otherDecay(42, 2, 5)));
    QCOMPARE(finitePoints(gates->overlaySummaryGraph()), 0); // the run has no layer 2
    QCOMPARE(m_window->plotGroup()->trainingLength(), std::optional<qint64>(100));
    QCOMPARE(m_window->plotGroup()->forgetThreshold(), std::optional<double>(150));
    QCOMPARE(m_window->plotGroup()->markerCount(m_window->lossView()->plot()), 2);
    m_window->probeViews()[0]->setLayer(0);
    refreshAll();
    QCOMPARE(finitePoints(gates->overlaySummaryGraph()), 200); // as far as the trace goes
    m_window->clearOverlay();
}

void TestMainWindow::overlayMambaOneFixture()
{
    // Once a Mamba-1 model is among the fixtures: a run of it through the window, over a Mamba-2 run.
    QString fixture;
    const QDir fixtures(kData + "/mamba");
    for (const QString& d : fixtures.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name))
        if (canOpenModel(fixtures.filePath(d) + "/config.json")) {
            fixture = fixtures.filePath(d);
            break;
        }
    if (fixture.isEmpty())
        QSKIP("no model folder under tests/data/mamba yet");
    // The fixtures bring no tokenizer and have 512 ids: tiny-random's byte-level one fits.
    const QString model = m_dir.filePath("mamba-one");
    QVERIFY(QDir().mkpath(model));
    for (const QString& f : QDir(fixture).entryList(QDir::Files))
        QVERIFY(QFile::copy(fixture + "/" + f, model + "/" + f));
    QVERIFY(QFile::copy(kTinyModel + "/tokenizer.json", model + "/tokenizer.json"));
    QVERIFY(m_window->openModel(model));
    m_window->modelPanel()->setChunkSize(64);
    m_window->setInputText(QString(200, QChar('m')), "m");
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QVERIFY2(m_window->recordedErrors().isEmpty(), qPrintable(m_window->recordedErrors().join('\n')));
    QVERIFY(ended[0][1].toBool());
    const QString trace = ended[0][0].toString();
    QVERIFY(m_window->openTrace(m_firstTrace));
    QVERIFY(m_window->overlayTrace(trace));
    refreshAll();
    const TraceReader reader(trace.toStdString());
    QVERIFY(reader.header().architecture != "mamba2");
    QCOMPARE(m_window->overlay()->unitName(), QString::fromStdString(reader.header().unitName));
    QVERIFY(m_window->overlay()->label().contains(QString::fromStdString(reader.header().architectureName)));
    m_window->plotGroup()->showAll();
    m_window->probeViews()[0]->setLayer(1);
    refreshAll();
    const int units = int(reader.header().units);
    for (ProbeView* v : m_window->probeViews()) {
        // The run's own heads, and the overlay's summary over its own units.
        QCOMPARE(v->unitGraphs().size(), kHeads);
        QVERIFY(v->overlaySummaryGraph());
        QCOMPARE(finitePoints(v->overlaySummaryGraph()), 200);
        const ProbeDesc& d = probeNamed(reader.header(), v->probeName().toUtf8().constData());
        const std::vector<float> values = reader.probe(d.name);
        for (int k : {0, 100, 199})
            QVERIFY(
                near(graphAt(v->overlaySummaryGraph(), k),
                     summaryOf(d.summary, &values[size_t((k * reader.header().layers + 1) * units)], units),
                     1e-4));
    }
    m_window->clearOverlay();
    QVERIFY(m_window->openModel(kTinyModel));
}

// An RWKV-6 fixture run through the window (a random-weight model, 2 layers of 4 heads), then shown
// with a Mamba-2 run overlaid: the views take RWKV's heads and draw the trace's own values, the
// overlay its summary, and the label names both architectures.
void TestMainWindow::rwkvRunBesideMamba2()
{
    fixtureRunBesideMamba2("rwkv6/hf-safetensors", "rwkv6", 4);
}

// HGRN-2 (issue 13) drawn over the Mamba-2 run the same way: its decay and state norm per head.
void TestMainWindow::hgrn2RunBesideMamba2()
{
    fixtureRunBesideMamba2("hgrn2/lb-safetensors", "hgrn2", 4);
}

void TestMainWindow::glaRunBesideMamba2()
{
    fixtureRunBesideMamba2("gla/kv-conv-shards", "gla", 4);
}

void TestMainWindow::fixtureRunBesideMamba2(const QString& fixtureDir, const std::string& architecture,
                                            int units)
{
    const QString model = m_dir.filePath(QString::fromStdString(architecture) + "-model");
    QVERIFY(QDir().mkpath(model));
    const QString fixture = kData + "/" + fixtureDir;
    for (const QString& f : QDir(fixture).entryList(QDir::Files))
        QVERIFY(QFile::copy(fixture + "/" + f, model + "/" + f));
    // 300 ids and no tokenizer: tiny-random's byte-level one fits.
    QVERIFY(QFile::copy(kTinyModel + "/tokenizer.json", model + "/tokenizer.json"));
    QVERIFY(m_window->openModel(model));
    m_window->modelPanel()->setChunkSize(64);
    m_window->setInputText(QString(150, QChar('r')), "r");
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QVERIFY2(m_window->recordedErrors().isEmpty(), qPrintable(m_window->recordedErrors().join('\n')));
    const QString trace = ended[0][0].toString();
    QVERIFY(m_window->openTrace(trace));
    QVERIFY(m_window->overlayTrace(m_firstTrace));
    m_window->plotGroup()->showAll();
    m_window->probeViews()[0]->setLayer(1);
    refreshAll();
    const TraceReader reader(trace.toStdString());
    QCOMPARE(reader.header().architecture, architecture);
    QVERIFY(m_window->overlay()->label().contains("Mamba-2"));
    QCOMPARE(int(reader.header().units), units);
    for (ProbeView* v : m_window->probeViews()) {
        QCOMPARE(int(v->unitGraphs().size()), units);
        QVERIFY(v->overlaySummaryGraph());
        QVERIFY(finitePoints(v->overlaySummaryGraph()) > 0);
        const ProbeDesc& d = probeNamed(reader.header(), v->probeName().toUtf8().constData());
        const std::vector<float> values = reader.probe(d.name);
        for (int k : {0, 77, 149})
            for (int u : {0, units - 1})
                QCOMPARE(graphAt(v->unitGraphs()[u], k),
                         double(values[size_t((k * reader.header().layers + 1) * units + u)]));
    }
    m_window->clearOverlay();
    QVERIFY(m_window->openModel(kTinyModel));
}

void TestMainWindow::extraProbeInAView()
{
    // dt is a probe no view has code for: a view added for it draws it from its descriptor.
    QVERIFY(m_window->openTrace(m_firstTrace));
    const TraceReader reader(m_firstTrace.toStdString());
    const ProbeDesc& dtDesc = probeNamed(reader.header(), "dt");
    QVERIFY(!dtDesc.name.empty());
    const std::vector<float> dt = reader.probe("dt");
    ProbeView* v = m_window->addProbeView(); // the first probe no view shows: dt
    QCOMPARE(v->probeName(), QString("dt"));
    QCOMPARE(m_window->probeViews().size(), 3);
    QCOMPARE(m_window->viewNames(), QStringList({"loss", "decay", "state_norm", "dt"}));
    m_window->plotGroup()->showAll();
    v->resize(1400, 400);
    m_window->probeViews()[0]->setLayer(1);
    QCOMPARE(v->layer(), 1); // one layer for all views
    refreshAll();
    QCOMPARE(v->unitGraphs().size(), kHeads);
    for (int k : {0, 123, kRunTokens - 1}) {
        const size_t at = size_t((k * kLayers + 1) * kHeads);
        for (int u : {0, 3, 7})
            QCOMPARE(graphAt(v->unitGraphs()[u], k), double(dt[at + size_t(u)]));
        QVERIFY(near(graphAt(v->summaryGraph(), k), summaryOf(dtDesc.summary, &dt[at], kHeads)));
    }
    const QString label = QString::fromStdString(dtDesc.label.empty() ? dtDesc.name : dtDesc.label);
    QVERIFY(v->linesRect()->axis(QCPAxis::atLeft)->label().startsWith(label));
    QVERIFY(v->plot()->toolTip().contains(QString::fromStdString(dtDesc.description).toHtmlEscaped()));
    QCOMPARE(v->heatmap()->data()->valueSize(), kLayers);
    // Its CSV and figures export like any view's.
    const QString folder = m_dir.filePath("dt-export");
    QStringList written;
    QVERIFY(m_window->exportViews(folder, "x", {ExportFormat::Csv, ExportFormat::Png}, ExportStyle::screen(),
                                  &written));
    QVERIFY(written.contains(QDir(folder).filePath("x-dt.csv")));
    QFile csv(QDir(folder).filePath("x-dt.csv"));
    QVERIFY(csv.open(QIODevice::ReadOnly));
    QVERIFY(csv.readLine().startsWith("token,dt_L1_U0,"));

    // A view picks another probe in its own box, and keeps asking for it.
    ProbeView* second = m_window->probeViews()[1];
    const int i = second->probeBox()->findData("dt");
    QVERIFY(i >= 0);
    second->probeBox()->setCurrentIndex(i);
    emit second->probeBox()->activated(i);
    QCOMPARE(second->probeName(), QString("dt"));
    QCOMPARE(m_window->probeViewNames(), QStringList({"decay", "dt", "dt"}));
    m_window->removeProbeView(v);
    QCOMPARE(m_window->probeViews().size(), 2);
    QVERIFY(m_window->openTrace(m_firstTrace));
    QCOMPARE(m_window->probeViews()[1]->probeName(), QString("dt"));
    m_window->setProbeViews(MainWindow::defaultProbeViews());
    QCOMPARE(m_window->probeViews()[1]->probeName(), QString("state_norm"));
}

void TestMainWindow::windowTraceAsSmallAsCliTrace()
{
    // Issue 9: the window appends the trace in small pieces (here 64 tokens), the command line 2048
    // tokens at a time; the window's traces were 20-36x larger for the same run. The same input
    // through both now gives traces of about the same size.
    const QString model = QStringLiteral(STATESCOPE_RESOURCES_DIR "/models/tiny-collapse");
    QTemporaryDir work;
    const QString input = work.filePath("newlines.txt");
    {
        QFile f(input);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray(4096, '\n'));
    }
    QVERIFY(m_window->openModel(model));
    QVERIFY(m_window->openText(input));
    m_window->modelPanel()->setChunkSize(64);
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QVERIFY(ended[0][1].toBool());
    QVERIFY2(m_window->recordedErrors().isEmpty(), qPrintable(m_window->recordedErrors().join('\n')));
    const QString windowTrace = ended[0][0].toString();

    QProcess cli;
    cli.setWorkingDirectory(work.path());
    cli.start(STATESCOPE_CLI, {"run", "--model", model, "--text", input, "--out", "cli.h5"});
    QVERIFY(cli.waitForFinished(kTimeoutMs));
    QVERIFY2(cli.exitCode() == 0, cli.readAllStandardError().constData());
    const QString cliTrace = work.filePath("cli.h5");

    const TraceReader fromWindow(windowTrace.toStdString()), fromCli(cliTrace.toStdString());
    QCOMPARE(fromWindow.tokens(), qint64(4096));
    QCOMPARE(fromCli.tokens(), qint64(4096));
    QCOMPARE(fromWindow.ids(), fromCli.ids());
    const qint64 windowBytes = QFileInfo(windowTrace).size(), cliBytes = QFileInfo(cliTrace).size();
    qInfo("4096 newlines, tiny-collapse: window trace (64-token appends) %lld bytes, statescope-cli trace "
          "(2048-token appends) %lld bytes",
          windowBytes, cliBytes);
    const auto [small, large] = std::minmax(windowBytes, cliBytes);
    QVERIFY2(large <= small + small / 10,
             "the window's and the command line's traces differ by more than 10%");
    QVERIFY(m_window->openModel(kTinyModel));
}

void TestMainWindow::runsPanelShowsWholeNames()
{
    // Without a traces folder of its own the window lists the per-user one, created quietly.
    QVERIFY(!m_firstTrace.isEmpty());
    const QString folder = statescope::tracesFolder();
    QVERIFY(!folder.isEmpty());
    const QString copy = QDir(folder).filePath("tiny-collapse-20261129-192634.h5");
    QFile::remove(copy);
    QVERIFY(QFile::copy(m_firstTrace, copy));
    {
        QTest::failOnWarning(QRegularExpression("Empty or null file name"));
        MainWindow::Options o;
        o.settingsFile = m_dir.filePath("settings-default-folder.ini");
        MainWindow w(o);
        w.setRecordErrors(true);
        QCOMPARE(w.tracesFolder(), folder);
        QCOMPARE(w.runsPanel()->folder(), folder);
        QVERIFY(w.runsPanel()->rowOf(QFileInfo(copy).absoluteFilePath()) >= 0);
        // At 1280 x 720 every name shows whole, in view, and in full in its tooltip.
        w.resize(1280, 720);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        QTreeWidget* tree = w.runsPanel()->tree();
        QTest::qWait(50);
        const QFontMetrics fm(tree->font());
        const int width = tree->header()->sectionSize(0);
        QVERIFY(tree->topLevelItemCount() >= 1);
        for (int i = 0; i < tree->topLevelItemCount(); ++i) {
            const QTreeWidgetItem* item = tree->topLevelItem(i);
            const QString name = item->text(0);
            QVERIFY2(
                width >= fm.horizontalAdvance(name),
                qPrintable(
                    QString("%1: %2 px for %3 px").arg(name).arg(width).arg(fm.horizontalAdvance(name))));
            QVERIFY(item->toolTip(0).startsWith(name));
        }
        QCOMPARE(tree->header()->sectionViewportPosition(0), 0);
        QVERIFY2(width <= tree->viewport()->width(),
                 qPrintable(QString("%1 px in a %2 px panel").arg(width).arg(tree->viewport()->width())));
        QCOMPARE(tree->topLevelItem(w.runsPanel()->rowOf(QFileInfo(copy).absoluteFilePath()))->text(0),
                 QString("tiny-collapse-20261129-192634"));
    }
    QFile::remove(copy);
}

namespace {

QSpinBox* trainingLengthBox(ModelPanel* panel)
{
    for (QSpinBox* b : panel->findChildren<QSpinBox*>())
        if (b->specialValueText() == "not set")
            return b;
    return nullptr;
}

} // namespace

void TestMainWindow::markerFollowsTheTraceShown()
{
    // A run recording 512 as its training length (the Model panel's value when it started).
    QVERIFY(m_window->openModel(kTinyModel));
    m_window->modelPanel()->setChunkSize(64);
    m_window->setInputText(QString(300, QChar('b')), "b");
    QSpinBox* box = trainingLengthBox(m_window->modelPanel());
    QVERIFY(box);
    box->setValue(512);
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    const QString run512 = ended[0][0].toString();
    QCOMPARE(m_window->trace()->trainingLength(), std::optional<qint64>(512));

    // A trace whose header says 100: its marker says 100, whatever the Model panel says since.
    const QString other = m_dir.filePath("other-tl100.h5");
    writeOtherArchitecture(other, 400);
    QVERIFY(m_window->openTrace(other));
    PlotGroup* g = m_window->plotGroup();
    QCustomPlot* lossPlot = m_window->lossView()->plot();
    using M = PlotGroup::Marker;
    QCOMPARE(g->trainingLength(), std::optional<qint64>(100));
    QCOMPARE(g->markerLabel(lossPlot, M::TrainingLength)->text(), QString("training length 100"));
    box->setValue(256);
    QVERIFY(m_window->openModel(kTinyModel)); // sets the panel's value from the model folder
    QCOMPARE(g->trainingLength(), std::optional<qint64>(100));
    QCOMPARE(m_window->trace()->trainingLength(), std::optional<qint64>(100));
    QCOMPARE(g->markerLine(lossPlot->axisRect(), M::TrainingLength)->point1->coords().x(), 100.0);
    QCOMPARE(g->markerLabel(lossPlot, M::TrainingLength)->text(), QString("training length 100"));

    // The overlay's own training length is marked too, in the overlay's colour.
    QVERIFY(m_window->overlayTrace(run512));
    for (TraceView* v : m_window->views()) {
        QCPItemStraightLine* line =
            g->markerLine(v->tokenAxes().front()->axisRect(), M::OverlayTrainingLength);
        QVERIFY(line && line->visible());
        QCOMPARE(line->point1->coords().x(), 512.0);
        QCOMPARE(line->pen().color(), PlotExporter::traceColor(1, m_window->darkTheme()));
    }
    QCPItemText* label = g->markerLabel(lossPlot, M::OverlayTrainingLength);
    QCOMPARE(label->text(), QString("overlay: training length 512"));
    QVERIFY(label->visible());
    QCOMPARE(g->markerLabel(lossPlot, M::TrainingLength)->text(), QString("training length 100"));
    m_window->clearOverlay();
    QVERIFY(!g->markerLine(lossPlot->axisRect(), M::OverlayTrainingLength)->visible());
}

void TestMainWindow::statusBarSaysPausedAndClearsTimeLeft()
{
    auto* rate = m_window->findChild<QLabel*>("rateLabel");
    QVERIFY(rate);
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
    QTest::qWait(300); // the progress of chunks finished before the pause arrives after it
    QVERIFY2(rate->text().startsWith("Paused"), qPrintable(rate->text()));
    QVERIFY2(!rate->text().contains("left"), qPrintable(rate->text()));
    m_window->cancelRun();
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QVERIFY2(rate->text().startsWith("Cancelled at"), qPrintable(rate->text()));
    QVERIFY(!rate->text().contains("left"));
    // A run that finishes: what it read, no time left.
    m_window->setInputText("hello", "hello");
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 2, kTimeoutMs);
    QVERIFY2(rate->text().startsWith("5 tokens in"), qPrintable(rate->text()));
    QVERIFY(!rate->text().contains("left"));
}

void TestMainWindow::newRunClearsOverlay()
{
    QVERIFY(m_window->openTrace(m_firstTrace));
    QVERIFY(m_window->overlayTrace(m_firstTrace));
    QVERIFY(m_window->lossView()->overlayAverageGraph());
    runAndWait("hello again");
    QVERIFY(!m_window->overlay());
    QVERIFY(!m_window->lossView()->overlayAverageGraph());
    for (ProbeView* v : m_window->probeViews()) {
        QVERIFY(!v->overlaySummaryGraph());
        QCOMPARE(v->legendTexts().size(), 3); // summary, selected unit, units
    }
    QVERIFY(
        !m_window->plotGroup()
             ->markerLine(m_window->lossView()->plot()->axisRect(), PlotGroup::Marker::OverlayTrainingLength)
             ->visible());
    QVERIFY(m_window->statusBar()->currentMessage().contains("Overlay removed"));
}

void TestMainWindow::runNameIsTheFileName()
{
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    runAndWait("name me");
    const QString path = ended[0][0].toString();
    const QString base = QFileInfo(path).completeBaseName();
    QVERIFY(base.startsWith("tiny-random-"));
    QCOMPARE(m_window->trace()->label(), base);
    QStringList names;
    QCustomPlot* p = m_window->lossView()->plot();
    for (int i = 0; i < p->legend->itemCount(); ++i)
        if (auto* item = qobject_cast<QCPPlottableLegendItem*>(p->legend->item(i)))
            names << item->plottable()->name();
    QVERIFY2(names.contains(base + ": NLL, mean of 256"), qPrintable(names.join('|')));
    RunsPanel* runs = m_window->runsPanel();
    QCOMPARE(runs->tree()->topLevelItem(runs->rowOf(path))->text(0), base);

    // Another model: the file and the legend name the model that ran.
    const QString forget = resourcePath("models/tiny-forget");
    if (!forget.isEmpty()) {
        QVERIFY(m_window->openModel(forget));
        m_window->setInputText("forget me", "forget me");
        QVERIFY(m_window->startRun());
        QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 2, kTimeoutMs);
        const QString second = QFileInfo(ended[1][0].toString()).completeBaseName();
        QVERIFY2(second.startsWith("tiny-forget-"), qPrintable(second));
        QCOMPARE(m_window->trace()->label(), second);
    }
    // Opened later, the trace has the same name.
    QVERIFY(m_window->openTrace(path));
    QCOMPARE(m_window->trace()->label(), base);
}

void TestMainWindow::linkLayersToggle()
{
    QVERIFY(m_window->openTrace(m_firstTrace));
    const QList<ProbeView*> views = m_window->probeViews();
    QVERIFY(views.size() >= 2);
    for (ProbeView* v : views) {
        QVERIFY(v->linkBox()->isVisibleTo(m_window));
        QCOMPARE(v->linkBox()->text(), QString("link layers"));
        QVERIFY(v->linkBox()->isChecked());
    }
    views[0]->layerBox()->setCurrentIndex(1);
    QCOMPARE(views[1]->layer(), 1);
    QCOMPARE(views[1]->layerBox()->currentText(), QString("1"));
    // Unlinked (from either view): each picks its own layer.
    views[1]->linkBox()->click();
    QVERIFY(!m_window->linkLayers());
    for (ProbeView* v : views)
        QVERIFY(!v->linkBox()->isChecked());
    views[0]->layerBox()->setCurrentIndex(0);
    QCOMPARE(views[0]->layer(), 0);
    QCOMPARE(views[1]->layer(), 1);
    QCOMPARE(views[1]->layerBox()->currentText(), QString("1"));
    // Linked again: the others take the layer of the view whose box was ticked.
    views[1]->linkBox()->click();
    QVERIFY(m_window->linkLayers());
    for (ProbeView* v : views) {
        QVERIFY(v->linkBox()->isChecked());
        QCOMPARE(v->layer(), 1);
    }
    views[0]->setLayer(0);
}

void TestMainWindow::runIconsVisibleInBothThemes()
{
    // Play, Pause and Stop as the toolbar shows them: their drawn pixels must stand out from the
    // window background in either theme, enabled or not (Pause and Stop are disabled while idle).
    auto* tools = m_window->findChild<QToolBar*>("runToolBar");
    QVERIFY(tools);
    const QList<QAction*> media = tools->actions().mid(0, 3);
    QCOMPARE(media.size(), 3);
    auto luminance = [](const QColor& c) {
        return 0.2126 * c.redF() + 0.7152 * c.greenF() + 0.0722 * c.blueF();
    };
    const bool wasDark = m_window->darkTheme();
    for (bool dark : {true, false}) {
        m_window->setDarkTheme(dark);
        const double background = luminance(QApplication::palette().color(QPalette::Window));
        for (QAction* a : media)
            for (auto [mode, threshold] : {std::pair{QIcon::Normal, 0.5}, std::pair{QIcon::Disabled, 0.3}}) {
                const QImage img = a->icon()
                                       .pixmap(tools->iconSize(), mode)
                                       .toImage()
                                       .convertToFormat(QImage::Format_ARGB32);
                double sum = 0;
                int n = 0;
                for (int y = 0; y < img.height(); ++y)
                    for (int x = 0; x < img.width(); ++x) {
                        const QColor c = img.pixelColor(x, y);
                        if (c.alpha() < 128)
                            continue;
                        sum += luminance(c);
                        ++n;
                    }
                const QString what = QStringLiteral("%1, %2 theme, mode %3")
                                         .arg(a->text(), dark ? "dark" : "light")
                                         .arg(int(mode));
                QVERIFY2(n > img.width() * img.height() / 10, qPrintable(what + ": almost no pixels"));
                const double contrast = std::abs(sum / n - background);
                QVERIFY2(contrast > threshold,
                         qPrintable(what + QStringLiteral(": contrast %1").arg(contrast)));
            }
    }
    m_window->setDarkTheme(wasDark);
}

void TestMainWindow::guideExplainsPlotsAndShortcuts()
{
    // Help ▸ What am I looking at?, as the menu opens it.
    QAction* guide = nullptr;
    for (QAction* a : m_window->menuBar()->actions())
        if (a->menu() && a->text().remove('&') == "Help")
            for (QAction* item : a->menu()->actions())
                if (item->text().remove('&') == "What am I looking at?")
                    guide = item;
    QVERIFY(guide);
    guide->trigger();
    QWidget* dialog = m_window->guideWindow();
    QVERIFY(dialog);
    QTRY_VERIFY(dialog->isVisible());
    auto* browser = dialog->findChild<QTextBrowser*>("guideText");
    QVERIFY(browser);
    const QString text = browser->toPlainText();
    for (const QString& s :
         {QString("NLL"), QString("α = exp(Δ·A)"), QString("‖S‖"), QString("training length"),
          QString("T_forget"), QString("head or channel group"), QString("Chen et al."),
          QString("Stuffed Mamba: Oversized States Lead to the Inability to Forget"), QString("COLM 2025")})
        QVERIFY2(text.contains(s), qPrintable(s));
    // Every shortcut of every action of the window, as the user would type it.
    int shortcuts = 0;
    for (QAction* a : m_window->findChildren<QAction*>())
        for (const QKeySequence& k : a->shortcuts()) {
            const QString key = k.toString(QKeySequence::NativeText);
            QVERIFY2(text.contains(key), qPrintable(key));
            ++shortcuts;
        }
    QVERIFY(shortcuts >= 8);
    QVERIFY(text.contains("Ctrl+R") && text.contains("Esc") && text.contains("F1"));
    // Again: the same window, not a second one.
    guide->trigger();
    QCOMPARE(m_window->guideWindow(), dialog);
    dialog->close();
}

void TestMainWindow::passkeyNeedleMarked()
{
    QVERIFY(m_window->openModel(kTinyModel));
    m_window->modelPanel()->setChunkSize(64);
    QVERIFY(m_window->setInputPrompt("passkey:12:0.5:7"));
    QVERIFY(m_window->inputPanel()->needle().has_value());
    const QString key = m_window->inputPanel()->needle()->passkey;
    QCOMPARE(key.size(), 5);
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QVERIFY2(m_window->recordedErrors().isEmpty(), qPrintable(m_window->recordedErrors().join('\n')));
    TraceData* t = m_window->trace();
    PlotGroup* g = m_window->plotGroup();
    QVERIFY(g->needle().has_value());
    const qint64 first = g->needle()->first, last = g->needle()->second;

    // The tokens that hold the key's digits (both times the needle says it), from the tokens' text.
    QString read;
    QVector<qint64> owner;
    for (qint64 i = 0; i < t->tokens(); ++i) {
        const QString s = t->tokenText(i);
        read += s;
        owner.insert(owner.size(), s.size(), i);
    }
    QCOMPARE(read.count(key), 2);
    QVector<qint64> keyTokens;
    for (qsizetype at = read.indexOf(key); at >= 0; at = read.indexOf(key, at + 1))
        for (qsizetype c = at; c < at + key.size(); ++c)
            keyTokens.push_back(owner[c]);
    // The band covers them, and only the needle sentence: it starts and ends with its words.
    for (qint64 k : keyTokens)
        QVERIFY2(k >= first && k <= last, qPrintable(QString::number(k)));
    QString inBand;
    for (qint64 i = first; i <= last; ++i)
        inBand += t->tokenText(i);
    QVERIFY2(inBand.trimmed() ==
                 QStringLiteral("The passkey is %1. Remember it. %1 is the passkey.").arg(key),
             qPrintable(inBand));

    // On every plot of the group: a visible band from the first needle token to the last, labelled.
    QVERIFY(!g->plots().isEmpty());
    for (QCustomPlot* plot : g->plots()) {
        QCPItemText* label = g->markerLabel(plot, PlotGroup::Marker::Needle);
        QVERIFY(label && label->visible());
        QCOMPARE(label->text(), QString("needle"));
        for (QCPAxisRect* rect : plot->axisRects()) {
            QCPItemRect* band = g->needleBand(rect);
            if (!band)
                continue;
            QVERIFY(band->visible());
            QCOMPARE(band->topLeft->coords().x(), TraceData::tokenToX(first) - 0.5);
            QCOMPARE(band->bottomRight->coords().x(), TraceData::tokenToX(last) + 0.5);
        }
    }

    // The trace records the needle: the engine found it in the text, at the same tokens.
    const QString path = t->filePath();
    {
        const TraceReader r(path.toStdString());
        QCOMPARE(QString::fromStdString(r.header().inputSource.passkey), key);
        QCOMPARE(r.header().inputSource.needleFirst, int64_t(first));
        QCOMPARE(r.header().inputSource.needleLast, int64_t(last));
    }
    // A later run without a needle shows none.
    runAndWait(QString(200, QChar('z')));
    QVERIFY(!g->needle().has_value());
    // Opening the passkey trace marks its needle again, from the file alone.
    QVERIFY(m_window->openTrace(path));
    QVERIFY(g->needle().has_value());
    QCOMPARE(g->needle()->first, first);
    QCOMPARE(g->needle()->second, last);
    QCOMPARE(m_window->trace()->header().passkey, key);
    runAndWait(QString(200, QChar('z')));
    QVERIFY(!g->needle().has_value());
    for (QCustomPlot* plot : g->plots())
        QVERIFY(!g->markerLabel(plot, PlotGroup::Marker::Needle)->visible());
}

// Issue 9.11: a trace another program is still writing grows in the window as it is written.
void TestMainWindow::followsGrowingTrace()
{
    QTemporaryDir dir;
    const QString path = dir.filePath("growing.h5");
    TraceWriter w(path.toStdString(), otherHeader(3000));
    w.append(otherChunk(0, 1000));
    QVERIFY(m_window->openTrace(path));
    TraceData* t = m_window->trace();
    QCOMPARE(t->tokens(), qint64(1000));
    QVERIFY(t->fileGrowing());
    auto* label = m_window->findChild<QLabel*>(QStringLiteral("traceLabel"));
    QVERIFY(label);
    QVERIFY2(label->text().contains("still being written"), qPrintable(label->text()));
    w.append(otherChunk(1000, 2500));
    QTRY_COMPARE_WITH_TIMEOUT(t->tokens(), qint64(2500), 5000);
    // What the plots draw grew with it.
    refreshAll();
    const QCPRange r = m_window->plotGroup()->range();
    QVERIFY2(r.upper >= TraceData::tokenToX(2499), qPrintable(QString::number(r.upper)));
    QCOMPARE(t->valueAt(t->probeIndex("state_norm"), 2, 5, 2499), otherNorm(2499, 2, 5));
    w.append(otherChunk(2500, 3000));
    w.finish();
    QTRY_VERIFY_WITH_TIMEOUT(!t->fileGrowing(), 5000);
    QCOMPARE(t->tokens(), qint64(3000));
    QVERIFY2(!label->text().contains("still being written"), qPrintable(label->text()));
}

// Issue 9.6: jump to a token by number, find a text in the input; the run's file backs the zoom.
void TestMainWindow::findTextAndGoToToken()
{
    QString text;
    for (int i = 0; i < 40; ++i)
        text += QStringLiteral("plain words here. ");
    const int zebraByte = int(text.size());
    text += QStringLiteral("A Zebra crossed. ");
    for (int i = 0; i < 40; ++i)
        text += QStringLiteral("plain words here. ");
    runAndWait(text);
    TraceData* t = m_window->trace();
    // The finished run's file is attached: zooming in reads it.
    QVERIFY(t->hasFile());
    QVERIFY(!t->fileGrowing());
    PlotGroup* g = m_window->plotGroup();
    g->setCursor(-1);
    QVERIFY(m_window->findText(QStringLiteral("zebra")));
    const qint64 at = g->cursor();
    QVERIFY2(t->tokenText(at).contains(QStringLiteral("Zeb")) ||
                 t->tokenText(at).contains(QStringLiteral("Z")),
             qPrintable(t->tokenText(at)));
    QVERIFY(t->offsets()[int(2 * at)] <= zebraByte + 2 && t->offsets()[int(2 * at + 1)] > zebraByte + 1);
    QVERIFY(g->range().contains(TraceData::tokenToX(at)));
    QCOMPARE(m_window->tokenStrip()->cursorToken(), at);
    QCOMPARE(m_window->tokenField()->value(), int(at));
    // Once only in the text: the next match wraps around to it.
    QVERIFY(m_window->findText(QStringLiteral("ZEBRA")));
    QCOMPARE(g->cursor(), at);
    // "words" after the zebra, then before it.
    QVERIFY(m_window->findText(QStringLiteral("words")));
    QVERIFY(g->cursor() > at);
    g->setCursor(at);
    QVERIFY(m_window->findText(QStringLiteral("words"), true));
    QVERIFY(g->cursor() < at);
    QVERIFY(!m_window->findText(QStringLiteral("giraffe")));
    QVERIFY(m_window->statusBar()->currentMessage().contains(QStringLiteral("not in the input")));

    // The token field: type a number, press Enter.
    QSpinBox* field = m_window->tokenField();
    QCOMPARE(field->maximum(), int(t->tokens() - 1));
    field->setFocus();
    field->selectAll();
    QTest::keyClicks(field, QStringLiteral("17"));
    QTest::keyClick(field, Qt::Key_Return);
    QCOMPARE(g->cursor(), qint64(17));
    QVERIFY(g->range().contains(TraceData::tokenToX(17)));
    // Ctrl+F puts the focus in the find field.
    // Ctrl+F and Ctrl+G put the focus in the fields (the actions that hold those shortcuts; a key
    // click depends on which window the offscreen platform has active after the earlier tests).
    auto trigger = [this](const QKeySequence& keys) {
        for (QAction* a : m_window->findChildren<QAction*>())
            if (a->shortcut() == keys) {
                a->trigger();
                return true;
            }
        return false;
    };
    QVERIFY(trigger(QKeySequence(QStringLiteral("Ctrl+F"))));
    // The window's focus widget (it has the focus once the window is active).
    QTRY_VERIFY(m_window->focusWidget() == m_window->findField());
    QVERIFY(trigger(QKeySequence(QStringLiteral("Ctrl+G"))));
    QTRY_VERIFY(m_window->focusWidget() == m_window->tokenField() ||
                m_window->tokenField()->isAncestorOf(m_window->focusWidget()));
}

// Issue 9.11: --stats reports the frames drawn while zooming and panning a trace by hand, and
// --bench-interaction scripts that.
void TestMainWindow::interactionFrameTimes()
{
    QTemporaryDir dir;
    const QString path = dir.filePath("other.h5");
    writeOtherArchitecture(path, 5000);
    QVERIFY(m_window->openTrace(path));
    for (TraceView* v : m_window->views())
        v->clearFrameTimes();
    // A zoom by hand: the plots redraw, and each frame is counted.
    m_window->plotGroup()->setRange(QCPRange(100, 600));
    refreshAll();
    QTRY_VERIFY(!m_window->views().front()->frameTimes().isEmpty());
    const QString stats = m_window->statsSummary();
    const QRegularExpression frames(
        QStringLiteral("frames: (\\d+), median ([0-9.]+) ms, 95th percentile ([0-9.]+) ms"));
    const QRegularExpressionMatch m = frames.match(stats);
    QVERIFY2(m.hasMatch(), qPrintable(stats));
    QVERIFY(m.captured(1).toInt() >= m_window->views().size());
    QVERIFY(m.captured(2).toDouble() > 0);
    const QString bench = m_window->benchmarkInteraction();
    for (const char* phase : {"pan (10% of the trace in view): 60 frames, median", "zoom (whole trace",
                              "full-resolution pan", "fast pan", "5000 tokens, 3 layers x 6 channel groups"})
        QVERIFY2(bench.contains(QLatin1String(phase)), qPrintable(bench));
    // 5,000 tokens are kept whole: every frame of a zoomed-in pan is exact.
    QVERIFY2(bench.contains(QStringLiteral("120 frames")) &&
                 bench.contains(QStringLiteral("120 of them exact")),
             qPrintable(bench));
}

// Issue 9.8: the run table draws any number of runs over the trace shown, each in its colour, with
// B - A, smoothing, rename, trash and show-in-folder.
void TestMainWindow::runTableComparesManyRuns()
{
    QTemporaryDir dir;
    const QString a = dir.filePath("run-a.h5"), b = dir.filePath("run-b.h5"), c = dir.filePath("run-c.h5");
    writeOtherArchitecture(a, 3000, 2.0f);
    writeOtherArchitecture(b, 2000, 3.0f); // shorter, and 1 nat worse everywhere
    writeOtherArchitecture(c, 3000, 1.5f);
    RunsPanel* panel = m_window->runsPanel();
    const QString oldFolder = panel->folder();
    panel->setFolder(dir.path());
    QCOMPARE(panel->count(), 3);
    QVERIFY(m_window->openTrace(a));

    // Check two runs: both drawn, each in its own colour, named in the legends.
    for (const QString& p : {b, c}) {
        QTreeWidgetItem* item = panel->tree()->topLevelItem(panel->rowOf(p));
        QVERIFY(item->flags() & Qt::ItemIsUserCheckable);
        item->setCheckState(0, Qt::Checked);
    }
    QCOMPARE(m_window->overlays().size(), 2);
    QCOMPARE(m_window->overlays()[0]->label(), QStringLiteral("run-b"));
    const QColor cb = panel->colorOf(b), cc = panel->colorOf(c);
    QVERIFY(cb.isValid() && cc.isValid() && cb != cc);
    LossView* loss = m_window->lossView();
    refreshAll();
    QCOMPARE(loss->overlayAverageGraph(0)->pen().color(), cb.darker(130));
    QCOMPARE(loss->overlayAverageGraph(1)->pen().color(), cc.darker(130));
    QVERIFY(loss->overlayAverageGraph(1)->dataCount() > 0);
    for (ProbeView* v : m_window->probeViews()) {
        QCOMPARE(v->overlaySummaryGraphs().size(), 2);
        QCOMPARE(v->overlaySummaryGraphs()[1]->pen().color(), cc);
        QVERIFY(v->legendTexts().join('|').contains(QStringLiteral("run-c")));
    }
    // The swatch in the table is the colour drawn.
    const QImage swatch = panel->tree()->topLevelItem(panel->rowOf(c))->icon(0).pixmap(12, 12).toImage();
    QCOMPARE(swatch.pixelColor(6, 6).rgb(), cc.rgb());
    // Another colour, chosen in the table.
    panel->setColor(b, QColor(Qt::magenta));
    refreshAll();
    QCOMPARE(loss->overlayAverageGraph(0)->pen().color(), QColor(Qt::magenta).darker(130));

    // B - A: 3 - 2 = 1 nat on the 2000 tokens both have, and nothing past them.
    loss->setDifference(true);
    QCPGraph* diff = loss->differenceGraph(0);
    QVERIFY(diff->visible() && diff->dataCount() > 10);
    for (auto it = diff->data()->constBegin(); it != diff->data()->constEnd(); ++it) {
        QVERIFY(it->key <= TraceData::tokenToX(1999) + 0.5);
        if (it->key > 300) // past the moving average's start (the first token has no NLL)
            QVERIFY2(std::abs(it->value - 1.0) < 1e-5, qPrintable(QString::number(it->value)));
    }
    // C - A: 1.5 - 2 = -0.5 nat on all 3000 tokens.
    QCPGraph* diffC = loss->differenceGraph(1);
    QVERIFY(diffC->dataCount() > 10);
    for (auto it = diffC->data()->constBegin(); it != diffC->data()->constEnd(); ++it)
        if (it->key > 300)
            QVERIFY2(std::abs(it->value + 0.5) < 1e-5, qPrintable(QString::number(it->value)));
    QVERIFY(!loss->averageGraph()->visible());
    loss->setDifference(false);
    QVERIFY(loss->averageGraph()->visible());
    // Smoothing: the slider sets the moving average's window, 2^k tokens.
    loss->smoothingSlider()->setValue(4);
    QCOMPARE(loss->movingAverageWindow(), 16);
    loss->setMovingAverageWindow(256);
    QCOMPARE(loss->smoothingSlider()->value(), 8);

    // Uncheck one: it goes from the plots.
    panel->tree()->topLevelItem(panel->rowOf(c))->setCheckState(0, Qt::Unchecked);
    QCOMPARE(m_window->overlays().size(), 1);
    QCOMPARE(m_window->probeViews()[0]->overlaySummaryGraphs().size(), 1);

    // Rename: the file moves, the run stays compared under its new name.
    QString renamed, error;
    QVERIFY2(panel->renameRun(b, QStringLiteral("better-name"), &renamed, &error), qPrintable(error));
    QVERIFY(QFileInfo::exists(dir.filePath("better-name.h5")) && !QFileInfo::exists(b));
    QVERIFY(panel->isCompared(renamed));
    QCOMPARE(m_window->overlay()->label(), QStringLiteral("better-name"));
    QVERIFY(!panel->renameRun(renamed, QStringLiteral("run-c"), &renamed, &error)); // taken
    QVERIFY2(error.contains(QStringLiteral("already exists")), qPrintable(error));

    // To the trash (under Qt Test's own data folder, ~/.qttest), not deleted; a compared run leaves
    // the plots.
    QString inTrash;
    QVERIFY2(panel->trashRun(dir.filePath("better-name.h5"), &error, &inTrash), qPrintable(error));
    QVERIFY(!QFileInfo::exists(dir.filePath("better-name.h5")));
    QVERIFY2(inTrash.contains(QStringLiteral("Trash")) && QFileInfo::exists(inTrash), qPrintable(inTrash));
    QFile::remove(inTrash);
    QCOMPARE(panel->count(), 2);
    QVERIFY(m_window->overlays().isEmpty());

    m_window->clearOverlay();
    panel->setFolder(oldFolder);
}

// Issue 9.5: at a projector's 1280x720 and a laptop's 1024x700 the window fits, every control is
// inside its view, every layer's heatmap row is drawn (the plots scroll rather than being cut off),
// no tick labels overlap, and a legend hides on a click.
void TestMainWindow::usableOnSmallScreens()
{
    QTemporaryDir dir;
    const QString path = dir.filePath("other.h5");
    writeOtherArchitecture(path, 4000);
    QVERIFY(m_window->openTrace(path));
    const QSize before = m_window->size();
    for (const QSize size : {QSize(1280, 720), QSize(1024, 700)}) {
        m_window->resize(size);
        QCoreApplication::processEvents();
        refreshAll();
        QCoreApplication::processEvents();
        // It fits: the window could take the size (its minimum is no larger).
        QVERIFY2(m_window->width() <= size.width() && m_window->height() <= size.height(),
                 qPrintable(QStringLiteral("%1x%2").arg(m_window->width()).arg(m_window->height())));
        QScrollArea* scroll = m_window->plotScroll();
        for (ProbeView* v : m_window->probeViews()) {
            // Every control inside the view (the row wraps), none cut off on the right.
            for (QWidget* w : v->findChildren<QWidget*>(QString(), Qt::FindDirectChildrenOnly))
                if (w->isVisible() && w != v->plot())
                    QVERIFY2(w->geometry().right() <= v->width(),
                             qPrintable(QStringLiteral("%1 ends at %2 in a view %3 wide")
                                            .arg(w->metaObject()->className())
                                            .arg(w->geometry().right())
                                            .arg(v->width())));
            // Every layer's row of the heatmap is drawn, at least 2 px high.
            QCPAxis* y = v->heatmapRect()->axis(QCPAxis::atLeft);
            const int layers = m_window->trace()->layers();
            QVERIFY(y->range().lower <= -0.5 + 1e-9 && y->range().upper >= layers - 0.5 - 1e-9);
            QVERIFY2(v->heatmapRect()->height() >= 2 * layers,
                     qPrintable(QString::number(v->heatmapRect()->height())));
            // Tick labels of the value axes do not run into each other.
            for (QCPAxisRect* r : v->plot()->axisRects())
                for (QCPAxis* a : r->axes(QCPAxis::atLeft | QCPAxis::atRight)) {
                    if (!a->visible() || !a->tickLabels())
                        continue;
                    int ticks = 0; // the tick vector reaches one tick past each end of the range
                    for (double t : a->tickVector())
                        ticks += a->range().contains(t) ? 1 : 0;
                    QVERIFY2(ticks * QFontMetrics(a->tickLabelFont()).height() <= r->height() + 4,
                             qPrintable(QStringLiteral("%1 labels in %2 px (%3, range %4 to %5, count %6)")
                                            .arg(ticks)
                                            .arg(r->height())
                                            .arg(a->label())
                                            .arg(a->range().lower)
                                            .arg(a->range().upper)
                                            .arg(a->ticker()->tickCount())));
                }
            // Reachable: inside the scroll area's widget, which scrolls when taller than its view.
            QVERIFY(scroll->widget()->isAncestorOf(v));
        }
        const int contents = scroll->widget()->height(), viewport = scroll->viewport()->height();
        QVERIFY2(contents <= viewport || scroll->verticalScrollBar()->maximum() >= contents - viewport - 1,
                 qPrintable(QStringLiteral("%1 in %2").arg(contents).arg(viewport)));
    }
    // Closing the docks gives the plots their width (at 1024x700 still).
    ProbeView* v = m_window->probeViews().front();
    const int narrow = v->width();
    const QList<QDockWidget*> docks = m_window->findChildren<QDockWidget*>();
    for (QDockWidget* d : docks)
        d->hide();
    QCoreApplication::processEvents();
    QVERIFY2(v->width() > narrow + 200, qPrintable(QStringLiteral("%1 -> %2").arg(narrow).arg(v->width())));
    for (QDockWidget* d : docks)
        d->show();
    QCoreApplication::processEvents();
    // A legend hides on a click on it, and comes back with its box.
    v->setLegendShown(true);
    v->plot()->replot(QCustomPlot::rpImmediateRefresh);
    const QRect legend = v->plot()->legend->outerRect();
    QVERIFY(!legend.isEmpty());
    QTest::mouseClick(v->plot(), Qt::LeftButton, Qt::NoModifier, legend.center());
    QVERIFY(!v->legendShown());
    QVERIFY(!v->legendBox()->isChecked());
    v->legendBox()->setChecked(true);
    QVERIFY(v->legendShown());
    m_window->resize(before);
    QCoreApplication::processEvents();
}

QTEST_MAIN(TestMainWindow)
#include "TestMainWindow.moc"

// Issue 10 (2): a trace whose global-heap object size was patched crashed libhdf5, and with it in the
// traces folder the window crashed at every start. Now the Runs panel lists it as unreadable, says
// why, and opening it is one error dialog; the window goes on.
void TestMainWindow::damagedTraceInFolder()
{
    QVERIFY(!m_firstTrace.isEmpty());
    const QString folder = m_dir.filePath("damaged");
    QVERIFY(QDir().mkpath(folder));
    const QString path = QDir(folder).filePath("crafted.h5");
    QVERIFY(QFile::copy(m_firstTrace, path));
    QFile::setPermissions(path, QFile::ReadOwner | QFile::WriteOwner);
    {
        // A variable-length string attribute, as older StateScope and h5py write them: in the heap.
        const hid_t f = H5Fopen(path.toLocal8Bit().constData(), H5F_ACC_RDWR, H5P_DEFAULT);
        QVERIFY(f >= 0);
        H5Adelete(f, "architecture");
        const hid_t type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, H5T_VARIABLE);
        const hid_t space = H5Screate(H5S_SCALAR);
        const hid_t a = H5Acreate2(f, "architecture", type, space, H5P_DEFAULT, H5P_DEFAULT);
        const char* value = "mamba2";
        QVERIFY(a >= 0 && H5Awrite(a, type, &value) >= 0);
        H5Aclose(a);
        H5Sclose(space);
        H5Tclose(type);
        H5Fclose(f);
    }
    QFile file(path);
    QVERIFY(file.open(QIODevice::ReadWrite));
    const QByteArray bytes = file.readAll();
    const qsizetype heap = bytes.indexOf("GCOL");
    QVERIFY(heap >= 0);
    const quint64 huge = quint64(1) << 46; // the object's size: 64 TiB
    QVERIFY(file.seek(heap + 16 + 8));
    QCOMPARE(file.write(reinterpret_cast<const char*>(&huge), 8), qint64(8));
    file.close();

    MainWindow::Options o;
    o.tracesFolder = folder;
    o.settingsFile = m_dir.filePath("settings-damaged.ini");
    MainWindow w(o);
    w.setRecordErrors(true);
    const int row = w.runsPanel()->rowOf(QFileInfo(path).absoluteFilePath());
    QVERIFY(row >= 0);
    const QTreeWidgetItem* item = w.runsPanel()->tree()->topLevelItem(row);
    QCOMPARE(item->text(2), QString("unreadable"));
    QVERIFY2(item->toolTip(0).contains("the trace is damaged: reading it crashed the HDF5 library"),
             qPrintable(item->toolTip(0)));
    QVERIFY(!w.openTrace(path));
    QCOMPARE(w.recordedErrors().size(), 1);
    QVERIFY2(w.recordedErrors()[0].contains("crafted.h5") && w.recordedErrors()[0].contains("damaged"),
             qPrintable(w.recordedErrors()[0]));
}

// Issue 10 (8): the input text and the tokenizer a trace names are not opened on their own (a
// colleague's trace may name a FIFO, /dev/zero or any file); the window says it names them and
// reads them when the user asks.
void TestMainWindow::namedFilesReadOnlyWhenAsked()
{
    QVERIFY(!m_firstTrace.isEmpty());
    const statescope::TraceReader reader(m_firstTrace.toStdString());
    statescope::TraceHeader h = reader.header();
    const int64_t n = reader.tokens();
    const QString text = m_dir.filePath("named-input.txt");
    const QString tokenizer = m_dir.filePath("named-tokenizer.json");
    QVERIFY(QFile::copy(
        QString::fromStdString(statescope::findResource("models/tiny-collapse/tokenizer.json")), tokenizer));
    statescope::ChunkProbes c;
    c.ids = reader.ids();
    c.nll = reader.nll();
    QByteArray bytes;
    for (int64_t i = 0; i < n; ++i) { // one byte a token: the byte tokenizer's ids are the bytes
        c.offsets.push_back(i);
        c.offsets.push_back(i + 1);
        bytes.append(char(c.ids[size_t(i)]));
    }
    for (const statescope::ProbeDesc& p : h.probes)
        c.values.push_back(reader.probe(p.name));
    {
        QFile f(text);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(bytes);
    }
    h.inputSource.kind = "text";
    h.inputSource.path = text.toStdString();
    h.inputSource.tokenizerPath = tokenizer.toStdString();
    h.hasOffsets = true;
    const QString path = m_dir.filePath("names-files.h5");
    {
        statescope::TraceWriter w(path.toStdString(), h);
        w.append(c);
        w.finish();
    }
    MainWindow::Options o;
    o.tracesFolder = m_dir.filePath("named");
    o.settingsFile = m_dir.filePath("settings-named.ini");
    MainWindow w(o);
    w.setRecordErrors(true);
    QVERIFY(w.openTrace(path));
    QCOMPARE(w.namedFiles(), (QStringList{text, tokenizer}));
    QVERIFY(w.readNamedFilesAction()->isEnabled());
    QVERIFY(w.trace()->text().isEmpty());
    QVERIFY(w.statusBar()->currentMessage().contains("named-input.txt"));
    QVERIFY(w.readNamedFiles());
    QCOMPARE(w.trace()->text(), bytes);
    QCOMPARE(w.trace()->tokenText(0), QString(QChar(bytes[0])));
    QVERIFY(w.namedFiles().isEmpty());
    QVERIFY(!w.readNamedFilesAction()->isEnabled());
    QVERIFY(w.recordedErrors().isEmpty());
}

// Issue 11: "Compare with original" runs the input plain, then mitigated, and overlays the two; each
// trace records its mitigation, in its settings and in its name (so in the legend). What is drawn
// follows the formula: layer 0's forget gate of the mitigated run is lambda_alpha times the
// original's.
void TestMainWindow::compareWithOriginalOverlays()
{
    QVERIFY(m_window->openModel(kTinyModel));
    m_window->modelPanel()->setChunkSize(64);
    QString text;
    for (int i = 0; i < 300; ++i)
        text += QChar('a' + (i * 7) % 26);
    m_window->setInputText(text, "test input");
    MitigationsPanel* panel = m_window->mitigationsPanel();
    QVERIFY(panel->setSpec("none"));
    QVERIFY(!m_window->compareWithOriginal()); // nothing to compare
    QVERIFY(m_window->recordedErrors().last().contains("Set a mitigation"));
    m_window->clearRecordedErrors();
    QString error;
    QVERIFY(!panel->setSpec("window=100,snapshot=30", &error));
    QVERIFY2(error.contains("divisor"), qPrintable(error));
    QVERIFY(panel->setSpec("alpha=0.9"));
    QCOMPARE(QString::fromStdString(panel->mitigation().describe()), QString("alpha=0.9"));

    QSignalSpy ended(m_window, &MainWindow::runEnded);
    QVERIFY(m_window->compareWithOriginal());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 2, 2 * kTimeoutMs);
    QVERIFY2(m_window->recordedErrors().isEmpty(), qPrintable(m_window->recordedErrors().join('\n')));
    const QString original = ended[0][0].toString(), mitigated = ended[1][0].toString();
    QVERIFY(ended[0][1].toBool() && ended[1][1].toBool());
    QVERIFY2(QFileInfo(original).fileName().startsWith("tiny-random-original-"), qPrintable(original));
    QVERIFY2(QFileInfo(mitigated).fileName().startsWith("tiny-random-alpha_0.9-"), qPrintable(mitigated));
    QCOMPARE(QString::fromStdString(TraceReader(original.toStdString()).header().runSettings)
                 .contains("\"mitigation\":\"none\""),
             true);
    QVERIFY(QString::fromStdString(TraceReader(mitigated.toStdString()).header().runSettings)
                .contains("\"mitigation\":\"alpha=0.9\""));

    // The mitigated run is the trace, the original its overlay, in every view and legend.
    QCOMPARE(m_window->trace()->filePath(), mitigated);
    QVERIFY(m_window->overlay());
    QCOMPARE(QFileInfo(m_window->overlay()->filePath()).absoluteFilePath(),
             QFileInfo(original).absoluteFilePath());
    refreshAll();
    QVERIFY(m_window->lossView()->overlayAverageGraph()->dataCount() > 0);
    QStringList legend;
    QCustomPlot* p = m_window->lossView()->plot();
    for (int i = 0; i < p->legend->itemCount(); ++i)
        if (auto* item = qobject_cast<QCPPlottableLegendItem*>(p->legend->item(i)))
            legend << item->plottable()->name();
    QVERIFY2(legend.join('|').contains("alpha_0.9") && legend.join('|').contains("original"),
             qPrintable(legend.join('|')));
    ProbeView* decay = nullptr;
    for (ProbeView* v : m_window->probeViews())
        if (v->probeName() == "decay")
            decay = v;
    QVERIFY(decay);
    decay->setLayer(0);
    m_window->plotGroup()->showAll();
    refreshAll();
    int compared = 0;
    for (qint64 t : {10, 99, 250}) {
        const double mine = graphAt(decay->summaryGraph(), t),
                     theirs = graphAt(decay->overlaySummaryGraph(), t);
        QVERIFY2(std::abs(mine - 0.9 * theirs) <= 1e-5 * theirs,
                 qPrintable(QStringLiteral("token %1: %2 vs 0.9 x %3").arg(t).arg(mine).arg(theirs)));
        ++compared;
    }
    QCOMPARE(compared, 3);

    // At a projector's size, with the panel up, the window still fits.
    const QSize before = m_window->size();
    m_window->resize(1280, 720);
    m_window->mitigationsDock()->show();
    QCoreApplication::processEvents();
    refreshAll();
    QCoreApplication::processEvents();
    QVERIFY2(m_window->width() <= 1280 && m_window->height() <= 720,
             qPrintable(QStringLiteral("%1x%2").arg(m_window->width()).arg(m_window->height())));
    QVERIFY(m_window->mitigationsPanel()->isVisible());
    // The panel fits its dock: nothing to scroll sideways.
    QWidget* viewport = m_window->mitigationsPanel()->parentWidget();
    QVERIFY2(
        m_window->mitigationsPanel()->width() <= viewport->width(),
        qPrintable(
            QStringLiteral("%1 in %2").arg(m_window->mitigationsPanel()->width()).arg(viewport->width())));
    if (qEnvironmentVariableIsSet("STATESCOPE_SCREENSHOTS")) {
        QVERIFY(m_window->grab().save(qEnvironmentVariable("STATESCOPE_SCREENSHOTS") +
                                      "/compare-mitigation.png"));
    }
    m_window->resize(before);
    m_window->mitigationsDock()->hide();
    QVERIFY(panel->setSpec("none"));
    m_window->clearOverlay();
}

// Normalisation in the window: tau from a calibration text (the tiny model has no training length);
// with renorm every token, layer 0's drawn state norm is tau at every token, the same for every token.
void TestMainWindow::mitigationsPanelRunsNormalisation()
{
    QVERIFY(m_window->openModel(kTinyModel));
    m_window->modelPanel()->setChunkSize(32);
    const QString calibration = m_dir.filePath("calibration.txt");
    {
        QFile f(calibration);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("the calibration text, some tokens long enough to give every head a state");
    }
    MitigationsPanel* panel = m_window->mitigationsPanel();
    QVERIFY(panel->setSpec("renorm"));
    // Without a calibration text nor a training length the run says what it needs.
    panel->setCalibrationFile(QString());
    m_window->setInputText("abcdefghijklmnopqrstuvwxyz abcdefghijklmnopqrstuvwxyz", "test input");
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QVERIFY(!m_window->recordedErrors().isEmpty());
    QVERIFY2(m_window->recordedErrors().last().contains("calibration"),
             qPrintable(m_window->recordedErrors().last()));
    m_window->clearRecordedErrors();

    panel->setCalibrationFile(calibration);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 2, kTimeoutMs);
    QVERIFY2(m_window->recordedErrors().isEmpty(), qPrintable(m_window->recordedErrors().join('\n')));
    const std::string settings = TraceReader(ended[1][0].toString().toStdString()).header().runSettings;
    QVERIFY2(QString::fromStdString(settings).contains("calibration.txt"), settings.c_str());
    ProbeView* norm = nullptr;
    for (ProbeView* v : m_window->probeViews())
        if (v->probeName() == "state_norm")
            norm = v;
    QVERIFY(norm);
    norm->setLayer(0);
    m_window->plotGroup()->showAll();
    refreshAll();
    QVERIFY(!norm->unitGraphs().isEmpty());
    QCPGraph* unit = norm->unitGraphs()[0];
    QVERIFY(unit && unit->dataCount() > 10);
    const double first = graphAt(unit, 5);
    QVERIFY(first > 0);
    for (qint64 t : {6, 20, 40})
        QVERIFY2(std::abs(graphAt(unit, t) - first) <= 1e-4 * first,
                 qPrintable(QStringLiteral("%1 vs %2").arg(graphAt(unit, t)).arg(first)));
    QVERIFY(panel->setSpec("none"));
    panel->setCalibrationFile(QString());
}

// Issue 11: the passkey sweep in the window. It fills the heatmap with the accuracy of each (length,
// depth) cell (checked against the results, counted here), draws the last-k curves with the
// training length marked, resumes from its file, cancels without harm, and a click on a cell runs
// that sample with its needle marked and its truth and prediction said.
void TestMainWindow::passkeySweepInTheWindow()
{
    const QString model = QStringLiteral(STATESCOPE_RESOURCES_DIR "/models/tiny-forget");
    QVERIFY(m_window->openModel(model));
    m_window->modelPanel()->setChunkSize(0);
    PasskeyDialog* d = m_window->passkeyDialog();
    d->show();
    const QString path = m_dir.filePath("pk-window.h5");
    QFile::remove(path);
    d->setResultsPath(path);
    d->setLengths("256:512:256");
    d->setSamples(4);
    d->setSeed(3);
    QSignalSpy ended(d, &PasskeyDialog::sweepEnded);
    QVERIFY(d->start());
    QVERIFY(!d->start()); // one at a time
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, 2 * kTimeoutMs);
    QVERIFY2(ended[0][0].toBool(), qPrintable(d->statusText()));
    QCOMPARE(d->results().size(), size_t(8));
    QVERIFY(QFileInfo::exists(path));
    QVERIFY2(d->statusText().startsWith("Done"), qPrintable(d->statusText()));

    PasskeyView* v = d->view();
    const PasskeyViewData& data = v->data();
    QCOMPARE(data.lengths, QVector<qint64>({256, 512}));
    QCOMPARE(data.bins, 4);
    int cells = 0;
    for (int c = 0; c < 2; ++c)
        for (int b = 0; b < 4; ++b) {
            double hits = 0, n = 0;
            for (const PasskeyResult& r : d->results())
                if (r.length == data.lengths[c] && static_cast<int>(r.depth * 4) == b) {
                    hits += r.correct;
                    ++n;
                }
            QCOMPARE(n, 1.0);
            QCOMPARE(v->heatmap()->data()->cell(c, b), hits / n);
            ++cells;
        }
    QCOMPARE(cells, 8);
    // k in [512 / 16, 512 / 2]: 32, 64, 128, 256; T_train (4096, the card's) marked.
    QCOMPARE(v->lastKGraphs().size(), 4);
    QVERIFY(v->trainingLine()->visible());
    QCOMPARE(v->trainingLine()->point1->coords().x(), 4096.0);
    QCOMPARE(v->heatmap()->colorScale()->gradient().color(0, QCPRange(0, 1)), QColor(0xa5, 0x00, 0x26).rgb());

    // Again: everything comes from the file.
    QVERIFY(d->start());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 2, kTimeoutMs);
    QVERIFY(ended[1][0].toBool());
    QCOMPARE(d->results().size(), size_t(8));

    // A click on a cell runs its sample in the window, the needle marked, truth and prediction said.
    QSignalSpy runs(m_window, &MainWindow::runEnded);
    v->plot()->replot();
    QCoreApplication::processEvents();
    const QPointF at = v->cellCenter(1, 2);
    int c = -1, b = -1;
    QVERIFY(v->cellAt(at, &c, &b));
    QCOMPARE(c, 1);
    QCOMPARE(b, 2);
    QTest::mouseClick(v->plot(), Qt::LeftButton, Qt::NoModifier, at.toPoint());
    QTRY_COMPARE_WITH_TIMEOUT(runs.count(), 1, kTimeoutMs);
    QVERIFY2(m_window->recordedErrors().isEmpty(), qPrintable(m_window->recordedErrors().join('\n')));
    const PasskeyResult* sample = nullptr;
    for (const PasskeyResult& r : d->results())
        if (r.length == 512 && static_cast<int>(r.depth * 4) == 2)
            sample = &r;
    QVERIFY(sample);
    const QString message = m_window->statusBar()->currentMessage();
    QVERIFY2(message.contains(QStringLiteral("truth %1").arg(QString::fromStdString(sample->passkey))),
             qPrintable(message));
    QVERIFY2(message.contains("predicted"), qPrintable(message));
    QVERIFY(m_window->plotGroup()->needle().has_value());
    QString inBand;
    for (qint64 i = m_window->plotGroup()->needle()->first; i <= m_window->plotGroup()->needle()->second; ++i)
        inBand += m_window->trace()->tokenText(i);
    QVERIFY2(inBand.contains(QString::fromStdString(sample->passkey)), qPrintable(inBand));
    QCOMPARE(m_window->trace()->tokens(), sample->promptTokens);

    // Cancelled: the dialog lives on, the file keeps what finished, Start resumes.
    const QString longer = m_dir.filePath("pk-cancel.h5");
    d->setResultsPath(longer);
    d->setLengths("256:8K:256");
    QVERIFY(d->start());
    d->cancel();
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 3, kTimeoutMs);
    QVERIFY(!ended[2][0].toBool());
    QVERIFY2(d->statusText().startsWith("Cancelled"), qPrintable(d->statusText()));
    QVERIFY(!d->isRunning());
    QVERIFY(d->results().size() < size_t(32 * 4));
    if (qEnvironmentVariableIsSet("STATESCOPE_SCREENSHOTS")) {
        d->setResultsPath(path);
        d->setLengths("256:512:256");
        QVERIFY(d->start());
        QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 4, kTimeoutMs);
        QCoreApplication::processEvents();
        QVERIFY(d->grab().save(qEnvironmentVariable("STATESCOPE_SCREENSHOTS") + "/passkey-dialog.png"));
    }
    d->hide();
}

// A sweep run elsewhere (on a GPU machine, say) opened in the dialog: its own lengths, samples and
// seed, the heatmap from its results, T_train from its model's card, T_recall said, a cell's sample
// runnable; a file that is not one gives one error naming it and leaves what was shown.
void TestMainWindow::passkeyResultsOpened()
{
    const std::string model = STATESCOPE_RESOURCES_DIR "/models/tiny-passkey";
    PasskeySettings s;
    s.model = model;
    s.tokenizer = model + "/tokenizer.json";
    s.lengths = {512, 4096};
    s.samples = 4;
    s.seed = 7;
    s.maxNewTokens = 6;
    std::vector<PasskeyResult> results;
    for (int64_t length : s.lengths)
        for (int64_t i = 0; i < 4; ++i) {
            PasskeyResult r;
            r.length = length;
            r.index = i;
            r.depth = (i + 0.5) / 4;
            r.passkey = passkeyFor(s.seed, length, i);
            r.correct = length == 512 || i >= 2; // early needles lost at 4096
            r.prediction = r.correct ? " " + r.passkey : " 00000";
            r.promptTokens = length - 40;
            results.push_back(r);
        }
    const QString path = m_dir.filePath("pk-elsewhere.h5");
    writePasskeyFile(path.toStdString(), s, results);
    QVERIFY(m_window->openModel(QString::fromStdString(model)));

    QVERIFY(m_window->openPasskeyResults(path));
    PasskeyDialog* d = m_window->passkeyDialog();
    QVERIFY(d->isVisible());
    QCOMPARE(d->results().size(), size_t(8));
    PasskeyView* v = d->view();
    QCOMPARE(v->data().lengths, QVector<qint64>({512, 4096}));
    QCOMPARE(v->data().bins, 4);
    for (int b = 0; b < 4; ++b) {
        QCOMPARE(v->heatmap()->data()->cell(0, b), 1.0);
        QCOMPARE(v->heatmap()->data()->cell(1, b), b >= 2 ? 1.0 : 0.0);
    }
    QVERIFY(v->trainingLine()->visible());
    QCOMPARE(v->trainingLine()->point1->coords().x(), 1024.0); // tiny-passkey's card
    QVERIFY2(d->statusText().contains(QStringLiteral("T_recall (≥ 95% mean accuracy) 512 tokens")),
             qPrintable(d->statusText()));
    QVERIFY2(d->statusText().contains("seed 7"), qPrintable(d->statusText()));
    QCOMPARE(d->resultsPath(), path);
    // Dropped on the window (or named on the command line), it opens the same way.
    d->hide();
    QVERIFY(m_window->openDroppedPath(path));
    QVERIFY(d->isVisible());
    QCOMPARE(d->results().size(), size_t(8));

    // Its samples are the file's: a click on a lost one runs that prompt with its key.
    QSignalSpy runs(m_window, &MainWindow::runEnded);
    v->plot()->replot();
    QCoreApplication::processEvents();
    QTest::mouseClick(v->plot(), Qt::LeftButton, Qt::NoModifier, v->cellCenter(1, 0).toPoint());
    QTRY_COMPARE_WITH_TIMEOUT(runs.count(), 1, kTimeoutMs);
    const QString message = m_window->statusBar()->currentMessage();
    QVERIFY2(message.contains(QStringLiteral("truth %1").arg(QString::fromStdString(passkeyFor(7, 4096, 0)))),
             qPrintable(message));
    QVERIFY2(message.contains("wrong"), qPrintable(message));

    // Not a passkey file: one error naming it; the dialog and its sweep stay.
    m_window->clearRecordedErrors();
    const QString bad = m_dir.filePath("not-passkey.h5");
    QFile f(bad);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("not HDF5");
    f.close();
    QVERIFY(!m_window->openPasskeyResults(bad));
    QCOMPARE(m_window->recordedErrors().size(), 1);
    QVERIFY2(m_window->recordedErrors()[0].contains("not-passkey.h5"),
             qPrintable(m_window->recordedErrors()[0]));
    QCOMPARE(d->results().size(), size_t(8));
    QVERIFY(d->isVisible());
    m_window->clearRecordedErrors();
    d->hide();
}

// Issue 11: the old-context probes from the Mitigations panel: the run's trace lists them, a probe
// view draws them, and the next run without them goes back to the three probes.
void TestMainWindow::oldContextProbesInTheWindow()
{
    QVERIFY(m_window->openModel(kTinyModel));
    m_window->modelPanel()->setChunkSize(64);
    m_window->mitigationsPanel()->setOldContext(32);
    QString text;
    for (int i = 0; i < 200; ++i)
        text += QChar('a' + (i * 5) % 26);
    QSignalSpy ended(m_window, &MainWindow::runEnded);
    m_window->setInputText(text, "test input");
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 1, kTimeoutMs);
    QVERIFY2(m_window->recordedErrors().isEmpty(), qPrintable(m_window->recordedErrors().join('\n')));
    const TraceReader reader(ended[0][0].toString().toStdString());
    QStringList names;
    for (const ProbeDesc& d : reader.header().probes)
        names << QString::fromStdString(d.name);
    QCOMPARE(names, QStringList({"dt", "decay", "state_norm", "retention", "old_share", "old_readout_share",
                                 "insertion", "b_norm", "conv_rms", "state_max_abs"}));
    QVERIFY(QString::fromStdString(reader.header().runSettings).contains("\"old_context\":32"));
    ProbeView* v = m_window->probeViews().first();
    v->setProbe("old_share");
    QCOMPARE(v->probeName(), QString("old_share"));
    m_window->plotGroup()->showAll();
    refreshAll();
    // Before 32 tokens nothing is old; later some head keeps a share of it, as the file says.
    const std::vector<float> share = reader.probe("old_share", 0, 200);
    const int units = m_window->trace()->layers() * m_window->trace()->units();
    QCOMPARE(share[size_t(10 * units)], 0.0f);
    QVERIFY(*std::max_element(share.begin(), share.end()) > 0);
    QVERIFY(v->summaryGraph()->dataCount() > 0);
    QVERIFY(std::isfinite(graphAt(v->summaryGraph(), 150)));

    m_window->mitigationsPanel()->setOldContext(0);
    QVERIFY(m_window->startRun());
    QTRY_COMPARE_WITH_TIMEOUT(ended.count(), 2, kTimeoutMs);
    QCOMPARE(TraceReader(ended[1][0].toString().toStdString()).header().probes.size(), size_t(3));
}
