// statescope: the desktop app. Watch a recurrent model's loss, forget gates and state norms live.
#include "LossView.h"
#include "MainWindow.h"
#include "ModelPanel.h"
#include "PasskeyDialog.h"
#include "SweepDialog.h"

#include "ForgetThresholdView.h"
#include "PlotExporter.h"
#include "PlotGroup.h"
#include "runtime/Runner.h"
#include "util/Allocator.h"
#include "util/Threads.h"
#include "util/Warnings.h"
#include <algorithm>

#include <QApplication>
#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDir>
#include <QPointer>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QTimer>

#include <cstdio>
#include <iostream>

using namespace statescope;

namespace {

struct Cli {
    QCommandLineOption demo{"demo", "Load the built-in model with the demo text and start the run."};
    QCommandLineOption model{"model", "Open the model folder <dir>.", "dir"};
    QCommandLineOption trace{"trace", "Show the saved trace <file> (no model needed).", "file"};
    QCommandLineOption text{"text", "Read the input from the text file <file>.", "file"};
    QCommandLineOption prompt{
        "prompt", "Generate the input: newlines:N, capitals:N or passkey:BLOCKS[:DEPTH[:SEED]].", "spec"};
    QCommandLineOption run{"run", "Start the run at once (needs a model and an input)."};
    QCommandLineOption chunk{"chunk-size", "Tokens per engine call (default: auto, about 50 ms each).", "n"};
    QCommandLineOption device{"device", "Run on <name>: cpu or cuda (default: as last time).", "name"};
    QCommandLineOption tracesDir{"traces-dir", "Write traces to <dir> instead of the per-user data folder.",
                                 "dir"};
    QCommandLineOption theme{"theme", "Colour theme: light or dark.", "name"};
    QCommandLineOption screenshot{
        "screenshot", "Save the window to the PNG <file> (with --quit-after or --quit-when-done).", "file"};
    QCommandLineOption size{"size", "Window size <w>x<h> in pixels, e.g. 1280x720 (screenshots).", "size"};
    QCommandLineOption cursor{"cursor", "Put the cursor (and its value readout) on token <n>.", "n"};
    QCommandLineOption quitAfter{"quit-after", "Quit after <ms> milliseconds.", "ms"};
    QCommandLineOption quitWhenDone{"quit-when-done", "Quit when the run ends (for measurements)."};
    QCommandLineOption overlay{
        "overlay", "Compare with the saved trace <file> (after the run, with --run); repeat for more.",
        "file"};
    QCommandLineOption logX{"log-x", "Logarithmic token axis (figures have one unless --linear-x)."};
    QCommandLineOption linearX{"linear-x", "Linear token axis (the window's default; for figures too)."};
    QCommandLineOption noTokenNll{"no-token-nll",
                                  "Loss plot: averages and perplexity only, not every token's "
                                  "NLL (what figures show unless --token-nll)."};
    QCommandLineOption tokenNll{"token-nll", "Loss plot: every token's NLL too (the window's default; for "
                                             "figures too)."};
    QCommandLineOption figureWidth{"figure-width",
                                   "Width of the --export-figures figures in mm: 89 (one column, the "
                                   "default), 183 (two columns) or another.",
                                   "mm"};
    QCommandLineOption bucket{"bucket", "Loss plot: tokens per perplexity bucket (128 ... 8192).", "n"};
    QCommandLineOption exportFigures{"export-figures",
                                     "Write each plot in the paper style (see --figure-width) to "
                                     "<prefix>-<view>.{png,svg} (loss, "
                                     "then each probe view's probe: "
                                     "decay, state_norm, ...) once the run has ended "
                                     "(or the trace is open), then quit.",
                                     "prefix"};
    QCommandLineOption benchInteraction{
        "bench-interaction", "Pan and zoom the trace shown in scripted steps, print the frame times, quit."};
    QCommandLineOption passkeyResults{
        "passkey-results",
        "Show the passkey results file <file> (statescope-cli passkey --out) in the passkey dialog; "
        "--screenshot then saves that dialog.",
        "file"};
    QCommandLineOption sweepSummary{
        "sweep-summary",
        "Show a sweep's summary.json (statescope-cli sweep report) in the sweep results window; "
        "--screenshot then saves that window and --export-figures writes "
        "<prefix>-forget-threshold.{png,svg}.",
        "file"};
    QCommandLineOption stats{"stats",
                             "Print tokens/s, plot updates per second and memory to stderr when quitting."};

