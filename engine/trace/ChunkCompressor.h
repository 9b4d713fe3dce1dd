#pragma once

// HDF5's shuffle and deflate filters, run by the trace writer itself on several cores: HDF5 runs its
// filters on one thread, at about 80 MB/s for probe floats, and while the writer compresses the
// model waits anyway. The bytes are what HDF5's own filters produce (a byte transpose by element
// size, then a zlib stream), so any HDF5 reader inflates them with the pipeline the dataset declares.
#include <cstddef>
#include <vector>

namespace statescope {

// Level 1: on probe-like floats (after shuffle) levels 4-6 save only 1-3 % more and run slower.
constexpr unsigned kDeflateLevel = 1;

// One chunk to filter: `bytes` bytes at src, elements of elementBytes bytes each.
struct CompressJob {
    const unsigned char* src = nullptr;
    size_t bytes = 0;
    size_t elementBytes = 4;
    std::vector<unsigned char> out; // shuffled and deflated
};

class ChunkCompressor {
public:
    // Deflate runs at about 50-80 MB/s per core on probe floats, so this uses every core it may; 16
    // bounds the memory of chunks in flight (~32 MiB).
    static size_t threads();

    // Fills every job's out, on up to threads() threads (fewer if no more can be started). Returns
    // false if one failed (out of memory, a zlib error); the jobs' out is then unspecified.
    // Never throws.
    static bool compress(const std::vector<CompressJob*>& jobs) noexcept;
};

} // namespace statescope
