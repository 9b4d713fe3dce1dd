#include "MainWindow.h"

#include "Error.h"
#include "runtime/CudaInfo.h"

#include "ExportDialog.h"
#include "InputPanel.h"
#include "LossView.h"
#include "MitigationsPanel.h"
#include "ModelPanel.h"
#include "PasskeyDialog.h"
#include "PlotExporter.h"
#include "PlotGroup.h"
#include "ProbeView.h"
#include "Resources.h"
#include "RunsPanel.h"
#include "SweepDialog.h"
#include "TokenStrip.h"
#include "TraceData.h"
#include "tokenizers/Tokenizer.h"
#include "trace/TraceFile.h"
#include "util/Resources.h"
#include "util/Utf8.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDateTime>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QElapsedTimer>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QPainter>
#include <QPointer>
#include <QProgressBar>
#include <QProgressDialog>
#include <QRegularExpression>
#include <QScrollArea>
#include <QSettings>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QSplitter>
#include <QStatusBar>
#include <QStyle>
#include <QStyleFactory>
#include <QTextBrowser>
#include <QTimer>
#include <QToolBar>
#include <QVBoxLayout>

#include <algorithm>
#include <climits>
#include <cmath>

namespace statescope {

namespace {

QPalette darkPalette()
{
    QPalette p;
    const QColor window(45, 45, 48), base(30, 30, 32), text(220, 220, 220), disabled(120, 120, 120);
    p.setColor(QPalette::Window, window);
    p.setColor(QPalette::WindowText, text);
    p.setColor(QPalette::Base, base);
    p.setColor(QPalette::AlternateBase, window);
    p.setColor(QPalette::ToolTipBase, QColor(60, 60, 64));
    p.setColor(QPalette::ToolTipText, text);
    p.setColor(QPalette::PlaceholderText, disabled);
    p.setColor(QPalette::Text, text);
    p.setColor(QPalette::Button, window);
    p.setColor(QPalette::ButtonText, text);
    p.setColor(QPalette::BrightText, Qt::red);
    p.setColor(QPalette::Link, QColor(100, 160, 255));
    p.setColor(QPalette::Highlight, QColor(60, 120, 200));
    p.setColor(QPalette::HighlightedText, Qt::white);
    for (auto role : {QPalette::WindowText, QPalette::Text, QPalette::ButtonText})
        p.setColor(QPalette::Disabled, role, disabled);
    return p;
}

enum class Media { Play, Pause, Stop };

// The run buttons, drawn in the palette's text colour: the style's media icons are dark grey on any
// background, which all but disappears in the dark theme.
QIcon mediaIcon(Media kind, const QPalette& palette)
{
    const QColor text = palette.color(QPalette::Active, QPalette::ButtonText);
    const QColor window = palette.color(QPalette::Active, QPalette::Window);
    // Disabled (Pause and Stop while idle) is dimmer, but must still read against the window.
    const double k = 0.55;
    const QColor dim = QColor::fromRgbF(float(window.redF() + k * (text.redF() - window.redF())),
                                        float(window.greenF() + k * (text.greenF() - window.greenF())),
                                        float(window.blueF() + k * (text.blueF() - window.blueF())));
    QIcon icon;
    for (int size : {16, 22, 24, 32, 48, 64})
        for (auto [mode, color] : {std::pair{QIcon::Normal, text}, std::pair{QIcon::Disabled, dim}}) {
            QPixmap pm(size, size);
            pm.fill(Qt::transparent);
            QPainter p(&pm);
            p.setRenderHint(QPainter::Antialiasing);
            p.setPen(Qt::NoPen);
            p.setBrush(color);
            const double s = size;
            switch (kind) {
            case Media::Play:
                p.drawPolygon(QPolygonF{QPointF(0.24 * s, 0.16 * s), QPointF(0.24 * s, 0.84 * s),
                                        QPointF(0.84 * s, 0.5 * s)});
                break;
            case Media::Pause:
                p.drawRect(QRectF(0.2 * s, 0.18 * s, 0.22 * s, 0.64 * s));
                p.drawRect(QRectF(0.58 * s, 0.18 * s, 0.22 * s, 0.64 * s));
                break;
            case Media::Stop:
                p.drawRect(QRectF(0.2 * s, 0.2 * s, 0.6 * s, 0.6 * s));
                break;
            }
            p.end();
            icon.addPixmap(pm, mode);
        }
    return icon;
}

QString suffixOf(ExportFormat f)
{
    switch (f) {
    case ExportFormat::Png:
        return "png";
    case ExportFormat::Svg:
        return "svg";
    case ExportFormat::Pdf:
        return "pdf";
    case ExportFormat::Csv:
        return "csv";
    }
    return {};
}

// The tokenizer a saved trace was made with, to show its tokens' text without the input: the one its
// header names if that is a built-in one (a path inside a trace is opened on its own nowhere else:
// File > Read the files this trace names), else the built-in one for a vocabulary of its size
// (models pad their output layer to a multiple of up to 128 rows).
QString tokenizerForTrace(const TraceHeaderInfo& header)
{
    if (!header.tokenizerPath.isEmpty() && isBuiltinResource(header.tokenizerPath.toStdString()))
        return header.tokenizerPath;
    if (header.vocabSize <= 0)
        return {};
    try {
        const QString builtIn = QString::fromStdString(builtinTokenizerPath());
        const qint64 n = cachedTokenizer(builtIn)->vocabSize();
        if (header.vocabSize >= n && header.vocabSize < n + 128)
            return builtIn;
    } catch (const std::exception&) {
    }
    return {};
}

} // namespace

MainWindow::MainWindow(const Options& options, QWidget* parent)
    : QMainWindow(parent), m_options(options), m_controller(new RunController(this))
{
    setObjectName("mainWindow");
    setWindowTitle("StateScope");
    setAcceptDrops(true);
    m_settings = options.settingsFile.isEmpty()
                     ? std::make_unique<QSettings>()
                     : std::make_unique<QSettings>(options.settingsFile, QSettings::IniFormat);
    // The free function: the member tracesFolder() would return the empty folder being set here.
    m_tracesFolder = options.tracesFolder.isEmpty() ? statescope::tracesFolder() : options.tracesFolder;
    QDir().mkpath(m_tracesFolder);

    // Plots: one token axis shared by all of them.
    m_group = new PlotGroup(this);
    m_loss = new LossView(this);
    m_strip = new TokenStrip(this);
    m_loss->setObjectName("lossView");
    m_strip->setObjectName("tokenStrip");
    m_group->addView(m_loss);
    m_strip->setGroup(m_group);
    m_splitter = new QSplitter(Qt::Vertical, this);
    m_splitter->setObjectName("plotSplitter");
    m_splitter->setChildrenCollapsible(false);
    m_splitter->addWidget(m_loss);
    m_splitter->addWidget(m_strip);
    setProbeViews(defaultProbeViews());
    m_splitter->setSizes({300, 340, 340, 110});
    // On a small screen (a projector at 1280x720, a laptop at 1024x700) the plots keep a readable
    // height and scroll, rather than being squeezed or cut off.
    m_plotScroll = new QScrollArea(this);
    m_plotScroll->setObjectName("plotScroll");
    m_plotScroll->setWidgetResizable(true);
    m_plotScroll->setFrameShape(QFrame::NoFrame);
    m_plotScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_plotScroll->setWidget(m_splitter);
    setCentralWidget(m_plotScroll);

    installTrace(new TraceData(this));

    connect(m_controller, &RunController::runStarted, this, &MainWindow::onRunStarted);
    connect(m_controller, &RunController::chunkReady, this, &MainWindow::onChunk);
    connect(m_controller, &RunController::progress, this, &MainWindow::onProgress);
    connect(m_controller, &RunController::finished, this, &MainWindow::onRunFinished);
    connect(m_controller, &RunController::failed, this, &MainWindow::onRunFailed);
    connect(m_controller, &RunController::stateChanged, this, &MainWindow::updateActions);

    buildActions();
    buildDocks();
    buildMenus();
    buildStatusBar();
    restoreSettings();
    updateActions();
}

MainWindow::~MainWindow() = default;

QList<TraceView*> MainWindow::views() const
{
    QList<TraceView*> out{m_loss};
    for (ProbeView* v : m_probeViews)
        out.push_back(v);
    return out;
}

QStringList MainWindow::defaultProbeViews()
{
    return {QString::fromLatin1(kDecayProbe), QString::fromLatin1(kStateNormProbe)};
}

QStringList MainWindow::probeViewNames() const
{
    QStringList out;
    for (ProbeView* v : m_probeViews)
        out.push_back(m_wantedProbes.value(v, v->probeName()));
    return out;
}

ProbeView* MainWindow::probeView(const QString& probe) const
{
    for (ProbeView* v : m_probeViews)
        if (v->probeName() == probe)
            return v;
    return nullptr;
}

ProbeView* MainWindow::addProbeView(const QString& probe)
{
    QString name = probe;
    if (name.isEmpty() && m_trace) {
        // The first probe no view shows yet.
        const QStringList shown = probeViewNames();
        for (int p : m_trace->seriesProbes()) {
            const QString n = QString::fromStdString(m_trace->probe(p)->name);
            if (!shown.contains(n)) {
                name = n;
                break;
            }
        }
    }
    auto* v = new ProbeView(name, this);
    v->setObjectName(QStringLiteral("probeView%1").arg(m_probeViews.size()));
    m_probeViews.push_back(v);
    m_wantedProbes.insert(v, name);
    // The views the window starts with stay; the ones added can go.
    v->setClosable(m_probeViews.size() > defaultProbeViews().size());
    m_splitter->insertWidget(m_splitter->indexOf(m_strip), v);
    m_group->addView(v);
    v->setDarkTheme(m_dark);
    v->setTrace(m_trace);
    v->setOverlays(overlays());
    // The views' layers move together only while "link layers" (in every view, one setting) says so.
    v->setLayerLinkVisible(true);
    v->setLayersLinked(m_linkLayers);
    if (m_linkLayers && !m_probeViews.isEmpty() && m_probeViews.front() != v)
        v->setLayer(m_probeViews.front()->layer());
    connect(v, &ProbeView::layerLinkToggled, this, [this, v](bool on) {
        setLinkLayers(on);
        if (on)
            for (ProbeView* other : m_probeViews)
                if (other != v)
                    other->setLayer(v->layer());
    });
    connect(v, &ProbeView::layerChanged, this, [this, v](int l) {
        if (m_linkLayers)
            for (ProbeView* other : m_probeViews)
                if (other != v)
                    other->setLayer(l);
        m_strip->setLayer(l);
    });
    connect(v, &ProbeView::probePicked, this, [this, v](const QString& n) { m_wantedProbes.insert(v, n); });
    connect(v, &ProbeView::closeRequested, this, [this, v] {
        // After the click that asked for it has returned.
        QTimer::singleShot(0, this, [this, v] { removeProbeView(v); });
    });
    return v;
}

void MainWindow::setLinkLayers(bool linked)
{
    m_linkLayers = linked;
    for (ProbeView* v : m_probeViews)
        v->setLayersLinked(linked);
}

void MainWindow::removeProbeView(ProbeView* view)
{
    if (!m_probeViews.removeOne(view))
        return;
    m_wantedProbes.remove(view);
    m_group->removePlot(view->plot());
    delete view;
}

void MainWindow::setProbeViews(const QStringList& probes)
{
    while (m_probeViews.size() > probes.size())
        removeProbeView(m_probeViews.back());
    for (int i = 0; i < probes.size(); ++i) {
        if (i < m_probeViews.size()) {
            m_wantedProbes.insert(m_probeViews[i], probes[i]);
            m_probeViews[i]->setProbe(probes[i]);
        } else {
            addProbeView(probes[i]);
        }
    }
    assignProbes();
}

void MainWindow::assignProbes()
{
    // Each view shows the probe it was given (or the user picked) when the trace has it; the others
    // show probes of this trace that no view asks for, so that a trace of another architecture still
    // fills the views.
    TraceData* t = m_trace;
    if (!t)
        return;
    const QStringList wanted = probeViewNames();
    QStringList taken;
    QList<ProbeView*> rest;
    for (ProbeView* v : m_probeViews) {
        const QString w = m_wantedProbes.value(v);
        if (t->hasSeries(w) && !taken.contains(w)) {
            v->setProbe(w);
            taken.push_back(w);
        } else {
            rest.push_back(v);
        }
    }
    for (ProbeView* v : rest) {
        QString pick = m_wantedProbes.value(v);
        for (int p : t->seriesProbes()) {
            const QString n = QString::fromStdString(t->probe(p)->name);
            if (!taken.contains(n) && !wanted.contains(n)) {
                pick = n;
                break;
            }
        }
        v->setProbe(pick);
        taken.push_back(pick);
    }
}

// ---------------------------------------------------------------------------------------------------
// Construction

void MainWindow::buildActions()
{
    auto make = [this](const QString& text, const QKeySequence& key, auto slot) {
        auto* a = new QAction(text, this);
        if (!key.isEmpty())
            a->setShortcut(key);
        connect(a, &QAction::triggered, this, slot);
        return a;
    };
    m_openModel = make(tr("Open &model folder…"), QKeySequence("Ctrl+O"), &MainWindow::chooseModel);
    m_openText = make(tr("Open &text…"), QKeySequence(), [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Open text"), QString(),
                                                          tr("Text files (*.txt);;All files (*)"));
        if (!path.isEmpty())
            openText(path);
    });
    m_openTrace = make(tr("Open t&race…"), QKeySequence("Ctrl+Shift+O"), &MainWindow::chooseTrace);
    m_overlayTrace = make(tr("O&verlay trace…"), QKeySequence(), &MainWindow::chooseOverlay);
    m_openSweep = make(tr("Open s&weep results…"), QKeySequence(), [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Open sweep results"), QString(),
                                                          tr("Sweep summary (summary.json);;JSON (*.json)"));
        if (!path.isEmpty())
            openSweepSummary(path);
    });
    m_openSweep->setToolTip(tr("The forget-threshold plot of a sweep (statescope-cli sweep report)"));
    m_clearOverlay = make(tr("&Remove overlay"), QKeySequence(), &MainWindow::clearOverlay);
    m_readNamedFiles =
        make(tr("Read the files this trace &names"), QKeySequence(), [this] { readNamedFiles(); });
    m_readNamedFiles->setToolTip(tr("Show the trace's tokens as the text it was made from, with the "
                                    "tokenizer it names (files a trace names are read only when you ask)"));
    m_readNamedFiles->setEnabled(false);
    m_export = make(tr("&Export plots…"), QKeySequence("Ctrl+E"), &MainWindow::showExportDialog);
    m_quit = make(tr("&Quit"), QKeySequence::Quit, &QWidget::close);
    m_run = make(tr("&Run"), QKeySequence("Ctrl+R"), [this] { startRun(); });
    m_passkey = make(tr("&Passkey retrieval…"), QKeySequence("Ctrl+Shift+P"), [this] {
        PasskeyDialog* d = passkeyDialog();
        d->show();
        d->raise();
    });
    m_compare = make(tr("&Compare with original"), QKeySequence("Ctrl+Shift+R"), [this] {
        m_mitigationsDock->show();
        compareWithOriginal();
    });
    m_run->setToolTip(tr("Run the model over the input (Ctrl+R)"));
    m_pause = make(tr("&Pause"), QKeySequence("Ctrl+Shift+P"), &MainWindow::pauseOrResume);
    m_cancel = make(tr("&Cancel"), QKeySequence(Qt::Key_Escape), &MainWindow::cancelRun);
    m_cancel->setToolTip(tr("Stop the run; the trace keeps what was computed (Esc)"));

    m_logX = new QAction(tr("&Log token axis"), this);
    m_logX->setCheckable(true);
    connect(m_logX, &QAction::toggled, m_group, &PlotGroup::setLogX);
    connect(m_group, &PlotGroup::logXChanged, m_logX, &QAction::setChecked);
    m_showAll = make(tr("Show &all tokens"), QKeySequence("Ctrl+0"), [this] { m_group->showAll(); });
    m_follow = new QAction(tr("&Follow the run"), this);
    m_follow->setCheckable(true);
    m_follow->setChecked(true);
    connect(m_follow, &QAction::toggled, this, [this](bool on) {
        m_group->setFollow(on);
        if (on)
            m_group->showAll();
    });
    m_addProbeView = make(tr("Add a &probe view"), QKeySequence(), [this] { addProbeView(); });
    m_addProbeView->setToolTip(tr("Another plot of a probe, e.g. one no view shows yet"));
    m_darkAction = new QAction(tr("&Dark theme"), this);
    m_darkAction->setCheckable(true);
    connect(m_darkAction, &QAction::toggled, this, &MainWindow::setDarkTheme);
    m_about = make(tr("&About StateScope"), QKeySequence(), &MainWindow::showAbout);
    m_guide = make(tr("&What am I looking at?"), QKeySequence::HelpContents, &MainWindow::showGuide);
    updateMediaIcons();
}

