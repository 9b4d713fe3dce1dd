// TraceWriter / TraceReader: round trips checked against values computed here by formula, a reader
// check against files written by h5py (tools/make_trace_fixtures.py), SIGKILL safety, and errors.
#include "Error.h"
#include "trace/TraceFile.h"

#include <QTemporaryDir>
#include <QtTest>

#include <hdf5.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace statescope;

namespace {

const std::string kDataDir = std::string(STATESCOPE_TEST_DATA_DIR) + "/trace/";

// ---- the values a test run writes, by formula (independent of the code under test)

int32_t idAt(int64_t t)
{
    return static_cast<int32_t>((t * 7919) % 50277);
}
float nllAt(int64_t t)
{
    return t == 0 ? std::nanf("") : 0.5f + static_cast<float>(t % 97) * 0.01f;
}
float probeAt(size_t p, int64_t t, int64_t i)
{
    return static_cast<float>(p + 1) * 1000.0f + static_cast<float>(t % 1000) + static_cast<float>(i) / 16.0f;
}

TraceHeader testHeader(bool offsets, std::vector<int64_t> shape = {3, 4})
{
    TraceHeader h;
    h.architecture = "mamba2";
    h.modelConfigJson = R"({"d_model": 768, "name": "caf\u00e9"})";
    h.modelPath = "/models/mamba2-130m";
    h.dtype = "float32";
    h.device = "cpu";
    h.input = "na\xC3\xAFve \xE6\x96\x87\xE6\x9C\xAC.txt (12 bytes)";
    h.startTime = "2025-01-02T03:04:05Z";
    h.softwareVersion = "statescope test";
    h.hasOffsets = offsets;
    std::vector<std::string> axes;
    for (size_t i = 0; i < shape.size(); ++i)
        axes.push_back(i == 0 ? "layer" : "head");
    h.probes = {{"dt", "step size", shape, axes, "Mamba-2 SSM head"},
                {"decay", "forget gate", shape, axes, "Mamba-2 SSM head"}};
    return h;
}

ChunkProbes makeChunk(const TraceHeader& h, int64_t start, int64_t count)
{
    ChunkProbes c;
    c.start = start;
    for (int64_t t = start; t < start + count; ++t) {
        c.ids.push_back(idAt(t));
        c.nll.push_back(nllAt(t));
        if (h.hasOffsets) {
            c.offsets.push_back(3 * t);
            c.offsets.push_back(3 * t + 2);
        }
    }
    for (size_t p = 0; p < h.probes.size(); ++p) {
        const int64_t n = h.probes[p].valuesPerToken();
        std::vector<float> v;
        v.reserve(static_cast<size_t>(count * n));
        for (int64_t t = start; t < start + count; ++t)
            for (int64_t i = 0; i < n; ++i)
                v.push_back(probeAt(p, t, i));
        c.values.push_back(std::move(v));
    }
    return c;
}

bool sameFloat(float a, float b)
{
    return (std::isnan(a) && std::isnan(b)) || a == b;
}

// Checks every value of tokens [begin, end) as read through a window.
void checkWindow(const TraceReader& r, int64_t begin, int64_t end, bool offsets)
{
    const std::vector<int32_t> ids = r.ids(begin, end);
    const std::vector<float> nll = r.nll(begin, end);
    QCOMPARE(static_cast<int64_t>(ids.size()), end - begin);
    QCOMPARE(static_cast<int64_t>(nll.size()), end - begin);
    for (int64_t t = begin; t < end; ++t) {
        QCOMPARE(ids[t - begin], idAt(t));
        QVERIFY2(sameFloat(nll[t - begin], nllAt(t)), qPrintable(QString("nll at token %1").arg(t)));
    }
    const std::vector<int64_t> off = r.offsets(begin, end);
    if (offsets) {
        QCOMPARE(static_cast<int64_t>(off.size()), 2 * (end - begin));
        for (int64_t t = begin; t < end; ++t) {
            QCOMPARE(off[2 * (t - begin)], 3 * t);
            QCOMPARE(off[2 * (t - begin) + 1], 3 * t + 2);
        }
    } else {
        QVERIFY(off.empty());
    }
    for (size_t p = 0; p < r.header().probes.size(); ++p) {
        const int64_t n = r.header().probes[p].valuesPerToken();
        const std::vector<float> v = r.probe(r.header().probes[p].name, begin, end);
        QCOMPARE(static_cast<int64_t>(v.size()), (end - begin) * n);
        for (int64_t t = begin; t < end; ++t)
            for (int64_t i = 0; i < n; ++i)
                if (v[(t - begin) * n + i] != probeAt(p, t, i))
                    QFAIL(qPrintable(QString("probe %1 token %2 value %3: %4, expected %5")
                                         .arg(p)
                                         .arg(t)
                                         .arg(i)
                                         .arg(v[(t - begin) * n + i])
                                         .arg(probeAt(p, t, i))));
    }
}

// Collects what is written to stderr (fd 2) while alive: HDF5 must stay silent.
class StderrCapture {
public:
    StderrCapture()
    {
        std::fflush(stderr);
        m_file = std::tmpfile();
        m_saved = dup(2);
        dup2(fileno(m_file), 2);
    }
    ~StderrCapture() { restore(); }
    std::string restore()
    {
        if (m_saved < 0)
            return m_text;
        std::fflush(stderr);
        dup2(m_saved, 2);
        close(m_saved);
        m_saved = -1;
        std::rewind(m_file);
        char buf[4096];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, m_file)) > 0)
            m_text.append(buf, n);
        std::fclose(m_file);
        return m_text;
    }

