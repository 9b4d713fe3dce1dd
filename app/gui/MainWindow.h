#pragma once

#include "PlotExporter.h"
#include "RunController.h"

#include <QHash>
#include <QMainWindow>
#include <QPointer>
#include <QStringList>
#include <QVector>

#include <memory>

class QAction;
class QDockWidget;
class QCheckBox;
class QLabel;
class QLineEdit;
class QSpinBox;
class QProgressBar;
class QSettings;
class QScrollArea;
class QSplitter;
class QTimer;

namespace statescope {

class InputPanel;
class LossView;
class ModelPanel;
class PlotGroup;
class ProbeView;
class RunsPanel;
class MitigationsPanel;
class PasskeyDialog;
class SweepDialog;
class TokenStrip;
class TraceData;
class TraceView;

// The window: a model, an input and a run on the left; the plots of the trace, on one token axis, in
// the middle; the saved runs below. Everything the menus do is also a public function, so that
// main() and the tests can drive the window without dialogs.
class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    struct Options {
        QString tracesFolder; // empty: the per-user data folder (AppDataLocation/traces)
        QString settingsFile; // empty: the platform's QSettings for StateScope; else an INI file
    };

    explicit MainWindow(const Options& options = Options(), QWidget* parent = nullptr);
    ~MainWindow() override;

    // Each returns false after showing an error.
    bool openModel(const QString& dir);
    bool openText(const QString& path);
    void setInputText(const QString& text, const QString& description);
    // The input from a generator spec: "newlines:N", "capitals:N", "passkey:BLOCKS[:DEPTH[:SEED]]".
    bool setInputPrompt(const QString& spec);
    bool openTrace(const QString& path);
    // The files the current trace names that the window has not read (its input text, a tokenizer
    // outside the built-in ones), and reading them: only ever when the user asks.
    QStringList namedFiles() const;
    bool readNamedFiles();
    QAction* readNamedFilesAction() const { return m_readNamedFiles; }
    bool overlayTrace(const QString& path);
    void clearOverlay();
    bool loadDemo();
    // A model folder, a .txt input or a .h5 trace, as if dropped on the window.
    bool openDroppedPath(const QString& path);

    bool startRun();
    // Runs the input without the Mitigations panel's settings, then with them, and overlays the
    // original on the mitigated run. false if a run is going or no mitigation is set.
    bool compareWithOriginal();
    void pauseOrResume();
    void cancelRun();

    // Writes <folder>/<baseName>-<view>.<suffix> for each view (viewNames()) and format; the paths in
    // *written. false (after showing the error) at the first failure.
    bool exportViews(const QString& folder, const QString& baseName, const QList<ExportFormat>& formats,
                     const ExportStyle& style, QStringList* written = nullptr);

    void setDarkTheme(bool dark);
    bool darkTheme() const { return m_dark; }

    // Help ▸ What am I looking at?: what each plot shows, and the window's keyboard shortcuts (read
    // from its actions when shown). A window of its own, not modal, so that it can stay open beside
    // the plots; the same one again on each call.
    void showGuide();
    QWidget* guideWindow() const { return m_guideDialog; }

    // Every error the user sees goes through here: a modal box, or, once recordErrors(true), a list
    // (tests read it instead of having to close a dialog).
    void showError(const QString& message);
    void setRecordErrors(bool record) { m_recordErrors = record; }
    QStringList recordedErrors() const { return m_errors; }
    void clearRecordedErrors() { m_errors.clear(); }

    void saveSettings();