void MainWindow::buildMenus()
{
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(m_openModel);
    file->addAction(m_openText);
    file->addAction(m_openTrace);
    file->addAction(m_overlayTrace);
    file->addAction(m_clearOverlay);
    file->addAction(m_openSweep);
    file->addAction(m_readNamedFiles);
    file->addSeparator();
    file->addAction(m_export);
    file->addSeparator();
    file->addAction(m_quit);
    QMenu* run = menuBar()->addMenu(tr("&Run"));
    run->addAction(m_run);
    run->addAction(m_pause);
    run->addAction(m_cancel);
    run->addSeparator();
    run->addAction(m_compare);
    run->addAction(m_passkey);
    QMenu* view = menuBar()->addMenu(tr("&View"));
    view->addAction(m_logX);
    view->addAction(m_showAll);
    view->addAction(m_follow);
    view->addSeparator();
    view->addAction(m_addProbeView);
    view->addSeparator();
    view->addAction(m_darkAction);
    view->addSeparator();
    for (QDockWidget* d : findChildren<QDockWidget*>())
        view->addAction(d->toggleViewAction());
    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(m_guide);
    help->addSeparator();
    help->addAction(m_about);

    QToolBar* tools = addToolBar(tr("Run"));
    tools->setObjectName("runToolBar");
    tools->addAction(m_run);
    tools->addAction(m_pause);
    tools->addAction(m_cancel);
    tools->addSeparator();
    tools->addAction(m_logX);
    tools->addAction(m_showAll);
    tools->addAction(m_follow);
    tools->addSeparator();
    tools->addAction(m_export);
    tools->addAction(m_mitigationsDock->toggleViewAction());
    tools->addAction(m_passkey);

    // Where to look: a token by number, or a text in the input.
    QToolBar* nav = addToolBar(tr("Navigate"));
    nav->setObjectName("navigateToolBar");
    m_tokenField = new QSpinBox(nav);
    m_tokenField->setObjectName("tokenField");
    m_tokenField->setRange(0, 0);
    m_tokenField->setPrefix(tr("token "));
    m_tokenField->setKeyboardTracking(false);
    m_tokenField->setToolTip(
        tr("Go to a token (Ctrl+G); the arrow keys over a plot step the cursor, Shift+arrow by 10"));
    m_tokenField->setAccelerated(true);
    connect(m_tokenField, &QSpinBox::editingFinished, this, [this] { goToToken(m_tokenField->value()); });
    nav->addWidget(m_tokenField);
    m_findField = new QLineEdit(nav);
    m_findField->setObjectName("findField");
    m_findField->setPlaceholderText(tr("Find in input (Ctrl+F)"));
    m_findField->setClearButtonEnabled(true);
    m_findField->setMaximumWidth(220);
    connect(m_findField, &QLineEdit::returnPressed, this, [this] {
        findText(m_findField->text(), QGuiApplication::keyboardModifiers().testFlag(Qt::ShiftModifier));
    });
    nav->addWidget(m_findField);
    auto* goTo = new QAction(tr("&Go to token…"), this);
    goTo->setShortcut(QKeySequence("Ctrl+G"));
    connect(goTo, &QAction::triggered, this, [this] {
        m_tokenField->setFocus();
        m_tokenField->selectAll();
    });
    auto* find = new QAction(tr("&Find in input…"), this);
    find->setShortcut(QKeySequence::Find);
    connect(find, &QAction::triggered, this, [this] {
        m_findField->setFocus();
        m_findField->selectAll();
    });
    auto* findNext = new QAction(tr("Find &next"), this);
    findNext->setShortcut(QKeySequence::FindNext);
    connect(findNext, &QAction::triggered, this, [this] { findText(m_findField->text()); });
    auto* findPrevious = new QAction(tr("Find &previous"), this);
    findPrevious->setShortcut(QKeySequence::FindPrevious);
    connect(findPrevious, &QAction::triggered, this, [this] { findText(m_findField->text(), true); });
    view->addSeparator();
    view->addActions({goTo, find, findNext, findPrevious});
    connect(m_group, &PlotGroup::cursorMoved, this, [this](qint64 token) {
        if (token >= 0 && !m_tokenField->hasFocus()) {
            const QSignalBlocker block(m_tokenField);
            m_tokenField->setValue(int(std::min<qint64>(token, m_tokenField->maximum())));
        }
    });
}

