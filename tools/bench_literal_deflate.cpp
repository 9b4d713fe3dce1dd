// Literal coding (engine/trace/LiteralDeflate.cpp) against libdeflate level 1 on the shuffled probe
// chunks that tools/dump_shuffled_chunks.py writes: size over raw and MB/s on one core, best of two
// passes. Built against the engine library of a build folder:
//
//   g++ -O2 -std=c++17 -Iengine tools/bench_literal_deflate.cpp build/engine/libstatescope_core.a \
//       -ldeflate -lz -o /tmp/bench_literal_deflate
//   /tmp/bench_literal_deflate CHUNKS.bin CHUNK_BYTES
#include "trace/LiteralDeflate.h"

#include <libdeflate.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

int main(int argc, char** argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s CHUNKS.bin CHUNK_BYTES\n", argv[0]);
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    const std::vector<unsigned char> v((std::istreambuf_iterator<char>(in)), {});
    const size_t chunk = std::stoul(argv[2]);
    if (chunk == 0 || v.size() < chunk) {
        std::fprintf(stderr, "%s: fewer than %zu bytes\n", argv[1], chunk);
        return 1;
    }
    using Clock = std::chrono::steady_clock;
    libdeflate_compressor* c = libdeflate_alloc_compressor(1);
    std::vector<unsigned char> out, z(libdeflate_zlib_compress_bound(c, chunk));
    double bestLiterals = 1e300, bestDeflate = 1e300;
    size_t literals = 0, deflated = 0, raw = 0;
    for (int pass = 0; pass < 2; ++pass) {
        literals = deflated = raw = 0;
        const auto t0 = Clock::now();
        for (size_t o = 0; o + chunk <= v.size(); o += chunk) {
            statescope::literalDeflate(v.data() + o, chunk, &out);
            literals += out.size();
            raw += chunk;
        }
        const auto t1 = Clock::now();
        for (size_t o = 0; o + chunk <= v.size(); o += chunk)
            deflated += libdeflate_zlib_compress(c, v.data() + o, chunk, z.data(), z.size());
        const auto t2 = Clock::now();
        bestLiterals = std::min(bestLiterals, std::chrono::duration<double>(t1 - t0).count());
        bestDeflate = std::min(bestDeflate, std::chrono::duration<double>(t2 - t1).count());
    }
    libdeflate_free_compressor(c);
    std::printf("%s, %zu bytes in chunks of %zu: literals %.3f of raw at %.0f MB/s; libdeflate 1 %.3f at %.0f MB/s\n",
                argv[1], raw, chunk, double(literals) / raw, raw / bestLiterals / 1e6, double(deflated) / raw,
                raw / bestDeflate / 1e6);
    return 0;
}
