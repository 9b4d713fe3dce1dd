#include "trace/ChunkCompressor.h"

#include "trace/LiteralDeflate.h"

#include <zlib.h>
#ifdef STATESCOPE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <system_error>
#include <thread>

namespace statescope {

size_t ChunkCompressor::threads()
{
    // Every core, up to 16. STATESCOPE_TRACE_THREADS sets the count, for measuring: leaving one core
    // to the engine's thread did not make traced runs faster on the GPU machine (issue 15,
    // docs/benchmarks.md).
    static const size_t n = [] {
        if (const char* env = std::getenv("STATESCOPE_TRACE_THREADS")) {
            const long v = std::strtol(env, nullptr, 10);
            if (v >= 1 && v <= 64)
                return static_cast<size_t>(v);
        }
        return std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
    }();
    return n;
}

namespace {

// One thread's deflate at kDeflateLevel, into a zlib stream as HDF5's deflate filter reads it:
// libdeflate where the build has it (2.5x zlib's speed on shuffled probe values, on the dev VM:
// 167 against 60 MB/s for halves, 156 against 66 for floats, and 2 % smaller), zlib otherwise.
class Deflater {
public:
    Deflater()
    {
#ifdef STATESCOPE_LIBDEFLATE
        m_compressor = libdeflate_alloc_compressor(static_cast<int>(kDeflateLevel)); // null: zlib
#endif
    }
    ~Deflater()
    {
#ifdef STATESCOPE_LIBDEFLATE
        if (m_compressor)
            libdeflate_free_compressor(m_compressor);
#endif
    }
    Deflater(const Deflater&) = delete;
    Deflater& operator=(const Deflater&) = delete;

    // False on a compressor error; may throw bad_alloc.
    bool compress(const unsigned char* src, size_t bytes, std::vector<unsigned char>* out)
    {
#ifdef STATESCOPE_LIBDEFLATE
        if (m_compressor) {
            out->resize(libdeflate_zlib_compress_bound(m_compressor, bytes));
            const size_t n = libdeflate_zlib_compress(m_compressor, src, bytes, out->data(), out->size());
            out->resize(n);
            return n > 0;
        }
#endif
        uLongf outBytes = compressBound(static_cast<uLong>(bytes));
        out->resize(outBytes);
        if (compress2(out->data(), &outBytes, src, static_cast<uLong>(bytes),
                      static_cast<int>(kDeflateLevel)) != Z_OK)
            return false;
        out->resize(outBytes);
        return true;
    }

private:
#ifdef STATESCOPE_LIBDEFLATE
    libdeflate_compressor* m_compressor = nullptr;
#endif
};

// Shuffle, then compress with job.codec, into job.out; `shuffled` and `spare` are scratch. False on a
// compressor error; may throw bad_alloc.
bool filterJob(CompressJob& job, std::vector<unsigned char>& shuffled, std::vector<unsigned char>& spare,
               Deflater& deflater)
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
    job.deflateBytes = job.literalBytes = 0;
    job.literals = job.codec == Codec::Literals;
    if (job.codec != Codec::Literals) {
        if (!deflater.compress(shuffled.data(), job.bytes, &job.out))
            return false;
        job.deflateBytes = job.out.size();
    }
    if (job.codec != Codec::Deflate) {
        std::vector<unsigned char>& target = job.codec == Codec::Both ? spare : job.out;
        literalDeflate(shuffled.data(), job.bytes, &target);
        job.literalBytes = target.size();
        if (job.codec == Codec::Both && spare.size() < job.out.size()) {
            job.out.swap(spare);
            job.literals = true;
        }
    }
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
    std::vector<unsigned char> shuffled, spare;
    Deflater deflater;
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
            ok = filterJob(*m_jobs[i], shuffled, spare, deflater);
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
        std::vector<unsigned char> shuffled, spare;
        Deflater deflater;
        lock.unlock();
        bool ok = false;
        try {
            ok = filterJob(*m_jobs[i], shuffled, spare, deflater);
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