void MainWindow::goToToken(qint64 token)
{
    if (!m_trace || m_trace->tokens() == 0)
        return;
    m_group->setFollow(false);
    m_follow->setChecked(false);
    m_group->jumpTo(token);
}

bool MainWindow::findText(const QString& text, bool backwards)
{
    if (!m_trace || m_trace->tokens() == 0 || text.isEmpty())
        return false;
    const qint64 n = m_trace->tokens();
    if (m_findTrace != m_trace || m_findTokens != n) {
        m_findText.clear();
        m_findStarts.clear();
        m_findStarts.reserve(int(n + 1));
        const QVector<qint64>& off = m_trace->offsets();
        if (!m_trace->text().isEmpty() && off.size() == 2 * n) {
            m_findText = m_trace->text().toLower(); // ASCII letters only: byte offsets stay valid
            for (qint64 t = 0; t < n; ++t)
                m_findStarts.push_back(off[int(2 * t)]);
        } else {
            for (qint64 t = 0; t < n; ++t) {
                m_findStarts.push_back(m_findText.size());
                m_findText += m_trace->tokenText(t).toUtf8().toLower();
            }
        }
        m_findTrace = m_trace;
        m_findTokens = n;
    }
    const QByteArray needle = text.toUtf8().toLower();
    // The token holding a byte: the last whose start is at or before it.
    auto tokenOf = [this](qint64 byte) {
        const auto it = std::upper_bound(m_findStarts.begin(), m_findStarts.end(), byte);
        return qint64(std::max<qsizetype>(0, (it - m_findStarts.begin()) - 1));
    };
    const qint64 cursor = m_group->cursor();
    qsizetype at = -1;
    if (!backwards) {
        const qsizetype from = cursor >= 0 && cursor + 1 < n ? m_findStarts[int(cursor + 1)] : 0;
        at = m_findText.indexOf(needle, from);
        if (at < 0 || (cursor >= 0 && cursor + 1 >= n))
            at = m_findText.indexOf(needle, 0);
    } else {
        const qsizetype from = cursor > 0 ? m_findStarts[int(cursor)] - 1 : -1;
        at = from >= 0 ? m_findText.lastIndexOf(needle, from) : -1;
        if (at < 0)
            at = m_findText.lastIndexOf(needle);
    }
    if (at < 0) {
        statusBar()->showMessage(tr("“%1” is not in the input").arg(text), 5000);
        return false;
    }
    const qint64 token = tokenOf(at);
    goToToken(token);
    statusBar()->showMessage(tr("“%1” at token %2").arg(text).arg(token), 5000);
    return true;
}

void MainWindow::buildDocks()
{
    m_modelPanel = new ModelPanel(this);
    m_inputPanel = new InputPanel(this);
    m_runsPanel = new RunsPanel(m_tracesFolder, this);
    m_mitigationsPanel = new MitigationsPanel(this);
    connect(m_mitigationsPanel, &MitigationsPanel::compareRequested, this, [this] { compareWithOriginal(); });
    connect(m_modelPanel, &ModelPanel::errorOccurred, this, &MainWindow::showError);
    connect(m_inputPanel, &InputPanel::errorOccurred, this, &MainWindow::showError);
    connect(m_modelPanel, &ModelPanel::modelChanged, this, [this] {
        m_inputPanel->setTokenizer(m_modelPanel->tokenizerPath());
        setWindowTitle(tr("%1 — StateScope").arg(m_modelPanel->modelName()));
    });
    connect(m_modelPanel, &ModelPanel::trainingLengthChanged, this, &MainWindow::onTrainingLengthChanged);
    connect(m_runsPanel, &RunsPanel::openRequested, this, [this](const QString& p) { openTrace(p); });
    connect(m_runsPanel, &RunsPanel::overlayRequested, this, [this](const QString& p) { overlayTrace(p); });
    connect(m_runsPanel, &RunsPanel::comparedChanged, this, &MainWindow::syncCompared);
    connect(m_runsPanel, &RunsPanel::colorChanged, this, [this](const QString& p, const QColor& c) {
        if (TraceData* t = m_overlays.value(p))
            t->setColor(c);
    });
    connect(m_runsPanel, &RunsPanel::errorOccurred, this, &MainWindow::showError);
    connect(m_runsPanel, &RunsPanel::renamed, this, [this](const QString& from, const QString& to) {
        const QString label = QFileInfo(to).completeBaseName();
        if (TraceData* t = m_overlays.take(from)) {
            t->setFilePath(to);
            t->setLabel(label);
            m_overlays.insert(to, t);
        }
        if (m_trace && QFileInfo(m_trace->filePath()).absoluteFilePath() == from) {
            m_trace->setFilePath(to);
            m_trace->setLabel(label);
            setWindowTitle(tr("%1 — StateScope").arg(QFileInfo(to).fileName()));
        }
    });
    // Until a model is chosen the count uses the tokenizer the engine gives a model without one.
    try {
        m_inputPanel->setTokenizer(QString::fromStdString(chooseTokenizerPath("", std::nullopt)));
    } catch (const std::exception&) {
        // No built-in tokenizer: no count until a model brings one.
    }

    auto dock = [this](const QString& title, const QString& name, QWidget* w, Qt::DockWidgetArea area) {
        auto* d = new QDockWidget(title, this);
        d->setObjectName(name);
        d->setWidget(w);
        addDockWidget(area, d);
        return d;
    };
    QDockWidget* model = dock(tr("Model"), "modelDock", m_modelPanel, Qt::LeftDockWidgetArea);
    QDockWidget* input = dock(tr("Input"), "inputDock", m_inputPanel, Qt::LeftDockWidgetArea);
    QDockWidget* runs = dock(tr("Runs"), "runsDock", m_runsPanel, Qt::LeftDockWidgetArea);
    // On the right, shown from the toolbar: the left column is full on a 720-pixel screen. Scrolled,
    // since its form is taller than the room a small screen leaves it.
    auto* mitigationsScroll = new QScrollArea(this);
    mitigationsScroll->setWidget(m_mitigationsPanel);
    mitigationsScroll->setWidgetResizable(true);
    mitigationsScroll->setFrameShape(QFrame::NoFrame);
    mitigationsScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_mitigationsDock =
        dock(tr("Mitigations"), "mitigationsDock", mitigationsScroll, Qt::RightDockWidgetArea);
    m_mitigationsDock->hide();
    // Narrow the first time it shows: the plots keep most of a small screen.
    connect(m_mitigationsDock, &QDockWidget::visibilityChanged, this, [this](bool visible) {
        if (visible && !m_mitigationsDockSized) {
            m_mitigationsDockSized = true;
            resizeDocks({m_mitigationsDock}, {330}, Qt::Horizontal);
        }
    });
    splitDockWidget(model, input, Qt::Vertical);
    splitDockWidget(input, runs, Qt::Vertical);
    resizeDocks({model, input, runs}, {260, 380, 200}, Qt::Vertical);
    resizeDocks({model}, {360}, Qt::Horizontal);
}

void MainWindow::buildStatusBar()
{
    m_traceLabel = new QLabel(this);
    m_traceLabel->setObjectName("traceLabel");
    m_progress = new QProgressBar(this);
    m_progress->setRange(0, 1000);
    m_progress->setMaximumWidth(240);
    m_progress->setTextVisible(true);
    m_progress->setFormat("%p%");
    m_rateLabel = new QLabel(this);
    m_rateLabel->setObjectName("rateLabel");
    m_memoryLabel = new QLabel(this);
    m_memoryLabel->setToolTip(tr("Resident memory of the process (now / peak)"));
    statusBar()->addWidget(m_traceLabel, 1);
    statusBar()->addPermanentWidget(m_rateLabel);
    statusBar()->addPermanentWidget(m_progress);
    statusBar()->addPermanentWidget(m_memoryLabel);
    m_memoryTimer = new QTimer(this);
    m_memoryTimer->setInterval(1000);
    connect(m_memoryTimer, &QTimer::timeout, this, &MainWindow::updateMemory);
    m_memoryTimer->start();
    updateMemory();
}

