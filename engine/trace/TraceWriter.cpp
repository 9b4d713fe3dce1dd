#include "Error.h"
#include "trace/ChunkCompressor.h"
#include "trace/Hdf5Util.h"
#include "trace/TraceCheck.h"
#include "trace/TraceFile.h"
#include "util/Time.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

namespace statescope {

using h5::Hid;

namespace {

namespace fs = std::filesystem;

// Chunks hold whole tokens and at most about this many bytes, so that a GUI window of a few thousand
// tokens decompresses little more than it shows; and at most as many tokens as the caller's pieces
// (TraceWriter's appendTokens), so that each append fills chunks exactly: the window's adaptive
// pieces are multiples of 64 tokens (Runner::run), the command line's 2048 by default. A chunk that
// one append fills is written once, compressed; one that an append leaves unfinished has to be
// rewritten, which under SWMR leaves dead space behind (planChunks), and the window's 64-token
// appends into chunks of up to 4096 tokens made traces 20-36 times their data. Bigger chunks where
// the pieces allow: HDF5 spends some 30 us on each chunk it writes, which bounded the writer at the
// 130m shape on the H200 with 64-token chunks (issue 15).
constexpr int64_t kTargetChunkBytes = 1 << 20;
constexpr hsize_t kPieceGranule = TraceWriter::kWindowAppendTokens; // the window's pieces are multiples of it
constexpr hsize_t kMaxChunkTokens = 4096;
constexpr uint32_t kSkipAllFilters = 0x3; // shuffle and deflate, the pipeline createDataset declares
constexpr size_t kTimeLength = 20;        // "2025-01-02T03:04:05Z"
// Compression's early abort, as ZFS does for LZ4: a dataset whose last kVerdictChunks compressed
// chunks saved less than kMinSaving of their bytes is written unfiltered, but for one chunk in
// kSampleEvery, compressed still, so that a change in the values is noticed. The probes of a
// random-weight Mamba-2 in 64-token chunks shrink by only 9-13 % (decays 0.907, state norms 0.868),
// and compressing them bounded the writer on the H200 at the 130m shape (issue 15): deflate ran at
// about 60 MB/s a core there, to save a tenth of the bytes.
constexpr double kMinSaving = 0.125;
// The codec (ChunkCompressor's Codec), chosen by measurement: the first whole chunk of a dataset
// and one in kCodecSampleEvery after it are coded both ways, and deflate serves the dataset's next
// chunks only if it saved at least kDeflateSaving of what literal coding took. Literal coding is
// about eight times faster, and on noisy probe values its streams are as small (a random-weight 130m
// Mamba-2's float16 probes: 0.845 against libdeflate's 0.837); on slow-moving values deflate's
// repeated strings win (the tiny-collapse KJV run's state norms: 0.21 against 0.64 of their raw
// bytes; its decays 0.73 against 0.79, which is still worth it). Until a dataset's first sample has
// been measured (the chunks that the same append planned with it), deflate: the smaller file where
// it is not known. While the writer is behind the engine (setCatchingUp), every chunk is coded as
// literals. Samples are fewer than the early abort's because deflate runs at about 60 MB/s a core on
// the GPU machine and the writer hands HDF5 its chunks in order: at the 130m shape one sampled chunk
// in 16 held each append of 8,192 tokens up by some 10 ms of the engine's 15 ms (issue 15).
constexpr double kDeflateSaving = 0.05;
constexpr int64_t kCodecSampleEvery = 64;
constexpr int kVerdictChunks = 8;
constexpr int64_t kSampleEvery = 16;

hsize_t chunkTokens(int64_t bytesPerToken, int64_t appendTokens)
{
    // The largest power of two that divides the pieces, if they are whole multiples of 64 tokens.
    hsize_t t = kPieceGranule;
    while (t < kMaxChunkTokens && appendTokens % static_cast<int64_t>(2 * t) == 0)
        t *= 2;
    while (t > 1 && static_cast<int64_t>(t) * bytesPerToken > kTargetChunkBytes)
        t /= 2;
    return t;
}

} // namespace

struct WriteDataset {
    Hid id;
    std::string name;           // full path in the file, for messages
    std::vector<hsize_t> shape; // per token
    int64_t valuesPerToken = 1;
    int64_t chunkTokens = 1;
    size_t elementBytes = 4;
    size_t tokenBytes = 4;
    size_t chunkBytes() const { return static_cast<size_t>(chunkTokens) * tokenBytes; }
    // What an unfinished chunk's compressed copies, dead ones included, may take before it is stored
    // unfiltered: a chunk then takes at most about 1.5 times its uncompressed size in the file.
    size_t deadBudget() const { return chunkBytes() / 2; }
    // One token of fill values: what an unfinished chunk holds past its last token, as HDF5 would.
    std::vector<unsigned char> fillToken;
    // The chunk being filled: whole chunks are compressed straight from the caller's memory, so
    // this is the only copy of probe data the writer keeps.
    std::vector<unsigned char> tail;
    // The unfinished chunk as it is in the file (storedBytes 0: not yet there), and the bytes of
    // its earlier compressed copies that SWMR left behind as dead space.
    size_t storedBytes = 0;
    bool storedUnfiltered = false;
    // A derived probe (ProbeDesc::derivedFrom): /derived/<name> holds its scale, written once; no
    // values are stored for it and id stays closed.
    bool derived = false;
    size_t deadBytes = 0;
    // The early abort (kMinSaving): the verdict, whole chunks planned (for the sample), and what the
    // compressed whole chunks since the last verdict took before and after.
    bool incompressible = false;
    // The codec (kCodecSampleEvery): deflate only where the last sampled chunk showed it saving at
    // least kDeflateSaving of what literal coding took.
    bool deflateWins = true;
    int64_t wholeChunks = 0;
    int sampleChunks = 0;
    size_t sampleRaw = 0, samplePacked = 0;
};

// One chunk to filter and write: chunk `index` of a dataset, chunkBytes() bytes at job.src.
struct ChunkTask {
    WriteDataset* dataset = nullptr;
    int64_t index = 0;
    bool fromTail = false;            // a chunk that this append or an earlier one left unfinished
    bool complete = true;             // the chunk holds all its tokens after this append
    bool unfiltered = false;          // stored as it is, every filter skipped (planChunks says why)
    std::vector<unsigned char> owned; // job.src points here when the chunk came from the tail buffer
    CompressJob job;
};

// An open file description lock on the trace being written (Linux OFD locks: held per open file, so
// neither HDF5's own opens and closes of the file nor a reader in the same process release it, and a
// second writer is refused even in the same process). Two runs given one --out used to both exit 0,
// the second having silently overwritten the first.
class OutputLock {
public:
    OutputLock() = default;
    OutputLock(const OutputLock&) = delete;
    OutputLock& operator=(const OutputLock&) = delete;
    ~OutputLock() { release(); }

