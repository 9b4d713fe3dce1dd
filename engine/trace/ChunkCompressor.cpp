#include "trace/ChunkCompressor.h"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>

namespace statescope {

size_t ChunkCompressor::threads()
{
    static const size_t n = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
    return n;
}

namespace {

// Shuffle, then deflate, into job.out; `shuffled` is scratch. False on a zlib error; may throw bad_alloc.
bool filterJob(CompressJob& job, std::vector<unsigned char>& shuffled)
{
    const size_t s = std::max<size_t>(1, job.elementBytes);
    const size_t n = job.bytes / s;
    shuffled.resize(job.bytes);
    for (size_t b = 0; b < s; ++b) {
        unsigned char* dst = shuffled.data() + b * n;
        const unsigned char* src = job.src + b;
        for (size_t e = 0; e < n; ++e)
            dst[e] = src[e * s];
    }
    // HDF5's shuffle leaves a tail of fewer bytes than an element as it is.
    std::copy(job.src + n * s, job.src + job.bytes, shuffled.data() + n * s);
    uLongf outBytes = compressBound(static_cast<uLong>(job.bytes));
    job.out.resize(outBytes);
    if (compress2(job.out.data(), &outBytes, shuffled.data(), static_cast<uLong>(job.bytes),
                  static_cast<int>(kDeflateLevel)) != Z_OK)
        return false;
    job.out.resize(outBytes);
    return true;
}

} // namespace

CompressPipeline::CompressPipeline(std::vector<CompressJob*> jobs, size_t ahead)
    : m_jobs(std::move(jobs)), m_ahead(std::max<size_t>(1, ahead)), m_done(m_jobs.size(), 0)
{
    // One core stays with the caller, who writes what these compress.
    const size_t workers = std::min(m_jobs.size(), std::max<size_t>(1, ChunkCompressor::threads() - 1));
    try {
        for (size_t i = 0; i < workers; ++i)
            m_threads.emplace_back([this] { work(); });
    } catch (...) {
        // No more threads: wait() compresses on the caller's thread what none took.
    }
}

CompressPipeline::~CompressPipeline()
{
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_stopping = true;
    }
    m_changed.notify_all();
    for (std::thread& t : m_threads)
        t.join();
}

void CompressPipeline::work() noexcept
{
    std::vector<unsigned char> shuffled;
    std::unique_lock<std::mutex> lock(m_mutex);
    for (;;) {
        m_changed.wait(lock, [this] {
            return m_stopping || m_failed || m_next >= m_jobs.size() || m_next < m_released + m_ahead;
        });
        if (m_stopping || m_failed || m_next >= m_jobs.size())
            return;
        const size_t i = m_next++;
        lock.unlock();
        bool ok = false;
        try {
            ok = filterJob(*m_jobs[i], shuffled);
        } catch (...) { // bad_alloc must not escape a thread
        }
        lock.lock();
        m_done[i] = 1;
        m_failed = m_failed || !ok;
        m_changed.notify_all();
    }
}

bool CompressPipeline::wait(size_t i)
{
    std::unique_lock<std::mutex> lock(m_mutex);
    if (m_threads.empty() && !m_done[i]) {
        // Nobody to do it: this thread does, in order.
        std::vector<unsigned char> shuffled;
        lock.unlock();
        bool ok = false;
        try {
            ok = filterJob(*m_jobs[i], shuffled);
        } catch (...) {
        }
        lock.lock();
        m_done[i] = 1;
        m_failed = m_failed || !ok;
    }
    m_changed.wait(lock, [&] { return m_failed || m_done[i]; });
    return !m_failed;
}

void CompressPipeline::release(size_t i)
{
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_released = std::max(m_released, i + 1);
    }
    m_changed.notify_all();
}

} // namespace statescope