void MainWindow::restoreSettings()
{
    QSettings& s = *m_settings;
    if (!restoreGeometry(s.value("window/geometry").toByteArray()))
        resize(1500, 950);
    restoreState(s.value("window/state").toByteArray());
    m_modelPanel->setRecentModels(s.value("model/recent").toStringList());
    m_modelPanel->setDevice(s.value("model/device", "cpu").toString());
    m_modelPanel->setDtype(s.value("model/dtype", "float32").toString());
    m_mitigationsPanel->setSpec(s.value("mitigation/spec", "none").toString()); // a bad spec keeps "none"
    m_mitigationsPanel->setCalibrationFile(s.value("mitigation/calibration").toString());
    m_mitigationsPanel->setOldContext(s.value("probes/oldContext", 0).toLongLong());
    m_modelPanel->setChunkSize(s.value("model/chunk", 0).toInt());
    const QString last = s.value("model/last").toString();
    if (!last.isEmpty() && QFileInfo(last + "/config.json").exists()) {
        QString error;
        m_modelPanel->setModel(last, &error); // a model that went bad since is simply not preselected
    }
    m_logX->setChecked(s.value("plots/logX", false).toBool());
    m_loss->setBucketSize(s.value("plots/bucket", 1024).toInt());
    m_loss->setMovingAverageWindow(s.value("plots/window", 256).toInt());
    m_loss->setTokenNllVisible(s.value("plots/tokenNll", true).toBool());
    setLinkLayers(s.value("plots/linkLayers", true).toBool());
    const QStringList probes = s.value("plots/probes").toStringList();
    if (!probes.isEmpty())
        setProbeViews(probes);
    const QVariantList logY = s.value("plots/probeLogY").toList();
    const QVariantList reduce = s.value("plots/probeReduce").toList();
    for (int i = 0; i < m_probeViews.size(); ++i) {
        m_probeViews[i]->setLogY(logY.value(i, false).toBool());
        m_probeViews[i]->setReduce(
            ProbeView::Reduce(std::clamp(reduce.value(i, 0).toInt(), 0, int(ProbeView::Reduce::Unit))));
    }
    // Sizes for the views as they are now (a saved state for other views would squash them).
    if (s.value("window/plotCount").toInt() == m_splitter->count())
        m_splitter->restoreState(s.value("window/plots").toByteArray());
    m_darkAction->setChecked(s.value("view/dark", false).toBool());
    setDarkTheme(m_darkAction->isChecked());
}

void MainWindow::saveSettings()
{
    QSettings& s = *m_settings;
    s.setValue("window/geometry", saveGeometry());
    s.setValue("window/state", saveState());
    s.setValue("window/plots", m_splitter->saveState());
    s.setValue("window/plotCount", m_splitter->count());
    s.setValue("model/recent", m_modelPanel->recentModels());
    s.setValue("mitigation/spec", QString::fromStdString(m_mitigationsPanel->mitigation().describe()));
    s.setValue("mitigation/calibration", m_mitigationsPanel->calibrationFile());
    s.setValue("probes/oldContext", m_mitigationsPanel->oldContext());
    s.setValue("model/last", m_modelPanel->modelDir());
    s.setValue("model/device", m_modelPanel->device());
    s.setValue("model/dtype", m_modelPanel->dtype());
    s.setValue("model/chunk", m_modelPanel->chunkSize());
    s.setValue("plots/logX", m_group->logX());
    s.setValue("plots/bucket", m_loss->bucketSize());
    s.setValue("plots/window", m_loss->movingAverageWindow());
    s.setValue("plots/tokenNll", m_loss->tokenNllVisible());
    s.setValue("plots/linkLayers", m_linkLayers);
    QVariantList logY, reduce;
    for (ProbeView* v : m_probeViews) {
        logY.push_back(v->logY());
        reduce.push_back(int(v->reduce()));
    }
    s.setValue("plots/probes", probeViewNames());
    s.setValue("plots/probeLogY", logY);
    s.setValue("plots/probeReduce", reduce);
    s.setValue("view/dark", m_dark);
    s.sync();
}

void MainWindow::closeEvent(QCloseEvent* event)
{
    saveSettings();
    m_controller->cancel();
    event->accept();
}

// ---------------------------------------------------------------------------------------------------
// Errors and theme

void MainWindow::showError(const QString& message)
{
    emit errorShown(message);
    if (m_recordErrors) {
        m_errors.append(message);
        return;
    }
    QMessageBox::critical(this, tr("StateScope"), message);
}

void MainWindow::setDarkTheme(bool dark)
{
    m_dark = dark;
    if (m_darkAction && m_darkAction->isChecked() != dark)
        m_darkAction->setChecked(dark);
    if (m_runsPanel)
        m_runsPanel->setDarkTheme(dark);
    static bool fusion = false;
    if (!fusion) {
        QApplication::setStyle(QStyleFactory::create("Fusion"));
        fusion = true;
    }
    QApplication::setPalette(dark ? darkPalette() : QApplication::style()->standardPalette());
    m_group->setDarkTheme(dark);
    updateMediaIcons();
    for (TraceView* v : views())
        v->setDarkTheme(dark);
    m_strip->setDarkTheme(dark);
}

// ---------------------------------------------------------------------------------------------------
// Opening things

bool MainWindow::openModel(const QString& dir)
{
    QString error;
    if (!m_modelPanel->setModel(dir, &error)) {
        showError(error);
        return false;
    }
    return true;
}

bool MainWindow::openText(const QString& path)
{
    QString error;
    if (!m_inputPanel->loadFile(path, &error)) {
        showError(error);
        return false;
    }
    return true;
}

void MainWindow::setInputText(const QString& text, const QString& description)
{
    m_inputPanel->setText(text, description);
}

bool MainWindow::setInputPrompt(const QString& spec)
{
    QString error;
    if (!m_inputPanel->setPrompt(spec, &error)) {
        showError(error);
        return false;
    }
    return true;
}

bool MainWindow::loadDemo()
{
    // tiny-collapse, trained on 256-byte windows, reading 100 KB of Bible text it never saw: its loss
    // leaves the training-length marker behind within a few thousand bytes (docs/built-in-models.md).
    QString model, textPath;
    try {
        model = QString::fromStdString(findResource("models/tiny-collapse"));
        textPath = QString::fromStdString(findResource("texts/kjv-heldout.txt"));
    } catch (const std::exception& e) {
        showError(QString::fromStdString(errorLine(e))); // names the resource and where it looked
        return false;
    }
    if (!openModel(model))
        return false;
    // The collapse reads best as the docs draw it: averages only, on a log token axis that gives the
    // 256 trained bytes as much room as the 100 K that follow.
    m_loss->setTokenNllVisible(false);
    m_group->setLogX(true);
    return openText(textPath);
}

bool MainWindow::openDroppedPath(const QString& path)
{
    const QFileInfo fi(path);
    if (fi.isDir()) {
        if (!QFileInfo::exists(fi.filePath() + "/config.json")) {
            showError(tr("%1: not a model folder (it has no config.json)").arg(path));
            return false;
        }
        return openModel(path);
    }
    const QString suffix = fi.suffix().toLower();
    if (suffix == "txt")
        return openText(path);
    if ((suffix == "h5" || suffix == "hdf5") && isPasskeyResultsFile(path.toStdString()))
        return openPasskeyResults(path);
    if (suffix == "h5" || suffix == "hdf5")
        return openTrace(path);
    if (suffix == "json")
        return openSweepSummary(path);
    showError(tr("%1: cannot open this kind of file here. Drop a model folder, a .txt input, a .h5 trace, a "
                 "sweep's summary.json or a "
                 "passkey results file.")
                  .arg(path));
    return false;
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event)
{
    if (event->mimeData()->hasUrls())
        event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event)
{
    const QList<QUrl> urls = event->mimeData()->urls();
    event->acceptProposedAction();
    // Handled after the drop returns: an error dialog must not run inside the drag's event loop.
    QStringList paths;
    for (const QUrl& u : urls)
        paths << (u.isLocalFile() ? u.toLocalFile() : u.toString());
    QTimer::singleShot(0, this, [this, paths] {
        for (const QString& p : paths)
            if (!openDroppedPath(p))
                break;
    });
}

void MainWindow::chooseModel()
{
    const QString dir =
        QFileDialog::getExistingDirectory(this, tr("Open model folder"), m_modelPanel->modelDir());
    if (!dir.isEmpty())
        openModel(dir);
}

void MainWindow::chooseTrace()
{
    const QString path = QFileDialog::getOpenFileName(this, tr("Open trace"), m_tracesFolder,
                                                      tr("StateScope traces (*.h5 *.hdf5);;All files (*)"));
    if (!path.isEmpty())
        openTrace(path);
}

void MainWindow::chooseOverlay()
{
    const QString path = QFileDialog::getOpenFileName(this, tr("Overlay trace"), m_tracesFolder,
                                                      tr("StateScope traces (*.h5 *.hdf5);;All files (*)"));
    if (!path.isEmpty())
        overlayTrace(path);
}

