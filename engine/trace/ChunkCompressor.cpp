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

bool ChunkCompressor::compress(const std::vector<CompressJob*>& jobs) noexcept
{
    if (jobs.empty())
        return true;
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    auto work = [&] {
        try {
            std::vector<unsigned char> shuffled;
            for (size_t i = next++; i < jobs.size() && !failed; i = next++) {
                CompressJob& job = *jobs[i];
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
                              static_cast<int>(kDeflateLevel)) != Z_OK) {
                    failed = true;
                    return;
                }
                job.out.resize(outBytes);
            }
        } catch (...) { // bad_alloc must not escape a thread
            failed = true;
        }
    };
    const size_t workers = std::min(jobs.size(), threads());
    std::vector<std::thread> pool;
    try {
        pool.reserve(workers);
        for (size_t i = 1; i < workers; ++i)
            pool.emplace_back(work);
    } catch (...) {
        // No more threads (or no memory for them): the ones started and this one do the work.
    }
    work();
    for (std::thread& th : pool)
        th.join();
    return !failed;
}

} // namespace statescope
