#pragma once

// HDF5's shuffle and deflate filters, run by the trace writer itself on several cores: HDF5 runs its
// filters on one thread, at about 80 MB/s for probe floats, and while the writer compresses the
// model waits anyway. The bytes are what HDF5's own filters produce (a byte transpose by element
// size, then a zlib stream), so any HDF5 reader inflates them with the pipeline the dataset declares.
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace statescope {

// Level 1: on probe-like floats (after shuffle) levels 4-6 save only 1-3 % more and run slower.
constexpr unsigned kDeflateLevel = 1;

// How a chunk's shuffled bytes become the zlib stream that HDF5's deflate filter reads: deflate
// (libdeflate or zlib, level 1), which finds repeated strings, or literalDeflate, about eight times
// faster, which codes bytes alone (and wins on noisy probe values, where there are no strings to
// find). Both: each of them, keeping the smaller; the trace writer samples chunks so to choose.
enum class Codec { Deflate, Literals, Both };

// One chunk to filter: `bytes` bytes at src, elements of elementBytes bytes each.
struct CompressJob {
    const unsigned char* src = nullptr;
    size_t bytes = 0;
    size_t elementBytes = 4;
    Codec codec = Codec::Deflate;
    std::vector<unsigned char> out; // shuffled and compressed
    bool literals = false;          // out came from literalDeflate
    // The stream sizes of each codec that ran (0: did not run); Both fills both.
    size_t deflateBytes = 0, literalBytes = 0;
};

class ChunkCompressor {
public:
    // Deflate runs at about 50-80 MB/s per core on probe floats, so the writer uses every core it
    // may, up to 16 (STATESCOPE_TRACE_THREADS overrides that).
    static size_t threads();
};

// The filters, run while the caller writes: threads() - 1 threads compress the jobs in order, at
// most `ahead` jobs past the last one the caller released, so that HDF5's writes (one thread) overlap
// the compression instead of alternating with it, batch by batch, as they did before.
class CompressPipeline {
public:
    CompressPipeline(std::vector<CompressJob*> jobs, size_t ahead);
    ~CompressPipeline(); // stops the threads; jobs not yet compressed are left as they are
    CompressPipeline(const CompressPipeline&) = delete;
    CompressPipeline& operator=(const CompressPipeline&) = delete;

    // Blocks until job i is compressed; false if it (or any job) failed. Jobs are waited for in order.
    bool wait(size_t i);
    // The caller is done with job i (and every earlier one): the threads may go past it.
    void release(size_t i);

private:
    void work() noexcept;
    std::vector<CompressJob*> m_jobs;
    size_t m_ahead;
    std::mutex m_mutex;
    std::condition_variable m_changed;
    size_t m_next = 0;     // the next job a thread takes
    size_t m_released = 0; // jobs [0, m_released) are the caller's again
    std::vector<unsigned char> m_done;
    bool m_failed = false, m_stopping = false;
    std::vector<std::thread> m_threads;
};

} // namespace statescope
