#pragma once

// A zlib stream whose deflate blocks hold Huffman-coded literals only, never a repeated string:
// what HDF5's deflate filter (and every zlib reader) inflates, made about eight times faster than
// deflate level 1 on the probe values of a trace, because it never searches for matches. Noisy
// float probes have almost none to find: after the shuffle, their sign and exponent bytes are few
// distinct values and their mantissa bytes look random, so an entropy code of the bytes is all
// deflate gains there (a random-weight 130m Mamba-2's float16 probes: 0.84 of their size this way,
// 0.86 with zlib level 1). Where values repeat, deflate's matches win, and the trace writer measures
// both (docs/trace-format.md, "Compression").
#include <cstddef>
#include <vector>

namespace statescope {

// Replaces *out with a zlib stream (RFC 1950) of src[0, bytes): deflate blocks (RFC 1951) of at
// most kLiteralBlockBytes input bytes each, every one either dynamic-Huffman literals or stored,
// whichever is smaller. May throw std::bad_alloc.
void literalDeflate(const unsigned char* src, size_t bytes, std::vector<unsigned char>* out);

// Input bytes per deflate block: one Huffman code per block, so that the code follows the data (the
// shuffle puts a chunk's exponent bytes before its mantissa bytes), and at most what one stored block
// holds.
constexpr size_t kLiteralBlockBytes = 65535;

} // namespace statescope
