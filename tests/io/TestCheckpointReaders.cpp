// Checkpoint readers against files written by PyTorch (tools/make_io_fixtures.py) and against
// corrupt or hostile inputs built here. Expected values come from expected.json, computed by torch.

#include "Error.h"
#include "io/Json.h"
#include "io/MappedFile.h"
#include "io/SafeTensors.h"
#include "io/TorchCheckpoint.h"
#include "io/ZipArchive.h"

#include <QByteArray>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

using namespace statescope;

namespace {

const std::string kDataDir = std::string(STATESCOPE_TEST_DATA_DIR) + "/io/";
const char* const kPwned = "/tmp/statescope_pwned";

// ---- independent element decoding ----

double bf16ToDouble(uint16_t h)
{
    uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

double f16ToDouble(uint16_t h)
{
    int exponent = (h >> 10) & 0x1f;
    int mantissa = h & 0x3ff;
    double v;
    if (exponent == 0)
        v = std::ldexp(mantissa, -24);
    else if (exponent == 31)
        v = mantissa ? NAN : INFINITY;
    else
        v = std::ldexp(mantissa + 1024, exponent - 25);
    return (h & 0x8000) ? -v : v;
}

template <typename T> T load(const uint8_t* p)
{
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

double elementAt(const RawTensor& t, int64_t index)
{
    const uint8_t* p = t.data + index * int64_t(dtypeSize(t.dtype));
    switch (t.dtype) {
    case DType::Float32:
        return load<float>(p);
    case DType::Float64:
        return load<double>(p);
    case DType::BFloat16:
        return bf16ToDouble(load<uint16_t>(p));
    case DType::Float16:
        return f16ToDouble(load<uint16_t>(p));
    case DType::Int64:
        return double(load<int64_t>(p));
    case DType::Int32:
        return load<int32_t>(p);
    case DType::Int16:
        return load<int16_t>(p);
    case DType::Int8:
        return load<int8_t>(p);
    case DType::UInt8:
        return load<uint8_t>(p);
    case DType::Bool:
        return load<uint8_t>(p);
    }
    return NAN;
}

// Values in C order of the logical tensor, following its strides.
std::vector<double> logicalValues(const RawTensor& t, bool* inBounds)
{
    std::vector<double> out;
    *inBounds = true;
    const int64_t n = t.numel();
    std::vector<int64_t> idx(t.shape.size(), 0);
    for (int64_t k = 0; k < n; ++k) {
        int64_t offset = 0;
        for (size_t d = 0; d < idx.size(); ++d)
            offset += idx[d] * t.strides[d];
        if (uint64_t(offset + 1) * dtypeSize(t.dtype) > t.bytesAvailable) {
            *inBounds = false;
            return out;
        }
        out.push_back(elementAt(t, offset));
        for (size_t d = idx.size(); d-- > 0;) {
            if (++idx[d] < t.shape[d])
                break;
            idx[d] = 0;
        }
    }
    return out;
}

nlohmann::json loadExpected()
{
    std::ifstream in(kDataDir + "expected.json");
    return nlohmann::json::parse(in)["tensors"];
}

std::vector<int64_t> contiguousStrides(const std::vector<int64_t>& shape)
{
    std::vector<int64_t> s(shape.size(), 1);
    for (size_t i = shape.size(); i-- > 1;)
        s[i - 1] = s[i] * std::max<int64_t>(shape[i], 1);
    return s;
}

const RawTensor* find(const std::vector<RawTensor>& tensors, const std::string& name)
{
    for (const RawTensor& t : tensors) {
        if (t.name == name)
            return &t;
    }
    return nullptr;
}

// ---- error capture ----

std::string errorOf(const std::function<void()>& f)
{
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("NOT a statescope::Error: ") + e.what();
    }
    return "NO ERROR THROWN";
}

#define EXPECT_ERROR(statement, path, ...)                                                                   \
    do {                                                                                                     \
        const std::string msg_ = errorOf([&] { statement; });                                                \
        QVERIFY2(msg_.find("NO ERROR THROWN") != 0 && msg_.find("NOT a statescope::Error") != 0,             \
                 msg_.c_str());                                                                              \
        QVERIFY2(msg_.find(path) != std::string::npos, ("file name missing: " + msg_).c_str());              \
        for (const std::string& needle_ : std::initializer_list<std::string>{__VA_ARGS__})                   \
            QVERIFY2(msg_.find(needle_) != std::string::npos,                                                \
                     ("'" + needle_ + "' missing: " + msg_).c_str());                                        \
    } while (0)

// ---- builders for hostile inputs ----

void put16(std::string& s, uint16_t v)
{
    s.push_back(char(v & 0xff));
    s.push_back(char(v >> 8));
}
void put32(std::string& s, uint32_t v)
{
    put16(s, uint16_t(v & 0xffff));
    put16(s, uint16_t(v >> 16));
}
void put64(std::string& s, uint64_t v)
{
    put32(s, uint32_t(v));
    put32(s, uint32_t(v >> 32));
}

struct ZipItem {
    std::string name;
    std::string data;
};

// CRC-32 (IEEE 802.3, reflected, as zip uses it), bit by bit: written here rather than taken from
// zlib, which the reader uses.
uint32_t crc32Of(const std::string& data)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (unsigned char c : data) {
        crc ^= c;
        for (int k = 0; k < 8; ++k)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

// A stored (uncompressed) zip, as torch writes; with zip64 every size and offset goes through the
// ZIP64 extra field and end records.
std::string makeZip(const std::vector<ZipItem>& items, bool zip64 = false)
{
    std::string out, central;
    for (const ZipItem& it : items) {
        uint32_t offset = uint32_t(out.size());
        put32(out, 0x04034b50);
        put16(out, zip64 ? 45 : 20);
        put16(out, 0);
        put16(out, 0);
        put32(out, 0);
        put32(out, crc32Of(it.data));
        put32(out, zip64 ? 0xFFFFFFFF : uint32_t(it.data.size()));
        put32(out, zip64 ? 0xFFFFFFFF : uint32_t(it.data.size()));
        put16(out, uint16_t(it.name.size()));
        put16(out, zip64 ? 20 : 0);
        out += it.name;
        if (zip64) {
            put16(out, 1);
            put16(out, 16);
            put64(out, it.data.size());
            put64(out, it.data.size());
        }
        out += it.data;

        put32(central, 0x02014b50);
        put16(central, 45);
        put16(central, zip64 ? 45 : 20);
        put16(central, 0);
        put16(central, 0);
        put32(central, 0);
        put32(central, crc32Of(it.data));
        put32(central, zip64 ? 0xFFFFFFFF : uint32_t(it.data.size()));
        put32(central, zip64 ? 0xFFFFFFFF : uint32_t(it.data.size()));
        put16(central, uint16_t(it.name.size()));
        put16(central, zip64 ? 28 : 0);
        put16(central, 0);
        put16(central, 0);
        put16(central, 0);
        put32(central, 0);
        put32(central, zip64 ? 0xFFFFFFFF : offset);
        central += it.name;
        if (zip64) {
            put16(central, 1);
            put16(central, 24);
            put64(central, it.data.size());
            put64(central, it.data.size());
            put64(central, offset);
        }
    }
    uint64_t cdOffset = out.size();
    out += central;
    if (zip64) {
        uint64_t z64 = out.size();
        put32(out, 0x06064b50);
        put64(out, 44);
        put16(out, 45);
        put16(out, 45);
        put32(out, 0);
        put32(out, 0);
        put64(out, items.size());
        put64(out, items.size());
        put64(out, central.size());
        put64(out, cdOffset);
        put32(out, 0x07064b50);
        put32(out, 0);
        put64(out, z64);
        put32(out, 1);
    }
    put32(out, 0x06054b50);
    put16(out, 0);
    put16(out, 0);
    put16(out, zip64 ? 0xFFFF : uint16_t(items.size()));
    put16(out, zip64 ? 0xFFFF : uint16_t(items.size()));
    put32(out, zip64 ? 0xFFFFFFFF : uint32_t(central.size()));
    put32(out, zip64 ? 0xFFFFFFFF : uint32_t(cdOffset));
    put16(out, 0);
    return out;
}

// Pickle opcodes written by hand (protocol 2, as torch.save writes them).
struct Pickle {
    std::string b = std::string("\x80\x02", 2);

    Pickle& op(char c)
    {
        b.push_back(c);
        return *this;
    }
    Pickle& global(const std::string& module, const std::string& name)
    {
        b += "c" + module + "\n" + name + "\n";
        return *this;
    }
    Pickle& str(const std::string& s)
    {
        b.push_back('X');
        put32(b, uint32_t(s.size()));
        b += s;
        return *this;
    }
    Pickle& integer(int32_t v)
    {
        b.push_back('J');
        put32(b, uint32_t(v));
        return *this;
    }
    Pickle& intTuple(const std::vector<int64_t>& v)
    {
        op('(');
        for (int64_t x : v) {
            b.push_back('\x8a'); // LONG1, 8 bytes
            b.push_back(8);
            put64(b, uint64_t(x));
        }
        return op('t');
    }
    // Pushes _rebuild_tensor_v2(storage(key, numel), offset, shape, stride, False, {}).
    Pickle& tensor(const std::string& key, int64_t numel, int64_t offset, const std::vector<int64_t>& shape,
                   const std::vector<int64_t>& stride, const std::string& storageType = "FloatStorage")
    {
        global("torch._utils", "_rebuild_tensor_v2").op('(');
        op('(')
            .str("storage")
            .global("torch", storageType)
            .str(key)
            .str("cpu")
            .integer(int32_t(numel))
            .op('t');
        op('Q');
        integer(int32_t(offset)).intTuple(shape).intTuple(stride).op('\x89').op('}').op('t');
        return op('R');
    }
    // OrderedDict() then SETITEMS with one entry per tensor pushed by `items`.
    Pickle& stateDict(const std::function<void(Pickle&)>& items)
    {
        global("collections", "OrderedDict").op(')').op('R').op('(');
        items(*this);
        return op('u');
    }
    std::string done() { return b + "."; }
};

std::string floats(const std::vector<float>& v)
{
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// A torch-style archive: <prefix>/data.pkl, <prefix>/data/<key>..., <prefix>/version.
std::string torchZip(const std::string& pickle, const std::vector<ZipItem>& storages, bool zip64 = false)
{
    std::vector<ZipItem> items{{"archive/data.pkl", pickle}};
    for (const ZipItem& s : storages)
        items.push_back({"archive/data/" + s.name, s.data});
    items.push_back({"archive/version", "3\n"});
    return makeZip(items, zip64);
}

} // namespace

class TestCheckpointReaders : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_tmp;

    std::string write(const std::string& name, const std::string& bytes)
    {
        std::string path = m_tmp.path().toStdString() + "/" + name;
        QFile f(QString::fromStdString(path));
        if (!f.open(QIODevice::WriteOnly) ||
            f.write(bytes.data(), qint64(bytes.size())) != qint64(bytes.size()))
            qFatal("cannot write %s", path.c_str());
        return path;
    }

    std::string readFixture(const std::string& name)
    {
        std::ifstream in(kDataDir + name, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    void compareWithExpected(const std::vector<RawTensor>& tensors, bool torchLayout)
    {
        nlohmann::json expected = loadExpected();
        QCOMPARE(tensors.size(), expected.size());
        for (auto it = expected.begin(); it != expected.end(); ++it) {
            const std::string& name = it.key();
            const nlohmann::json& e = it.value();
            const RawTensor* t = find(tensors, name);
            QVERIFY2(t, ("missing tensor " + name).c_str());
            QCOMPARE(std::string(dtypeName(t->dtype)), e["dtype"].get<std::string>());
            auto shape = e["shape"].get<std::vector<int64_t>>();
            QCOMPARE(t->shape, shape);
            QCOMPARE(t->strides,
                     torchLayout ? e["strides"].get<std::vector<int64_t>>() : contiguousStrides(shape));
            QVERIFY(t->keepAlive);
            bool inBounds = false;
            std::vector<double> values = logicalValues(*t, &inBounds);
            QVERIFY2(inBounds, ("tensor reaches past bytesAvailable: " + name).c_str());
            auto want = e["values"].get<std::vector<double>>();
            QCOMPARE(values.size(), want.size());
            for (size_t i = 0; i < want.size(); ++i)
                QVERIFY2(values[i] == want[i],
                         (name + "[" + std::to_string(i) + "] = " + std::to_string(values[i]) +
                          ", expected " + std::to_string(want[i]))
                             .c_str());
        }
    }

private slots:
    void initTestCase() { QVERIFY(m_tmp.isValid()); }

    // ---- real files ----

    void torchStateDict_data()
    {
        QTest::addColumn<QString>("file");
        QTest::newRow("protocol 2") << "state_dict.bin";
        QTest::newRow("protocol 5") << "state_dict_p5.bin";
    }
    void torchStateDict()
    {
        QFETCH(QString, file);
        std::vector<RawTensor> tensors = readTorchCheckpoint(kDataDir + file.toStdString());
        compareWithExpected(tensors, true);

        // State dict order is kept.
        QCOMPARE(tensors.front().name, std::string("counter"));
        // Views of one storage point into the same bytes.
        const RawTensor* base = find(tensors, "shared.base");
        const RawTensor* slice = find(tensors, "shared.slice");
        QCOMPARE(slice->data, base->data + 13 * 4);
        QCOMPARE(slice->bytesAvailable, base->bytesAvailable - 13 * 4);
        QCOMPARE(find(tensors, "tied.weight")->data, find(tensors, "linear.weight")->data);
    }

    void safeTensors()
    {
        std::map<std::string, std::string> metadata;
        std::vector<RawTensor> tensors = readSafeTensors(kDataDir + "model.safetensors", &metadata);
        compareWithExpected(tensors, false);
        QCOMPARE(metadata["format"], std::string("pt"));
        QVERIFY(readSafeTensors(kDataDir + "model.safetensors").size() == tensors.size());
    }

    void evilPickleRunsNothing()
    {
        std::remove(kPwned);
        const std::string path = kDataDir + "evil.bin";
        EXPECT_ERROR(readTorchCheckpoint(path), path, "refusing to load", "os", "system", "not allowed");
        QVERIFY(!QFile::exists(kPwned));

        // The same through STACK_GLOBAL (protocol 4+), and other classics.
        const std::vector<std::pair<std::string, std::string>> evil = {
            {"builtins", "eval"}, {"os", "system"}, {"subprocess", "Popen"}, {"torch", "load"}};
        for (const auto& g : evil) {
            Pickle p;
            p.b = "\x80\x04";
            p.b += "\x8c" + std::string(1, char(g.first.size())) + g.first;
            p.b += "\x8c" + std::string(1, char(g.second.size())) + g.second;
            p.b += "\x93";
            p.str("touch /tmp/statescope_pwned").op('\x85').op('R');
            std::string file = write("evil_" + g.second + ".bin", torchZip(p.done(), {}));
            EXPECT_ERROR(readTorchCheckpoint(file), file,
                         ("refusing to load " + g.first + "." + g.second).c_str());
        }
        QVERIFY(!QFile::exists(kPwned));
    }

    void legacyAndNonZip()
    {
        const std::string legacy = kDataDir + "legacy.bin";
        EXPECT_ERROR(readTorchCheckpoint(legacy), legacy,
                     "legacy (non-zip) PyTorch checkpoints are not supported", "re-save with torch.save");
        std::string random =
            write("random.bin", std::string("\x13\x37garbage that is not a zip\x00\xff", 30));
        EXPECT_ERROR(readTorchCheckpoint(random), random, "legacy (non-zip)");
        std::string empty = write("empty.bin", "");
        EXPECT_ERROR(readTorchCheckpoint(empty), empty, "empty");
        EXPECT_ERROR(readSafeTensors(empty), empty, "too short");
        std::string missing = m_tmp.path().toStdString() + "/does_not_exist.bin";
        EXPECT_ERROR(readTorchCheckpoint(missing), missing, "cannot open");
        EXPECT_ERROR(readSafeTensors(missing), missing, "cannot open");
        EXPECT_ERROR(loadPythonJson(missing), missing, "cannot open");
        EXPECT_ERROR(MappedFile::open(m_tmp.path().toStdString()), m_tmp.path().toStdString(), "directory");
    }

    void mappedFileEmpty()
    {
        std::string empty = write("empty2.bin", "");
        auto f = MappedFile::open(empty);
        QCOMPARE(f->size(), size_t(0));
        QCOMPARE(f->path(), empty);
    }

    // ---- hand-built archives: positive controls for the builders, then corruptions ----

    void handBuiltArchive_data()
    {
        QTest::addColumn<bool>("zip64");
        QTest::newRow("plain") << false;
        QTest::newRow("zip64") << true;
    }
    void handBuiltArchive()
    {
        QFETCH(bool, zip64);
        std::string pkl = Pickle()
                              .stateDict([](Pickle& p) {
                                  p.str("w").tensor("0", 6, 1, {2, 2}, {1, 2});
                                  p.str("step").integer(7); // non-tensor values are skipped
                              })
                              .done();
        std::string path = write(zip64 ? "hand64.bin" : "hand.bin",
                                 torchZip(pkl, {{"0", floats({9, 1, 2, 3, 4, 9})}}, zip64));
        std::vector<RawTensor> t = readTorchCheckpoint(path);
        QCOMPARE(t.size(), size_t(1));
        QCOMPARE(t[0].name, std::string("w"));
        bool ok = false;
        QCOMPARE(logicalValues(t[0], &ok), (std::vector<double>{1, 3, 2, 4}));
        QVERIFY(ok);
        QCOMPARE(t[0].bytesAvailable, size_t(20));

        ZipArchive zip = ZipArchive::open(path);
        QCOMPARE(zip.names().size(), size_t(3));
        QCOMPARE(zip.entry("archive/version").size, uint64_t(2));
        EXPECT_ERROR(zip.entry("nope"), path, "nope", "missing");

        // A dict with a "state_dict" entry, as training scripts save it.
        std::string wrapped = Pickle()
                                  .op('}')
                                  .str("epoch")
                                  .integer(3)
                                  .op('s')
                                  .str("state_dict")
                                  .stateDict([](Pickle& p) { p.str("w").tensor("0", 6, 0, {6}, {1}); })
                                  .op('s')
                                  .done();
        std::string wpath =
            write("wrapped.bin", torchZip(wrapped, {{"0", floats({9, 1, 2, 3, 4, 9})}}, zip64));
        QCOMPARE(readTorchCheckpoint(wpath).at(0).shape, (std::vector<int64_t>{6}));
    }

    void corruptTorch()
    {
        const std::string good = readFixture("state_dict.bin");
        QVERIFY(good.size() > 1000);

        std::string truncated = write("truncated.bin", good.substr(0, good.size() / 2));
        EXPECT_ERROR(readTorchCheckpoint(truncated), truncated, "zip");
        std::string chopped = write("chopped.bin", good.substr(0, good.size() - 10));
        EXPECT_ERROR(readTorchCheckpoint(chopped), chopped, "zip");

        // data.pkl cut inside a BINUNICODE argument.
        std::string pkl =
            Pickle().stateDict([](Pickle& p) { p.str("weight").tensor("0", 4, 0, {4}, {1}); }).done();
        size_t cut = pkl.find("weight") + 3;
        std::string midOpcode =
            write("mid_opcode.bin", torchZip(pkl.substr(0, cut), {{"0", floats({1, 2, 3, 4})}}));
        EXPECT_ERROR(readTorchCheckpoint(midOpcode), midOpcode, "data.pkl", "unexpected end");
        // ... and cut after a whole opcode but before STOP.
        std::string noStop =
            write("no_stop.bin", torchZip(pkl.substr(0, pkl.size() - 1), {{"0", floats({1, 2, 3, 4})}}));
        EXPECT_ERROR(readTorchCheckpoint(noStop), noStop, "STOP");

        std::string unknown = write("unknown_op.bin", torchZip(std::string("\x80\x02\xff.", 4), {}));
        EXPECT_ERROR(readTorchCheckpoint(unknown), unknown, "unknown pickle opcode 0xff", "byte 2");

        std::string missingKey = write("missing_key.bin", torchZip(pkl, {{"1", floats({1, 2, 3, 4})}}));
        EXPECT_ERROR(readTorchCheckpoint(missingKey), missingKey, "weight", "archive/data/0", "missing");

        std::string tooBig = Pickle()
                                 .stateDict([](Pickle& p) {
                                     p.str("weight").tensor("0", 4, 0, {3, 2}, {2, 1});
                                 })
                                 .done();
        std::string shapePath = write("shape_too_big.bin", torchZip(tooBig, {{"0", floats({1, 2, 3, 4})}}));
        EXPECT_ERROR(readTorchCheckpoint(shapePath), shapePath, "weight", "past the end of its storage");

        std::string offset =
            Pickle().stateDict([](Pickle& p) { p.str("weight").tensor("0", 4, 3, {2}, {1}); }).done();
        std::string offsetPath = write("offset_too_big.bin", torchZip(offset, {{"0", floats({1, 2, 3, 4})}}));
        EXPECT_ERROR(readTorchCheckpoint(offsetPath), offsetPath, "past the end of its storage");

        std::string huge = Pickle()
                               .stateDict([](Pickle& p) {
                                   p.str("w").tensor("0", 4, 0, {3, 2}, {int64_t(1) << 62, 1});
                               })
                               .done();
        std::string hugePath = write("huge_stride.bin", torchZip(huge, {{"0", floats({1, 2, 3, 4})}}));
        EXPECT_ERROR(readTorchCheckpoint(hugePath), hugePath, "past the end of its storage");

        // The pickle claims a bigger storage than the archive holds.
        std::string claims =
            Pickle().stateDict([](Pickle& p) { p.str("w").tensor("0", 1000, 0, {4}, {1}); }).done();
        std::string claimsPath = write("storage_short.bin", torchZip(claims, {{"0", floats({1, 2, 3, 4})}}));
        EXPECT_ERROR(readTorchCheckpoint(claimsPath), claimsPath, "storage size");

        std::string notDict = write("not_dict.bin", torchZip(Pickle().op(']').done(), {}));
        EXPECT_ERROR(readTorchCheckpoint(notDict), notDict, "list");

        std::string noTensors = write("no_tensors.bin", torchZip(Pickle().op('}').done(), {}));
        EXPECT_ERROR(readTorchCheckpoint(noTensors), noTensors, "no tensors");

        std::string badStorage =
            Pickle()
                .stateDict([](Pickle& p) { p.str("w").tensor("0", 4, 0, {4}, {1}, "QInt8Storage"); })
                .done();
        std::string badStoragePath =
            write("bad_storage.bin", torchZip(badStorage, {{"0", floats({1, 2, 3, 4})}}));
        EXPECT_ERROR(readTorchCheckpoint(badStoragePath), badStoragePath,
                     "refusing to load torch.QInt8Storage");

        // Opcodes that would build arbitrary objects are refused even without a global.
        std::string inst = write("inst.bin", torchZip(std::string("\x80\x02(i__main__\nX\n.", 16), {}));
        EXPECT_ERROR(readTorchCheckpoint(inst), inst, "not allowed");

        std::string underflow = write("underflow.bin", torchZip(std::string("\x80\x02R.", 4), {}));
        EXPECT_ERROR(readTorchCheckpoint(underflow), underflow, "underflow");

        std::string badMemo = write("bad_memo.bin", torchZip(std::string("\x80\x02h\x05.", 5), {}));
        EXPECT_ERROR(readTorchCheckpoint(badMemo), badMemo, "memo");

        std::string byteorder = write("big_endian.bin", makeZip({{"archive/data.pkl", pkl},
                                                                 {"archive/byteorder", "big"},
                                                                 {"archive/data/0", floats({1, 2, 3, 4})}}));
        EXPECT_ERROR(readTorchCheckpoint(byteorder), byteorder, "byteorder", "big");

        std::string noPkl = write("no_pkl.bin", makeZip({{"archive/other", "x"}}));
        EXPECT_ERROR(readTorchCheckpoint(noPkl), noPkl, "data.pkl");
    }

    // A million nested lists: unpickling and cleanup must not recurse on the C++ stack.
    void deepNestingDoesNotOverflow()
    {
        const size_t depth = 1000000;
        std::string pkl("\x80\x02", 2);
        pkl += std::string(depth, ']') + std::string(depth - 1, 'a') + ".";
        std::string path = write("deep.bin", torchZip(pkl, {}));
        EXPECT_ERROR(readTorchCheckpoint(path), path, "holds a list");

        // And a list that contains itself.
        std::string cyclic = write("cyclic.bin", torchZip(std::string("\x80\x02]q\x00h\x00"
                                                                      "a.",
                                                                      9),
                                                          {}));
        EXPECT_ERROR(readTorchCheckpoint(cyclic), cyclic, "holds a list");
    }

    // Issue 10 (5): one 64 KB string, memoized once and fetched 30,000 times as a dict key (6 bytes
    // of pickle each): 335 KB of file held 1.9 GB of keys. The reader's memory is budgeted in
    // proportion to the pickle's size.
    void memoAmplificationRefused()
    {
        std::string pkl("\x80\x02}", 3);
        const std::string big(65536, 'A');
        auto u32 = [](uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
        pkl += "X" + u32(uint32_t(big.size())) + big + "r" + u32(1) + "0";
        for (int i = 0; i < 30000; ++i)
            pkl += "}j" + u32(1) + "Ns0";
        pkl += ".";
        const std::string path = write("memo-keys.bin", torchZip(pkl, {}));
        EXPECT_ERROR(readTorchCheckpoint(path), path, "the pickle would take more than");
    }

    void corruptZip()
    {
        std::string pkl =
            Pickle().stateDict([](Pickle& p) { p.str("w").tensor("0", 4, 0, {4}, {1}); }).done();
        const std::string good = torchZip(pkl, {{"0", floats({1, 2, 3, 4})}});
        QVERIFY(readTorchCheckpoint(write("zip_ok.bin", good)).size() == 1);
        {
            // Issue 10, also seen: CRCs were never checked. One byte of the pickle changed (a
            // string's content, so that it still parses) is now a damaged file.
            std::string s = good;
            const size_t at = s.find("storage");
            QVERIFY(at != std::string::npos);
            s[at] = 'S';
            const std::string p = write("crc.bin", s);
            EXPECT_ERROR(readTorchCheckpoint(p), p, "CRC-32");
        }
        const size_t eocd = good.size() - 22;
        const size_t cd = good.find(std::string("PK\x01\x02", 4));

        std::string s = good;
        s[eocd + 16] = '\x7f'; // central directory offset far past the end
        std::string p1 = write("cd_offset.bin", s);
        EXPECT_ERROR(ZipArchive::open(p1), p1, "central directory");

        s = good;
        s[eocd + 10] = '\x70'; // far more entries than fit
        std::string p2 = write("entry_count.bin", s);
        EXPECT_ERROR(ZipArchive::open(p2), p2, "entries");

        s = good;
        s[cd + 42 + 3] = '\x40'; // local header offset of the first entry past the end
        std::string p3 = write("local_offset.bin", s);
        EXPECT_ERROR(readTorchCheckpoint(p3), p3, "local header");

        s = good;
        s[cd + 20 + 3] = '\x10'; // stored sizes far past the end
        s[cd + 24 + 3] = '\x10';
        std::string p4 = write("entry_size.bin", s);
        EXPECT_ERROR(readTorchCheckpoint(p4), p4, "past the end of the file");

        s = good;
        s[cd + 10] = 8; // deflate
        std::string p5 = write("deflated.bin", s);
        EXPECT_ERROR(readTorchCheckpoint(p5), p5, "compressed entries are not supported", "data.pkl");

        s = good;
        s[cd + 46] = 'X'; // rename in the central directory only: the local header disagrees
        std::string p6 = write("name_mismatch.bin", s);
        EXPECT_ERROR(ZipArchive::open(p6).entry("Xrchive/data.pkl"), p6, "does not match");

        std::string p7 = write("tiny.zip", "PK\x05\x06");
        EXPECT_ERROR(readTorchCheckpoint(p7), p7, "not a zip archive");
    }

    // ---- safetensors ----

    void safeTensorsCorrupt_data()
    {
        QTest::addColumn<QByteArray>("header");
        QTest::addColumn<int>("dataBytes");
        QTest::addColumn<qint64>("headerSize"); // -1: the real size
        QTest::addColumn<QString>("needle");

        const QByteArray two = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
        QTest::newRow("header larger than file") << two << 12 << qint64(5000) << "past the end of the file";
        QTest::newRow("header over 100MB") << two << 12 << qint64(200000000) << "exceeds the limit";
        QTest::newRow("no brace") << QByteArray(" ") + two << 12 << qint64(-1) << "start with '{'";
        QTest::newRow("array header") << QByteArray("[1,2]") << 0 << qint64(-1) << "start with '{'";
        QTest::newRow("invalid JSON")
            << QByteArray(R"({"a":{"dtype":"F32",)") << 0 << qint64(-1) << "invalid JSON";
        QTest::newRow("invalid UTF-8") << QByteArray("{\"\xff\xfe\":1}") << 0 << qint64(-1) << "invalid JSON";
        QTest::newRow("bad dtype") << QByteArray(
                                          R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})")
                                   << 2 << qint64(-1) << "unsupported dtype F8_E4M3";
        QTest::newRow("unknown dtype")
            << QByteArray(R"({"a":{"dtype":"X9","shape":[2],"data_offsets":[0,2]}})") << 2 << qint64(-1)
            << "unsupported dtype X9";
        QTest::newRow("numel mismatch")
            << QByteArray(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})") << 8 << qint64(-1)
            << "expected 12 bytes, got 8";
        QTest::newRow("hole") << QByteArray(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})")
                              << 16 << qint64(-1) << "hole";
        QTest::newRow("overlap") << QByteArray(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})")
                                 << 12 << qint64(-1) << "overlapping";
        QTest::newRow("not from 0") << QByteArray(
                                           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})")
                                    << 12 << qint64(-1) << "hole";
        QTest::newRow("trailing bytes") << two << 13 << qint64(-1) << "trailing";
        QTest::newRow("missing bytes") << two << 11 << qint64(-1) << "truncated";
        QTest::newRow("negative shape")
            << QByteArray(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})") << 0 << qint64(-1)
            << "negative";
        QTest::newRow("float shape") << QByteArray(
                                            R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})")
                                     << 4 << qint64(-1) << "shape dimension";
        QTest::newRow("overflowing shape")
            << QByteArray(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})")
            << 4 << qint64(-1) << "overflows";
        QTest::newRow("offsets reversed")
            << QByteArray(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})") << 4 << qint64(-1)
            << "end before they begin";
        QTest::newRow("missing offsets")
            << QByteArray(R"({"a":{"dtype":"F32","shape":[1]}})") << 0 << qint64(-1) << "data_offsets";
        QTest::newRow("metadata not strings")
            << QByteArray(R"({"__metadata__":{"x":1}})") << 0 << qint64(-1) << "__metadata__";
        QTest::newRow("duplicate key")
            << QByteArray(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                          R"("a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})")
            << 1 << qint64(-1) << "duplicate";
        QTest::newRow("deep nesting")
            << QByteArray("{\"a\":") + QByteArray(100000, '[') << 0 << qint64(-1) << "nesting";
    }
    void safeTensorsCorrupt()
    {
        QFETCH(QByteArray, header);
        QFETCH(int, dataBytes);
        QFETCH(qint64, headerSize);
        QFETCH(QString, needle);
        std::string bytes;
        put64(bytes, headerSize < 0 ? uint64_t(header.size()) : uint64_t(headerSize));
        bytes += header.toStdString() + std::string(size_t(dataBytes), '\0');
        std::string path = write("corrupt.safetensors", bytes);
        EXPECT_ERROR(readSafeTensors(path), path, needle.toStdString().c_str());
    }

    void safeTensorsHandBuilt()
    {
        // Zero-size tensors, a scalar, padding spaces, and metadata.
        QByteArray header =
            R"({"__metadata__":{"k":"v"},"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
            R"("e":{"dtype":"I32","shape":[0,3],"data_offsets":[8,8]},)"
            R"("b":{"dtype":"BOOL","shape":[2],"data_offsets":[8,10]}}   )";
        std::string bytes;
        put64(bytes, uint64_t(header.size()));
        bytes += header.toStdString();
        double pi = 3.25;
        bytes.append(reinterpret_cast<const char*>(&pi), 8);
        bytes += std::string("\x01\x00", 2);
        std::map<std::string, std::string> meta;
        auto t = readSafeTensors(write("hand.safetensors", bytes), &meta);
        QCOMPARE(t.size(), size_t(3));
        QCOMPARE(meta["k"], std::string("v"));
        const RawTensor* s = find(t, "s");
        QVERIFY(s && s->shape.empty() && s->numel() == 1 && elementAt(*s, 0) == 3.25);
        const RawTensor* e = find(t, "e");
        QVERIFY(e && e->numel() == 0 && e->bytesAvailable == 0);
        QCOMPARE(e->strides, (std::vector<int64_t>{3, 1}));
        const RawTensor* b = find(t, "b");
        QVERIFY(b && b->dtype == DType::Bool && elementAt(*b, 0) == 1 && elementAt(*b, 1) == 0);
    }

    // ---- Python JSON ----

    void pythonJson()
    {
        // Python's json.dumps(float("nan")) etc. write these bare words.
        nlohmann::json j = parsePythonJson(
            R"({"a": NaN, "b": Infinity, "c": -Infinity, "d": [1.5, {"__float__": "Infinity"}],)"
            R"( "e": {"__float__": "-Infinity"}, "f": {"__float__": "NaN"},)"
            // (no raw string here: moc mis-reads \" inside raw strings)
            " \"s\": \"NaN Infinity \\\"-Infinity\\\"\"}",
            "config.json");
        QVERIFY(std::isnan(jsonNumber(j["a"], "config.json", "a")));
        QCOMPARE(jsonNumber(j["b"], "config.json", "b"), INFINITY);
        QCOMPARE(jsonNumber(j["c"], "config.json", "c"), -INFINITY);
        QCOMPARE(jsonNumber(j["d"][0], "config.json", "d"), 1.5);
        QCOMPARE(jsonNumber(j["d"][1], "config.json", "d"), INFINITY);
        QCOMPARE(jsonNumber(j["e"], "config.json", "e"), -INFINITY);
        QVERIFY(std::isnan(jsonNumber(j["f"], "config.json", "f")));
        QCOMPARE(j["s"].get<std::string>(), std::string("NaN Infinity \"-Infinity\""));
        QCOMPARE(jsonNumber(nlohmann::json("Infinity"), "x", "y"), INFINITY);
        EXPECT_ERROR(jsonNumber(j["s"], "config.json", "time_step_limit"), "config.json", "time_step_limit",
                     "expected a number");
        EXPECT_ERROR(jsonNumber(nlohmann::json(true), "config.json", "eps"), "config.json", "eps");

        // Python: json.loads('{"a": NaN, "b": }') -> "Expecting value: line 1 column 17 (char 16)".
        EXPECT_ERROR(parsePythonJson(R"({"a": NaN, "b": })", "config.json"), "config.json", "byte 16");
        EXPECT_ERROR(parsePythonJson(R"({"a": 1,)", "broken.json"), "broken.json", "invalid JSON");

        std::string path = write("config.json", R"({"time_step_limit": [0.0, Infinity], "eps": 1e-5})");
        nlohmann::json c = loadPythonJson(path);
        QCOMPARE(jsonNumber(c["time_step_limit"][1], path, "time_step_limit"), INFINITY);
        QCOMPARE(jsonNumber(c["eps"], path, "eps"), 1e-5);
        std::string bad = write("bad.json", "{\"x\": [1, 2,, 3]}");
        EXPECT_ERROR(loadPythonJson(bad), bad, "invalid JSON", "byte 12");
    }
};

QTEST_GUILESS_MAIN(TestCheckpointReaders)
#include "TestCheckpointReaders.moc"
