#include "trace/LiteralDeflate.h"

#include <zlib.h>
#ifdef STATESCOPE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace statescope {

namespace {

constexpr int kLiterals = 257;   // bytes 0-255 and 256, the end of a block
constexpr int kDistances = 2;    // none is used; two of one bit each make a complete code, as zlib writes
constexpr int kLengthCodes = 19; // the code-length alphabet
constexpr int kMaxBits = 15;     // longest literal code deflate allows
constexpr int kMaxLengthBits = 7;
// The order in which a dynamic block's header lists the code-length code's lengths (RFC 1951 3.2.7).
constexpr std::array<int, kLengthCodes> kLengthOrder{16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                                     11, 4,  12, 3, 13, 2, 14, 1, 15};

// Huffman code lengths for freq[0, n), none longer than maxBits; a symbol of frequency 0 gets 0. At
// least two symbols get a length, so that the code is complete (some inflaters refuse one that is
// not). Where the optimal code is too long, the frequencies are halved (keeping every used symbol)
// and the code rebuilt: it converges within a few rounds, and costs little against an optimal
// length-limited code for the skews that occur.
void codeLengths(const uint32_t* freq, int n, int maxBits, uint8_t* len)
{
    std::array<uint32_t, kLiterals> f{};
    std::copy(freq, freq + n, f.begin());
    int used = 0;
    for (int s = 0; s < n; ++s)
        used += f[s] != 0;
    for (int s = 0; used < 2 && s < n; ++s)
        if (f[s] == 0) {
            f[s] = 1;
            ++used;
        }
    for (;;) {
        // Two-queue Huffman: leaves sorted by weight, internal nodes made in nondecreasing weight.
        std::array<int, kLiterals> leaves{};
        int leafCount = 0;
        for (int s = 0; s < n; ++s)
            if (f[s] != 0)
                leaves[leafCount++] = s;
        std::sort(leaves.begin(), leaves.begin() + leafCount,
                  [&](int a, int b) { return f[a] != f[b] ? f[a] < f[b] : a < b; });
        std::array<uint64_t, kLiterals> weight{}; // of internal node i
        std::array<int, 2 * kLiterals> parent{};  // leaves 0..leafCount-1, then internal nodes
        int nextLeaf = 0, nextNode = 0, nodes = 0;
        auto take = [&](uint64_t* w) {
            const bool leaf = nextLeaf < leafCount &&
                              (nextNode >= nodes || uint64_t(f[leaves[nextLeaf]]) <= weight[nextNode]);
            if (leaf) {
                *w = f[leaves[nextLeaf]];
                return nextLeaf++;
            }
            *w = weight[nextNode];
            return leafCount + nextNode++;
        };
        while (nodes < leafCount - 1) {
            uint64_t a = 0, b = 0;
            const int x = take(&a), y = take(&b);
            weight[nodes] = a + b;
            parent[x] = parent[y] = leafCount + nodes;
            ++nodes;
        }
        // Depths from the root (the last node) down: a node's parent was made after it.
        std::array<int, 2 * kLiterals> depth{};
        const int root = leafCount + nodes - 1;
        depth[root] = 0;
        for (int i = root - 1; i >= 0; --i)
            depth[i] = depth[parent[i]] + 1;
        int longest = 0;
        std::fill(len, len + n, 0);
        for (int i = 0; i < leafCount; ++i) {
            len[leaves[i]] = static_cast<uint8_t>(depth[i]);
            longest = std::max(longest, depth[i]);
        }
        if (longest <= maxBits)
            return;
        for (int s = 0; s < n; ++s)
            if (f[s] != 0)
                f[s] = std::max<uint32_t>(1, f[s] >> 1);
    }
}

// Canonical codes for len[0, n) (RFC 1951 3.2.2), bit-reversed: deflate sends Huffman codes from
// their most significant bit, into a stream that is filled from each byte's least significant bit.
void canonicalCodes(const uint8_t* len, int n, uint16_t* code)
{
    std::array<int, kMaxBits + 2> count{};
    for (int s = 0; s < n; ++s)
        ++count[len[s]];
    count[0] = 0;
    std::array<uint32_t, kMaxBits + 2> next{};
    uint32_t c = 0;
    for (int bits = 1; bits <= kMaxBits; ++bits) {
        c = (c + count[bits - 1]) << 1;
        next[bits] = c;
    }
    for (int s = 0; s < n; ++s) {
        const int bits = len[s];
        if (bits == 0) {
            code[s] = 0;
            continue;
        }
        uint32_t v = next[bits]++, r = 0;
        for (int i = 0; i < bits; ++i, v >>= 1)
            r = (r << 1) | (v & 1);
        code[s] = static_cast<uint16_t>(r);
    }
}

// Bits into bytes, least significant first. The caller's buffer has 8 bytes to spare past what is
// written: whole 32-bit words are stored.
class BitWriter {
public:
    explicit BitWriter(unsigned char* p) : m_p(p) {}
    // count <= 32
    void put(uint32_t bits, int count)
    {
        m_buf |= uint64_t(bits) << m_count;
        m_count += count;
        if (m_count >= 32) {
            const uint32_t word = static_cast<uint32_t>(m_buf);
            std::memcpy(m_p, &word, 4); // deflate is little-endian, and so are this project's targets
            m_p += 4;
            m_buf >>= 32;
            m_count -= 32;
        }
    }
    void alignToByte()
    {
        for (int i = 0; i < (m_count + 7) / 8; ++i) {
            *m_p++ = static_cast<unsigned char>(m_buf);
            m_buf >>= 8;
        }
        m_buf = 0;
        m_count = 0;
    }
    int pending() const { return m_count; } // bits not yet stored (< 32)
    unsigned char* bytes() { return m_p; }  // after alignToByte()
    void skip(size_t n) { m_p += n; }

private:
    unsigned char* m_p;
    uint64_t m_buf = 0;
    int m_count = 0;
};

// One code-length symbol of a dynamic block's header, with its extra bits.
struct LengthSymbol {
    uint8_t symbol, extra;
};

// The run-length form of the literal and distance code lengths (RFC 1951 3.2.7): 16 repeats the
// last length 3-6 times, 17 and 18 give runs of 3-10 and 11-138 zeros.
int runLengths(const uint8_t* lengths, int n, LengthSymbol* out)
{
    int k = 0;
    for (int i = 0; i < n;) {
        const uint8_t v = lengths[i];
        int run = 1;
        while (i + run < n && lengths[i + run] == v)
            ++run;
        i += run;
        if (v == 0) {
            while (run >= 11) {
                const int r = std::min(run, 138);
                out[k++] = {18, static_cast<uint8_t>(r - 11)};
                run -= r;
            }
            if (run >= 3) {
                out[k++] = {17, static_cast<uint8_t>(run - 3)};
                run = 0;
            }
            while (run-- > 0)
                out[k++] = {0, 0};
            continue;
        }
        out[k++] = {v, 0};
        --run;
        while (run >= 3) {
            const int r = std::min(run, 6);
            out[k++] = {16, static_cast<uint8_t>(r - 3)};
            run -= r;
        }
        while (run-- > 0)
            out[k++] = {v, 0};
    }
    return k;
}

constexpr std::array<int, kLengthCodes> kExtraBits{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7};

void storedBlock(BitWriter& w, const unsigned char* src, size_t n, bool final)
{
    w.put(final ? 1 : 0, 3); // BFINAL, BTYPE 00
    w.alignToByte();
    unsigned char* p = w.bytes();
    p[0] = static_cast<unsigned char>(n);
    p[1] = static_cast<unsigned char>(n >> 8);
    p[2] = static_cast<unsigned char>(~n);
    p[3] = static_cast<unsigned char>(~n >> 8);
    if (n != 0)
        std::memcpy(p + 4, src, n);
    w.skip(4 + n);
}

// One block of src[0, n), n <= kLiteralBlockBytes: Huffman-coded literals where that is smaller than
// storing them.
void block(BitWriter& w, const unsigned char* src, size_t n, bool final)
{
    // Four histograms: consecutive equal bytes would otherwise wait on one counter.
    uint32_t hist[4][256] = {};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        ++hist[0][src[i]];
        ++hist[1][src[i + 1]];
        ++hist[2][src[i + 2]];
        ++hist[3][src[i + 3]];
    }
    for (; i < n; ++i)
        ++hist[0][src[i]];
    std::array<uint32_t, kLiterals> freq{};
    for (int s = 0; s < 256; ++s)
        freq[s] = hist[0][s] + hist[1][s] + hist[2][s] + hist[3][s];
    freq[256] = 1;