bool MainWindow::loadTraceFile(const QString& path, TraceData* into)
{
    QString error;
    QProgressDialog progress(tr("Reading %1…").arg(QFileInfo(path).fileName()), tr("Cancel"), 0, 1000, this);
    progress.setWindowModality(Qt::WindowModal);
    progress.setMinimumDuration(500);
    const bool ok = into->loadFile(path, &error, [&progress](qint64 done, qint64 total) {
        progress.setValue(total > 0 ? int(1000 * done / total) : 0);
        return !progress.wasCanceled();
    });
    progress.reset();
    if (!ok) {
        showError(error.isEmpty() ? tr("%1: cannot read the trace").arg(path) : error);
        return false;
    }
    const QString tokenizer = tokenizerForTrace(into->header());
    if (!tokenizer.isEmpty()) {
        try {
            setDecoder(into, tokenizer);
        } catch (const std::exception&) {
            // No decoder: the strip shows ids.
        }
    }
    return true;
}

void MainWindow::setDecoder(TraceData* data, const QString& tokenizer)
{
    std::shared_ptr<const Tokenizer> tok = cachedTokenizer(tokenizer);
    data->setTokenDecoder([tok](qint32 id) {
        try {
            // A byte-level token may hold part of a character.
            return QString::fromStdString(repairUtf8(tok->tokenBytes(id)));
        } catch (const std::exception&) {
            return QString("#%1").arg(id);
        }
    });
}

QStringList MainWindow::namedFiles() const
{
    QStringList files;
    if (!m_trace || m_trace->filePath().isEmpty() || m_trace->filePath() == m_namedFilesRead)
        return files;
    // Only files that are there: a colleague's trace names paths on their machine.
    const QString input = m_trace->namedInputPath();
    if (!input.isEmpty() && m_trace->text().isEmpty() && QFileInfo::exists(input))
        files << input;
    const QString tok = m_trace->header().tokenizerPath;
    if (!tok.isEmpty() && QFileInfo::exists(tok) && !isBuiltinResource(tok.toStdString()))
        files << tok;
    return files;
}

bool MainWindow::readNamedFiles()
{
    if (!m_trace)
        return false;
    QStringList problems;
    const QStringList named = namedFiles();
    const QString input = m_trace->namedInputPath();
    if (named.contains(input)) {
        QString error;
        if (!m_trace->readNamedInput(&error))
            problems << error;
    }
    const QString tok = m_trace->header().tokenizerPath;
    if (named.contains(tok)) {
        try {
            setDecoder(m_trace, tok); // fromFile reads regular files of a sane size only
        } catch (const std::exception& e) {
            problems << QString::fromStdString(errorLine(e));
        }
    }
    if (problems.isEmpty())
        m_namedFilesRead = m_trace->filePath();
    m_readNamedFiles->setEnabled(!namedFiles().isEmpty());
    if (!problems.isEmpty()) {
        showError(problems.join('\n'));
        return false;
    }
    return true;
}

bool MainWindow::openTrace(const QString& path)
{
    if (m_controller->isBusy()) {
        showError(tr("A run is in progress: cancel it (Esc) before opening a trace."));
        return false;
    }
    // Read into a new model so that a bad file leaves the plots as they were.
    auto* data = new TraceData(this);
    if (!loadTraceFile(path, data)) {
        delete data;
        return false;
    }
    installTrace(data);
    m_group->showAll();
    setWindowTitle(tr("%1 — StateScope").arg(QFileInfo(path).fileName()));
    m_traceLabel->setText(
        tr("Trace %1 (%2 tokens)").arg(QFileInfo(path).fileName(), QLocale().toString(data->tokens())));
    m_traceLabel->setToolTip(path);
    const QStringList named = namedFiles();
    m_readNamedFiles->setEnabled(!named.isEmpty());
    if (!named.isEmpty()) {
        QStringList names;
        for (const QString& f : named)
            names << QFileInfo(f).fileName();
        // File names only, so that the message fits a 1280-pixel window; the action's tooltip and
        // the Runs panel give the paths.
        statusBar()->showMessage(
            tr("Not read: %1, which this trace names (File > Read the files this trace names)")
                .arg(names.join(", ")),
            15000);
        m_readNamedFiles->setToolTip(tr("Read %1").arg(named.join(tr(" and "))));
    }
    // A trace another program is still writing: follow it as it grows.
    if (data->fileGrowing())
        pollGrowingTrace();
    return true;
}

void MainWindow::pollGrowingTrace()
{
    if (!m_followTimer) {
        m_followTimer = new QTimer(this);
        m_followTimer->setInterval(kFollowIntervalMs);
        connect(m_followTimer, &QTimer::timeout, this, &MainWindow::pollGrowingTrace);
    }
    if (!m_trace || !m_trace->fileGrowing() || m_controller->isBusy()) {
        m_followTimer->stop();
        return;
    }
    QString error;
    m_trace->pollFile(&error);
    const QString name = QFileInfo(m_trace->filePath()).fileName();
    const QString tokens = QLocale().toString(m_trace->tokens());
    if (m_trace->fileGrowing()) {
        m_traceLabel->setText(tr("Following %1 (%2 tokens, still being written)").arg(name, tokens));
        m_followTimer->start();
    } else {
        m_followTimer->stop();
        m_traceLabel->setText(error.isEmpty() ? tr("Trace %1 (%2 tokens)").arg(name, tokens)
                                              : tr("Stopped following %1: %2").arg(name, error));
    }
}

TraceData* MainWindow::loadOverlay(const QString& path)
{
    auto* data = new TraceData(this);
    if (!loadTraceFile(path, data)) {
        delete data;
        return nullptr;
    }
    // Name what differs from the trace it lies on: another architecture, or another shape.
    if (m_trace && m_trace->layers() > 0) {
        const TraceHeaderInfo& a = m_trace->header();
        const TraceHeaderInfo& b = data->header();
        const QString shape = tr("%1×%2 %3").arg(b.layers).arg(b.units).arg(pluralUnitName(b.unitName));
        if (a.architecture != b.architecture)
            data->setLabel(tr("%1 (%2, %3)").arg(data->label(), b.architectureName, shape));
        else if (a.layers != b.layers || a.units != b.units)
            data->setLabel(tr("%1 (%2)").arg(data->label(), shape));
    }
    return data;
}

bool MainWindow::overlayTrace(const QString& path)
{
    const QString abs = QFileInfo(path).absoluteFilePath();
    if (m_runsPanel->isCompared(abs))
        return true;
    TraceData* data = loadOverlay(abs);
    if (!data)
        return false;
    m_overlays.insert(abs, data);
    // The run table shows it checked, in its colour, whether or not it lists the file.
    m_runsPanel->setCompared(abs, true, true);
    applyOverlays();
    return true;
}

void MainWindow::syncCompared()
{
    const QStringList wanted = m_runsPanel->comparedPaths();
    for (const QString& p : m_overlays.keys())
        if (!wanted.contains(p))
            m_overlays.take(p)->deleteLater();
    for (const QString& p : wanted)
        if (!m_overlays.contains(p)) {
            TraceData* data = loadOverlay(p);
            if (!data) {
                m_runsPanel->setCompared(p, false, true); // the error was shown
                continue;
            }
            m_overlays.insert(p, data);
        }
    applyOverlays();
}

void MainWindow::applyOverlays()
{
    QList<TraceData*> list;
    for (const QString& p : m_runsPanel->comparedPaths())
        if (TraceData* t = m_overlays.value(p)) {
            t->setColor(m_runsPanel->colorOf(p));
            list.push_back(t);
        }
    for (TraceView* v : views())
        v->setOverlays(list);
    m_group->setOverlay(list.value(0, nullptr));
    if (m_clearOverlay)
        m_clearOverlay->setEnabled(!list.isEmpty());
}

QList<TraceData*> MainWindow::overlays() const
{
    QList<TraceData*> list;
    if (!m_runsPanel) // views are made before the docks
        return list;
    for (const QString& p : m_runsPanel->comparedPaths())
        if (TraceData* t = m_overlays.value(p))
            list.push_back(t);
    return list;
}

TraceData* MainWindow::overlay() const
{
    return overlays().value(0, nullptr);
}

void MainWindow::clearOverlay()
{
    m_runsPanel->clearCompared(true);
    for (TraceView* v : views())
        v->setOverlays({});
    m_group->setOverlay(nullptr);
    for (TraceData* t : m_overlays)
        delete t;
    m_overlays.clear();
    if (m_clearOverlay)
        m_clearOverlay->setEnabled(false);
}

void MainWindow::installTrace(TraceData* trace)
{
    TraceData* old = m_trace;
    m_trace = trace;
    // A needle belongs to the run that read it (onRunStarted marks it again).
    m_needleBegin = m_needleEnd = -1;
    // A passkey trace records its needle (older ones do not).
    m_group->setNeedle(trace ? trace->header().needle : std::nullopt);
    assignProbes();
    m_group->setTrace(trace);
    for (TraceView* v : views())
        v->setTrace(trace);
    m_strip->setTrace(trace);
    if (m_tokenField) {
        m_tokenField->setMaximum(int(std::clamp<qint64>(trace ? trace->tokens() - 1 : 0, 0, INT_MAX)));
        connect(trace, &TraceData::appended, m_tokenField, [this](qint64 tokens) {
            m_tokenField->setMaximum(int(std::clamp<qint64>(tokens - 1, 0, INT_MAX)));
        });
    }
    if (old && old != trace)
        old->deleteLater();
}

// ---------------------------------------------------------------------------------------------------
// Running

bool MainWindow::startRun()
{
    if (m_controller->isBusy())
        return false;
    m_compareStage = CompareStage::None;
    return startRunWith(m_mitigationsPanel->mitigation(), QString());
}