    // Parts, for tests and main().
    RunController* runController() const { return m_controller; }
    TraceData* trace() const { return m_trace; }
    // The traces drawn over the main one: those checked in the run table (overlayTrace() checks one),
    // in the order they were checked; overlay() is the first.
    TraceData* overlay() const;
    QList<TraceData*> overlays() const;
    PlotGroup* plotGroup() const { return m_group; }
    LossView* lossView() const { return m_loss; }
    // The views of probes, top to bottom; by default one for decay and one for state_norm.
    const QList<ProbeView*>& probeViews() const { return m_probeViews; }
    // The view showing that probe, or nullptr.
    ProbeView* probeView(const QString& probe) const;
    // A view for probe, or (empty) for the first probe of the trace that no view shows.
    ProbeView* addProbeView(const QString& probe = QString());
    void removeProbeView(ProbeView* view);
    // As many probe views as probes, each asking for its probe (a trace without it gets one of its
    // own probes that no view asks for).
    void setProbeViews(const QStringList& probes);
    // The probes the views ask for, in order.
    QStringList probeViewNames() const;
    static QStringList defaultProbeViews();
    // Whether the probe views show one layer together ("link layers" in each view; on by default).
    void setLinkLayers(bool linked);
    bool linkLayers() const { return m_linkLayers; }
    // Names of views() in exported files: "loss", then each probe view's probe.
    QStringList viewNames() const;
    TokenStrip* tokenStrip() const { return m_strip; }
    ModelPanel* modelPanel() const { return m_modelPanel; }
    InputPanel* inputPanel() const { return m_inputPanel; }
    RunsPanel* runsPanel() const { return m_runsPanel; }
    MitigationsPanel* mitigationsPanel() const { return m_mitigationsPanel; }
    QDockWidget* mitigationsDock() const { return m_mitigationsDock; }
    // The passkey sweep's window, made on first use, with the model and options of the panels.
    PasskeyDialog* passkeyDialog();
    // The passkey dialog, shown, with the results file `path` in it (PasskeyDialog::openResults).
    bool openPasskeyResults(const QString& path);
    // The sweep results' window (statescope-cli sweep report), made on first use, shown with the
    // summary.json at `path` in it.
    SweepDialog* sweepDialog();
    bool openSweepSummary(const QString& path);
    QList<TraceView*> views() const;
    QScrollArea* plotScroll() const { return m_plotScroll; }
    QString tracesFolder() const { return m_tracesFolder; }
    // Plot refreshes per second during the last (or current) run, chunks received, and memory.
    QString statsSummary() const;
    // Pans and zooms the trace shown in three scripted phases (pan, zoom, full-resolution pan) and
    // returns the frame times of each and the memory: the interactive numbers, reproducibly.
    QString benchmarkInteraction();
    // Figures for a paper or the docs, without the dialog: each view as <prefix>-<view>.png and .svg
    // (viewNames()), over the whole trace, in style: by default the one-column paper preset (a log
    // token axis and the averaged NLL, whatever the window shows). false after showing the error.
    bool exportFigures(const QString& prefix);
    bool exportFigures(const QString& prefix, const ExportStyle& style);
    // Puts the cursor on the next token (after the cursor, wrapping) whose text holds `text`
    // (ASCII letters in any case), centring the plots on it; the previous one if backwards. False,
    // with a note in the status bar, if no token does.
    bool findText(const QString& text, bool backwards = false);
    // Centres the plots on the token (0-based) and puts the cursor there.
    void goToToken(qint64 token);
    QLineEdit* findField() const { return m_findField; }
    QSpinBox* tokenField() const { return m_tokenField; }
    // How often a trace still being written is polled for new tokens.
    static constexpr int kFollowIntervalMs = 500;

signals:
    // After every run, whether it finished, was cancelled or failed (then tracePath may be empty).
    void runEnded(const QString& tracePath, bool completed);
    void errorShown(const QString& message);

protected:
    void closeEvent(QCloseEvent* event) override;
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    bool startRunWith(const Mitigation& mitigation, const QString& nameTag);
    void buildActions();
    void buildMenus();
    void buildDocks();
    void buildStatusBar();
    void restoreSettings();
    void installTrace(TraceData* trace);
    void assignProbes();
    bool loadTraceFile(const QString& path, TraceData* into);
    void setDecoder(TraceData* data, const QString& tokenizer); // throws statescope::Error
    TraceData* loadOverlay(const QString& path);
    // Loads and drops overlays to match the run table's checked runs, then draws them.
    void syncCompared();
    void applyOverlays();
    void updateActions();
    void updateMemory();
    void onRunStarted(const RunStart& start);
    void onChunk(const ChunkProbes& chunk);
    void onProgress(qint64 done, qint64 total, double rate, double secondsLeft);
    void onRunFinished(const QString& path, bool completed);
    void onRunFailed(const QString& message);
    void onTrainingLengthChanged(qint64 tokens);
    void updateRateLabel();
    void chooseModel();
    void chooseTrace();
    void chooseOverlay();
    void showExportDialog();
    void showAbout();
    QString guideHtml() const;
    void updateMediaIcons();
    void placeNeedle();
    // Appends what the writer of a growing trace file (the CLI, still running) added since.
    void pollGrowingTrace();