    std::array<uint8_t, kLiterals + kDistances> len{};
    codeLengths(freq.data(), kLiterals, kMaxBits, len.data());
    len[kLiterals] = len[kLiterals + 1] = 1;
    std::array<LengthSymbol, kLiterals + kDistances> runs{};
    const int runCount = runLengths(len.data(), kLiterals + kDistances, runs.data());
    std::array<uint32_t, kLengthCodes> lengthFreq{};
    for (int k = 0; k < runCount; ++k)
        ++lengthFreq[runs[k].symbol];
    std::array<uint8_t, kLengthCodes> lengthLen{};
    codeLengths(lengthFreq.data(), kLengthCodes, kMaxLengthBits, lengthLen.data());
    int hclen = kLengthCodes;
    while (hclen > 4 && lengthLen[kLengthOrder[hclen - 1]] == 0)
        --hclen;

    uint64_t huffmanBits = 3 + 5 + 5 + 4 + 3 * uint64_t(hclen);
    for (int s = 0; s < kLengthCodes; ++s)
        huffmanBits += uint64_t(lengthFreq[s]) * (lengthLen[s] + kExtraBits[s]);
    for (int s = 0; s < kLiterals; ++s)
        huffmanBits += uint64_t(freq[s]) * len[s];
    const uint64_t storedBits = 3 + (8 - (w.pending() + 3) % 8) % 8 + 32 + 8 * uint64_t(n);
    if (huffmanBits >= storedBits) {
        storedBlock(w, src, n, final);
        return;
    }