PasskeyDialog* MainWindow::passkeyDialog()
{
    if (!m_passkeyDialog) {
        m_passkeyDialog = new PasskeyDialog(this);
        connect(m_passkeyDialog, &PasskeyDialog::errorOccurred, this, &MainWindow::showError);
        connect(m_passkeyDialog, &PasskeyDialog::sampleRequested, this,
                [this](const QString& text, const QString& passkey, const QString& description) {
                    if (m_controller->isBusy()) {
                        showError(tr("A run is going: cancel it to open the sample."));
                        return;
                    }
                    m_inputPanel->setPasskeyText(text, passkey, description);
                    if (startRun())
                        statusBar()->showMessage(description);
                });
    }
    // The sweep takes the panels' model and options at its start; a sweep going keeps its own.
    if (!m_passkeyDialog->isRunning()) {
        PasskeySweepRequest r;
        r.modelDir = m_modelPanel->modelDir();
        r.modelName = m_modelPanel->modelName();
        r.options = m_modelPanel->runOptions();
        r.options.mitigation = m_mitigationsPanel->mitigation();
        r.calibrationFile = m_mitigationsPanel->calibrationFile();
        r.trainingLength = m_modelPanel->trainingLength();
        m_passkeyDialog->setRequest(r);
    }
    return m_passkeyDialog;
}

SweepDialog* MainWindow::sweepDialog()
{
    if (!m_sweepDialog) {
        m_sweepDialog = new SweepDialog(this);
        connect(m_sweepDialog, &SweepDialog::errorOccurred, this, &MainWindow::showError);
    }
    return m_sweepDialog;
}

bool MainWindow::openSweepSummary(const QString& path)
{
    SweepDialog* d = sweepDialog();
    if (!d->openSummary(path))
        return false;
    d->show();
    d->raise();
    return true;
}

bool MainWindow::openPasskeyResults(const QString& path)
{
    PasskeyDialog* d = passkeyDialog();
    d->show();
    d->raise();
    return d->openResults(path);
}

bool MainWindow::compareWithOriginal()
{
    if (m_controller->isBusy())
        return false;
    if (m_mitigationsPanel->mitigation().isIdentity()) {
        showError(tr("Set a mitigation in the Mitigations panel first: the comparison runs the input without "
                     "and with it."));
        return false;
    }
    m_compareStage = CompareStage::Original;
    m_compareOriginal.clear();
    if (!startRunWith(Mitigation(), QStringLiteral("original"))) {
        m_compareStage = CompareStage::None;
        return false;
    }
    return true;
}

bool MainWindow::startRunWith(const Mitigation& mitigation, const QString& nameTag)
{
    if (m_controller->isBusy())
        return false;
    if (m_modelPanel->modelDir().isEmpty()) {
        showError(tr("Choose a model first (Model panel, Ctrl+O, or drop a model folder on the window)."));
        return false;
    }
    if (m_inputPanel->text().isEmpty()) {
        showError(tr("The input is empty: type a text, open a .txt file or use a generator."));
        return false;
    }
    // The spec round trip checks what the panel's controls cannot (a snapshot that divides the window).
    Mitigation checked;
    try {
        checked = parseMitigation(mitigation.describe());
    } catch (const Error& e) {
        showError(tr("Mitigations: %1").arg(QString::fromStdString(e.what())));
        return false;
    }
    RunRequest r;
    r.modelDir = m_modelPanel->modelDir();
    // The mitigation in the file name, and so in the legend: compared runs tell themselves apart.
    const QString tag = !nameTag.isEmpty()     ? nameTag
                        : checked.isIdentity() ? QString()
                                               : QString::fromStdString(checked.describe());
    r.modelName = tag.isEmpty() ? m_modelPanel->modelName() : m_modelPanel->modelName() + "-" + tag;
    r.options = m_modelPanel->runOptions();
    r.options.mitigation = checked;
    r.options.oldContext = m_mitigationsPanel->oldContext();
    r.calibrationFile = m_mitigationsPanel->calibrationFile();
    r.input = m_inputPanel->request(); // the engine picks the tokenizer, as the Model panel shows
    r.trainingLength = m_modelPanel->trainingLength();
    r.traceFolder = m_tracesFolder;
    const std::optional<InputPanel::Needle> needle = m_inputPanel->needle();
    m_pendingNeedleKey = needle ? needle->passkey : QString();
    m_pendingNeedleBegin = needle ? needle->begin : -1;
    m_pendingNeedleEnd = needle ? needle->end : -1;
    m_chunks = 0;
    m_runTokens = 0;
    m_peakTraceBytes = 0;
    m_runStartMs = m_runEndMs = 0;
    m_progressDone = m_progressTotal = 0;
    m_progress->setValue(0);
    m_rateLabel->setText(tr("loading the model…"));
    m_traceLabel->clear();
    return m_controller->start(r);
}

void MainWindow::pauseOrResume()
{
    if (m_controller->state() == RunController::State::Paused)
        m_controller->resume();
    else
        m_controller->pause();
}

void MainWindow::cancelRun()
{
    m_controller->cancel();
}

void MainWindow::onRunStarted(const RunStart& start)
{
    // The header the trace on disk has: the live view and the saved trace show the same.
    TraceHeaderInfo h = TraceHeaderInfo::fromTraceHeader(start.header);
    // One name for a run everywhere: the legend, the Runs panel and the file (named after the model
    // the run loaded), which is also the label the trace gets when opened later.
    h.label = QFileInfo(start.tracePath).completeBaseName();

    // An overlay was chosen to compare with the trace shown then; a new run is another comparison
    // (unless it is the mitigated half of "Compare with original", which overlays the original below).
    if (!m_overlays.isEmpty()) {
        clearOverlay();
        statusBar()->showMessage(tr("Overlay removed: a new run started"), 5000);
    }

    // A run always starts from an empty live model; a trace opened from a file is replaced.
    auto* data = new TraceData(this);
    data->reset(h);
    data->setText(start.text);
    data->setFilePath(start.tracePath);
    installTrace(data);
    m_group->setFollow(m_follow->isChecked());
    m_modelPanel->setLoadedInfo(start.info);
    // The needle the input panel found, if the run reads the text it was found in.
    const qint64 needleBytes = m_pendingNeedleEnd - m_pendingNeedleBegin;
    if (m_pendingNeedleBegin >= 0 && m_pendingNeedleEnd <= start.text.size() &&
        start.text.mid(m_pendingNeedleBegin, needleBytes).contains(m_pendingNeedleKey.toUtf8())) {
        m_needleBegin = m_pendingNeedleBegin;
        m_needleEnd = m_pendingNeedleEnd;
        m_needlePlaced = false;
        // The band grows with the run (placeNeedle) rather than waiting ahead of it.
        m_group->setNeedle(std::nullopt);
    }
    m_pendingNeedleBegin = m_pendingNeedleEnd = -1;

    m_runStartMs = QDateTime::currentMSecsSinceEpoch();
    m_progressTotal = start.totalTokens;
    m_refreshesAtStart = 0;
    for (TraceView* v : views())
        m_refreshesAtStart += v->refreshCount();
    m_runsPanel->setRecording(start.tracePath);
    m_traceLabel->setText(tr("Recording %1").arg(QFileInfo(start.tracePath).fileName()));
    m_traceLabel->setToolTip(start.tracePath);
    if (m_compareStage == CompareStage::Mitigated && !m_compareOriginal.isEmpty())
        overlayTrace(m_compareOriginal);
}

void MainWindow::onChunk(const ChunkProbes& chunk)
{
    m_trace->append(chunk);
    ++m_chunks;
    m_runTokens = m_trace->tokens();
    m_peakTraceBytes = std::max<qint64>(m_peakTraceBytes, qint64(m_trace->memoryBytes()));
    if (m_needleBegin >= 0 && !m_needlePlaced)
        placeNeedle();
}

void MainWindow::placeNeedle()
{
    // The tokens whose bytes overlap the needle's: from the first that ends after its first byte to
    // the last that starts before its end. Offsets (start, end per token) grow with the position.
    const QVector<qint64>& off = m_trace->offsets();
    const qint64 n = off.size() / 2;
    if (n == 0)
        return;
    auto firstWhere = [n](auto pred) { // the first token for which pred holds (it holds for all after)
        qint64 lo = 0, hi = n;
        while (lo < hi) {
            const qint64 mid = (lo + hi) / 2;
            if (pred(mid))
                hi = mid;
            else
                lo = mid + 1;
        }
        return lo;
    };
    const qint64 first = firstWhere([&](qint64 t) { return off[2 * t + 1] > m_needleBegin; });
    const qint64 last = firstWhere([&](qint64 t) { return off[2 * t] >= m_needleEnd; }) - 1;
    if (first >= n)
        return; // not read yet
    // While the run is inside the needle the band grows with it.
    m_needlePlaced = off[2 * (n - 1) + 1] >= m_needleEnd;
    m_group->setNeedle(QPair<qint64, qint64>(first, last));
}

void MainWindow::onProgress(qint64 done, qint64 total, double rate, double secondsLeft)
{
    m_progressDone = done;
    m_progressTotal = total;
    m_progress->setValue(total > 0 ? int(1000 * done / total) : 0);
    // Chunks finished before the pause arrive after it: they must not replace "Paused".
    if (m_controller->state() != RunController::State::Running) {
        updateRateLabel();
        return;
    }
    m_rateLabel->setText(tr("%1 / %2 tokens · %3 tokens/s · %4 left")
                             .arg(QLocale().toString(done), QLocale().toString(total),
                                  QLocale().toString(qRound64(rate)), formatDuration(secondsLeft)));
}

void MainWindow::updateRateLabel()
{
    const QString tokens =
        tr("%1 / %2 tokens").arg(QLocale().toString(m_progressDone), QLocale().toString(m_progressTotal));
    switch (m_controller->state()) {
    case RunController::State::Paused:
        m_rateLabel->setText(tr("Paused · %1").arg(tokens));
        break;
    case RunController::State::Cancelling:
        m_rateLabel->setText(tr("Cancelling… · %1").arg(tokens));
        break;
    case RunController::State::Loading:
        m_rateLabel->setText(tr("loading the model…"));
        break;
    case RunController::State::Running:
    case RunController::State::Idle:
        break; // onProgress and the end of the run say more
    }
}