    void acquire(const std::string& path)
    {
        m_fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK);
        if (m_fd < 0)
            throw Error(path, std::string("cannot create the trace file: ") + std::strerror(errno));
        struct flock lock {};
        lock.l_type = F_WRLCK;
        lock.l_whence = SEEK_SET;
        if (::fcntl(m_fd, F_OFD_SETLK, &lock) != 0) {
            const int err = errno;
            release();
            if (err == EAGAIN || err == EACCES)
                throw Error(path, "another run is writing this trace now (it holds the file): choose another "
                                  "output file, or wait for that run to end");
            // File systems without locks (some network mounts): write as before.
        }
    }
    void release()
    {
        if (m_fd >= 0)
            ::close(m_fd);
        m_fd = -1;
    }

private:
    int m_fd = -1;
};

class TraceWriterImpl {
public:
    std::string path;
    OutputLock lock;
    TraceHeader header;
    Hid file;
    WriteDataset ids, offsets, nll;
    std::vector<WriteDataset> probes;
    std::vector<ProbeEncoding> encodings; // of probes, by the header's precision
    int64_t tokens = 0;
    int64_t appendTokens = TraceWriter::kWindowAppendTokens; // the caller's pieces (the constructor's)
    TraceWriteTimings timings;
    std::vector<std::vector<uint16_t>> halves; // an append's encoded probes (encodeChunk)
    bool compress = false;
    bool catchingUp = false; // setCatchingUp
    bool finished = false;
    bool broken = false;

    [[noreturn]] void fail(const std::string& what)
    {
        broken = true;
        throw Error(path, what + ": " + h5::errorDetail());
    }
    [[noreturn]] void failAttribute(const char* name, const std::string& error)
    {
        broken = true;
        throw Error(path, std::string("cannot write attribute ") + name + ": " + error);
    }

    // Every string is fixed-length: a variable-length one lives in HDF5's global heap, whose reader
    // in libhdf5 1.10 (H5HG_read) copies an object of whatever size the file states, so a reader of
    // a colleague's trace would have to trust that size.
    void writeString(hid_t loc, const char* name, const std::string& value)
    {
        writeFixedString(loc, name, value);
    }
    void writeFixedString(hid_t loc, const char* name, const std::string& value)
    {
        std::string error;
        if (!h5::writeFixedStringAttribute(loc, name, value, &error))
            failAttribute(name, error);
    }
    void writeInt(hid_t loc, const char* name, hid_t fileType, int64_t value, bool create)
    {
        std::string error;
        if (!h5::writeIntAttribute(loc, name, fileType, value, create, &error))
            failAttribute(name, error);
    }
    void writeDouble(hid_t loc, const char* name, double value)
    {
        std::string error;
        if (!h5::writeDoubleAttribute(loc, name, value, &error))
            failAttribute(name, error);
    }
    void writeTime(hid_t loc, const char* name, const std::string& value, bool create)
    {
        std::string error;
        if (!h5::writeFixedStringAttribute(loc, name, kTimeLength, value, create, &error))
            failAttribute(name, error);
    }

    void validateHeader() const;
    void create();
    void writeHeader(hid_t root);
    // 2 while every probe is float32 (readers of schema 2 read it), 3 with halves, 4 when a probe is
    // derived: a reader of 3 would not know that /derived holds one, and miss it.
    int schemaVersion() const
    {
        for (const ProbeDesc& p : header.probes)
            if (!p.derivedFrom.empty())
                return 4;
        return header.probePrecision == ProbePrecision::Float32 ? 2 : 3;
    }
    void createDerived(hid_t root, const ProbeDesc& p, size_t position);
    WriteDataset createDataset(hid_t loc, const std::string& group, const std::string& name, hid_t type,
                               const std::vector<int64_t>& shape, const void* fill);
    void planChunks(WriteDataset& d, const void* data, int64_t count, std::vector<ChunkTask>* tasks);
    // ready(i) before order[i] is written (it waits for its compression), done(i) after.
    void writeChunks(const std::vector<ChunkTask*>& order, int64_t newTokens,
                     const std::function<void(size_t)>& ready = {},
                     const std::function<void(size_t)>& done = {});
    void closeAll();
    void close();
};

