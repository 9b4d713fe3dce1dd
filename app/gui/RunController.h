#pragma once

// Runs a model on a worker thread and streams its probes to the GUI thread, chunk by chunk.
// Torch-free: the engine's public headers only.
#include "runtime/Input.h"
#include "runtime/Runner.h"

#include <QMetaType>
#include <QObject>
#include <QString>
#include <QThread>

#include <memory>
#include <vector>

namespace statescope {

struct RunRequest {
    QString modelDir;
    RunOptions options; // chunkSize <= 0: adapt it so that a chunk takes about targetChunkSeconds
    double targetChunkSeconds = 0.05;
    // The input, read and tokenized in the worker by the engine's prepareInput() (input.tokenizer
    // empty: the engine's choice, the model's own tokenizer or the built-in one).
    InputRequest input;
    qint64 trainingLength = 0; // recorded in the trace instead of the model card's when > 0
    QString traceFolder;       // empty: tracesFolder()
    QString modelName;         // for the trace's file name; empty: the folder's name
    QString calibrationFile;   // state normalisation's tau from this text; empty: the input's first T_train
};

// What the window needs to know once the model is loaded and the trace created.
struct RunStart {
    ModelInfo info;
    TraceHeader header; // as written to the trace: probes, shape, markers, input
    QString tracePath;
    qint64 totalTokens = 0;
    QByteArray text; // the UTF-8 text the chunks' offsets index; empty for ids
};

class RunWorker;

// Owns the worker thread and the model in it. Every call here returns at once: the model is opened,
// run and written to the trace in the worker; the GUI thread never waits on it. Each run ends with
// exactly one finished() or failed().
class RunController : public QObject {
    Q_OBJECT
public:
    enum class State { Idle, Loading, Running, Paused, Cancelling };
    Q_ENUM(State)

    explicit RunController(QObject* parent = nullptr);
    ~RunController() override; // cancels a run and joins the worker

    State state() const { return m_state; }
    bool isBusy() const { return m_state != State::Idle; }
    QString tracePath() const { return m_tracePath; } // of the current or last run

    // At most this many chunks wait in the GUI thread's queue before the worker holds back, so that
    // a model faster than the window cannot make the queue (and memory) grow.
    void setMaxChunksInFlight(int n);

    // false (and nothing happens) while a run is in progress.
    bool start(const RunRequest& request);
    void pause();
    void resume();
    void cancel();

    // Drops the cached model (the worker keeps the last one to rerun without reloading).
    void unloadModel();

    struct Shared; // the flags both threads see

signals:
    void stateChanged(statescope::RunController::State state);
    void runStarted(const statescope::RunStart& start);
    void chunkReady(const statescope::ChunkProbes& chunk);
    void progress(qint64 done, qint64 total, double tokensPerSecond, double secondsLeft);
    void finished(const QString& tracePath, bool completed);
    void failed(const QString& message);

private:
    void setState(State s);
    void onWorkerChunk(const statescope::ChunkProbes& chunk);

    std::shared_ptr<Shared> m_shared;
    QThread m_thread;
    RunWorker* m_worker = nullptr;
    State m_state = State::Idle;
    QString m_tracePath;
};

// Lives in the controller's thread; public only for moc.
class RunWorker : public QObject {
    Q_OBJECT
public:
    explicit RunWorker(std::shared_ptr<RunController::Shared> shared) : m_shared(std::move(shared)) {}
    ~RunWorker() override;
    void run(const RunRequest& request);
    void unload();

signals:
    void runStarted(const statescope::RunStart& start);
    void chunkComputed(const statescope::ChunkProbes& chunk);
    void progress(qint64 done, qint64 total, double tokensPerSecond, double secondsLeft);
    void finished(const QString& tracePath, bool completed);
    void failed(const QString& message);

private:
    Runner& runner(const RunRequest& request);

    std::shared_ptr<RunController::Shared> m_shared;
    std::unique_ptr<Runner> m_runner;
    QString m_runnerKey;
};

} // namespace statescope

Q_DECLARE_METATYPE(statescope::ChunkProbes)
Q_DECLARE_METATYPE(statescope::RunStart)