void MainWindow::onRunFinished(const QString& path, bool completed)
{
    m_runEndMs = QDateTime::currentMSecsSinceEpoch();
    m_refreshesAtEnd = 0;
    for (TraceView* v : views())
        m_refreshesAtEnd += v->refreshCount();
    if (completed)
        m_progress->setValue(1000);
    // No time left once the run is over; what was read instead.
    const double secs = (m_runEndMs - m_runStartMs) / 1000.0;
    m_rateLabel->setText(
        completed ? tr("%1 tokens in %2").arg(QLocale().toString(m_trace->tokens()), formatDuration(secs))
        : path.isEmpty()
            ? QString()
            : tr("Cancelled at %1 / %2 tokens")
                  .arg(QLocale().toString(m_trace->tokens()), QLocale().toString(m_progressTotal)));
    const QString name = QFileInfo(path).fileName();
    m_traceLabel->setText(
        path.isEmpty() ? tr("Cancelled before the first token")
        : completed
            ? tr("Saved %1").arg(name)
            : tr("Cancelled: %1 keeps the first %2 tokens").arg(name, QLocale().toString(m_trace->tokens())));
    m_runsPanel->setRecording(QString());
    // The file is closed now: zooming in reads exact values from it.
    if (!path.isEmpty())
        m_trace->attachFile(path);
    if (m_needleBegin >= 0 && !m_needlePlaced)
        placeNeedle();
    updateActions();
    const CompareStage stage = m_compareStage;
    m_compareStage = CompareStage::None;
    if (stage == CompareStage::Original && completed && !path.isEmpty()) {
        // The mitigated half, once the controller is idle again.
        m_compareOriginal = path;
        m_compareStage = CompareStage::Mitigated;
        QTimer::singleShot(0, this, [this] {
            if (m_compareStage == CompareStage::Mitigated &&
                !startRunWith(m_mitigationsPanel->mitigation(), QString()))
                m_compareStage = CompareStage::None;
        });
    }
    emit runEnded(path, completed);
}

void MainWindow::onRunFailed(const QString& message)
{
    m_compareStage = CompareStage::None;
    m_runEndMs = QDateTime::currentMSecsSinceEpoch();
    m_rateLabel->clear();
    m_traceLabel->setText(tr("Run failed"));
    m_runsPanel->setRecording(QString());
    updateActions();
    showError(message);
    emit runEnded(m_controller->tracePath(), false);
}

void MainWindow::onTrainingLengthChanged(qint64 tokens)
{
    // The Model panel's value marks the run it starts (and the one going now); a trace opened or
    // finished shows the training length its own header records, whatever model is chosen since.
    if (!m_controller->isBusy())
        return;
    m_trace->setTrainingLength(tokens > 0 ? std::optional<qint64>(tokens) : std::nullopt);
}

void MainWindow::updateActions()
{
    const RunController::State s = m_controller->state();
    const bool busy = s != RunController::State::Idle;
    m_run->setEnabled(!busy);
    m_compare->setEnabled(!busy);
    m_pause->setEnabled(s == RunController::State::Running || s == RunController::State::Paused);
    m_pause->setText(s == RunController::State::Paused ? tr("Res&ume") : tr("&Pause"));
    updateMediaIcons();
    m_cancel->setEnabled(busy && s != RunController::State::Cancelling);
    m_openTrace->setEnabled(!busy);
    m_modelPanel->setRunning(busy);
    m_mitigationsPanel->setRunning(busy);
    m_clearOverlay->setEnabled(!m_overlays.isEmpty());
    updateRateLabel();
}

void MainWindow::updateMediaIcons()
{
    if (!m_run)
        return;
    const QPalette palette = QApplication::palette();
    m_run->setIcon(mediaIcon(Media::Play, palette));
    m_pause->setIcon(mediaIcon(
        m_controller->state() == RunController::State::Paused ? Media::Play : Media::Pause, palette));
    m_cancel->setIcon(mediaIcon(Media::Stop, palette));
}

void MainWindow::updateMemory()
{
    const MemoryUse m = processMemory();
    QString text;
    if (m.rss > 0)
        text = tr("RSS %1 (peak %2)").arg(formatBytes(m.rss), formatBytes(m.peakRss));
    // Device memory only while the chosen device is a GPU: reading it creates the CUDA context.
    const QString device = m_modelPanel->device();
    if (device.startsWith("cuda")) {
        const int index = device.contains(':') ? device.section(':', 1).toInt() : 0;
        const auto gpus = cudaDevices(true);
        if (index < static_cast<int>(gpus.size()) && gpus[index].freeBytes >= 0)
            text += tr(" · GPU %1 of %2")
                        .arg(formatBytes(gpus[index].totalBytes - gpus[index].freeBytes),
                             formatBytes(gpus[index].totalBytes));
    }
    if (!text.isEmpty())
        m_memoryLabel->setText(text);
}

bool MainWindow::exportFigures(const QString& prefix)
{
    return exportFigures(prefix, ExportStyle::paperPreset());
}

bool MainWindow::exportFigures(const QString& prefix, const ExportStyle& style)
{
    if (!m_trace || m_trace->tokens() == 0) {
        showError(tr("%1: nothing to export (no trace)").arg(prefix));
        return false;
    }
    const QFileInfo where(prefix);
    if (!QDir().mkpath(where.absolutePath())) {
        showError(tr("%1: cannot create the folder").arg(where.absolutePath()));
        return false;
    }
    m_group->setFollow(false);
    m_group->showAll();
    return exportViews(where.absolutePath(), where.fileName(), {ExportFormat::Png, ExportFormat::Svg}, style);
}

namespace {

// "median 4.1 ms, 95th percentile 9.0 ms, max 12 ms".
QString frameStatistics(QVector<float> ms)
{
    if (ms.isEmpty())
        return QStringLiteral("none");
    std::sort(ms.begin(), ms.end());
    auto at = [&](double q) { return ms[std::min<int>(ms.size() - 1, int(q * ms.size()))]; };
    return QStringLiteral("median %1 ms, 95th percentile %2 ms, max %3 ms")
        .arg(at(0.5), 0, 'f', 1)
        .arg(at(0.95), 0, 'f', 1)
        .arg(ms.back(), 0, 'f', 1);
}

} // namespace

QString MainWindow::statsSummary() const
{
    const qint64 end = m_runEndMs > 0 ? m_runEndMs : QDateTime::currentMSecsSinceEpoch();
    const double secs = m_runStartMs > 0 ? (end - m_runStartMs) / 1000.0 : 0;
    qint64 refreshes = 0;
    for (TraceView* v : views())
        refreshes += v->refreshCount();
    if (m_runEndMs > 0)
        refreshes = m_refreshesAtEnd;
    refreshes -= m_refreshesAtStart;
    const int nViews = views().size();
    const MemoryUse m = processMemory();
    QVector<float> frames;
    for (TraceView* v : views())
        frames += v->frameTimes();
    const QString frameLine =
        frames.isEmpty() ? QStringLiteral("frames: none drawn")
                         : QStringLiteral("frames: %1, %2 (each a plot's replot and its data queries)")
                               .arg(frames.size())
                               .arg(frameStatistics(frames));
    return QString("run: %1 tokens in %2 s (%3 tokens/s), %4 chunks (%5/s); plot refreshes: %6 per view per "
                   "second (%7 views); %11; trace model %8; RSS %9, peak %10")
        .arg(m_runTokens)
        .arg(secs, 0, 'f', 2)
        .arg(secs > 0 ? m_runTokens / secs : 0, 0, 'f', 0)
        .arg(m_chunks)
        .arg(secs > 0 ? m_chunks / secs : 0, 0, 'f', 1)
        .arg(secs > 0 ? refreshes / secs / nViews : 0, 0, 'f', 1)
        .arg(nViews)
        .arg(formatBytes(m_peakTraceBytes), formatBytes(m.rss), formatBytes(m.peakRss), frameLine);
}