void TraceWriterImpl::validateHeader() const
{
    std::set<std::string> names;
    for (const ProbeDesc& p : header.probes) {
        const std::string what = "probe \"" + p.name + "\"";
        if (p.name.empty() || p.name == "." || p.name == ".." || p.name.find('/') != std::string::npos)
            throw Error(path, what, "a name without '/'", "\"" + p.name + "\"");
        if (!names.insert(p.name).second)
            throw Error(path, what + " appears twice in the header");
        if (p.shape.size() + 1 > H5S_MAX_RANK)
            throw Error(path, what + " shape", "at most " + std::to_string(H5S_MAX_RANK - 1) + " dimensions",
                        shapeToString(p.shape));
        // valuesPerToken() and the byte counts of a chunk must not overflow.
        int64_t n = 1;
        for (int64_t d : p.shape)
            if (d < 1 || h5::mulOverflows(n, d, &n) || n > std::numeric_limits<int32_t>::max())
                throw Error(path, what + " shape", "positive dimensions, at most 2^31 values per token",
                            shapeToString(p.shape));
        if (p.axes.size() != p.shape.size())
            throw Error(path, what + " axes", std::to_string(p.shape.size()) + " names (one per dimension)",
                        std::to_string(p.axes.size()));
        for (const std::string& a : p.axes)
            if (a.find(',') != std::string::npos)
                throw Error(path, what + " axis name", "no commas", "\"" + a + "\"");
        if (p.derivedFrom.empty())
            continue;
        const auto from = std::find_if(header.probes.begin(), header.probes.end(),
                                       [&](const ProbeDesc& q) { return q.name == p.derivedFrom; });
        if (from == header.probes.end() || !from->derivedFrom.empty() || from->shape != p.shape)
            throw Error(path, what + " derived from", "a stored probe of the same shape",
                        "\"" + p.derivedFrom + "\"");
        if (static_cast<int64_t>(p.derivedScale.size()) != n)
            throw Error(path, what + " scale", std::to_string(n) + " values",
                        std::to_string(p.derivedScale.size()));
        for (float s : p.derivedScale)
            if (!std::isfinite(s))
                throw Error(path, what + " scale", "finite values", std::to_string(s));
    }
    // 0 means unknown for every count; a negative one is a caller's mistake, not a value to record.
    const std::pair<const char*, int64_t> counts[] = {{"layers", header.layers},
                                                      {"units", header.units},
                                                      {"state_size", header.stateSize},
                                                      {"training_length", header.trainingLength},
                                                      {"vocab_size", header.vocabSize}};
    for (const auto& [name, value] : counts)
        if (value < 0)
            throw Error(path, std::string("header ") + name, "a count >= 0 (0: unknown)",
                        std::to_string(value));
    if (!header.runSettings.empty()) {
        const nlohmann::json settings = nlohmann::json::parse(header.runSettings, nullptr, false);
        if (!settings.is_object())
            throw Error(path, "header run_settings", "a JSON object or nothing",
                        "\"" + header.runSettings.substr(0, 60) + "\"");
    }
}

