// literalDeflate: its streams inflated by zlib (what HDF5's deflate filter uses) give back the input,
// byte for byte, across block boundaries, for data that takes its stored blocks, its Huffman blocks,
// and codes that must be cut to deflate's 15 bits; and it is smaller where the bytes are skewed.
#include "trace/LiteralDeflate.h"

#include <QtTest>

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

using namespace statescope;

namespace {

std::vector<unsigned char> inflated(const std::vector<unsigned char>& z, size_t bytes)
{
    std::vector<unsigned char> out(bytes + 1); // one spare: a stream that says more would show
    uLongf n = static_cast<uLongf>(out.size());
    const int rc = uncompress(out.data(), &n, z.data(), static_cast<uLong>(z.size()));
    if (rc != Z_OK)
        throw std::runtime_error("inflate failed: zlib error " + std::to_string(rc));
    out.resize(n);
    return out;
}

// Bytes whose frequencies halve from one value to the next: an optimal Huffman code for 40 such
// values is 39 bits deep, past deflate's 15.
std::vector<unsigned char> geometric(size_t n, unsigned seed)
{
    std::mt19937 rng(seed);
    std::geometric_distribution<int> g(0.5);
    std::vector<unsigned char> v(n);
    for (auto& b : v)
        b = static_cast<unsigned char>(std::min(g(rng), 255));
    return v;
}

// HDF5's byte shuffle of float16 values: all low bytes, then all high bytes.
std::vector<unsigned char> shuffledHalves(const std::vector<uint16_t>& h)
{
    std::vector<unsigned char> v(2 * h.size());
    for (size_t i = 0; i < h.size(); ++i) {
        v[i] = static_cast<unsigned char>(h[i]);
        v[h.size() + i] = static_cast<unsigned char>(h[i] >> 8);
    }
    return v;
}

} // namespace

class TestLiteralDeflate : public QObject {
    Q_OBJECT
private slots:
    void roundTrips_data();
    void roundTrips();
    void skewedBytesShrink();
    void randomBytesAreStored();
    void noisyHalvesShrinkAsDeflateDoes();
};

void TestLiteralDeflate::roundTrips_data()
{
    QTest::addColumn<QByteArray>("input");
    std::mt19937 rng(7);
    auto random = [&](size_t n) {
        QByteArray a(static_cast<int>(n), Qt::Uninitialized);
        for (auto& c : a)
            c = static_cast<char>(rng());
        return a;
    };
    auto of = [](const std::vector<unsigned char>& v) {
        return QByteArray(reinterpret_cast<const char*>(v.data()), static_cast<int>(v.size()));
    };
    QTest::newRow("empty") << QByteArray();
    QTest::newRow("one byte") << QByteArray(1, 'x');
    QTest::newRow("two distinct bytes") << QByteArray("ab");
    QTest::newRow("one value, one block") << QByteArray(1000, '\x3c');
    QTest::newRow("one value, three blocks") << QByteArray(3 * int(kLiteralBlockBytes) + 17, '\0');
    QTest::newRow("random, block - 1") << random(kLiteralBlockBytes - 1);
    QTest::newRow("random, one block") << random(kLiteralBlockBytes);
    QTest::newRow("random, block + 1") << random(kLiteralBlockBytes + 1);
    QTest::newRow("geometric, 40 values deep") << of(geometric(200000, 1));
    QTest::newRow("geometric, short tail block") << of(geometric(kLiteralBlockBytes + 3, 2));
    QByteArray all(256 * 300, Qt::Uninitialized);
    for (int i = 0; i < all.size(); ++i)
        all[i] = static_cast<char>(i % 256);
    QTest::newRow("every byte value, evenly") << all;
    // A stored block after a Huffman one, and back: half skewed, half random, twice.
    QByteArray mixed = of(geometric(70000, 3)) + random(70000) + of(geometric(1000, 4)) + random(5);
    QTest::newRow("Huffman and stored blocks mixed") << mixed;
}

