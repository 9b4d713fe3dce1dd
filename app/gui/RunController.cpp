#include "RunController.h"

#include "Error.h"
#include "Resources.h"
#include "tokenizers/BpeTokenizer.h"
#include "trace/TraceFile.h"

#include <QDateTime>
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

// The one asked for, else the model's own, else the built-in GPT-NeoX-20B one.
std::shared_ptr<const BpeTokenizer> loadTokenizer(const QString& requested,
                                                  const std::optional<std::string>& modelTokenizer)
{
    if (!requested.isEmpty())
        return cachedTokenizer(requested);
    if (modelTokenizer)
        return cachedTokenizer(QString::fromStdString(*modelTokenizer));
    const QString builtIn = resourcePath("tokenizers/gpt-neox-20b.json");
    if (builtIn.isEmpty())
        throw Error("tokenizers/gpt-neox-20b.json",
                    "built-in tokenizer not found (set $STATESCOPE_RESOURCES)");
    return cachedTokenizer(builtIn);
}

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
    const QString key = QStringList{QFileInfo(r.modelDir).canonicalFilePath(),
                                    QString::fromStdString(r.options.device), dtypeName(r.options.dtype),
                                    QString::number(r.options.threads), QString::number(r.options.reference)}
                            .join('|');
    if (!m_runner || key != m_runnerKey) {
        m_runner.reset(); // free the old model before loading the next
        m_runnerKey.clear();
        m_runner = Runner::open(r.modelDir.toStdString(), r.options);
        m_runnerKey = key;
    }
    m_runner->reset();
    return *m_runner;
}

void RunWorker::run(const RunRequest& r)
{
    RunController::Shared& shared = *m_shared;
    std::unique_ptr<TraceWriter> writer;
    try {
        // The input first: a mistake there shows before the (slower) model load.
        const ModelFolder folder = inspectModelFolder(r.modelDir.toStdString());
        std::vector<int32_t> ids = r.ids;
        std::vector<int64_t> offsets;
        QString tokenizerName;
        if (ids.empty()) {
            const auto tokenizer = loadTokenizer(r.tokenizerPath, folder.tokenizerPath);
            tokenizerName = QString::fromStdString(tokenizer->sourceName());
            Encoding enc = tokenizer->encode(r.text.toStdString());
            ids = std::move(enc.ids);
            offsets = std::move(enc.offsets);
        }
        if (ids.empty())
            throw Error("input", "the input is empty: nothing to run");
        if (shared.cancel) {
            emit finished(QString(), false);
            return;
        }

        Runner& model = runner(r);
        if (shared.cancel) {
            emit finished(QString(), false);
            return;
        }
        model.checkIds(ids, "input", " (is the tokenizer the model's?)");

        const QString folderName = r.traceFolder.isEmpty() ? tracesFolder() : r.traceFolder;
        QDir().mkpath(folderName);
        const QString modelName = r.modelName.isEmpty() ? QDir(r.modelDir).dirName() : r.modelName;
        const QString path = newTracePath(folderName, modelName);

        const ModelInfo& info = model.info();
        const TraceHeader h = model.traceHeader(r.inputDescription.toStdString(), !offsets.empty());
        writer = std::make_unique<TraceWriter>(path.toStdString(), h);

        RunStart start;
        start.info = info;
        start.probes = h.probes;
        start.tracePath = path;
        start.totalTokens = static_cast<qint64>(ids.size());
        start.tokenizerName = tokenizerName;
        emit runStarted(start);

        const int64_t total = static_cast<int64_t>(ids.size());
        const bool adaptive = r.options.chunkSize <= 0;
        int64_t step = adaptive ? 256 : r.options.chunkSize;
        // Tokens/s over wall time less pauses: it includes waiting for the window, so the time left
        // it predicts is the one the user will see.
        const auto runStart = Clock::now();
        double pausedSeconds = 0;
        for (int64_t begin = 0; begin < total;) {
            const auto w0 = Clock::now();
            bool wasPaused = false;
            if (!shared.waitBetweenChunks(&wasPaused))
                break;
            if (wasPaused)
                pausedSeconds += std::chrono::duration<double>(Clock::now() - w0).count();
            const int64_t end = std::min(total, begin + step);
            const auto t0 = Clock::now();
            ChunkProbes chunk = model.feed(std::vector<int32_t>(ids.begin() + begin, ids.begin() + end));
            if (!offsets.empty())
                chunk.offsets.assign(offsets.begin() + 2 * begin, offsets.begin() + 2 * end);
            // On disk before the window sees it: what is shown is always in the trace.
            writer->append(chunk);
            const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
            if (adaptive && secs > 0) {
                const double want = static_cast<double>(step) * r.targetChunkSeconds / secs;
                const double next = std::clamp(want, 0.5 * step, 2.0 * step); // no wild swings
                step = std::clamp<int64_t>(static_cast<int64_t>(next) / 64 * 64, 64, 16384);
            }
            {
                std::lock_guard<std::mutex> lock(shared.mutex);
                ++shared.inFlight;
            }
            emit chunkComputed(chunk);
            begin = end;
            const double active =
                std::chrono::duration<double>(Clock::now() - runStart).count() - pausedSeconds;
            const double rate = active > 0 ? begin / active : 0;
            emit progress(begin, total, rate, rate > 0 ? (total - begin) / rate : -1);
        }
        const bool completed = writer->tokens() == total;
        if (completed)
            writer->finish();
        writer.reset(); // closes the file: a cancelled run leaves completed = 0
        emit finished(path, completed);
    } catch (const Cancelled&) {
        const QString path = writer ? QString::fromStdString(writer->path()) : QString();
        writer.reset();
        emit finished(path, false);
    } catch (const std::exception& e) {
        writer.reset();
        emit failed(QString::fromUtf8(e.what()));
    } catch (...) {
        writer.reset();
        emit failed(QStringLiteral("unknown error in the model thread"));
    }
}

} // namespace statescope