    std::array<uint16_t, kLiterals> code{};
    canonicalCodes(len.data(), kLiterals, code.data());
    std::array<uint16_t, kLengthCodes> lengthCode{};
    canonicalCodes(lengthLen.data(), kLengthCodes, lengthCode.data());
    w.put((final ? 1 : 0) | (2 << 1), 3); // BTYPE 10: dynamic Huffman
    w.put(kLiterals - 257, 5);
    w.put(kDistances - 1, 5);
    w.put(static_cast<uint32_t>(hclen - 4), 4);
    for (int k = 0; k < hclen; ++k)
        w.put(lengthLen[kLengthOrder[k]], 3);
    for (int k = 0; k < runCount; ++k) {
        const LengthSymbol r = runs[k];
        w.put(lengthCode[r.symbol], lengthLen[r.symbol]);
        if (kExtraBits[r.symbol] != 0)
            w.put(r.extra, kExtraBits[r.symbol]);
    }
    // Two literals a step: 2 x 15 bits fit beside the < 32 that put() leaves.
    std::array<uint32_t, 256> packed{}; // code | length << 16
    for (int s = 0; s < 256; ++s)
        packed[s] = code[s] | uint32_t(len[s]) << 16;
    i = 0;
    for (; i + 2 <= n; i += 2) {
        const uint32_t a = packed[src[i]], b = packed[src[i + 1]];
        const int la = static_cast<int>(a >> 16);
        w.put((a & 0xffff) | (b & 0xffff) << la, la + static_cast<int>(b >> 16));
    }
    for (; i < n; ++i)
        w.put(packed[src[i]] & 0xffff, static_cast<int>(packed[src[i]] >> 16));
    w.put(code[256], len[256]);
}

uint32_t adler(const unsigned char* src, size_t bytes)
{
#ifdef STATESCOPE_LIBDEFLATE
    return libdeflate_adler32(1, src, bytes); // vectorised: zlib's runs at about a byte a cycle
#else
    uLong a = adler32(0L, Z_NULL, 0);
    // zlib takes lengths of at most 4 GiB - 1 a call.
    for (size_t done = 0; done < bytes;) {
        const size_t n = std::min<size_t>(bytes - done, size_t(1) << 30);
        a = adler32(a, src + done, static_cast<uInt>(n));
        done += n;
    }
    return static_cast<uint32_t>(a);
#endif
}

} // namespace

void literalDeflate(const unsigned char* src, size_t bytes, std::vector<unsigned char>* out)
{
    const size_t blocks = std::max<size_t>(1, (bytes + kLiteralBlockBytes - 1) / kLiteralBlockBytes);
    // Each block takes at most its stored size (5 bytes of header, one more of alignment); 8 bytes to
    // spare for BitWriter's whole-word stores.
    out->resize(2 + bytes + 6 * blocks + 4 + 8);
    unsigned char* p = out->data();
    p[0] = 0x78; // deflate, 32 KiB window
    p[1] = 0x01; // no dictionary, "fastest", and the check bits that make 0x7801 a multiple of 31
    BitWriter w(p + 2);
    if (bytes == 0)
        storedBlock(w, src, 0, true);
    for (size_t b = 0; b < bytes; b += kLiteralBlockBytes) {
        const size_t n = std::min(kLiteralBlockBytes, bytes - b);
        block(w, src + b, n, b + n == bytes);
    }
    w.alignToByte();
    const uint32_t a = adler(src, bytes);
    unsigned char* q = w.bytes();
    q[0] = static_cast<unsigned char>(a >> 24);
    q[1] = static_cast<unsigned char>(a >> 16);
    q[2] = static_cast<unsigned char>(a >> 8);
    q[3] = static_cast<unsigned char>(a);
    out->resize(static_cast<size_t>(q + 4 - out->data()));
}

} // namespace statescope