    Options m_options;
    std::unique_ptr<QSettings> m_settings;
    QString m_tracesFolder;
    RunController* m_controller;
    TraceData* m_trace = nullptr;
    QHash<QString, TraceData*> m_overlays; // by absolute path, as the run table knows them
    PlotGroup* m_group = nullptr;
    LossView* m_loss = nullptr;
    QList<ProbeView*> m_probeViews;
    QHash<ProbeView*, QString> m_wantedProbes; // what each view asks for (it shows another if absent)
    TokenStrip* m_strip = nullptr;
    QSplitter* m_splitter = nullptr;
    QScrollArea* m_plotScroll = nullptr;
    ModelPanel* m_modelPanel = nullptr;
    InputPanel* m_inputPanel = nullptr;
    RunsPanel* m_runsPanel = nullptr;
    MitigationsPanel* m_mitigationsPanel = nullptr;
    QDockWidget* m_mitigationsDock = nullptr;
    bool m_mitigationsDockSized = false;
    // "Compare with original": the original run goes first, then the mitigated one over it.
    enum class CompareStage { None, Original, Mitigated };
    CompareStage m_compareStage = CompareStage::None;
    QString m_compareOriginal; // the original run's trace

    QAction* m_openModel = nullptr;
    QAction* m_compare = nullptr;
    QAction* m_passkey = nullptr;
    PasskeyDialog* m_passkeyDialog = nullptr;
    SweepDialog* m_sweepDialog = nullptr;
    QAction* m_openSweep = nullptr;
    QAction* m_openText = nullptr;
    QAction* m_openTrace = nullptr;
    QAction* m_overlayTrace = nullptr;
    QAction* m_clearOverlay = nullptr;
    QAction* m_readNamedFiles = nullptr;
    QString m_namedFilesRead; // the trace whose named files the user had read
    QAction* m_export = nullptr;
    QAction* m_quit = nullptr;
    QAction* m_run = nullptr;
    QAction* m_pause = nullptr;
    QAction* m_cancel = nullptr;
    QAction* m_logX = nullptr;
    QAction* m_showAll = nullptr;
    QAction* m_follow = nullptr;
    QAction* m_addProbeView = nullptr;
    QAction* m_darkAction = nullptr;
    QAction* m_about = nullptr;
    QAction* m_guide = nullptr;
    QPointer<QWidget> m_guideDialog;

    QProgressBar* m_progress = nullptr;
    QLabel* m_rateLabel = nullptr;
    QLabel* m_memoryLabel = nullptr;
    QLabel* m_traceLabel = nullptr;
    QTimer* m_memoryTimer = nullptr;
    QTimer* m_followTimer = nullptr; // polls a trace file that is still being written
    QLineEdit* m_findField = nullptr;
    QSpinBox* m_tokenField = nullptr;
    // The text find() searches, lower-cased, with the byte where each token starts (for traces
    // without their input text: the tokens' own text), rebuilt when the trace changes or grows.
    QByteArray m_findText;
    QVector<qint64> m_findStarts;
    const TraceData* m_findTrace = nullptr;
    qint64 m_findTokens = -1;

    bool m_dark = false;
    bool m_linkLayers = true;
    bool m_recordErrors = false;
    QStringList m_errors;

    // Statistics of the last run.
    qint64 m_runStartMs = 0;
    qint64 m_runEndMs = 0;
    qint64 m_refreshesAtStart = 0;
    qint64 m_refreshesAtEnd = 0;
    qint64 m_chunks = 0;
    qint64 m_runTokens = 0;
    qint64 m_peakTraceBytes = 0;
    qint64 m_progressDone = 0; // of the last progress report
    qint64 m_progressTotal = 0;

    // The needle of a passkey input, bytes [begin, end) of the run's text: the input panel's at
    // startRun() (pending), marked by onRunStarted() only if the run reads that text. -1: none.
    qint64 m_pendingNeedleBegin = -1, m_pendingNeedleEnd = -1;
    QString m_pendingNeedleKey;
    qint64 m_needleBegin = -1, m_needleEnd = -1;
    bool m_needlePlaced = false; // the run's tokens have reached the needle's end
};

} // namespace statescope
