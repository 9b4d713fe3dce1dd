#include "RunController.h"

#include "Error.h"
#include "Resources.h"
#include "tokenizers/Tokenizer.h"
#include "trace/AsyncTraceWriter.h"
#include "trace/TraceFile.h"

#include <QDir>
#include <QFileInfo>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace statescope {

struct RunController::Shared {
    std::mutex mutex;
    std::condition_variable wake;
    std::atomic<bool> cancel{false};
    bool paused = false; // under mutex
    int inFlight = 0;    // chunks emitted and not yet handled by the GUI thread; under mutex
    int maxInFlight = 8;

    // Between chunks: sleeps while paused or while the GUI thread is behind. Returns false once
    // cancelled; *wasPaused says whether the wait was a pause (not counted as run time).
    bool waitBetweenChunks(bool* wasPaused)
    {
        std::unique_lock<std::mutex> lock(mutex);
        *wasPaused = paused;
        wake.wait(lock, [this] { return cancel.load() || (!paused && inFlight < maxInFlight); });
        return !cancel.load();
    }
};

namespace {

using Clock = std::chrono::steady_clock;

} // namespace

RunController::RunController(QObject* parent) : QObject(parent), m_shared(std::make_shared<Shared>())
{
    qRegisterMetaType<statescope::ChunkProbes>();
    qRegisterMetaType<statescope::RunStart>();
    m_thread.setObjectName("statescope-runner");
    m_worker = new RunWorker(m_shared);
    m_worker->moveToThread(&m_thread);
    // The model and its tensors are freed in the thread that made them.
    connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);

    connect(m_worker, &RunWorker::runStarted, this, [this](const RunStart& s) {
        m_tracePath = s.tracePath;
        setState(m_state == State::Loading ? State::Running : m_state);
        emit runStarted(s);
    });
    connect(m_worker, &RunWorker::chunkComputed, this, &RunController::onWorkerChunk);
    connect(m_worker, &RunWorker::progress, this, &RunController::progress);
    connect(m_worker, &RunWorker::finished, this, [this](const QString& path, bool completed) {
        m_tracePath = path;
        setState(State::Idle);
        emit finished(path, completed);
    });
    connect(m_worker, &RunWorker::failed, this, [this](const QString& message) {
        setState(State::Idle);
        emit failed(message);
    });
    m_thread.start();
}

RunController::~RunController()
{
    m_shared->cancel = true;
    m_shared->wake.notify_all();
    m_thread.quit();
    m_thread.wait();
}

void RunController::setMaxChunksInFlight(int n)
{
    std::lock_guard<std::mutex> lock(m_shared->mutex);
    m_shared->maxInFlight = std::max(1, n);
}

bool RunController::start(const RunRequest& request)
{
    if (isBusy())
        return false;
    {
        std::lock_guard<std::mutex> lock(m_shared->mutex);
        m_shared->cancel = false;
        m_shared->paused = false;
        m_shared->inFlight = 0;
    }
    m_tracePath.clear();
    setState(State::Loading);
    RunWorker* worker = m_worker;
    QMetaObject::invokeMethod(
        m_worker, [worker, request] { worker->run(request); }, Qt::QueuedConnection);
    return true;
}

void RunController::pause()
{
    if (m_state != State::Running && m_state != State::Loading)
        return;
    {
        std::lock_guard<std::mutex> lock(m_shared->mutex);
        m_shared->paused = true;
    }
    setState(State::Paused);
}

void RunController::resume()
{
    if (m_state != State::Paused)
        return;
    {
        std::lock_guard<std::mutex> lock(m_shared->mutex);
        m_shared->paused = false;
    }
    m_shared->wake.notify_all();
    setState(State::Running);
}

void RunController::cancel()
{
    if (!isBusy() || m_state == State::Cancelling)
        return;
    {
        std::lock_guard<std::mutex> lock(m_shared->mutex);
        m_shared->cancel = true;
    }
    m_shared->wake.notify_all();
    setState(State::Cancelling);
}

void RunController::unloadModel()
{
    RunWorker* worker = m_worker;
    QMetaObject::invokeMethod(
        m_worker, [worker] { worker->unload(); }, Qt::QueuedConnection);
}

void RunController::setState(State s)
{
    if (s == m_state)
        return;
    m_state = s;
    emit stateChanged(s);
}

void RunController::onWorkerChunk(const ChunkProbes& chunk)
{
    emit chunkReady(chunk);
    {
        std::lock_guard<std::mutex> lock(m_shared->mutex);
        --m_shared->inFlight;
    }
    m_shared->wake.notify_all();
}

// ---------------------------------------------------------------------------------------------------

RunWorker::~RunWorker() = default;

void RunWorker::unload()
{
    m_runner.reset();
    m_runnerKey.clear();
}