    void setUp(QCommandLineParser& parser) const
    {
        parser.setApplicationDescription(
            "Watch a recurrent language model's loss, forget gates and state norms live while it reads.");
        parser.addHelpOption();
        parser.addVersionOption();
        parser.addOptions({demo,
                           model,
                           trace,
                           text,
                           prompt,
                           run,
                           chunk,
                           device,
                           tracesDir,
                           theme,
                           screenshot,
                           size,
                           cursor,
                           quitAfter,
                           quitWhenDone,
                           overlay,
                           logX,
                           linearX,
                           noTokenNll,
                           tokenNll,
                           bucket,
                           exportFigures,
                           figureWidth,
                           stats,
                           benchInteraction,
                           passkeyResults,
                           sweepSummary});
        parser.addPositionalArgument(
            "paths", "Model folders, .txt inputs or .h5 traces to open (as if dropped).", "[paths...]");
    }
};

void setNames()
{
    QCoreApplication::setApplicationName("statescope");
    QCoreApplication::setOrganizationName("StateScope");
    QCoreApplication::setApplicationVersion(STATESCOPE_VERSION);
}

} // namespace

int main(int argc, char** argv)
{
    statescope::preferPassiveOpenMp(argv);
    statescope::keepFreedMemoryForReuse();
    // --help and --version answer without a display.
    for (int i = 1; i < argc; ++i) {
        const QByteArray a(argv[i]);
        if (a == "--help" || a == "-h" || a == "--help-all" || a == "--version" || a == "-v") {
            QCoreApplication core(argc, argv);
            setNames();
            QCommandLineParser parser;
            const Cli cli;
            cli.setUp(parser);
            parser.process(core); // prints and exits
            return 0;
        }
    }

    QApplication app(argc, argv);
    setNames();
    QApplication::setApplicationDisplayName("StateScope");
    QCommandLineParser parser;
    const Cli cli;
    cli.setUp(parser);
    parser.process(app);

    // Figures: the paper preset of the width asked for, a log token axis and the averaged NLL unless
    // the command line says otherwise.
    if (parser.isSet(cli.logX) && parser.isSet(cli.linearX)) {
        std::fprintf(stderr, "statescope: --log-x and --linear-x exclude each other\n");
        return 2;
    }
    if (parser.isSet(cli.tokenNll) && parser.isSet(cli.noTokenNll)) {
        std::fprintf(stderr, "statescope: --token-nll and --no-token-nll exclude each other\n");
        return 2;
    }
    ExportStyle figureStyle = ExportStyle::paperPreset();
    if (parser.isSet(cli.figureWidth)) {
        bool number = false;
        const double mm = parser.value(cli.figureWidth).toDouble(&number);
        if (!number || mm < 20 || mm > 500) {
            std::fprintf(stderr, "statescope: --figure-width takes a width in mm from 20 to 500\n");
            return 2;
        }
        if (mm >= ExportStyle::paperWidePreset().widthMm - 30)
            figureStyle = ExportStyle::paperWidePreset();
        figureStyle.widthMm = mm;
    }
    figureStyle.logX = !parser.isSet(cli.linearX);
    figureStyle.tokenNll = parser.isSet(cli.tokenNll);

    MainWindow::Options options;
    // A screenshot shows the default look, whatever the user's settings, and leaves them alone.
    QTemporaryDir scratch;
    // So do exported figures: they depend on the command line alone.
    if (parser.isSet(cli.screenshot) || parser.isSet(cli.exportFigures))
        options.settingsFile = scratch.filePath("settings.ini");
    if (parser.isSet(cli.tracesDir))
        options.tracesFolder = QDir(parser.value(cli.tracesDir)).absolutePath();
    MainWindow window(options);
    // Engine warnings (NaN weights, say) reach the status bar as well as stderr; from any thread.
    QPointer<MainWindow> target(&window);
    statescope::setWarningHandler([target](const std::string& message) {
        std::cerr << "statescope: warning: " << message << "\n";
        QMetaObject::invokeMethod(
            qApp,
            [target, text = QString::fromStdString(message)] {
                if (target)
                    target->statusBar()->showMessage(QObject::tr("Warning: %1").arg(text), 30000);
            },
            Qt::QueuedConnection);
    });
    if (parser.isSet(cli.theme))
        window.setDarkTheme(parser.value(cli.theme) == "dark");
    if (parser.isSet(cli.chunk))
        window.modelPanel()->setChunkSize(parser.value(cli.chunk).toInt());
    if (parser.isSet(cli.device)) {
        const QString wanted = parser.value(cli.device);
        window.modelPanel()->setDevice(wanted);
        // Asked for a device this build or machine cannot run on: say so rather than run elsewhere.
        if (window.modelPanel()->device() != wanted) {
            std::fprintf(stderr, "statescope: --device: expected cpu%s, got \"%s\"\n",
                         Runner::cudaAvailable() ? " or cuda" : " (CUDA is not available here)",
                         qPrintable(wanted));
            return 2;
        }
    }
    if (parser.isSet(cli.size)) {
        const QStringList wh = parser.value(cli.size).split(QLatin1Char('x'));
        const int w = wh.value(0).toInt(), h = wh.size() == 2 ? wh[1].toInt() : 0;
        if (w < 200 || h < 200 || w > 20000 || h > 20000) {
            std::fprintf(stderr,
                         "statescope: --size: expected WIDTHxHEIGHT (200 to 20000 each), got \"%s\"\n",
                         qPrintable(parser.value(cli.size)));
            return 2;
        }
        window.resize(w, h);
    }
    window.show();

    if (parser.isSet(cli.exportFigures)) {
        // A batch job: errors go to stderr and the exit code, not to dialogs nobody will close.
        window.setRecordErrors(true);
        QObject::connect(&window, &MainWindow::errorShown, &app, [&app](const QString& message) {
            std::fprintf(stderr, "statescope: %s\n", qPrintable(message));
            QTimer::singleShot(0, &app, [&app] { app.exit(1); });
        });
    }
    bool ok = true;
    bool startRun = parser.isSet(cli.run);
    if (parser.isSet(cli.demo)) {
        ok = window.loadDemo();
        startRun = ok;
    }
    if (ok && parser.isSet(cli.model))
        ok = window.openModel(parser.value(cli.model));
    if (ok && parser.isSet(cli.text))
        ok = window.openText(parser.value(cli.text));
    if (ok && parser.isSet(cli.prompt))
        ok = window.setInputPrompt(parser.value(cli.prompt));
    if (ok && parser.isSet(cli.trace))
        ok = window.openTrace(parser.value(cli.trace));
    for (const QString& path : parser.positionalArguments())
        if (ok)
            ok = window.openDroppedPath(path);
    QWidget* shown = &window; // what --screenshot saves
    if (ok && parser.isSet(cli.passkeyResults)) {
        ok = window.openPasskeyResults(parser.value(cli.passkeyResults));
        shown = window.passkeyDialog();
    }
    if (ok && parser.isSet(cli.sweepSummary)) {
        ok = window.openSweepSummary(parser.value(cli.sweepSummary));
        shown = window.sweepDialog();
    }
    // --size is the size of what the screenshot shows: a results dialog opens at its own size otherwise.
    if (shown != &window && parser.isSet(cli.size))
        shown->resize(window.size());
    if (parser.isSet(cli.logX) || parser.isSet(cli.linearX))
        window.plotGroup()->setLogX(parser.isSet(cli.logX));
    if (parser.isSet(cli.noTokenNll) || parser.isSet(cli.tokenNll))
        window.lossView()->setTokenNllVisible(parser.isSet(cli.tokenNll));
    if (parser.isSet(cli.bucket))
        window.lossView()->setBucketSize(parser.value(cli.bucket).toInt());
    // Any number of runs to compare (--overlay A --overlay B), as checked in the run table.
    const QStringList overlays = parser.values(cli.overlay);
    auto overlayAll = [&window, overlays] {
        bool good = true;
        for (const QString& o : overlays)
            good = good && window.overlayTrace(o);
        return good;
    };
    if (ok && !startRun)
        ok = overlayAll();
    if (ok && parser.isSet(cli.cursor))
        window.plotGroup()->setCursor(parser.value(cli.cursor).toLongLong());
    if (ok && startRun)
        window.startRun();

    const bool printStats = parser.isSet(cli.stats);
    // The summary is printed when the event loop ends, however the app quits (Ctrl+Q too).
    auto finish = [] { QApplication::quit(); };
    if (parser.isSet(cli.benchInteraction)) {
        if (!ok)
            return 1;
        QTimer::singleShot(0, &app, [&window] {
            std::fprintf(stderr, "%s\n", qPrintable(window.benchmarkInteraction()));
            QApplication::quit();
        });
    }
    if (parser.isSet(cli.exportFigures)) {
        // Figures once the data is complete: when the run ends, or at once for an opened trace.
        const QString prefix = parser.value(cli.exportFigures);
        const bool sweep = parser.isSet(cli.sweepSummary);
        auto exportAndQuit = [&window, &app, prefix, overlayAll, startRun, figureStyle, sweep] {
            if (sweep) { // the sweep's figure alone
                QString error;
                ExportStyle style = figureStyle;
                style.logX = false; // N_S is linear; the view sets its own log axes
                // Taller than a trace's figure: the legend's rows above, the equation inside.
                style.heightMm = std::max(style.heightMm, 0.75 * style.widthMm);
                QCustomPlot* plot = window.sweepDialog()->view()->plot();
                const QString base = prefix + "-forget-threshold";
                const bool good = PlotExporter::savePng(plot, base + ".png", style, &error) &&
                                  PlotExporter::saveSvg(plot, base + ".svg", style, &error);
                if (good)
                    std::fprintf(stderr, "statescope: wrote %s.{png,svg}\n", qPrintable(base));
                else
                    std::fprintf(stderr, "statescope: %s\n", qPrintable(error));
                app.exit(good ? 0 : 1);
                return;
            }
            bool good = !startRun || overlayAll();
            good = good && window.exportFigures(prefix, figureStyle); // a failure went out through errorShown
            if (good)
                std::fprintf(stderr, "statescope: wrote %s-{%s}.{png,svg}\n", qPrintable(prefix),
                             qPrintable(window.viewNames().join(',')));
            app.exit(good ? 0 : 1);
        };
        if (!ok)
            return 1;
        if (startRun)
            QObject::connect(&window, &MainWindow::runEnded, &app, exportAndQuit, Qt::QueuedConnection);
        else
            QTimer::singleShot(0, &app, exportAndQuit);
    } else if (parser.isSet(cli.quitWhenDone)) {
        // The screenshot of the finished run, if asked for: what a measurement's window showed.
        const QString shot = parser.isSet(cli.quitAfter) ? QString() : parser.value(cli.screenshot);
        QObject::connect(
            &window, &MainWindow::runEnded, &app,
            [shown, shot, finish] {
                if (!shot.isEmpty() && !shown->grab().save(shot, "PNG"))
                    std::fprintf(stderr, "statescope: cannot write %s\n", qPrintable(shot));
                finish();
            },
            Qt::QueuedConnection);
    }
    if (!overlays.isEmpty() && startRun && !parser.isSet(cli.exportFigures))
        QObject::connect(&window, &MainWindow::runEnded, &window, overlayAll, Qt::QueuedConnection);
    if (parser.isSet(cli.quitAfter)) {
        const int ms = parser.value(cli.quitAfter).toInt();
        const QString shot = parser.value(cli.screenshot);
        QTimer::singleShot(ms, &app, [shown, shot, finish] {
            if (!shot.isEmpty() && !shown->grab().save(shot, "PNG"))
                std::fprintf(stderr, "statescope: cannot write %s\n", qPrintable(shot));
            finish();
        });
    } else if (parser.isSet(cli.screenshot) && !parser.isSet(cli.quitWhenDone)) {
        std::fprintf(stderr, "statescope: --screenshot needs --quit-after or --quit-when-done\n");
        return 2;
    }
    const int rc = app.exec();
    statescope::setWarningHandler({});
    if (printStats)
        std::fprintf(stderr, "%s\n", qPrintable(window.statsSummary()));
    return rc;
}
