#include "trace/AsyncTraceWriter.h"

#include "Error.h"

#include <chrono>
#include <utility>

namespace statescope {

namespace {

size_t chunkBytes(const ChunkProbes& c)
{
    size_t bytes =
        c.ids.size() * sizeof(int32_t) + c.offsets.size() * sizeof(int64_t) + c.nll.size() * sizeof(float);
    for (size_t i = 0; i < c.values.size() || i < c.inPlace.size(); ++i)
        bytes += c.probeValues(i).size * sizeof(float);
    for (const ChunkProbes::Encoded& e : c.encoded)
        bytes += e.size * sizeof(uint16_t);
    return bytes;
}

} // namespace

AsyncTraceWriter::AsyncTraceWriter(const std::string& path, const TraceHeader& header, int64_t appendTokens)
    : m_writer(std::make_unique<TraceWriter>(path, header, appendTokens)), m_path(m_writer->path())
{
    m_thread = std::thread([this] { work(); });
}

AsyncTraceWriter::~AsyncTraceWriter()
{
    stop();
    // TraceWriter's destructor closes the file without marking it complete, and never throws.
    m_writer.reset();
}

void AsyncTraceWriter::stop() noexcept
{
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_stopping = true;
    }
    m_changed.notify_all();
    if (m_thread.joinable())
        m_thread.join();
}

void AsyncTraceWriter::work()
{
    std::unique_lock<std::mutex> lock(m_mutex);
    for (;;) {
        m_changed.wait(lock, [this] { return m_stopping || !m_queue.empty(); });
        // Stopping still writes what was queued: those chunks were computed, and perhaps shown.
        if (m_queue.empty() || m_error)
            return;
        ChunkProbes chunk = std::move(m_queue.front());
        m_queue.pop_front();
        // Another chunk already waits: compress less until the queue is drained (the engine must not
        // wait for the trace).
        m_writer->setCatchingUp(!m_queue.empty());
        const size_t bytes = chunkBytes(chunk);
        m_busy = true;
        lock.unlock();
        std::exception_ptr error;
        const auto started = std::chrono::steady_clock::now();
        try {
            m_writer->append(chunk);
        } catch (...) {
            error = std::current_exception();
        }
        const auto ended = std::chrono::steady_clock::now();
        lock.lock();
        m_busySeconds += std::chrono::duration<double>(ended - started).count();
        m_busy = false;
        m_queuedBytes -= bytes;
        if (error) {
            // The TraceWriter refuses further appends after a failure: drop the rest.
            m_error = error;
            m_queue.clear();
            m_queuedBytes = 0;
        } else {
            m_written = chunk.start + chunk.count();
        }
        m_changed.notify_all();
        if (m_error)
            return;
    }
}

void AsyncTraceWriter::rethrowLocked(std::unique_lock<std::mutex>& lock)
{
    if (!m_error)
        return;
    const std::exception_ptr error = m_error;
    lock.unlock();
    std::rethrow_exception(error);
}

void AsyncTraceWriter::append(const ChunkProbes& chunk)
{
    append(ChunkProbes(chunk)); // the copy, outside the engine's buffers, is what the thread writes
}

void AsyncTraceWriter::append(ChunkProbes&& chunk)
{
    std::unique_lock<std::mutex> lock(m_mutex);
    rethrowLocked(lock);
    if (m_finished)
        throw Error(m_path, "cannot append: the trace was already finished");
    if (chunk.start != m_accepted)
        throw Error(m_path, "chunk start", std::to_string(m_accepted) + " (tokens appended so far)",
                    std::to_string(chunk.start));
    m_writer->checkChunk(chunk); // a wrong size is the caller's error: thrown here, not later
    const size_t bytes = chunkBytes(chunk);
    const auto waiting = std::chrono::steady_clock::now();
    m_changed.wait(lock, [&] {
        return m_error || m_queue.empty() ||
               (static_cast<int>(m_queue.size()) < kMaxQueuedChunks &&
                m_queuedBytes + bytes <= kMaxQueuedBytes);
    });
    m_appendWait += std::chrono::duration<double>(std::chrono::steady_clock::now() - waiting).count();
    rethrowLocked(lock);
    m_accepted = chunk.start + chunk.count();
    m_queue.push_back(std::move(chunk));
    m_queuedBytes += bytes;
    lock.unlock();
    m_changed.notify_all();
}

void AsyncTraceWriter::flush()
{
    std::unique_lock<std::mutex> lock(m_mutex);
    m_changed.wait(lock, [this] { return m_error || (m_queue.empty() && !m_busy); });
    rethrowLocked(lock);
}

void AsyncTraceWriter::finish()
{
    if (m_finished)
        return;
    flush();
    stop();
    m_finished = true;
    m_writer->finish();
}

int64_t AsyncTraceWriter::tokens() const
{
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_accepted;
}

int64_t AsyncTraceWriter::tokensWritten() const
{
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_written;
}

const std::string& AsyncTraceWriter::path() const
{
    return m_path;
}

double AsyncTraceWriter::appendWaitSeconds() const
{
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_appendWait;
}

double AsyncTraceWriter::busySeconds() const
{
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_busySeconds;
}

TraceWriteTimings AsyncTraceWriter::writerTimings() const
{
    return m_writer->timings();
}

} // namespace statescope