WriteDataset TraceWriterImpl::createDataset(hid_t loc, const std::string& group, const std::string& name,
                                            hid_t type, const std::vector<int64_t>& shape, const void* fill)
{
    WriteDataset d;
    d.name = group + "/" + name;
    d.shape.assign(shape.begin(), shape.end());
    for (int64_t s : shape)
        d.valuesPerToken *= s;
    d.elementBytes = H5Tget_size(type);
    d.tokenBytes = static_cast<size_t>(d.valuesPerToken) * d.elementBytes;
    d.chunkTokens = static_cast<int64_t>(chunkTokens(static_cast<int64_t>(d.tokenBytes), appendTokens));
    d.fillToken.resize(d.tokenBytes);
    for (size_t i = 0; i < d.tokenBytes; i += d.elementBytes)
        std::memcpy(d.fillToken.data() + i, fill, d.elementBytes);
    const int rank = static_cast<int>(shape.size()) + 1;
    std::vector<hsize_t> dims(rank, 0), maxDims(rank), chunk(rank);
    maxDims[0] = H5S_UNLIMITED;
    chunk[0] = static_cast<hsize_t>(d.chunkTokens);
    for (int i = 1; i < rank; ++i)
        dims[i] = maxDims[i] = chunk[i] = d.shape[i - 1];

    Hid space(H5Screate_simple(rank, dims.data(), maxDims.data()));
    Hid dcpl(H5Pcreate(H5P_DATASET_CREATE));
    if (!space.valid() || !dcpl.valid() || H5Pset_chunk(dcpl.get(), rank, chunk.data()) < 0 ||
        H5Pset_fill_value(dcpl.get(), type, fill) < 0)
        fail("cannot create " + d.name);
    // The writer filters chunks itself (ChunkCompressor); this pipeline tells readers how to undo it.
    if (compress && (H5Pset_shuffle(dcpl.get()) < 0 || H5Pset_deflate(dcpl.get(), kDeflateLevel) < 0))
        fail("cannot create " + d.name);
    d.id = Hid(H5Dcreate2(loc, name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
    if (!d.id.valid())
        fail("cannot create " + d.name);
    return d;
}

// The root attributes (docs/trace-format.md lists them). Schema 1's strings stay variable-length,
// as readers of schema 1 know them; schema 2's are fixed-length, which a reader takes without a
// trip through the global heap (libhdf5 1.10 crashes on crafted variable-length strings there).
void TraceWriterImpl::writeHeader(hid_t f)
{
    const TraceHeader& h = header;
    writeInt(f, "schema_version", H5T_STD_I32LE, schemaVersion(), true);
    writeString(f, "architecture", h.architecture);
    writeString(f, "model_config", h.modelConfigJson);
    writeString(f, "model_path", h.modelPath);
    writeString(f, "dtype", h.dtype);
    writeString(f, "device", h.device);
    writeString(f, "input", h.input);
    writeString(f, "start_time", h.startTime);
    writeString(f, "software_version", h.softwareVersion);

    writeFixedString(f, "architecture_name", h.architectureName);
    writeFixedString(f, "input_kind", h.inputSource.kind);
    writeFixedString(f, "input_path", h.inputSource.path);
    writeFixedString(f, "input_prompt", h.inputSource.prompt);
    writeFixedString(f, "tokenizer", h.inputSource.tokenizer);
    writeFixedString(f, "tokenizer_path", h.inputSource.tokenizerPath);
    writeInt(f, "layers", H5T_STD_I64LE, h.layers, true);
    writeInt(f, "units", H5T_STD_I64LE, h.units, true);
    writeFixedString(f, "unit_name", h.unitName);
    writeInt(f, "state_size", H5T_STD_I64LE, h.stateSize, true);
    writeFixedString(f, "state_size_definition", h.stateSizeDefinition);
    // Always present, NaN for "none": every schema-2 attribute exists in every schema-2 trace, and
    // SWMR could not add it later anyway.
    writeDouble(f, "forget_threshold",
                h.forgetThreshold >= 0 ? h.forgetThreshold : std::numeric_limits<double>::quiet_NaN());
    writeInt(f, "training_length", H5T_STD_I64LE, h.trainingLength, true);
    writeInt(f, "vocab_size", H5T_STD_I64LE, h.vocabSize, true);
    writeFixedString(f, "run_settings", h.runSettings);
    writeFixedString(f, "passkey", h.inputSource.passkey);
    writeInt(f, "needle_first", H5T_STD_I64LE, h.inputSource.needleFirst, true);
    writeInt(f, "needle_last", H5T_STD_I64LE, h.inputSource.needleLast, true);

    // What changes as the run goes: fixed-size values, rewritten in place under SWMR.
    writeInt(f, "completed", H5T_STD_I32LE, 0, true);
    writeInt(f, "tokens", H5T_STD_I64LE, 0, true);
    writeTime(f, "end_time", "", true);
}

void TraceWriterImpl::create()
{
    // Without zlib in this HDF5 (readers built on it could not inflate) chunks are stored as they are.
    compress = H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0;
    // The latest format is what SWMR needs; the file then needs HDF5 >= 1.10 to read.
    Hid fapl(H5Pcreate(H5P_FILE_ACCESS));
    if (!fapl.valid() || H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0)
        fail("cannot set up HDF5");
    file = Hid(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
    if (!file.valid())
        fail("cannot create the trace file");
    // HDF5 opened the file with O_TRUNC. On ext4 a truncation to size 0 marks the file so that the
    // next close of any descriptor of it starts the writeback of all its dirty pages and allocates
    // their blocks (auto_da_alloc, for programs that replace a file by truncating it), and that close
    // waits: finish() took 0.45 s for a 1.1 GB trace on the GPU machine, 5.4 s for an 18 GB one
    // (issue 15). Opening and closing the file once more now, while it holds nothing, spends the mark.
    // The data reach the disk as any other file's do, by the kernel's writeback.
    const int spent = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (spent >= 0)
        ::close(spent);
    const hid_t f = file.get();

    // SWMR forbids adding attributes later, so all are made now.
    writeHeader(f);

    Hid tokensGroup(H5Gcreate2(f, "tokens", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    // Creation order is kept so that readers list the probes in the order the model reports them.
    Hid gcpl(H5Pcreate(H5P_GROUP_CREATE));
    if (!gcpl.valid() ||
        H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0)
        fail("cannot create /probes");
    Hid probesGroup(H5Gcreate2(f, "probes", H5P_DEFAULT, gcpl.get(), H5P_DEFAULT));
    if (!tokensGroup.valid() || !probesGroup.valid())
        fail("cannot create the trace's groups");

    // Chunks bypass HDF5's type conversion (H5Dwrite_chunk), so the file types are the native ones:
    // little-endian int32/int64/float32 on every machine StateScope runs on.
    // Fill values mark what a killed writer extended but never wrote: -1 ids, NaN floats.
    const int32_t fillId = -1;
    const int64_t fillOffset = -1;
    const float fillFloat = std::numeric_limits<float>::quiet_NaN();
    ids = createDataset(tokensGroup.get(), "/tokens", "ids", H5T_NATIVE_INT32, {}, &fillId);
    if (header.hasOffsets)
        offsets = createDataset(tokensGroup.get(), "/tokens", "offsets", H5T_NATIVE_INT64, {2}, &fillOffset);
    nll = createDataset(f, "", "nll", H5T_NATIVE_FLOAT, {}, &fillFloat);
    // Halves: IEEE binary16, little-endian, as h5py and numpy know it (float16).
    Hid half(H5Tcopy(H5T_IEEE_F32LE));
    if (!half.valid() || H5Tset_fields(half.get(), 15, 10, 5, 0, 10) < 0 || H5Tset_size(half.get(), 2) < 0 ||
        H5Tset_ebias(half.get(), 15) < 0)
        fail("cannot make the half-precision type");
    const uint16_t fillHalf = 0x7e00; // NaN
    for (size_t i = 0; i < header.probes.size(); ++i) {
        const ProbeDesc& p = header.probes[i];
        if (!p.derivedFrom.empty()) {
            createDerived(f, p, i);
            continue;
        }
        const ProbeEncoding encoding = probeEncodingFor(p, header.probePrecision);
        encodings.push_back(encoding);
        const bool halves = encoding != ProbeEncoding::Float32;
        probes.push_back(createDataset(probesGroup.get(), "/probes", p.name,
                                       halves ? half.get() : H5T_NATIVE_FLOAT, p.shape,
                                       halves ? static_cast<const void*>(&fillHalf) : &fillFloat));
        std::string axes = "token";
        for (const std::string& a : p.axes)
            axes += "," + a;
        const hid_t ds = probes.back().id.get();
        writeString(ds, "description", p.description);
        writeString(ds, "axes", axes);
        writeString(ds, "head_meaning", p.headMeaning);
        writeFixedString(ds, "unit", p.unit);
        writeFixedString(ds, "summary", probeSummaryName(p.summary));
        writeFixedString(ds, "label", p.label);
        if (schemaVersion() >= 3)
            writeFixedString(ds, "encoding", probeEncodingName(encoding));
    }
    tokensGroup.close();
    probesGroup.close();

    if (H5Fflush(f, H5F_SCOPE_LOCAL) < 0 || H5Fstart_swmr_write(f) < 0)
        fail("cannot start SWMR writing");
}

// /derived/<name>: the probe's scale, shaped like one token of it, with the attributes a stored probe
// has plus `from` (the probe it is computed from), `rule` and `position` (its index among the
// probes, which the reader keeps). Written whole now: SWMR allows no new objects later.
void TraceWriterImpl::createDerived(hid_t root, const ProbeDesc& p, size_t position)
{
    const std::string name = "/derived/" + p.name;
    if (H5Lexists(root, "derived", H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        Hid group(H5Gcreate2(root, "derived", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        if (!group.valid())
            fail("cannot create /derived");
    }
    std::vector<hsize_t> dims(p.shape.begin(), p.shape.end());
    Hid space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
    if (!space.valid())
        fail("cannot create " + name);
    Hid ds(
        H5Dcreate2(root, name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (!ds.valid() ||
        H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.derivedScale.data()) < 0)
        fail("cannot write " + name);
    std::string axes = "token";
    for (const std::string& a : p.axes)
        axes += "," + a;
    writeString(ds.get(), "description", p.description);
    writeString(ds.get(), "axes", axes);
    writeString(ds.get(), "head_meaning", p.headMeaning);
    writeFixedString(ds.get(), "unit", p.unit);
    writeFixedString(ds.get(), "summary", probeSummaryName(p.summary));
    writeFixedString(ds.get(), "label", p.label);
    writeFixedString(ds.get(), "from", p.derivedFrom);
    writeFixedString(ds.get(), "rule", kDerivedRule);
    writeInt(ds.get(), "position", H5T_STD_I64LE, static_cast<int64_t>(position), true);
    WriteDataset d;
    d.name = name;
    d.shape = dims;
    d.valuesPerToken = p.valuesPerToken();
    d.derived = true;
    probes.push_back(std::move(d));
    encodings.push_back(ProbeEncoding::Float32); // nothing to encode
}

// Splits count tokens of d starting at `tokens` into chunk tasks. Whole chunks point into data and
// are compressed once. A chunk that the append starts or ends inside goes through d.tail, which
// keeps the tokens of an unfinished chunk for the next append, and is written whole each time.
// Under SWMR, HDF5 never frees the old copy of a chunk rewritten at another size (a reader may
// still hold an index that points to it), so each compressed rewrite leaves the previous copy as
// dead space. writeChunks therefore rewrites it compressed only while its copies stay within
// deadBudget(); past that it stores the chunk unfiltered, at chunkBytes() every time, which HDF5
// rewrites in place, and keeps it so once complete (compressing it then would leave the unfiltered
// copy behind). A reader that reads an unfiltered chunk while it is rewritten gets the same bytes
// for every token it knows of. Appends of whole 64-token pieces never get here.
void TraceWriterImpl::planChunks(WriteDataset& d, const void* data, int64_t count,
                                 std::vector<ChunkTask>* tasks)
{
    const auto* p = static_cast<const unsigned char*>(data);
    int64_t t = tokens;
    int64_t left = count;
    while (left > 0) {
        const int64_t index = t / d.chunkTokens;
        const int64_t inChunk = t - index * d.chunkTokens;
        const int64_t k = std::min(left, d.chunkTokens - inChunk);
        const size_t bytes = static_cast<size_t>(k) * d.tokenBytes;
        ChunkTask task;
        task.dataset = &d;
        task.index = index;
        task.job.bytes = d.chunkBytes();
        task.job.elementBytes = d.elementBytes;
        if (inChunk == 0 && k == d.chunkTokens) {
            task.job.src = p;
            task.unfiltered = d.incompressible && d.wholeChunks % kSampleEvery != 0;
            task.job.codec = d.wholeChunks % kCodecSampleEvery == 0 ? Codec::Both
                             : d.deflateWins                        ? Codec::Deflate
                                                                    : Codec::Literals;
            if (compress && catchingUp && !task.unfiltered) {
                task.job.codec = Codec::Literals;
                ++timings.chunksBehind;
            }
            ++d.wholeChunks;
        } else {
            task.fromTail = true;
            task.complete = inChunk + k == d.chunkTokens;
            task.unfiltered = !compress || d.storedUnfiltered;
            task.job.codec = d.deflateWins ? Codec::Deflate : Codec::Literals;
            if (inChunk == 0 || d.tail.size() != d.chunkBytes()) {
                d.tail.resize(d.chunkBytes());
                for (size_t i = 0; i < d.tail.size(); i += d.tokenBytes)
                    std::memcpy(d.tail.data() + i, d.fillToken.data(), d.tokenBytes);
            }
            std::memcpy(d.tail.data() + static_cast<size_t>(inChunk) * d.tokenBytes, p, bytes);
            if (inChunk + k == d.chunkTokens) {
                task.owned = std::move(d.tail); // complete: the tail starts afresh
                d.tail.clear();
                task.job.src = task.owned.data();
            } else {
                task.job.src = d.tail.data(); // the dataset's last task in this append: tail stays as is
            }
        }
        tasks->push_back(std::move(task));
        t += k;
        p += bytes;
        left -= k;
    }
}

void TraceWriterImpl::writeChunks(const std::vector<ChunkTask*>& order, int64_t newTokens,
                                  const std::function<void(size_t)>& ready,
                                  const std::function<void(size_t)>& done)
{
    for (size_t i = 0; i < order.size(); ++i) {
        if (ready)
            ready(i);
        ChunkTask& task = *order[i];
        WriteDataset& d = *task.dataset;
        const int rank = static_cast<int>(d.shape.size()) + 1;
        const bool first = i == 0 || order[i - 1]->dataset != &d;
        const bool last = i + 1 == order.size() || order[i + 1]->dataset != &d;
        if (first) {
            std::vector<hsize_t> extent(rank);
            extent[0] = static_cast<hsize_t>(newTokens);
            for (int k = 1; k < rank; ++k)
                extent[k] = d.shape[k - 1];
            if (H5Dset_extent(d.id.get(), extent.data()) < 0)
                fail("cannot extend " + d.name);
        }
        std::vector<hsize_t> offset(rank, 0);
        offset[0] = static_cast<hsize_t>(task.index * d.chunkTokens);
        if (task.fromTail && !task.unfiltered) {
            const size_t packed = task.job.out.size();
            if (!task.complete && d.deadBytes + d.storedBytes + packed > d.deadBudget())
                task.unfiltered = true;
            else if (packed == d.storedBytes)
                // A copy of the same size would overwrite the old one in place, under a reader that
                // may be reading it. zlib ignores bytes after the end of its stream.
                task.job.out.push_back(0);
        }
        const bool filtered = compress && !task.unfiltered;
        const void* bytes = filtered ? static_cast<const void*>(task.job.out.data()) : task.job.src;
        const size_t size = filtered ? task.job.out.size() : d.chunkBytes();
        // Bit i of the mask skips filter i of the dataset's pipeline (shuffle, deflate) for this
        // chunk; HDF5 keeps the mask in the chunk index, so every reader knows to skip them.
        const uint32_t mask = compress && task.unfiltered ? kSkipAllFilters : 0;
        if (H5Dwrite_chunk(d.id.get(), H5P_DEFAULT, mask, offset.data(), size, bytes) < 0 ||
            (last && H5Dflush(d.id.get()) < 0))
            fail("cannot write tokens [" + std::to_string(tokens) + ", " + std::to_string(newTokens) +
                 ") to " + d.name);
        ++timings.chunks;
        if (!filtered)
            ++timings.chunksUnfiltered;
        else if (task.job.literals)
            ++timings.chunksLiterals;
        if (filtered && task.job.codec == Codec::Both)
            d.deflateWins = static_cast<double>(task.job.deflateBytes) <
                            (1.0 - kDeflateSaving) * static_cast<double>(task.job.literalBytes);
        if (filtered && !task.fromTail) {
            d.sampleRaw += d.chunkBytes();
            d.samplePacked += size;
            if (++d.sampleChunks == kVerdictChunks) {
                d.incompressible = static_cast<double>(d.samplePacked) >
                                   (1.0 - kMinSaving) * static_cast<double>(d.sampleRaw);
                d.sampleChunks = 0;
                d.sampleRaw = d.samplePacked = 0;
            }
        }
        if (task.complete) {
            d.storedBytes = d.deadBytes = 0;
            d.storedUnfiltered = false;
        } else if (!d.storedUnfiltered) {
            d.deadBytes += d.storedBytes;
            d.storedBytes = size;
            d.storedUnfiltered = task.unfiltered;
        }
        task.job.out = std::vector<unsigned char>();
        task.owned = std::vector<unsigned char>();
        if (done)
            done(i);
    }
}

void TraceWriterImpl::closeAll()
{
    for (WriteDataset& p : probes)
        p.id.close();
    ids.id.close();
    offsets.id.close();
    nll.id.close();
}

void TraceWriterImpl::close()
{
    closeAll();
    if (!file.close())
        fail("cannot close the trace");
    trustTrace(path); // the file as this process left it: the window reads it back unchecked
}

TraceWriter::TraceWriter(const std::string& path, const TraceHeader& header, int64_t appendTokens)
    : m_impl(std::make_unique<TraceWriterImpl>())
{
    h5::quiet();
    TraceWriterImpl& w = *m_impl;
    w.path = path;
    if (appendTokens < 1)
        throw Error(path, "tokens an append", "a count >= 1", std::to_string(appendTokens));
    w.appendTokens = appendTokens;
    w.header = header;
    w.header.probePrecision = resolveProbePrecision(header.probePrecision, header.probes);
    w.validateHeader();

    // HDF5's own message for an unwritable path is a long error stack; ask the OS first for a short one.
    std::error_code ec;
    // A link is not followed: writing through it would truncate whatever file it points at (another
    // run's trace, a model's weights).
    if (fs::is_symlink(fs::symlink_status(path, ec)))
        throw Error(path, "cannot create the trace file: it is a symbolic link (to " +
                              fs::read_symlink(path, ec).string() +
                              "); give the path of a real file or folder to write to");
    if (fs::is_directory(path, ec))
        throw Error(path, "cannot create the trace file: it is a folder");
    const bool existed = fs::exists(path, ec);
    errno = 0;
    if (std::FILE* probe = std::fopen(path.c_str(), "ab")) {
        std::fclose(probe);
    } else {
        const int err = errno;
        const fs::path parent = fs::path(path).parent_path();
        if (err == ENOENT && !parent.empty() && !fs::is_directory(parent, ec))
            throw Error(path, "cannot create the trace file: folder " + parent.string() + " does not exist");
        throw Error(path, std::string("cannot create the trace file: ") + std::strerror(err ? err : EIO));
    }
    // Before HDF5 truncates it: a file another run is writing stays that run's.
    w.lock.acquire(path);
    try {
        w.create();
    } catch (...) {
        w.closeAll();
        w.file.close();
        H5Eclear2(H5E_DEFAULT);
        if (!existed)
            fs::remove(path, ec);
        throw;
    }
}

TraceWriter::~TraceWriter()
{
    if (!m_impl || m_impl->finished)
        return;
    try {
        h5::quiet();
        // tokens is already up to date: a cancelled run is a killed one that closed its file.
        m_impl->closeAll();
        m_impl->file.close();
        H5Eclear2(H5E_DEFAULT);
        trustTrace(m_impl->path);
    } catch (...) {
    }
}

void TraceWriter::checkChunk(const ChunkProbes& chunk) const
{
    const TraceWriterImpl& w = *m_impl;
    const int64_t n = chunk.count();
    if (static_cast<int64_t>(chunk.nll.size()) != n)
        throw Error(w.path, "chunk nll", std::to_string(n) + " values", std::to_string(chunk.nll.size()));
    const int64_t wantOffsets = w.header.hasOffsets ? 2 * n : 0;
    if (static_cast<int64_t>(chunk.offsets.size()) != wantOffsets)
        throw Error(w.path, "chunk offsets", std::to_string(wantOffsets) + " values",
                    std::to_string(chunk.offsets.size()));
    if (chunk.values.size() != w.probes.size())
        throw Error(w.path, "chunk probes", std::to_string(w.probes.size()) + " probes",
                    std::to_string(chunk.values.size()));
    if (!chunk.inPlace.empty() && chunk.inPlace.size() != w.probes.size())
        throw Error(w.path, "chunk probes in place", "none or " + std::to_string(w.probes.size()),
                    std::to_string(chunk.inPlace.size()));
    if (!chunk.encoded.empty() && chunk.encoded.size() != w.probes.size())
        throw Error(w.path, "chunk encoded probes", "none or " + std::to_string(w.probes.size()),
                    std::to_string(chunk.encoded.size()));
    for (size_t i = 0; i < w.probes.size(); ++i) {
        int64_t want = 0;
        const std::string what = "chunk probe \"" + w.header.probes[i].name + "\"";
        const bool encoded = chunk.isEncoded(i);
        // A derived probe's values are not stored: the engine may send them (the window draws them)
        // or not.
        const ChunkProbes::Floats floats = chunk.probeValues(i);
        if (w.probes[i].derived && floats.size == 0 && !encoded)
            continue;
        if (encoded && (w.probes[i].derived || w.encodings[i] == ProbeEncoding::Float32))
            throw Error(w.path, what, probeEncodingName(w.encodings[i]) + std::string(" values"),
                        "values already encoded as halves");
        if (encoded && floats.size != 0)
            throw Error(w.path, what, "values or encoded halves", "both");
        const size_t have = encoded ? chunk.encoded[i].size : floats.size;
        if (h5::mulOverflows(n, w.probes[i].valuesPerToken, &want) || static_cast<int64_t>(have) != want)
            throw Error(w.path, what,
                        std::to_string(n) + " tokens x " + std::to_string(w.probes[i].valuesPerToken) +
                            " values",
                        std::to_string(have) + " values");
    }
}

namespace {

// The half-precision encodings of a chunk's probes, on as many threads as the compressor uses: one
// thread encoded the 130m shape's probes at 21 K tokens/s on the GPU machine, slower than the
// float32 trace it was meant to shrink (issue 15).
void encodeChunk(const ChunkProbes& chunk, const std::vector<ProbeEncoding>& encodings,
                 std::vector<std::vector<uint16_t>>* halves)
{
    struct Slice {
        size_t probe, begin, end;
    };
    std::vector<Slice> slices;
    constexpr size_t kSlice = size_t(1) << 18; // values a task
    for (size_t i = 0; i < encodings.size(); ++i) {
        if (encodings[i] == ProbeEncoding::Float32 || chunk.isEncoded(i))
            continue;
        const size_t count = chunk.probeValues(i).size;
        (*halves)[i].resize(count);
        for (size_t b = 0; b < count; b += kSlice)
            slices.push_back({i, b, std::min(count, b + kSlice)});
    }
    std::atomic<size_t> next{0};
    auto work = [&] {
        for (size_t k; (k = next.fetch_add(1)) < slices.size();) {
            const Slice& s = slices[k];
            encodeHalves(chunk.probeValues(s.probe).data + s.begin, s.end - s.begin, encodings[s.probe],
                         (*halves)[s.probe].data() + s.begin);
        }
    };
    std::vector<std::thread> helpers;
    const size_t n = std::min(ChunkCompressor::threads(), slices.size());
    try {
        for (size_t t = 1; t < n; ++t)
            helpers.emplace_back(work);
    } catch (const std::system_error&) {
        // No more threads: those started and this one finish the work.
    }
    work();
    for (auto& t : helpers)
        t.join();
}

} // namespace

void TraceWriter::append(const ChunkProbes& chunk)
{
    h5::quiet();
    TraceWriterImpl& w = *m_impl;
    if (w.finished)
        throw Error(w.path, "cannot append: the trace was already finished");
    if (w.broken)
        throw Error(w.path, "cannot append: an earlier write to the trace failed");
    if (chunk.start != w.tokens)
        throw Error(w.path, "chunk start", std::to_string(w.tokens) + " (tokens written so far)",
                    std::to_string(chunk.start));
    checkChunk(chunk);
    const int64_t n = chunk.count();
    if (n > std::numeric_limits<int64_t>::max() - w.tokens)
        throw Error(w.path, "chunk of " + std::to_string(n) + " tokens overflows the token count");
    if (n == 0)
        return;

    // /tokens/ids goes last: a reader takes the shortest dataset as the length, so a kill in the
    // middle of an append never exposes a token whose probes are not on disk yet.
    using Clock = std::chrono::steady_clock;
    const auto started = Clock::now();
    std::vector<ChunkTask> tasks;
    // Kept from one append to the next: fresh memory is written at the speed of its page faults.
    std::vector<std::vector<uint16_t>>& halves = w.halves;
    halves.resize(w.probes.size());
    encodeChunk(chunk, w.encodings, &halves);
    const auto encoded = Clock::now();
    w.timings.encode += std::chrono::duration<double>(encoded - started).count();
    double compressWait = 0;
    for (size_t i = 0; i < w.probes.size(); ++i) {
        if (w.probes[i].derived)
            continue;
        const void* data = chunk.probeValues(i).data;
        if (chunk.isEncoded(i))
            data = chunk.encoded[i].data;
        else if (w.encodings[i] != ProbeEncoding::Float32)
            data = halves[i].data();
        w.planChunks(w.probes[i], data, n, &tasks);
    }
    if (w.header.hasOffsets)
        w.planChunks(w.offsets, chunk.offsets.data(), n, &tasks);
    w.planChunks(w.nll, chunk.nll.data(), n, &tasks);
    w.planChunks(w.ids, chunk.ids.data(), n, &tasks);

    // The other cores compress while this thread hands HDF5 what is ready, in order; they run at
    // most a few chunks a core ahead, so memory stays bounded whatever the append.
    constexpr size_t kNone = std::numeric_limits<size_t>::max();
    std::vector<CompressJob*> jobs;
    std::vector<size_t> jobOf(tasks.size(), kNone);
    for (size_t i = 0; w.compress && i < tasks.size(); ++i)
        if (!tasks[i].unfiltered) {
            jobOf[i] = jobs.size();
            jobs.push_back(&tasks[i].job);
        }
    std::unique_ptr<CompressPipeline> pipeline; // after tasks: gone (its threads joined) before them
    if (!jobs.empty())
        pipeline = std::make_unique<CompressPipeline>(jobs, 4 * ChunkCompressor::threads());
    std::vector<ChunkTask*> order;
    for (ChunkTask& task : tasks)
        order.push_back(&task);
    w.writeChunks(
        order, w.tokens + n,
        [&](size_t i) {
            const auto waiting = Clock::now();
            const bool ok = jobOf[i] == kNone || pipeline->wait(jobOf[i]);
            compressWait += std::chrono::duration<double>(Clock::now() - waiting).count();
            if (!ok) {
                w.broken = true;
                throw Error(w.path,
                            "cannot compress tokens from " + std::to_string(w.tokens) + ": out of memory");
            }
        },
        [&](size_t i) {
            if (jobOf[i] != kNone)
                pipeline->release(jobOf[i]);
        });
    // tokens follows the data it counts, so it never claims more than is on disk.
    w.writeInt(w.file.get(), "tokens", H5T_STD_I64LE, w.tokens + n, false);
    if (H5Fflush(w.file.get(), H5F_SCOPE_LOCAL) < 0)
        w.fail("cannot flush the trace");
    w.tokens += n;
    w.timings.compressWait += compressWait;
    w.timings.write += std::chrono::duration<double>(Clock::now() - encoded).count() - compressWait;
}

void TraceWriter::finish()
{
    h5::quiet();
    TraceWriterImpl& w = *m_impl;
    if (w.finished)
        return;
    if (w.broken)
        throw Error(w.path, "cannot mark the trace complete: an earlier write failed");
    // Still under SWMR: reopening without it would need an exclusive lock, which any SWMR reader
    // (a GUI or h5py watching the run) holds off. completed goes last, after everything it vouches for.
    const hid_t f = w.file.get();
    w.writeInt(f, "tokens", H5T_STD_I64LE, w.tokens, false);
    w.writeTime(f, "end_time", isoTimeUtcNow(), false);
    w.writeInt(f, "completed", H5T_STD_I32LE, 1, false);
    w.close();
    w.lock.release();
    w.finished = true;
}

void TraceWriter::setCatchingUp(bool on)
{
    m_impl->catchingUp = on;
}

int64_t TraceWriter::tokens() const
{
    return m_impl->tokens;
}

const std::string& TraceWriter::path() const
{
    return m_impl->path;
}

TraceWriteTimings TraceWriter::timings() const
{
    return m_impl->timings;
}

} // namespace statescope