Runner& RunWorker::runner(const RunRequest& r)
{
    // A fixed chunk size is the runner's; an adaptive run needs none (RunLoop sizes its chunks).
    RunOptions options = r.options;
    if (options.chunkSize <= 0)
        options.chunkSize = RunOptions().chunkSize;
    const QString key = QStringList{QFileInfo(r.modelDir).canonicalFilePath(),
                                    QString::fromStdString(options.device),
                                    dtypeName(options.dtype),
                                    QString::number(options.threads),
                                    QString::number(options.reference),
                                    QString::number(options.chunkSize),
                                    probeDetailName(options.probeDetail)}
                            .join('|');
    if (!m_runner || key != m_runnerKey) {
        m_runner.reset(); // free the old model before loading the next
        m_runnerKey.clear();
        m_runner = Runner::open(r.modelDir.toStdString(), options);
        m_runnerKey = key;
    }
    m_runner->reset();
    return *m_runner;
}

void RunWorker::run(const RunRequest& r)
{
    RunController::Shared& shared = *m_shared;
    std::unique_ptr<AsyncTraceWriter> writer;
    try {
        // The input first: a mistake there shows before the (slower) model load.
        const ModelFolder folder = inspectModelFolder(r.modelDir.toStdString(), r.options.probeDetail);
        const PreparedInput input = prepareInput(r.input, folder.tokenizerPath, [](const std::string& path) {
            return cachedTokenizer(QString::fromStdString(path));
        });
        if (shared.cancel) {
            emit finished(QString(), false);
            return;
        }

        Runner& model = runner(r);
        if (shared.cancel) {
            emit finished(QString(), false);
            return;
        }
        model.checkIds(input.ids, "input", " (is the tokenizer the model's?)");
        // The cached model keeps its weights; the mitigations are this run's.
        model.setMitigation(r.options.mitigation);
        model.setOldContext(r.options.oldContext);
        calibrateForRun(model, r.calibrationFile.toStdString(),
                        chooseTokenizerPath(r.input.tokenizer, folder.tokenizerPath), input.ids, "the input",
                        r.trainingLength);
        if (shared.cancel) {
            emit finished(QString(), false);
            return;
        }

        const QString folderName = r.traceFolder.isEmpty() ? tracesFolder() : r.traceFolder;
        QDir().mkpath(folderName);
        const QString modelName = r.modelName.isEmpty() ? QDir(r.modelDir).dirName() : r.modelName;
        const QString path = newTracePath(folderName, modelName);

        const bool hasOffsets = !input.offsets.empty();
        TraceHeader header = model.traceHeader(input.source, input.description, hasOffsets);
        if (r.trainingLength > 0)
            header.trainingLength = r.trainingLength;
        writer = std::make_unique<AsyncTraceWriter>(path.toStdString(), header);

        RunStart start;
        start.info = model.info();
        start.header = header;
        start.tracePath = path;
        start.totalTokens = static_cast<qint64>(input.ids.size());
        start.text = QByteArray::fromStdString(input.text);
        emit runStarted(start);

        const int64_t total = static_cast<int64_t>(input.ids.size());
        // Tokens/s over wall time less pauses: it includes waiting for the window, so the time left
        // it predicts is the one the user will see.
        const auto runStart = Clock::now();
        double pausedSeconds = 0;
        RunLoop loop;
        loop.targetChunkSeconds = r.options.chunkSize <= 0 ? r.targetChunkSeconds : 0;
        loop.beforeChunk = [&] {
            const auto w0 = Clock::now();
            bool wasPaused = false;
            const bool go = shared.waitBetweenChunks(&wasPaused);
            if (wasPaused)
                pausedSeconds += std::chrono::duration<double>(Clock::now() - w0).count();
            return go;
        };
        loop.onChunk = [&](const ChunkProbes& chunk) {
            // Queued for the writer thread; finish() and the writer's destructor (cancel, error) write
            // every queued chunk, so what the window has shown ends up in the trace.
            writer->append(chunk);
            {
                std::lock_guard<std::mutex> lock(shared.mutex);
                ++shared.inFlight;
            }
            emit chunkComputed(chunk);
            const int64_t done = chunk.start + chunk.count();
            const double active =
                std::chrono::duration<double>(Clock::now() - runStart).count() - pausedSeconds;
            const double rate = active > 0 ? done / active : 0;
            emit progress(done, total, rate, rate > 0 ? (total - done) / rate : -1);
        };
        model.run(input.ids, hasOffsets ? &input.offsets : nullptr, loop);
        writer->finish();
        writer.reset();
        emit finished(path, true);
    } catch (const Cancelled&) {
        // The trace keeps every finished chunk, marked completed = 0.
        const QString path = writer ? QString::fromStdString(writer->path()) : QString();
        writer.reset();
        emit finished(path, false);
    } catch (const std::exception& e) {
        writer.reset();
        emit failed(QString::fromStdString(errorLine(e)));
    } catch (...) {
        writer.reset();
        emit failed(QStringLiteral("unknown error in the model thread"));
    }
}

} // namespace statescope
