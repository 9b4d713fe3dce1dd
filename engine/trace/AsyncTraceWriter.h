#pragma once

// A TraceWriter on a thread of its own, so that the engine computes the next chunk while the last
// one is filtered and written: writing a chunk of a large model's probes takes as long as computing
// it (issue 15), and the engine should never wait for the disk.
#include "probes/Probes.h"
#include "trace/TraceFile.h"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace statescope {

class AsyncTraceWriter {
public:
    // At most this many chunks wait behind the one being written (and at most kMaxQueuedBytes, but
    // always one): enough to absorb a slow write, bounded so that memory does not grow with a run
    // whose disk is slower than its model. append() waits while the queue is full.
    static constexpr int kMaxQueuedChunks = 2;
    static constexpr size_t kMaxQueuedBytes = size_t(512) << 20;

    // Creates the file on the caller's thread, so that a bad path throws here (Error naming it).
    // appendTokens as TraceWriter's.
    AsyncTraceWriter(const std::string& path, const TraceHeader& header,
                     int64_t appendTokens = TraceWriter::kWindowAppendTokens);
    // Writes what is queued, closes without marking the trace complete (a cancelled run); never
    // throws.
    ~AsyncTraceWriter();
    AsyncTraceWriter(const AsyncTraceWriter&) = delete;
    AsyncTraceWriter& operator=(const AsyncTraceWriter&) = delete;

    // Queues a copy of the chunk. Its start and sizes are checked here (Error, and the writer goes
    // on); an error of the writer thread (a full disk) is thrown by the next append(), flush() or
    // finish(), as the TraceWriter's Error, and the writer then refuses further chunks.
    void append(const ChunkProbes& chunk);
    // The same, taking the chunk's buffers instead of copying them: the engine's thread then spends
    // no time on a chunk the writer alone needs (a 2.7b chunk of 8192 tokens is 500 MB of probes).
    void append(ChunkProbes&& chunk);
    // Waits until every queued chunk is on disk; throws the writer thread's error if there was one.
    void flush();
    // flush(), then marks the trace complete and closes it. A second call does nothing.
    void finish();

    // Tokens appended so far (queued or written).
    int64_t tokens() const;
    // Tokens on disk.
    int64_t tokensWritten() const;
    const std::string& path() const;
    // Seconds append() waited for room in the queue (the engine's thread, held up by the writer).
    double appendWaitSeconds() const;
    // The writer thread's time: busy with chunks, and how (only after flush() or finish(), when the
    // thread is not writing).
    double busySeconds() const;
    TraceWriteTimings writerTimings() const;

private:
    void work();
    void rethrowLocked(std::unique_lock<std::mutex>& lock);
    void stop() noexcept;

    std::unique_ptr<TraceWriter> m_writer;
    std::string m_path;
    mutable std::mutex m_mutex;
    std::condition_variable m_changed;
    std::deque<ChunkProbes> m_queue;
    size_t m_queuedBytes = 0;
    bool m_busy = false; // the thread holds a chunk it took from the queue
    bool m_stopping = false;
    bool m_finished = false;
    int64_t m_accepted = 0;
    int64_t m_written = 0;
    double m_appendWait = 0, m_busySeconds = 0;
    std::exception_ptr m_error;
    std::thread m_thread;
};

} // namespace statescope