QString MainWindow::benchmarkInteraction()
{
    const qint64 n = m_trace ? m_trace->tokens() : 0;
    if (n < 2)
        return tr("interaction benchmark: no trace shown");
    m_group->setFollow(false);
    m_follow->setChecked(false);
    QStringList lines;
    // One frame as the user gets it: the shared range moves, every view queries its data (and reads
    // exact values from the file when zoomed in far enough) and draws.
    auto frame = [this](const QCPRange& r) {
        QElapsedTimer clock;
        clock.start();
        m_group->setRange(r);
        for (TraceView* v : views()) {
            v->refresh();
            v->plot()->replot(QCustomPlot::rpImmediateRefresh);
        }
        const float ms = float(clock.nsecsElapsed() / 1e6);
        QCoreApplication::processEvents(); // the queued replots, outside the measurement
        return ms;
    };
    // Whether what a frame drew is exact: one value per token (pyramids or a full-resolution window).
    const int gates = m_trace->probeIndex(QString::fromLatin1(kDecayProbe));
    auto exact = [this, gates] {
        const QCPRange r = m_group->range();
        return m_trace->resolutionFor(TraceData::xToToken(r.lower) + 1, TraceData::xToToken(r.upper),
                                      gates) == 1;
    };
    auto phase = [&](const QString& name, int frames, const std::function<QCPRange(int)>& rangeAt) {
        QVector<float> ms;
        int exactFrames = 0;
        for (int i = 0; i < frames; ++i) {
            ms.push_back(frame(rangeAt(i)));
            exactFrames += exact() ? 1 : 0;
        }
        // Then how long until the last range is drawn exactly (windows are read in the background).
        QElapsedTimer wait;
        wait.start();
        while (m_trace->fineLoading() && wait.elapsed() < 10000)
            QCoreApplication::processEvents(QEventLoop::AllEvents, 5);
        const double waitMs = wait.nsecsElapsed() / 1e6;
        lines << QStringLiteral(
                     "%1: %2 frames, %3; %4 of them exact per token (the gates); the last exact after %5 ms")
                     .arg(name)
                     .arg(frames)
                     .arg(frameStatistics(ms))
                     .arg(exactFrames)
                     .arg(exact() ? waitMs : -1.0, 0, 'f', 0);
    };
    const double total = double(n);
    const double x0 = TraceData::tokenToX(0) - 0.5;
    // Pan a tenth of the trace across it, 1% a frame.
    phase(QStringLiteral("pan (10% of the trace in view)"), 60, [&](int i) {
        const double lo = x0 + total * 0.01 * i;
        return QCPRange(lo, lo + total * 0.1);
    });
    // Zoom from the whole trace towards its middle, 12% a frame.
    phase(QStringLiteral("zoom (whole trace to about 1/900)"), 60, [&](int i) {
        const double half = total / 2 / std::pow(1.12, i), mid = x0 + total / 2;
        return QCPRange(mid - half, mid + half);
    });
    // Pan 2,000 tokens in view, 50 a frame (reading speed): every token drawn exactly once the
    // window around them is read from the file, in the background.
    phase(QStringLiteral("full-resolution pan (2,000 tokens in view, 50 a frame)"), 120, [&](int i) {
        const double lo = x0 + std::fmod(total * 0.3 + 50.0 * i, std::max(1.0, total - 2000));
        return QCPRange(lo, lo + std::min(2000.0, total));
    });
    // The same at 400 a frame (a fast drag): windows lag behind, frames stay short.
    phase(QStringLiteral("fast pan (2,000 tokens in view, 400 a frame)"), 60, [&](int i) {
        const double lo = x0 + std::fmod(total * 0.6 + 400.0 * i, std::max(1.0, total - 2000));
        return QCPRange(lo, lo + std::min(2000.0, total));
    });
    const MemoryUse m = processMemory();
    lines << QStringLiteral("%1 tokens, %2 layers x %3 %4, %5 views; resolution kept %6 tokens per value, "
                            "full-resolution window %7 tokens; RSS %8, peak %9")
                 .arg(n)
                 .arg(m_trace->layers())
                 .arg(m_trace->units())
                 .arg(pluralUnitName(m_trace->unitName()))
                 .arg(views().size())
                 .arg(m_trace->seriesResolution())
                 .arg(m_trace->fineTokens())
                 .arg(formatBytes(m.rss), formatBytes(m.peakRss));
    return lines.join(QLatin1Char('\n'));
}

// ---------------------------------------------------------------------------------------------------
// Export and About

bool MainWindow::exportViews(const QString& folder, const QString& baseName,
                             const QList<ExportFormat>& formats, const ExportStyle& style,
                             QStringList* written)
{
    if (!QDir().mkpath(folder)) {
        showError(tr("%1: cannot create the folder").arg(folder));
        return false;
    }
    const QStringList names = viewNames();
    const QList<TraceView*> vs = views();
    for (int i = 0; i < vs.size(); ++i)
        for (ExportFormat f : formats) {
            const QString path = QDir(folder).filePath(baseName + "-" + names[i] + "." + suffixOf(f));
            QString error;
            if (!PlotExporter::save(vs[i], path, style, &error)) {
                showError(error.isEmpty() ? tr("%1: export failed").arg(path) : error);
                return false;
            }
            if (written)
                written->append(path);
        }
    return true;
}

QStringList MainWindow::viewNames() const
{
    QStringList names{"loss"};
    for (ProbeView* v : m_probeViews) {
        const QString base = v->probeName().isEmpty() ? QStringLiteral("probe") : v->probeName();
        QString name = base;
        for (int i = 2; names.contains(name); ++i)
            name = QStringLiteral("%1-%2").arg(base).arg(i);
        names.push_back(name);
    }
    return names;
}

void MainWindow::showExportDialog()
{
    const QString base = m_trace->filePath().isEmpty() ? QString("statescope")
                                                       : QFileInfo(m_trace->filePath()).completeBaseName();
    const QString folder = m_settings->value("export/folder", QDir::homePath()).toString();
    ExportDialog dialog(folder, base, false, this);
    dialog.setTraceLabels(m_trace->label(), overlay() ? overlay()->label() : QString());
    if (dialog.exec() != QDialog::Accepted)
        return;
    m_settings->setValue("export/folder", dialog.folder());
    QStringList written;
    if (exportViews(dialog.folder(), dialog.baseName(), dialog.formats(), dialog.style(), &written))
        statusBar()->showMessage(tr("Exported %1 files to %2").arg(written.size()).arg(dialog.folder()),
                                 5000);
}

QString MainWindow::guideHtml() const
{
    // The shortcuts as the actions have them now, so that the list cannot drift from the window.
    QString keys;
    QList<QAction*> actions = findChildren<QAction*>();
    for (QAction* a : actions) {
        if (a->shortcuts().isEmpty())
            continue;
        QStringList seqs;
        for (const QKeySequence& k : a->shortcuts())
            seqs << k.toString(QKeySequence::NativeText).toHtmlEscaped();
        QString name = a->text();
        name.remove(QRegularExpression(QStringLiteral("&(?!&)")));
        keys += QStringLiteral("<tr><td><b>%1</b></td><td>%2</td></tr>")
                    .arg(seqs.join(", "), name.toHtmlEscaped());
    }
    return tr("<h3>What am I looking at?</h3>"
              "<p>A recurrent language model reads the input one token at a time. Every plot shares one "
              "token axis: position 1 is the first token of the input.</p>"
              "<h4>Loss: per-token NLL</h4>"
              "<p>The negative log-likelihood, −log p(token | the tokens before it), in nats: how "
              "surprised the model is by each token. Low is good. The thick line is its moving average, "
              "the steps the perplexity exp(mean NLL) of consecutive buckets. A model that cannot handle "
              "longer inputs shows NLL climbing once the position passes what it was trained on.</p>"
              "<h4>Forget gates α</h4>"
              "<p>α = exp(Δ·A), the factor by which the recurrent state is multiplied at each token: "
              "near 1 the model keeps what it has, near 0 it forgets. Δ is the input-dependent step "
              "size and A a learned negative decay rate. The probe records one summary per head or "
              "channel group of each layer (its mean over the group), drawn as a line per head or "
              "group of the chosen layer, and as a layer × token heatmap.</p>"
              "<h4>State norm ‖S‖</h4>"
              "<p>The norm of each head's or group's recurrent state after the token. A state that "
              "never forgets enough keeps growing past the training length; one that has learned to "
              "forget levels off.</p>"
              "<h4>Markers</h4>"
              "<p><b>training length</b>: the length of the sequences the model was trained on. "
              "<b>T_forget</b>: the training length that the paper's fit says a state of this size "
              "(N_S) needs for the model to learn to forget, T_forget[K tokens] = 5.172 · N_S[M] − "
              "4.469; trained on less, it tends to fail past its training length. <b>needle</b> (a shaded "
              "band): the sentence holding the key of a "
              "passkey prompt.</p>"
              "<p>After Chen et al., <i>Stuffed Mamba: Oversized States Lead to the Inability to "
              "Forget</i>, COLM 2025.</p>"
              "<h4>Keyboard shortcuts</h4><table cellspacing=\"4\">%1</table>"
              "<h4>Mouse</h4>"
              "<p>Drag or wheel: pan and zoom the token axis of every plot. Ctrl+wheel, or the wheel "
              "over a y axis: zoom that plot's y. Shift+drag: zoom to a box. Double-click: fit y to the "
              "data again. Click: move the cursor, which the token strip follows.</p>")
        .arg(keys);
}

void MainWindow::showGuide()
{
    if (!m_guideDialog) {
        auto* dialog = new QDialog(this);
        dialog->setObjectName("guideDialog");
        dialog->setWindowTitle(tr("What am I looking at? — StateScope"));
        auto* text = new QTextBrowser(dialog);
        text->setObjectName("guideText");
        text->setOpenExternalLinks(true);
        auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, dialog);
        connect(buttons, &QDialogButtonBox::rejected, dialog, &QDialog::close);
        auto* layout = new QVBoxLayout(dialog);
        layout->addWidget(text);
        layout->addWidget(buttons);
        dialog->resize(640, 720);
        m_guideDialog = dialog;
    }
    if (auto* text = m_guideDialog->findChild<QTextBrowser*>("guideText"))
        text->setHtml(guideHtml());
    m_guideDialog->show();
    m_guideDialog->raise();
    m_guideDialog->activateWindow();
}

void MainWindow::showAbout()
{
    QString cuda = Runner::cudaAvailable() ? tr("available") : tr("not available");
    for (const CudaDeviceInfo& d : cudaDevices(false))
        cuda += QString("<br>%1 (%2)").arg(QString::fromStdString(d.name), formatBytes(d.totalBytes));
    QMessageBox::about(
        this, tr("About StateScope"),
        tr("<h3>StateScope %1</h3>"
           "<p>Watch a recurrent language model's loss, forget gates and state norms while it "
           "reads (after Chen et al., <i>Stuffed Mamba</i>, 2025).</p>"
           "<p>Qt %2<br>LibTorch %3<br>CUDA: %4</p>")
            .arg(STATESCOPE_VERSION, qVersion(), QString::fromStdString(Runner::torchVersion()), cuda));
}

} // namespace statescope