private:
    std::FILE* m_file = nullptr;
    int m_saved = -1;
    std::string m_text;
};

// Runs f, expecting an Error whose file is `file`; returns its message.
template <typename F> std::string expectError(const std::string& file, F f)
{
    try {
        f();
    } catch (const Error& e) {
        if (e.file() != file)
            throw std::runtime_error("Error names \"" + e.file() + "\", expected \"" + file +
                                     "\": " + e.what());
        if (std::string(e.what()).find(file) == std::string::npos)
            throw std::runtime_error(std::string("message does not name the file: ") + e.what());
        return e.what();
    }
    throw std::runtime_error("no Error thrown for " + file);
}

bool contains(const std::string& s, const char* part)
{
    return s.find(part) != std::string::npos;
}

bool readByte(int fd)
{
    char c;
    while (true) {
        const ssize_t r = read(fd, &c, 1);
        if (r == 1)
            return true;
        if (r < 0 && errno == EINTR)
            continue;
        return false;
    }
}

} // namespace

class TestTraceFile : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void roundTrip_data()
    {
        QTest::addColumn<bool>("offsets");
        QTest::addColumn<int>("side");
        QTest::newRow("text input (offsets), probes [3,4]") << true << 3;
        QTest::newRow("ids input (no offsets), probes [3,4]") << false << 3;
        // 2304 bytes a token: chunks of 256 tokens, so appends fill, split and span many chunks.
        QTest::newRow("text input, probes [24,24]") << true << 24;
    }

    void roundTrip()
    {
        QFETCH(bool, offsets);
        QFETCH(int, side);
        const std::string path = file("rt-" + std::to_string(offsets) + "-" + std::to_string(side) + ".h5");
        const TraceHeader h = testHeader(offsets, {side, side == 3 ? 4 : side});
        StderrCapture err;
        {
            TraceWriter w(path, h);
            QCOMPARE(w.path(), path);
            int64_t start = 0;
            for (int64_t n : {1, 7, 300, 5000, 0}) {
                w.append(makeChunk(h, start, n));
                start += n;
                QCOMPARE(w.tokens(), start);
            }
            w.finish();
            w.finish(); // a second call does nothing
        }
        const int64_t T = 5308;
        TraceReader r(path);
        QCOMPARE(r.path(), path);
        QVERIFY(r.completed());
        QCOMPARE(r.tokens(), T);

        const TraceHeader& g = r.header();
        QCOMPARE(g.architecture, h.architecture);
        QCOMPARE(g.modelConfigJson, h.modelConfigJson);
        QCOMPARE(g.modelPath, h.modelPath);
        QCOMPARE(g.dtype, h.dtype);
        QCOMPARE(g.device, h.device);
        QCOMPARE(g.input, h.input);
        QCOMPARE(g.startTime, h.startTime);
        QCOMPARE(g.softwareVersion, h.softwareVersion);
        QCOMPARE(g.hasOffsets, offsets);
        QCOMPARE(g.probes.size(), size_t(2));
        for (size_t p = 0; p < 2; ++p) {
            QCOMPARE(g.probes[p].name, h.probes[p].name); // creation order: dt before decay
            QCOMPARE(g.probes[p].description, h.probes[p].description);
            QCOMPARE(g.probes[p].shape, h.probes[p].shape);
            QCOMPARE(g.probes[p].axes, h.probes[p].axes);
            QCOMPARE(g.probes[p].headMeaning, h.probes[p].headMeaning);
        }
        QCOMPARE(r.attribute("schema_version"), std::string("1"));
        QCOMPARE(r.attribute("completed"), std::string("1"));
        QCOMPARE(r.attribute("tokens"), std::to_string(T));
        QCOMPARE(r.attribute("input"), h.input);
        const std::string end = r.attribute("end_time");
        QVERIFY2(QRegularExpression("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$")
                     .match(QString::fromStdString(end))
                     .hasMatch(),
                 end.c_str());
        QCOMPARE(r.attribute("no_such_attribute"), std::string());

        checkWindow(r, 0, T, offsets);
        // Windows at and across append and chunk boundaries, single tokens, empty ones.
        const std::pair<int64_t, int64_t> windows[] = {{0, 1},       {1, 8},       {7, 9}, {300, 4500},
                                                       {4095, 4097}, {5307, 5308}, {0, 0}, {T, T},
                                                       {2000, 2001}, {255, 513}};
        for (auto [b, e] : windows)
            checkWindow(r, b, e, offsets);
        QCOMPARE(r.ids(5300).size(), size_t(8)); // end = -1: to the end
        QCOMPARE(err.restore(), std::string());
    }

    // The layout as the schema (docs/trace-format.md) states it, read with the HDF5 C API directly.
    void layoutMatchesSchema()
    {
        const std::string path = file("layout.h5");
        const TraceHeader h = testHeader(true, {24, 24});
        {
            TraceWriter w(path, h);
            w.append(makeChunk(h, 0, 1000));
            w.finish();
        }
        const hid_t f =
            H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT); // closed cleanly: plain open works
        QVERIFY(f >= 0);
        struct Expect {
            const char* name;
            hid_t type;
            std::vector<hsize_t> dims;
        };
        const Expect expects[] = {{"/tokens/ids", H5T_STD_I32LE, {1000}},
                                  {"/tokens/offsets", H5T_STD_I64LE, {1000, 2}},
                                  {"/nll", H5T_IEEE_F32LE, {1000}},
                                  {"/probes/dt", H5T_IEEE_F32LE, {1000, 24, 24}},
                                  {"/probes/decay", H5T_IEEE_F32LE, {1000, 24, 24}}};
        for (const Expect& x : expects) {
            const hid_t d = H5Dopen2(f, x.name, H5P_DEFAULT);
            QVERIFY2(d >= 0, x.name);
            const hid_t type = H5Dget_type(d);
            QVERIFY2(H5Tequal(type, x.type) > 0, x.name);
            const hid_t space = H5Dget_space(d);
            std::vector<hsize_t> dims(x.dims.size()), maxDims(x.dims.size());
            QCOMPARE(H5Sget_simple_extent_ndims(space), int(x.dims.size()));
            H5Sget_simple_extent_dims(space, dims.data(), maxDims.data());
            QCOMPARE(dims, x.dims);
            QCOMPARE(maxDims[0], H5S_UNLIMITED);
            const hid_t dcpl = H5Dget_create_plist(d);
            QCOMPARE(H5Pget_layout(dcpl), H5D_CHUNKED);
            std::vector<hsize_t> chunk(x.dims.size());
            H5Pget_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
            for (size_t i = 1; i < chunk.size(); ++i)
                QCOMPARE(chunk[i], x.dims[i]); // whole tokens per chunk
            QVERIFY(chunk[0] >= 1 && chunk[0] <= 4096);
            bool shuffle = false, deflate = false;
            for (int i = 0; i < H5Pget_nfilters(dcpl); ++i) {
                unsigned flags = 0;
                size_t n = 0;
                const H5Z_filter_t filter = H5Pget_filter2(dcpl, i, &flags, &n, nullptr, 0, nullptr, nullptr);
                shuffle |= filter == H5Z_FILTER_SHUFFLE;
                deflate |= filter == H5Z_FILTER_DEFLATE;
            }
            QVERIFY2(shuffle && deflate, x.name);
            H5Pclose(dcpl);
            H5Sclose(space);
            H5Tclose(type);
            H5Dclose(d);
        }
        // Root attributes: types as the schema says.
        auto attrClass = [&](hid_t loc, const char* name, H5T_class_t* cls, bool* varUtf8) {
            const hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
            if (a < 0)
                return false;
            const hid_t t = H5Aget_type(a);
            *cls = H5Tget_class(t);
            *varUtf8 = *cls == H5T_STRING && H5Tis_variable_str(t) > 0 && H5Tget_cset(t) == H5T_CSET_UTF8;
            H5Tclose(t);
            H5Aclose(a);
            return true;
        };
        H5T_class_t cls;
        bool varUtf8 = false;
        for (const char* name : {"architecture", "model_config", "model_path", "dtype", "device", "input",
                                 "start_time", "software_version"}) {
            QVERIFY2(attrClass(f, name, &cls, &varUtf8), name);
            QVERIFY2(varUtf8, name);
        }
        // end_time is rewritten under SWMR, which allows only fixed-size values.
        QVERIFY(attrClass(f, "end_time", &cls, &varUtf8));
        QCOMPARE(cls, H5T_STRING);
        for (const char* name : {"schema_version", "completed", "tokens"}) {
            QVERIFY2(attrClass(f, name, &cls, &varUtf8), name);
            QCOMPARE(cls, H5T_INTEGER);
        }
        const hid_t dt = H5Dopen2(f, "/probes/dt", H5P_DEFAULT);
        for (const char* name : {"description", "axes", "head_meaning"}) {
            QVERIFY2(attrClass(dt, name, &cls, &varUtf8), name);
            QVERIFY2(varUtf8, name);
        }
        H5Dclose(dt);
        H5Fclose(f);
        TraceReader r(path);
        QCOMPARE(r.attribute("schema_version"), std::string("1"));
        checkWindow(r, 0, 1000, true);
    }

    // Destroying a writer without finish(): a cancelled run.
    void destructorLeavesIncompleteTrace()
    {
        const std::string path = file("cancelled.h5");
        const TraceHeader h = testHeader(true);
        {
            TraceWriter w(path, h);
            w.append(makeChunk(h, 0, 100));
            w.append(makeChunk(h, 100, 23));
        }
        TraceReader r(path);
        QVERIFY(!r.completed());
        QCOMPARE(r.tokens(), int64_t(123));
        QCOMPARE(r.attribute("completed"), std::string("0"));
        QCOMPARE(r.attribute("tokens"), std::string("123"));
        QCOMPARE(r.attribute("end_time"), std::string());
        checkWindow(r, 0, 123, true);
        // Closed cleanly: even a plain (non-SWMR) open works.
        const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
        QVERIFY(f >= 0);
        H5Fclose(f);
    }

    // A writer SIGKILLed after K appends (while still appending): the file is readable, marked
    // incomplete, and holds at least the K chunks, all correct.
    void killedWriter_data()
    {
        QTest::addColumn<int>("killAfter");
        QTest::addColumn<bool>("keepAppending");
        QTest::newRow("after 1, idle") << 1 << false;
        QTest::newRow("after 3, idle") << 3 << false;
        QTest::newRow("after 2, mid-append") << 2 << true;
        QTest::newRow("after 17, mid-append") << 17 << true;
        QTest::newRow("after 60, mid-append") << 60 << true;
    }

    void killedWriter()
    {
        QFETCH(int, killAfter);
        QFETCH(bool, keepAppending);
        constexpr int kChunks = 400;
        constexpr int64_t kChunkTokens = 37;
        const std::string path = file("killed-" + std::to_string(killAfter) + ".h5");
        const TraceHeader h = testHeader(true, {24, 24});

        int fds[2];
        QVERIFY(pipe(fds) == 0);
        std::fflush(nullptr);
        const pid_t pid = fork();
        QVERIFY(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            try {
                TraceWriter w(path, h);
                for (int i = 0; i < kChunks; ++i) {
                    w.append(makeChunk(h, i * kChunkTokens, kChunkTokens));
                    const char c = 'x';
                    if (write(fds[1], &c, 1) != 1)
                        _exit(3);
                    if (!keepAppending && i + 1 == killAfter)
                        pause();
                }
                pause(); // never finish: only the kill ends this process
            } catch (...) {
                _exit(2);
            }
            _exit(4);
        }
        close(fds[1]);
        int seen = 0;
        while (seen < killAfter && readByte(fds[0]))
            ++seen;
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        close(fds[0]);
        QCOMPARE(seen, killAfter);
        QVERIFY2(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer did not die by SIGKILL");

        StderrCapture err;
        TraceReader r(path);
        QVERIFY(!r.completed());
        QCOMPARE(r.attribute("completed"), std::string("0"));
        QCOMPARE(r.attribute("end_time"), std::string());
        QVERIFY2(r.tokens() >= killAfter * kChunkTokens, qPrintable(QString::number(r.tokens())));
        // tokens is written after the data it counts, at the end of each append.
        const int64_t tokensAttribute = std::stoll(r.attribute("tokens"));
        QVERIFY(tokensAttribute >= killAfter * kChunkTokens);
        QVERIFY(tokensAttribute <= r.tokens());
        QVERIFY(r.tokens() <= kChunks * kChunkTokens);
        // /tokens/ids is written last in an append, so what is readable is whole appends.
        QCOMPARE(r.tokens() % kChunkTokens, int64_t(0));
        checkWindow(r, 0, r.tokens(), true);
        QCOMPARE(err.restore(), std::string());
        qInfo("killed after %d appends (%s): %lld tokens readable", killAfter,
              keepAppending ? "mid-append" : "idle", static_cast<long long>(r.tokens()));
    }

    // Another process reads while the writer is alive and appending (SWMR), then refreshes.
    void readerWhileWriterAlive()
    {
        const std::string path = file("live.h5");
        const TraceHeader h = testHeader(false);
        int toParent[2], toChild[2];
        QVERIFY(pipe(toParent) == 0 && pipe(toChild) == 0);
        std::fflush(nullptr);
        const pid_t pid = fork();
        QVERIFY(pid >= 0);
        if (pid == 0) {
            close(toParent[0]);
            close(toChild[1]);
            try {
                TraceWriter w(path, h);
                const char c = 'x';
                w.append(makeChunk(h, 0, 500));
                if (write(toParent[1], &c, 1) != 1 || !readByte(toChild[0]))
                    _exit(3);
                w.append(makeChunk(h, 500, 4000));
                if (write(toParent[1], &c, 1) != 1 || !readByte(toChild[0]))
                    _exit(3);
                w.finish();
                if (write(toParent[1], &c, 1) != 1)
                    _exit(3);
                pause();
            } catch (...) {
                _exit(2);
            }
            _exit(4);
        }
        close(toParent[1]);
        close(toChild[0]);
        const char go = 'g';
        QVERIFY(readByte(toParent[0]));
        TraceReader r(path);
        QVERIFY(!r.completed());
        QCOMPARE(r.tokens(), int64_t(500));
        checkWindow(r, 0, 500, false);
        QVERIFY(write(toChild[1], &go, 1) == 1);
        QVERIFY(readByte(toParent[0]));
        QCOMPARE(r.refresh(), int64_t(4500));
        QVERIFY(!r.completed());
        checkWindow(r, 0, 4500, false);
        // The writer finishes while this reader holds the file open (a GUI watching the run).
        QVERIFY(write(toChild[1], &go, 1) == 1);
        QVERIFY(readByte(toParent[0]));
        QCOMPARE(r.refresh(), int64_t(4500));
        QVERIFY(r.completed());
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        close(toParent[0]);
        close(toChild[1]);
        QVERIFY2(WIFSIGNALED(status), "the writer failed before it was killed");
        TraceReader again(path);
        QVERIFY(again.completed());
        QCOMPARE(again.tokens(), int64_t(4500));
        QCOMPARE(again.attribute("tokens"), std::string("4500"));
        QVERIFY(!again.attribute("end_time").empty());
    }

    // The same process reading while it writes (a GUI showing its own run).
    void readerInSameProcess()
    {
        const std::string path = file("same-process.h5");
        const TraceHeader h = testHeader(true);
        TraceWriter w(path, h);
        w.append(makeChunk(h, 0, 100));
        {
            TraceReader r(path);
            QCOMPARE(r.tokens(), int64_t(100));
            w.append(makeChunk(h, 100, 50));
            QCOMPARE(r.refresh(), int64_t(150));
            checkWindow(r, 0, 150, true);
        }
        w.finish();
        TraceReader r(path);
        QVERIFY(r.completed());
        checkWindow(r, 0, 150, true);
    }

    // A model without probes still gives a valid trace.
    void noProbes()
    {
        const std::string path = file("no-probes.h5");
        TraceHeader h = testHeader(false);
        h.probes.clear();
        {
            TraceWriter w(path, h);
            w.append(makeChunk(h, 0, 9));
            w.finish();
        }
        TraceReader r(path);
        QVERIFY(r.completed());
        QCOMPARE(r.tokens(), int64_t(9));
        QVERIFY(r.header().probes.empty());
        checkWindow(r, 0, 9, false);
        QVERIFY(contains(expectError(path, [&] { r.probe("dt"); }), "dt"));
    }

    // A trace written by h5py (another producer, oldest file format, float64 probe, int64 ids).
    void readsH5pyTrace()
    {
        StderrCapture err;
        TraceReader r(kDataDir + "h5py_complete.h5");
        QVERIFY(r.completed());
        QCOMPARE(r.tokens(), int64_t(50));
        QCOMPARE(r.header().input, std::string("caf\xC3\xA9 \xE6\x96\x87\xE6\x9C\xAC.txt"));
        QCOMPARE(r.header().modelConfigJson, std::string(R"({"d_model": 64, "n_layer": 2})"));
        QVERIFY(r.header().hasOffsets);
        QCOMPARE(r.attribute("temperature"), std::string("0.5"));
        QCOMPARE(r.attribute("tokens"), std::string("50"));
        QCOMPARE(r.header().probes.size(), size_t(2));
        const ProbeDesc& beta = r.header().probes[0]; // creation order, not alphabetical
        const ProbeDesc& alpha = r.header().probes[1];
        QCOMPARE(beta.name, std::string("beta"));
        QCOMPARE(beta.shape, std::vector<int64_t>{4});
        QCOMPARE(beta.axes, std::vector<std::string>{"slot"});
        QCOMPARE(alpha.name, std::string("alpha"));
        QCOMPARE(alpha.shape, (std::vector<int64_t>{2, 3}));
        QCOMPARE(alpha.axes, (std::vector<std::string>{"layer", "head"}));
        QCOMPARE(alpha.description, std::string("alpha probe"));
        QCOMPARE(alpha.headMeaning, std::string("a test head"));

        const std::vector<int32_t> ids = r.ids(10, 20);
        const std::vector<int64_t> off = r.offsets(10, 20);
        const std::vector<float> nll = r.nll();
        for (int64_t t = 10; t < 20; ++t) {
            QCOMPARE(ids[t - 10], static_cast<int32_t>((t * 7919) % 50277));
            QCOMPARE(off[2 * (t - 10)], 3 * t);
            QCOMPARE(off[2 * (t - 10) + 1], 3 * t + 2);
        }
        QVERIFY(std::isnan(nll[0]));
        for (int64_t t = 1; t < 50; ++t)
            QCOMPARE(nll[t], 0.25f * static_cast<float>(t % 9));
        const std::vector<float> a = r.probe("alpha", 13, 47);
        QCOMPARE(a.size(), size_t(34 * 6));
        for (int64_t t = 13; t < 47; ++t)
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 3; ++j)
                    QCOMPARE(a[(t - 13) * 6 + i * 3 + j], static_cast<float>(t + 0.125 * (3 * i + j)));
        const std::vector<float> b = r.probe("beta", 49);
        QCOMPARE(b, (std::vector<float>{-49.0f, -49.5f, -50.0f, -50.5f}));

        TraceReader uneven(kDataDir + "uneven_incomplete.h5"); // ids 40, nll 45, the rest 50
        QVERIFY(!uneven.completed());
        QCOMPARE(uneven.tokens(), int64_t(40));
        QCOMPARE(uneven.probe("alpha").size(), size_t(40 * 6));
        QCOMPARE(err.restore(), std::string());
    }

    void readerErrors()
    {
        StderrCapture err;
        const std::string text = file("not-hdf5.h5");
        std::ofstream(text) << "this is not an HDF5 file\n";
        QVERIFY(contains(expectError(text, [&] { TraceReader r(text); }), "not an HDF5 file"));
        const std::string missing = file("missing.h5");
        QVERIFY(contains(expectError(missing, [&] { TraceReader r(missing); }), "not found"));
        QVERIFY(contains(
            expectError(m_dir.path().toStdString(), [&] { TraceReader r(m_dir.path().toStdString()); }),
            "folder"));

        const std::string noSchema = kDataDir + "no_schema.h5";
        QVERIFY(contains(expectError(noSchema, [&] { TraceReader r(noSchema); }), "schema_version"));
        const std::string v2 = kDataDir + "schema_v2.h5";
        QVERIFY(contains(expectError(v2, [&] { TraceReader r(v2); }), "schema_version: expected 1, got 2"));
        const std::string uneven = kDataDir + "uneven_complete.h5";
        QVERIFY(contains(expectError(uneven, [&] { TraceReader r(uneven); }), "inconsistent lengths"));
        const std::string noNll = kDataDir + "missing_nll.h5";
        QVERIFY(contains(expectError(noNll, [&] { TraceReader r(noNll); }), "/nll"));
        const std::string rank2 = kDataDir + "ids_rank2.h5";
        QVERIFY(contains(expectError(rank2, [&] { TraceReader r(rank2); }), "/tokens/ids rank"));

        // Windows outside the trace, unknown probes.
        const std::string good = kDataDir + "h5py_complete.h5";
        TraceReader r(good);
        QVERIFY(contains(expectError(good, [&] { r.ids(-1, 3); }), "outside"));
        QVERIFY(contains(expectError(good, [&] { r.nll(10, 51); }), "outside"));
        QVERIFY(contains(expectError(good, [&] { r.probe("alpha", 20, 10); }), "outside"));
        QVERIFY(contains(expectError(good, [&] { r.probe("gamma"); }), "gamma"));
        QCOMPARE(err.restore(), std::string());
    }

    void writerErrors()
    {
        StderrCapture err;
        const TraceHeader h = testHeader(false);
        const std::string noFolder = file("no-such-folder/trace.h5");
        QVERIFY(contains(expectError(noFolder, [&] { TraceWriter w(noFolder, h); }), "does not exist"));
        const std::string folder = m_dir.path().toStdString();
        QVERIFY(contains(expectError(folder, [&] { TraceWriter w(folder, h); }), "folder"));
        if (geteuid() != 0) { // root writes anywhere
            const std::string ro = file("read-only");
            std::filesystem::create_directory(ro);
            std::filesystem::permissions(ro, std::filesystem::perms::owner_read |
                                                 std::filesystem::perms::owner_exec);
            const std::string inRo = ro + "/trace.h5";
            QVERIFY(contains(expectError(inRo, [&] { TraceWriter w(inRo, h); }), "Permission denied"));
        }

        TraceHeader dup = h;
        dup.probes[1].name = "dt";
        const std::string p = file("header-errors.h5");
        QVERIFY(contains(expectError(p, [&] { TraceWriter w(p, dup); }), "twice"));
        TraceHeader axes = h;
        axes.probes[0].axes.pop_back();
        QVERIFY(contains(expectError(p, [&] { TraceWriter w(p, axes); }), "axes"));
        TraceHeader zero = h;
        zero.probes[0].shape[1] = 0;
        QVERIFY(contains(expectError(p, [&] { TraceWriter w(p, zero); }), "shape"));

        const std::string path = file("append-errors.h5");
        TraceWriter w(path, h);
        w.append(makeChunk(h, 0, 10));
        ChunkProbes c = makeChunk(h, 5, 10);
        Error startError("", "");
        try {
            w.append(c);
        } catch (const Error& e) {
            startError = e;
        }
        QCOMPARE(startError.file(), path);
        QCOMPARE(startError.field(), std::string("chunk start"));
        QCOMPARE(startError.actual(), std::string("5"));

        c = makeChunk(h, 10, 10);
        c.values[1].pop_back();
        QVERIFY(contains(expectError(path, [&] { w.append(c); }), "decay"));
        c = makeChunk(h, 10, 10);
        c.values.pop_back();
        QVERIFY(contains(expectError(path, [&] { w.append(c); }), "chunk probes"));
        c = makeChunk(h, 10, 10);
        c.nll.push_back(1.0f);
        QVERIFY(contains(expectError(path, [&] { w.append(c); }), "chunk nll"));
        c = makeChunk(h, 10, 10);
        c.offsets.assign(20, 0); // the header says the input had no text
        QVERIFY(contains(expectError(path, [&] { w.append(c); }), "chunk offsets"));

        // Rejected chunks change nothing: the writer goes on.
        w.append(makeChunk(h, 10, 10));
        w.finish();
        QVERIFY(contains(expectError(path, [&] { w.append(makeChunk(h, 20, 1)); }), "finished"));
        TraceReader r(path);
        QCOMPARE(r.tokens(), int64_t(20));
        checkWindow(r, 0, 20, false);
        QCOMPARE(err.restore(), std::string());
    }

    // By hand: STATESCOPE_TRACE_BENCH=1 TestTraceFile millionTokens (peak RSS, size, time);
    // BENCH_T=<tokens> for another length.
    void millionTokens()
    {
        if (qEnvironmentVariableIsEmpty("STATESCOPE_TRACE_BENCH"))
            QSKIP("set STATESCOPE_TRACE_BENCH=1 to run (writes ~4.6 GB of probes)");
        const int64_t total = qEnvironmentVariableIntValue("BENCH_T")
                                  ? qEnvironmentVariableIntValue("BENCH_T")
                                  : 1000000,
                      chunk = 4096;
        const std::string path = file("million.h5");
        TraceHeader h = testHeader(false, {24, 24});
        rusage before{};
        getrusage(RUSAGE_SELF, &before);
        const auto start = std::chrono::steady_clock::now();
        double appendSeconds = 0;
        {
            TraceWriter w(path, h);
            ChunkProbes c;
            for (int64_t s = 0; s < total; s += chunk) {
                const int64_t n = std::min(chunk, total - s);
                // Probe-like values (smooth in token, varied per head) so that compression sees
                // realistic data, not a constant.
                c.start = s;
                c.ids.resize(n);
                c.nll.resize(n);
                c.values.assign(2, std::vector<float>(static_cast<size_t>(n * 576)));
                for (int64_t t = 0; t < n; ++t) {
                    c.ids[t] = idAt(s + t);
                    c.nll[t] = nllAt(s + t);
                    for (size_t p = 0; p < 2; ++p)
                        for (int64_t i = 0; i < 576; ++i)
                            c.values[p][t * 576 + i] =
                                std::exp(-0.001f * static_cast<float>(i)) *
                                (1.0f + 0.3f * std::sin(0.01f * static_cast<float>(s + t) +
                                                        static_cast<float>(i + p)));
                }
                const auto a = std::chrono::steady_clock::now();
                w.append(c);
                appendSeconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
            }
            w.finish();
        }
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        rusage after{};
        getrusage(RUSAGE_SELF, &after);
        const auto size = std::filesystem::file_size(path);
        qInfo("%lld tokens, 2 probes [24,24]: %.1f s total, %.1f s in append(); file %.1f MB (raw %.1f MB); "
              "peak RSS %ld MB (before %ld MB)",
              static_cast<long long>(total), secs, appendSeconds, size / 1e6,
              total * (4 + 4 + 2 * 576 * 4) / 1e6, after.ru_maxrss / 1024, before.ru_maxrss / 1024);
        TraceReader r(path);
        QCOMPARE(r.tokens(), total);
        const int64_t begin = total * 7 / 10, end = std::min(total, begin + 2000);
        const auto a = std::chrono::steady_clock::now();
        const std::vector<float> window = r.probe("dt", begin, end);
        qInfo("reading a %lld-token window of /probes/dt at token %lld: %.1f ms",
              static_cast<long long>(end - begin), static_cast<long long>(begin),
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
        QCOMPARE(window.size(), size_t((end - begin) * 576));
        std::filesystem::remove(path);
    }

private:
    std::string file(const std::string& name) const
    {
        return m_dir.filePath(QString::fromStdString(name)).toStdString();
    }

    QTemporaryDir m_dir;
};

QTEST_GUILESS_MAIN(TestTraceFile)
#include "TestTraceFile.moc"