void TestLiteralDeflate::roundTrips()
{
    QFETCH(QByteArray, input);
    const auto* src = reinterpret_cast<const unsigned char*>(input.constData());
    std::vector<unsigned char> z;
    literalDeflate(src, static_cast<size_t>(input.size()), &z);
    const std::vector<unsigned char> back = inflated(z, static_cast<size_t>(input.size()));
    QCOMPARE(back.size(), static_cast<size_t>(input.size()));
    QVERIFY(std::memcmp(back.data(), src, back.size()) == 0);
    // Never more than stored blocks would take: 2 + 4 bytes of zlib framing, 5 a block, 1 of alignment.
    const size_t blocks = std::max<size_t>(1, (input.size() + kLiteralBlockBytes - 1) / kLiteralBlockBytes);
    QVERIFY2(z.size() <= static_cast<size_t>(input.size()) + 6 + 6 * blocks,
             qPrintable(QString("%1 bytes for %2").arg(z.size()).arg(input.size())));
}

void TestLiteralDeflate::skewedBytesShrink()
{
    // Geometric bytes carry 2 bits of entropy each: a Huffman code takes about 2 bits a byte, and
    // cutting the code to 15 bits costs nearly nothing, as the few long codes are rare symbols.
    const std::vector<unsigned char> v = geometric(1 << 20, 5);
    std::vector<unsigned char> z;
    literalDeflate(v.data(), v.size(), &z);
    const double ratio = static_cast<double>(z.size()) / static_cast<double>(v.size());
    QVERIFY2(ratio > 0.24 && ratio < 0.26, qPrintable(QString::number(ratio)));
    QVERIFY(inflated(z, v.size()) == v);
}

void TestLiteralDeflate::randomBytesAreStored()
{
    std::mt19937 rng(11);
    std::vector<unsigned char> v(300000);
    for (auto& b : v)
        b = static_cast<unsigned char>(rng());
    std::vector<unsigned char> z;
    literalDeflate(v.data(), v.size(), &z);
    // Stored blocks: 5 bytes of header each (5 blocks), 6 of zlib framing.
    QCOMPARE(z.size(), v.size() + 5 * 5 + 6);
    QVERIFY(inflated(z, v.size()) == v);
}

void TestLiteralDeflate::noisyHalvesShrinkAsDeflateDoes()
{
    // What the trace writer feeds it: float16 values of a noisy probe, shuffled. Their high bytes
    // (sign, exponent, two mantissa bits) take few values; the low ones are noise. zlib's level 1
    // finds no repeated strings worth having either: the literal code is within 2 % of it.
    std::mt19937 rng(3);
    std::normal_distribution<float> noise(0.f, 1.f);
    std::vector<uint16_t> h(1 << 18);
    for (auto& x : h) {
        const float v = 2.f + 0.5f * noise(rng);
        // float16 by hand (normal range only): enough for a test input.
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        const uint32_t exp = ((bits >> 23) & 0xff) - 127 + 15;
        x = static_cast<uint16_t>((bits >> 16 & 0x8000) | exp << 10 | (bits >> 13 & 0x3ff));
    }
    const std::vector<unsigned char> v = shuffledHalves(h);
    std::vector<unsigned char> z;
    literalDeflate(v.data(), v.size(), &z);
    QVERIFY(inflated(z, v.size()) == v);
    std::vector<unsigned char> zz(compressBound(static_cast<uLong>(v.size())));
    uLongf n = static_cast<uLongf>(zz.size());
    QCOMPARE(compress2(zz.data(), &n, v.data(), static_cast<uLong>(v.size()), 1), Z_OK);
    const double ours = static_cast<double>(z.size()) / v.size(), zlib1 = static_cast<double>(n) / v.size();
    QVERIFY2(ours < 0.9 && ours < zlib1 * 1.02,
             qPrintable(QString("literals %1, zlib level 1 %2").arg(ours).arg(zlib1)));
}

QTEST_GUILESS_MAIN(TestLiteralDeflate)
#include "TestLiteralDeflate.moc"
