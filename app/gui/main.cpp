// statescope: the desktop app. Watch a recurrent model's loss, forget gates and state norms live.
#include "MainWindow.h"
#include "ModelPanel.h"
#include "runtime/Prompts.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDir>
#include <QTemporaryDir>
#include <QTimer>

#include <cstdio>

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
    QCommandLineOption tracesDir{"traces-dir", "Write traces to <dir> instead of the per-user data folder.",
                                 "dir"};
    QCommandLineOption theme{"theme", "Colour theme: light or dark.", "name"};
    QCommandLineOption screenshot{"screenshot", "Save the window to the PNG <file> (with --quit-after).",
                                  "file"};
    QCommandLineOption quitAfter{"quit-after", "Quit after <ms> milliseconds.", "ms"};
    QCommandLineOption quitWhenDone{"quit-when-done", "Quit when the run ends (for measurements)."};
    QCommandLineOption stats{"stats",
                             "Print tokens/s, plot updates per second and memory to stderr when quitting."};

    void setUp(QCommandLineParser& parser) const
    {
        parser.setApplicationDescription(
            "Watch a recurrent language model's loss, forget gates and state norms live while it reads.");
        parser.addHelpOption();
        parser.addVersionOption();
        parser.addOptions({demo, model, trace, text, prompt, run, chunk, tracesDir, theme, screenshot,
                           quitAfter, quitWhenDone, stats});
        parser.addPositionalArgument("paths", "Model folders, .txt inputs or .h5 traces to open (as if dropped).",
                                     "[paths...]");
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

    MainWindow::Options options;
    // A screenshot shows the default look, whatever the user's settings, and leaves them alone.
    QTemporaryDir scratch;
    if (parser.isSet(cli.screenshot))
        options.settingsFile = scratch.filePath("settings.ini");
    if (parser.isSet(cli.tracesDir))
        options.tracesFolder = QDir(parser.value(cli.tracesDir)).absolutePath();
    MainWindow window(options);
    if (parser.isSet(cli.theme))
        window.setDarkTheme(parser.value(cli.theme) == "dark");
    if (parser.isSet(cli.chunk))
        window.modelPanel()->setChunkSize(parser.value(cli.chunk).toInt());
    window.show();

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
    if (ok && parser.isSet(cli.prompt)) {
        try {
            window.setInputText(
                QString::fromStdString(promptFromSpec(parser.value(cli.prompt).toStdString())),
                "prompt: " + parser.value(cli.prompt));
        } catch (const std::exception& e) {
            window.showError(QString::fromUtf8(e.what()));
            ok = false;
        }
    }
    if (ok && parser.isSet(cli.trace))
        ok = window.openTrace(parser.value(cli.trace));
    for (const QString& path : parser.positionalArguments())
        if (ok)
            ok = window.openDroppedPath(path);
    if (ok && startRun)
        window.startRun();

    const bool printStats = parser.isSet(cli.stats);
    auto finish = [&window, printStats] {
        if (printStats)
            std::fprintf(stderr, "%s\n", qPrintable(window.statsSummary()));
        QApplication::quit();
    };
    if (parser.isSet(cli.quitWhenDone))
        QObject::connect(&window, &MainWindow::runEnded, &app, finish, Qt::QueuedConnection);
    if (parser.isSet(cli.quitAfter)) {
        const int ms = parser.value(cli.quitAfter).toInt();
        const QString shot = parser.value(cli.screenshot);
        QTimer::singleShot(ms, &app, [&window, shot, finish] {
            if (!shot.isEmpty() && !window.grab().save(shot, "PNG"))
                std::fprintf(stderr, "statescope: cannot write %s\n", qPrintable(shot));
            finish();
        });
    } else if (parser.isSet(cli.screenshot)) {
        std::fprintf(stderr, "statescope: --screenshot needs --quit-after\n");
        return 2;
    }
    return app.exec();
}
