#include "trace/TraceFile.h"

#include "Error.h"

#include <hdf5.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <system_error>
#include <thread>

namespace statescope {

namespace {

namespace fs = std::filesystem;

// Chunks hold whole tokens and at most about this many bytes: a GUI window of a few thousand tokens
// then decompresses little more than it shows, and a partly filled chunk that every append
// rewrites stays cheap to recompress. Powers of two so that the runner's power-of-two pieces fill
// chunks exactly and no chunk is written twice.
constexpr int64_t kTargetChunkBytes = 1 << 20;
constexpr hsize_t kMaxChunkTokens = 4096;
// Level 1: on probe-like floats (after shuffle) levels 4-6 save only 1-3 % more and run slower.
constexpr unsigned kDeflateLevel = 1;
constexpr size_t kChunkCacheSlots = 521; // prime, as HDF5 advises
constexpr size_t kReaderChunkCacheBytes = 8 << 20;
constexpr hsize_t kMaxProbes = 4096;
constexpr size_t kMaxFixedStringBytes = 64 << 20;
constexpr size_t kTimeLength = 20; // "2025-01-02T03:04:05Z"

// HDF5 prints its error stack to stderr unless told not to, and the setting is per thread in a
// thread-safe build, so every entry point calls this.
void quietHdf5()
{
    thread_local bool quiet = false;
    if (!quiet) {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        quiet = true;
    }
}

herr_t collectError(unsigned, const H5E_error2_t* err, void* data)
{
    if (err && err->desc && *err->desc)
        static_cast<std::vector<std::string>*>(data)->push_back(err->desc);
    return 0;
}

// The outermost and innermost messages of HDF5's error stack: "unable to open file (file signature
// not found)". Clears the stack.
std::string hdf5Detail()
{
    std::vector<std::string> descs;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collectError, &descs);
    H5Eclear2(H5E_DEFAULT);
    if (descs.empty())
        return "HDF5 error";
    std::string s = descs.front();
    if (descs.size() > 1 && descs.back() != descs.front())
        s += " (" + descs.back() + ")";
    std::replace(s.begin(), s.end(), '\n', ' ');
    return s;
}

// Owns one HDF5 identifier of any kind.
class Hid {
public:
    Hid() = default;
    explicit Hid(hid_t id) : m_id(id) {}
    ~Hid() { close(); }
    Hid(Hid&& o) noexcept : m_id(o.m_id) { o.m_id = H5I_INVALID_HID; }
    Hid& operator=(Hid&& o) noexcept
    {
        if (this != &o) {
            close();
            m_id = o.m_id;
            o.m_id = H5I_INVALID_HID;
        }
        return *this;
    }
    Hid(const Hid&) = delete;
    Hid& operator=(const Hid&) = delete;

    hid_t get() const { return m_id; }
    bool valid() const { return m_id >= 0; }
    // Returns false if HDF5 reported an error (for a file: the last flush failed).
    bool close()
    {
        if (m_id < 0)
            return true;
        herr_t r = 0;
        switch (H5Iget_type(m_id)) {
        case H5I_FILE:
            r = H5Fclose(m_id);
            break;
        case H5I_GROUP:
            r = H5Gclose(m_id);
            break;
        case H5I_DATASET:
            r = H5Dclose(m_id);
            break;
        case H5I_ATTR:
            r = H5Aclose(m_id);
            break;
        case H5I_DATASPACE:
            r = H5Sclose(m_id);
            break;
        case H5I_DATATYPE:
            r = H5Tclose(m_id);
            break;
        case H5I_GENPROP_LST:
            r = H5Pclose(m_id);
            break;
        default:
            r = H5Idec_ref(m_id) < 0 ? -1 : 0;
            break;
        }
        m_id = H5I_INVALID_HID;
        return r >= 0;
    }

private:
    hid_t m_id = H5I_INVALID_HID;
};

bool mulOverflows(int64_t a, int64_t b, int64_t* out)
{
    if (a < 0 || b < 0 || (a != 0 && b > std::numeric_limits<int64_t>::max() / a))
        return true;
    *out = a * b;
    return false;
}

std::string isoTimeUtcNow()
{
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// Attributes are declared UTF-8; bytes that are not (a Latin-1 file name in `input`) become U+FFFD
// so that readers such as h5py can decode every attribute.
std::string validUtf8(const std::string& s)
{
    std::string out;
    out.reserve(s.size());
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        size_t len = 0;
        uint32_t cp = 0;
        if (c < 0x80) {
            len = 1;
            cp = c;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        }
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80)
                ok = false;
            else
                cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are invalid too.
        static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (ok && (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)))
            ok = false;
        if (ok) {
            out.append(s, i, len);
            i += len;
        } else {
            out += "\xEF\xBF\xBD";
            ++i;
        }
    }
    return out;
}

// ---- writing helpers. On failure they return false with HDF5's message in *error, taken before
// the cleanup calls (each of which clears HDF5's error stack) run.

bool writeStringAttribute(hid_t loc, const char* name, const std::string& value, std::string* error)
{
    const std::string utf8 = validUtf8(value);
    const char* data = utf8.c_str();
    Hid type(H5Tcopy(H5T_C_S1));
    Hid space(H5Screate(H5S_SCALAR));
    Hid attr;
    if (type.valid() && space.valid() && H5Tset_size(type.get(), H5T_VARIABLE) >= 0 &&
        H5Tset_cset(type.get(), H5T_CSET_UTF8) >= 0 &&
        (attr = Hid(H5Acreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT))).valid() &&
        H5Awrite(attr.get(), type.get(), &data) >= 0 && attr.close())
        return true;
    *error = hdf5Detail();
    return false;
}

// A fixed-length string: under SWMR its value may be rewritten in place, a variable-length one's not.
bool writeFixedStringAttribute(hid_t loc, const char* name, size_t size, const std::string& value,
                               bool create, std::string* error)
{
    std::vector<char> data(size, '\0');
    std::memcpy(data.data(), value.data(), std::min(size, value.size()));
    Hid type(H5Tcopy(H5T_C_S1));
    Hid space(H5Screate(H5S_SCALAR));
    Hid attr;
    if (type.valid() && space.valid() && H5Tset_size(type.get(), size) >= 0 &&
        H5Tset_strpad(type.get(), H5T_STR_NULLPAD) >= 0 && H5Tset_cset(type.get(), H5T_CSET_UTF8) >= 0 &&
        (attr = Hid(create ? H5Acreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT)
                           : H5Aopen(loc, name, H5P_DEFAULT)))
            .valid() &&
        H5Awrite(attr.get(), type.get(), data.data()) >= 0 && attr.close())
        return true;
    *error = hdf5Detail();
    return false;
}

// Creates the attribute with fileType, or (create = false) overwrites an existing one.
bool writeIntAttribute(hid_t loc, const char* name, hid_t fileType, int64_t value, bool create,
                       std::string* error)
{
    Hid space(H5Screate(H5S_SCALAR));
    Hid attr(create ? H5Acreate2(loc, name, fileType, space.get(), H5P_DEFAULT, H5P_DEFAULT)
                    : H5Aopen(loc, name, H5P_DEFAULT));
    if (attr.valid() && H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) >= 0 && attr.close())
        return true;
    *error = hdf5Detail();
    return false;
}

// Deflate runs at about 50-80 MB/s per core on probe floats, so the writer uses every core it may:
// while it runs, the model waits for it anyway. 16 bounds the memory of chunks in flight (~32 MiB).
size_t filterThreads()
{
    static const size_t n = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
    return n;
}

hsize_t chunkTokens(int64_t bytesPerToken)
{
    hsize_t t = kMaxChunkTokens;
    while (t > 1 && static_cast<int64_t>(t) * bytesPerToken > kTargetChunkBytes)
        t /= 2;
    return t;
}

// ---- reading helpers

struct AttributeValue {
    enum Kind { Absent, Text, Integer, Float, Other } kind = Absent;
    std::string text;
    int64_t integer = 0;
    double real = 0;
};

// Reads a scalar attribute of loc; Absent if there is none. Throws Error on a malformed one.
AttributeValue readAttribute(const std::string& path, hid_t loc, const std::string& where,
                             const std::string& name)
{
    AttributeValue v;
    const htri_t exists = H5Aexists(loc, name.c_str());
    if (exists < 0)
        throw Error(path, "cannot read attribute " + where + name + ": " + hdf5Detail());
    if (exists == 0)
        return v;
    Hid attr(H5Aopen(loc, name.c_str(), H5P_DEFAULT));
    Hid type(attr.valid() ? H5Aget_type(attr.get()) : H5I_INVALID_HID);
    Hid space(attr.valid() ? H5Aget_space(attr.get()) : H5I_INVALID_HID);
    if (!type.valid() || !space.valid())
        throw Error(path, "cannot read attribute " + where + name + ": " + hdf5Detail());
    if (H5Sget_simple_extent_npoints(space.get()) != 1) {
        v.kind = AttributeValue::Other;
        return v;
    }
    const H5T_class_t cls = H5Tget_class(type.get());
    herr_t r = 0;
    if (cls == H5T_STRING) {
        v.kind = AttributeValue::Text;
        const htri_t variable = H5Tis_variable_str(type.get());
        if (variable > 0) {
            Hid mem(H5Tcopy(H5T_C_S1));
            H5Tset_size(mem.get(), H5T_VARIABLE);
            H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
            char* s = nullptr;
            r = H5Aread(attr.get(), mem.get(), &s);
            if (r >= 0 && s)
                v.text = s;
            if (s)
                H5free_memory(s);
        } else if (variable == 0) {
            const size_t size = H5Tget_size(type.get());
            if (size == 0 || size > kMaxFixedStringBytes)
                throw Error(path, "attribute " + where + name, "a string of at most 64 MiB",
                            std::to_string(size) + " bytes");
            Hid mem(H5Tcopy(type.get()));
            std::vector<char> buf(size + 1, '\0');
            r = H5Aread(attr.get(), mem.get(), buf.data());
            v.text.assign(buf.data(), strnlen(buf.data(), size));
            if (H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD)
                v.text.erase(v.text.find_last_not_of(' ') + 1);
        } else {
            r = -1;
        }
    } else if (cls == H5T_INTEGER) {
        v.kind = AttributeValue::Integer;
        r = H5Aread(attr.get(), H5T_NATIVE_INT64, &v.integer);
    } else if (cls == H5T_FLOAT) {
        v.kind = AttributeValue::Float;
        r = H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v.real);
    } else {
        v.kind = AttributeValue::Other;
    }
    if (r < 0)
        throw Error(path, "cannot read attribute " + where + name + ": " + hdf5Detail());
    return v;
}

std::string readStringAttribute(const std::string& path, hid_t loc, const std::string& where,
                                const std::string& name)
{
    const AttributeValue v = readAttribute(path, loc, where, name);
    if (v.kind == AttributeValue::Absent)
        return {};
    if (v.kind != AttributeValue::Text)
        throw Error(path, "attribute " + where + name, "a string", "another type");
    return v.text;
}

std::vector<std::string> splitAxes(const std::string& s)
{
    std::vector<std::string> out;
    size_t begin = 0;
    while (true) {
        const size_t comma = s.find(',', begin);
        std::string part = s.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
        const size_t first = part.find_first_not_of(" \t");
        const size_t last = part.find_last_not_of(" \t");
        out.push_back(first == std::string::npos ? std::string() : part.substr(first, last - first + 1));
        if (comma == std::string::npos)
            break;
        begin = comma + 1;
    }
    return out;
}

} // namespace

// ==================================================================================== writer

struct WriteDataset {
    Hid id;
    std::string name;           // full path in the file, for messages
    std::vector<hsize_t> shape; // per token
    int64_t valuesPerToken = 1;
    int64_t chunkTokens = 1;
    size_t elementBytes = 4;
    size_t tokenBytes = 4;
    size_t chunkBytes() const { return static_cast<size_t>(chunkTokens) * tokenBytes; }
    // The chunk being filled: whole chunks are compressed straight from the caller's memory, so
    // this is the only copy of probe data the writer keeps.
    std::vector<unsigned char> tail;
};

// One chunk to filter and write: chunk `index` of a dataset, chunkBytes() bytes at `src`.
struct ChunkTask {
    WriteDataset* dataset = nullptr;
    int64_t index = 0;
    const unsigned char* src = nullptr;
    std::vector<unsigned char> owned; // src points here when the chunk came from the tail buffer
    std::vector<unsigned char> out;   // shuffled and deflated
};

class TraceWriterImpl {
public:
    std::string path;
    TraceHeader header;
    Hid file;
    WriteDataset ids, offsets, nll;
    std::vector<WriteDataset> probes;
    int64_t tokens = 0;
    bool compress = false;
    bool finished = false;
    bool broken = false;

    [[noreturn]] void fail(const std::string& what)
    {
        broken = true;
        throw Error(path, what + ": " + hdf5Detail());
    }

    void writeString(hid_t loc, const char* name, const std::string& value)
    {
        std::string error;
        if (!writeStringAttribute(loc, name, value, &error)) {
            broken = true;
            throw Error(path, std::string("cannot write attribute ") + name + ": " + error);
        }
    }
    void writeInt(hid_t loc, const char* name, hid_t fileType, int64_t value, bool create)
    {
        std::string error;
        if (!writeIntAttribute(loc, name, fileType, value, create, &error)) {
            broken = true;
            throw Error(path, std::string("cannot write attribute ") + name + ": " + error);
        }
    }

    void writeFixedString(hid_t loc, const char* name, const std::string& value, bool create)
    {
        std::string error;
        if (!writeFixedStringAttribute(loc, name, kTimeLength, value, create, &error)) {
            broken = true;
            throw Error(path, std::string("cannot write attribute ") + name + ": " + error);
        }
    }

    void validateHeader() const;
    void create();
    WriteDataset createDataset(hid_t loc, const std::string& group, const std::string& name, hid_t type,
                               const std::vector<int64_t>& shape, const void* fill);
    void planChunks(WriteDataset& d, const void* data, int64_t count, std::vector<ChunkTask>* tasks);
    void filterChunks(std::vector<ChunkTask>& tasks, size_t begin, size_t end);
    void writeChunks(const std::vector<ChunkTask*>& order, int64_t newTokens);
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
            if (d < 1 || mulOverflows(n, d, &n) || n > std::numeric_limits<int32_t>::max())
                throw Error(path, what + " shape", "positive dimensions, at most 2^31 values per token",
                            shapeToString(p.shape));
        if (p.axes.size() != p.shape.size())
            throw Error(path, what + " axes", std::to_string(p.shape.size()) + " names (one per dimension)",
                        std::to_string(p.axes.size()));
        for (const std::string& a : p.axes)
            if (a.find(',') != std::string::npos)
                throw Error(path, what + " axis name", "no commas", "\"" + a + "\"");
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
    d.chunkTokens = static_cast<int64_t>(chunkTokens(static_cast<int64_t>(d.tokenBytes)));
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
    // The writer filters chunks itself (see filterChunks); this pipeline tells readers how to undo it.
    if (compress && (H5Pset_shuffle(dcpl.get()) < 0 || H5Pset_deflate(dcpl.get(), kDeflateLevel) < 0))
        fail("cannot create " + d.name);
    d.id = Hid(H5Dcreate2(loc, name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
    if (!d.id.valid())
        fail("cannot create " + d.name);
    return d;
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
    const hid_t f = file.get();

    // SWMR forbids adding attributes later, so all are made now; tokens, completed and end_time
    // (fixed-size values, rewritten in place) change as the run goes.
    writeInt(f, "schema_version", H5T_STD_I32LE, kTraceSchemaVersion, true);
    writeString(f, "architecture", header.architecture);
    writeString(f, "model_config", header.modelConfigJson);
    writeString(f, "model_path", header.modelPath);
    writeString(f, "dtype", header.dtype);
    writeString(f, "device", header.device);
    writeString(f, "input", header.input);
    writeString(f, "start_time", header.startTime);
    writeString(f, "software_version", header.softwareVersion);
    writeInt(f, "completed", H5T_STD_I32LE, 0, true);
    writeInt(f, "tokens", H5T_STD_I64LE, 0, true);
    writeFixedString(f, "end_time", "", true);

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
    for (const ProbeDesc& p : header.probes) {
        probes.push_back(
            createDataset(probesGroup.get(), "/probes", p.name, H5T_NATIVE_FLOAT, p.shape, &fillFloat));
        std::string axes = "token";
        for (const std::string& a : p.axes)
            axes += "," + a;
        const hid_t ds = probes.back().id.get();
        writeString(ds, "description", p.description);
        writeString(ds, "axes", axes);
        writeString(ds, "head_meaning", p.headMeaning);
    }
    tokensGroup.close();
    probesGroup.close();

    if (H5Fflush(f, H5F_SCOPE_LOCAL) < 0 || H5Fstart_swmr_write(f) < 0)
        fail("cannot start SWMR writing");
}

// Splits count tokens of d starting at `tokens` into chunk tasks. Whole chunks point into data; a
// chunk that the append starts or ends inside goes through d.tail, which keeps the tokens of an
// unfinished chunk for the next append (the chunk is rewritten whole each time).
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
        if (inChunk == 0 && k == d.chunkTokens) {
            task.src = p;
        } else {
            if (inChunk == 0 || d.tail.size() != d.chunkBytes())
                d.tail.assign(d.chunkBytes(), 0);
            std::memcpy(d.tail.data() + static_cast<size_t>(inChunk) * d.tokenBytes, p, bytes);
            if (inChunk + k == d.chunkTokens) {
                task.owned = std::move(d.tail); // complete: the tail starts afresh
                d.tail.clear();
                task.src = task.owned.data();
            } else {
                task.src = d.tail.data(); // the dataset's last task in this append: tail stays as is
            }
        }
        tasks->push_back(std::move(task));
        t += k;
        p += bytes;
        left -= k;
    }
}

// HDF5's shuffle then deflate filters, done here so that they run on several cores (HDF5 runs its
// filters on one thread, at about 80 MB/s for probe floats). The bytes are what HDF5's own filters
// produce: a byte transpose by element size, then a zlib stream (compress2).
void TraceWriterImpl::filterChunks(std::vector<ChunkTask>& tasks, size_t begin, size_t end)
{
    if (!compress || begin >= end)
        return;
    std::atomic<size_t> next{begin};
    std::atomic<bool> failed{false};
    auto work = [&] {
        try {
            std::vector<unsigned char> shuffled;
            for (size_t i = next++; i < end && !failed; i = next++) {
                ChunkTask& task = tasks[i];
                const WriteDataset& d = *task.dataset;
                const size_t bytes = d.chunkBytes();
                const size_t s = d.elementBytes;
                const size_t n = bytes / s;
                shuffled.resize(bytes);
                for (size_t b = 0; b < s; ++b) {
                    unsigned char* dst = shuffled.data() + b * n;
                    const unsigned char* src = task.src + b;
                    for (size_t e = 0; e < n; ++e)
                        dst[e] = src[e * s];
                }
                uLongf outBytes = compressBound(static_cast<uLong>(bytes));
                task.out.resize(outBytes);
                if (compress2(task.out.data(), &outBytes, shuffled.data(), static_cast<uLong>(bytes),
                              static_cast<int>(kDeflateLevel)) != Z_OK) {
                    failed = true;
                    return;
                }
                task.out.resize(outBytes);
            }
        } catch (...) { // bad_alloc must not escape a thread
            failed = true;
        }
    };
    const size_t workers = std::min(end - begin, filterThreads());
    std::vector<std::thread> threads;
    try {
        for (size_t i = 1; i < workers; ++i)
            threads.emplace_back(work);
    } catch (const std::system_error&) {
        // No more threads: the ones started and this one do the work.
    }
    work();
    for (std::thread& th : threads)
        th.join();
    if (failed) {
        broken = true;
        throw Error(path, "cannot compress tokens from " + std::to_string(tokens) + ": out of memory");
    }
}

void TraceWriterImpl::writeChunks(const std::vector<ChunkTask*>& order, int64_t newTokens)
{
    for (size_t i = 0; i < order.size(); ++i) {
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
        const void* bytes = compress ? static_cast<const void*>(task.out.data()) : task.src;
        const size_t size = compress ? task.out.size() : d.chunkBytes();
        if (H5Dwrite_chunk(d.id.get(), H5P_DEFAULT, 0, offset.data(), size, bytes) < 0 ||
            (last && H5Dflush(d.id.get()) < 0))
            fail("cannot write tokens [" + std::to_string(tokens) + ", " + std::to_string(newTokens) +
                 ") to " + d.name);
        task.out = std::vector<unsigned char>();
        task.owned = std::vector<unsigned char>();
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
}

TraceWriter::TraceWriter(const std::string& path, const TraceHeader& header)
    : m_impl(std::make_unique<TraceWriterImpl>())
{
    quietHdf5();
    TraceWriterImpl& w = *m_impl;
    w.path = path;
    w.header = header;
    w.validateHeader();

    // HDF5's own message for an unwritable path is a long error stack; ask the OS first for a short one.
    std::error_code ec;
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
        quietHdf5();
        // tokens is already up to date: a cancelled run is a killed one that closed its file.
        m_impl->closeAll();
        m_impl->file.close();
        H5Eclear2(H5E_DEFAULT);
    } catch (...) {
    }
}

void TraceWriter::append(const ChunkProbes& chunk)
{
    quietHdf5();
    TraceWriterImpl& w = *m_impl;
    if (w.finished)
        throw Error(w.path, "cannot append: the trace was already finished");
    if (w.broken)
        throw Error(w.path, "cannot append: an earlier write to the trace failed");
    if (chunk.start != w.tokens)
        throw Error(w.path, "chunk start", std::to_string(w.tokens) + " (tokens written so far)",
                    std::to_string(chunk.start));
    const int64_t n = chunk.count();
    if (n > std::numeric_limits<int64_t>::max() - w.tokens)
        throw Error(w.path, "chunk of " + std::to_string(n) + " tokens overflows the token count");
    if (static_cast<int64_t>(chunk.nll.size()) != n)
        throw Error(w.path, "chunk nll", std::to_string(n) + " values", std::to_string(chunk.nll.size()));
    const int64_t wantOffsets = w.header.hasOffsets ? 2 * n : 0;
    if (static_cast<int64_t>(chunk.offsets.size()) != wantOffsets)
        throw Error(w.path, "chunk offsets", std::to_string(wantOffsets) + " values",
                    std::to_string(chunk.offsets.size()));
    if (chunk.values.size() != w.probes.size())
        throw Error(w.path, "chunk probes", std::to_string(w.probes.size()) + " probes",
                    std::to_string(chunk.values.size()));
    for (size_t i = 0; i < w.probes.size(); ++i) {
        int64_t want = 0;
        if (mulOverflows(n, w.probes[i].valuesPerToken, &want) ||
            static_cast<int64_t>(chunk.values[i].size()) != want)
            throw Error(w.path, "chunk probe \"" + w.header.probes[i].name + "\"",
                        std::to_string(n) + " tokens x " + std::to_string(w.probes[i].valuesPerToken) +
                            " values",
                        std::to_string(chunk.values[i].size()) + " values");
    }
    if (n == 0)
        return;

    // /tokens/ids goes last: a reader takes the shortest dataset as the length, so a kill in the
    // middle of an append never exposes a token whose probes are not on disk yet.
    std::vector<ChunkTask> tasks;
    for (size_t i = 0; i < w.probes.size(); ++i)
        w.planChunks(w.probes[i], chunk.values[i].data(), n, &tasks);
    if (w.header.hasOffsets)
        w.planChunks(w.offsets, chunk.offsets.data(), n, &tasks);
    w.planChunks(w.nll, chunk.nll.data(), n, &tasks);
    w.planChunks(w.ids, chunk.ids.data(), n, &tasks);

    // Filtered chunks wait for HDF5 in batches, so memory stays at a few chunks whatever the append.
    const size_t batch = 2 * filterThreads();
    std::vector<ChunkTask*> order;
    for (size_t begin = 0; begin < tasks.size(); begin += batch) {
        const size_t end = std::min(tasks.size(), begin + batch);
        w.filterChunks(tasks, begin, end);
        order.clear();
        for (size_t i = begin; i < end; ++i)
            order.push_back(&tasks[i]);
        w.writeChunks(order, w.tokens + n);
    }
    // tokens follows the data it counts, so it never claims more than is on disk.
    w.writeInt(w.file.get(), "tokens", H5T_STD_I64LE, w.tokens + n, false);
    if (H5Fflush(w.file.get(), H5F_SCOPE_LOCAL) < 0)
        w.fail("cannot flush the trace");
    w.tokens += n;
}

void TraceWriter::finish()
{
    quietHdf5();
    TraceWriterImpl& w = *m_impl;
    if (w.finished)
        return;
    if (w.broken)
        throw Error(w.path, "cannot mark the trace complete: an earlier write failed");
    // Still under SWMR: reopening without it would need an exclusive lock, which any SWMR reader
    // (a GUI or h5py watching the run) holds off. completed goes last, after everything it vouches for.
    const hid_t f = w.file.get();
    w.writeInt(f, "tokens", H5T_STD_I64LE, w.tokens, false);
    w.writeFixedString(f, "end_time", isoTimeUtcNow(), false);
    w.writeInt(f, "completed", H5T_STD_I32LE, 1, false);
    w.close();
    w.finished = true;
}

int64_t TraceWriter::tokens() const
{
    return m_impl->tokens;
}

const std::string& TraceWriter::path() const
{
    return m_impl->path;
}

// ==================================================================================== reader

struct ReadDataset {
    Hid id;
    std::string name;           // full path in the file
    std::vector<hsize_t> shape; // per token
    int64_t valuesPerToken = 1;
    int64_t length = 0;
};

class TraceReaderImpl {
public:
    std::string path;
    Hid file;
    bool swmr = false;
    TraceHeader header;
    bool completed = false;
    int64_t tokens = 0;
    ReadDataset ids, offsets, nll;
    std::vector<ReadDataset> probes;
    std::map<std::string, size_t> probeIndex;

    ReadDataset openDataset(hid_t loc, const std::string& fullName, const std::string& linkName,
                            H5T_class_t cls, int rank /* 0: any */);
    void readLength(ReadDataset& d);
    void computeTokens();
    void checkRange(int64_t begin, int64_t* end) const;
    template <typename T>
    std::vector<T> read(const ReadDataset& d, hid_t memType, int64_t begin, int64_t end) const;
};

void TraceReaderImpl::readLength(ReadDataset& d)
{
    Hid space(H5Dget_space(d.id.get()));
    hsize_t first = 0;
    if (!space.valid() || H5Sget_simple_extent_ndims(space.get()) < 1)
        throw Error(path, "cannot read the shape of " + d.name + ": " + hdf5Detail());
    std::vector<hsize_t> dims(H5Sget_simple_extent_ndims(space.get()));
    if (H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0)
        throw Error(path, "cannot read the shape of " + d.name + ": " + hdf5Detail());
    first = dims[0];
    if (first > static_cast<hsize_t>(std::numeric_limits<int64_t>::max()))
        throw Error(path, d.name + " length", "at most 2^63 - 1 tokens", std::to_string(first));
    d.length = static_cast<int64_t>(first);
}

ReadDataset TraceReaderImpl::openDataset(hid_t loc, const std::string& fullName, const std::string& linkName,
                                         H5T_class_t cls, int rank)
{
    const char* kind = cls == H5T_INTEGER ? "an integer dataset" : "a float dataset";
    ReadDataset d;
    d.name = fullName;
    const htri_t exists = H5Lexists(loc, linkName.c_str(), H5P_DEFAULT);
    if (exists <= 0) {
        H5Eclear2(H5E_DEFAULT);
        throw Error(path, fullName, kind, "nothing (missing)");
    }
    // Windows move through the trace; a cache of a few chunks serves neighbouring reads.
    Hid dapl(H5Pcreate(H5P_DATASET_ACCESS));
    H5Pset_chunk_cache(dapl.get(), kChunkCacheSlots, kReaderChunkCacheBytes, 0.75);
    d.id = Hid(H5Dopen2(loc, linkName.c_str(), dapl.get()));
    if (!d.id.valid()) {
        H5Eclear2(H5E_DEFAULT);
        throw Error(path, fullName, kind, "something else (not a dataset)");
    }
    Hid type(H5Dget_type(d.id.get()));
    Hid space(H5Dget_space(d.id.get()));
    if (!type.valid() || !space.valid())
        throw Error(path, "cannot read " + fullName + ": " + hdf5Detail());
    if (H5Tget_class(type.get()) != cls)
        throw Error(path, fullName + " type", kind, "another type");
    const int ndims = H5Sget_simple_extent_ndims(space.get());
    if (ndims < 1 || (rank > 0 && ndims != rank))
        throw Error(path, fullName + " rank", rank > 0 ? std::to_string(rank) : "at least 1",
                    std::to_string(ndims));
    std::vector<hsize_t> dims(ndims);
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    d.shape.assign(dims.begin() + 1, dims.end());
    d.valuesPerToken = 1;
    for (hsize_t s : d.shape) {
        // Room for 8 bytes a value too, so that no window's size in bytes can overflow.
        if (s < 1 || s > static_cast<hsize_t>(std::numeric_limits<int64_t>::max()) ||
            mulOverflows(d.valuesPerToken, static_cast<int64_t>(s), &d.valuesPerToken) ||
            d.valuesPerToken > std::numeric_limits<int64_t>::max() / 8)
            throw Error(path, fullName + " shape", "positive dimensions of a sane size",
                        shapeToString(std::vector<int64_t>(dims.begin(), dims.end())));
    }
    readLength(d);
    return d;
}

void TraceReaderImpl::computeTokens()
{
    std::vector<const ReadDataset*> all{&ids, &nll};
    if (offsets.id.valid())
        all.push_back(&offsets);
    for (const ReadDataset& p : probes)
        all.push_back(&p);
    tokens = ids.length;
    for (const ReadDataset* d : all) {
        if (completed && d->length != ids.length)
            throw Error(path, "inconsistent lengths in a completed trace: /tokens/ids has " +
                                  std::to_string(ids.length) + " tokens, " + d->name + " has " +
                                  std::to_string(d->length));
        tokens = std::min(tokens, d->length);
    }
}

void TraceReaderImpl::checkRange(int64_t begin, int64_t* end) const
{
    if (*end == -1)
        *end = tokens;
    if (begin < 0 || *end < begin || *end > tokens)
        throw Error(path, "token range [" + std::to_string(begin) + ", " + std::to_string(*end) +
                              ") is outside the trace's [0, " + std::to_string(tokens) + ")");
}

template <typename T>
std::vector<T> TraceReaderImpl::read(const ReadDataset& d, hid_t memType, int64_t begin, int64_t end) const
{
    checkRange(begin, &end);
    const int64_t count = end - begin;
    int64_t values = 0;
    if (mulOverflows(count, d.valuesPerToken, &values) ||
        static_cast<uint64_t>(values) > std::vector<T>().max_size())
        throw Error(path, "cannot read " + d.name + ": a window of " + std::to_string(count) +
                              " tokens is too large");
    std::vector<T> out(static_cast<size_t>(values));
    if (values == 0)
        return out;
    const int rank = static_cast<int>(d.shape.size()) + 1;
    std::vector<hsize_t> start(rank, 0), dims(rank);
    start[0] = static_cast<hsize_t>(begin);
    dims[0] = static_cast<hsize_t>(count);
    for (int i = 1; i < rank; ++i)
        dims[i] = d.shape[i - 1];
    Hid fileSpace(H5Dget_space(d.id.get()));
    // The memory space has the selection's shape: with any other (say 1-D) HDF5 maps elements to
    // chunks one at a time, several times slower.
    Hid memSpace(H5Screate_simple(rank, dims.data(), nullptr));
    if (!fileSpace.valid() || !memSpace.valid() ||
        H5Sselect_hyperslab(fileSpace.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr) <
            0 ||
        H5Dread(d.id.get(), memType, memSpace.get(), fileSpace.get(), H5P_DEFAULT, out.data()) < 0)
        throw Error(path, "cannot read tokens [" + std::to_string(begin) + ", " + std::to_string(end) +
                              ") of " + d.name + ": " + hdf5Detail());
    return out;
}

TraceReader::TraceReader(const std::string& path) : m_impl(std::make_unique<TraceReaderImpl>())
{
    quietHdf5();
    TraceReaderImpl& r = *m_impl;
    r.path = path;
    std::error_code ec;
    if (fs::is_directory(path, ec))
        throw Error(path, "cannot open the trace: it is a folder");
    if (!fs::exists(path, ec))
        throw Error(path, "cannot open the trace: file not found");
    const htri_t isHdf5 = H5Fis_hdf5(path.c_str());
    if (isHdf5 == 0)
        throw Error(path, "not a trace: not an HDF5 file");
    if (isHdf5 < 0)
        throw Error(path, "cannot open the trace: " + hdf5Detail());

    // SWMR read first: it is the only way into a file a writer still has open or a killed writer
    // left flagged as open; files in older formats need the plain open.
    r.file = Hid(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT));
    r.swmr = r.file.valid();
    if (!r.swmr) {
        H5Eclear2(H5E_DEFAULT);
        r.file = Hid(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    }
    if (!r.file.valid())
        throw Error(path, "cannot open the trace: " + hdf5Detail());
    const hid_t f = r.file.get();

    const AttributeValue version = readAttribute(path, f, "", "schema_version");
    if (version.kind == AttributeValue::Absent)
        throw Error(path, "not a StateScope trace: the root has no schema_version attribute");
    if (version.kind != AttributeValue::Integer)
        throw Error(path, "schema_version", "an integer",
                    version.kind == AttributeValue::Text ? "a string" : "another type");
    if (version.integer != kTraceSchemaVersion)
        throw Error(path, "schema_version", std::to_string(kTraceSchemaVersion),
                    std::to_string(version.integer));

    TraceHeader& h = r.header;
    h.architecture = readStringAttribute(path, f, "", "architecture");
    h.modelConfigJson = readStringAttribute(path, f, "", "model_config");
    h.modelPath = readStringAttribute(path, f, "", "model_path");
    h.dtype = readStringAttribute(path, f, "", "dtype");
    h.device = readStringAttribute(path, f, "", "device");
    h.input = readStringAttribute(path, f, "", "input");
    h.startTime = readStringAttribute(path, f, "", "start_time");
    h.softwareVersion = readStringAttribute(path, f, "", "software_version");
    const AttributeValue completed = readAttribute(path, f, "", "completed");
    if (completed.kind != AttributeValue::Absent && completed.kind != AttributeValue::Integer)
        throw Error(path, "completed", "an integer 0 or 1", "another type");
    r.completed = completed.integer != 0;

    if (H5Lexists(f, "tokens", H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        throw Error(path, "/tokens", "a group", "nothing (missing)");
    }
    r.ids = r.openDataset(f, "/tokens/ids", "tokens/ids", H5T_INTEGER, 1);
    r.nll = r.openDataset(f, "/nll", "nll", H5T_FLOAT, 1);
    if (H5Lexists(f, "tokens/offsets", H5P_DEFAULT) > 0) {
        r.offsets = r.openDataset(f, "/tokens/offsets", "tokens/offsets", H5T_INTEGER, 2);
        if (r.offsets.shape[0] != 2)
            throw Error(path, "/tokens/offsets shape", "[T, 2]",
                        "[T, " + std::to_string(r.offsets.shape[0]) + "]");
        h.hasOffsets = true;
    }
    H5Eclear2(H5E_DEFAULT);

    if (H5Lexists(f, "probes", H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        throw Error(path, "/probes", "a group", "nothing (missing)");
    }
    Hid group(H5Gopen2(f, "probes", H5P_DEFAULT));
    H5G_info_t info{};
    if (!group.valid() || H5Gget_info(group.get(), &info) < 0)
        throw Error(path, "/probes", "a group", "something else");
    if (info.nlinks > kMaxProbes)
        throw Error(path, "/probes", "at most " + std::to_string(kMaxProbes) + " probes",
                    std::to_string(info.nlinks));
    // Creation order when the writer kept it (StateScope does), else alphabetical.
    H5_index_t index = H5_INDEX_CRT_ORDER;
    if (info.nlinks > 0 &&
        H5Lget_name_by_idx(group.get(), ".", index, H5_ITER_INC, 0, nullptr, 0, H5P_DEFAULT) < 0) {
        H5Eclear2(H5E_DEFAULT);
        index = H5_INDEX_NAME;
    }
    for (hsize_t i = 0; i < info.nlinks; ++i) {
        const ssize_t len =
            H5Lget_name_by_idx(group.get(), ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
        if (len < 0)
            throw Error(path, "cannot list /probes: " + hdf5Detail());
        std::vector<char> buf(static_cast<size_t>(len) + 1, '\0');
        H5Lget_name_by_idx(group.get(), ".", index, H5_ITER_INC, i, buf.data(), buf.size(), H5P_DEFAULT);
        const std::string name(buf.data(), static_cast<size_t>(len));
        ReadDataset d = r.openDataset(group.get(), "/probes/" + name, name, H5T_FLOAT, 0);
        ProbeDesc desc;
        desc.name = name;
        desc.shape.assign(d.shape.begin(), d.shape.end());
        desc.description = readStringAttribute(path, d.id.get(), d.name + ":", "description");
        desc.headMeaning = readStringAttribute(path, d.id.get(), d.name + ":", "head_meaning");
        std::vector<std::string> axes =
            splitAxes(readStringAttribute(path, d.id.get(), d.name + ":", "axes"));
        if (!axes.empty() && axes.front() == "token")
            axes.erase(axes.begin());
        if (axes.size() != desc.shape.size()) {
            axes.clear();
            for (size_t k = 0; k < desc.shape.size(); ++k)
                axes.push_back("axis" + std::to_string(k + 1));
        }
        desc.axes = std::move(axes);
        r.probeIndex[name] = r.probes.size();
        r.probes.push_back(std::move(d));
        h.probes.push_back(std::move(desc));
    }

    r.computeTokens();
    if (r.completed) {
        const AttributeValue tokens = readAttribute(path, f, "", "tokens");
        if (tokens.kind == AttributeValue::Integer && tokens.integer != r.tokens)
            throw Error(path, "tokens attribute", std::to_string(r.tokens) + " (the datasets' length)",
                        std::to_string(tokens.integer));
    }
}

TraceReader::~TraceReader() = default;
TraceReader::TraceReader(TraceReader&&) noexcept = default;
TraceReader& TraceReader::operator=(TraceReader&&) noexcept = default;

const TraceHeader& TraceReader::header() const
{
    return m_impl->header;
}

bool TraceReader::completed() const
{
    return m_impl->completed;
}

int64_t TraceReader::tokens() const
{
    return m_impl->tokens;
}

const std::string& TraceReader::path() const
{
    return m_impl->path;
}

std::vector<int32_t> TraceReader::ids(int64_t begin, int64_t end) const
{
    quietHdf5();
    return m_impl->read<int32_t>(m_impl->ids, H5T_NATIVE_INT32, begin, end);
}

std::vector<int64_t> TraceReader::offsets(int64_t begin, int64_t end) const
{
    quietHdf5();
    if (!m_impl->offsets.id.valid()) {
        m_impl->checkRange(begin, &end);
        return {};
    }
    return m_impl->read<int64_t>(m_impl->offsets, H5T_NATIVE_INT64, begin, end);
}

std::vector<float> TraceReader::nll(int64_t begin, int64_t end) const
{
    quietHdf5();
    return m_impl->read<float>(m_impl->nll, H5T_NATIVE_FLOAT, begin, end);
}

std::vector<float> TraceReader::probe(const std::string& name, int64_t begin, int64_t end) const
{
    quietHdf5();
    const auto it = m_impl->probeIndex.find(name);
    if (it == m_impl->probeIndex.end())
        throw Error(m_impl->path, "no probe named \"" + name + "\" in the trace");
    return m_impl->read<float>(m_impl->probes[it->second], H5T_NATIVE_FLOAT, begin, end);
}

std::string TraceReader::attribute(const std::string& name) const
{
    quietHdf5();
    const AttributeValue v = readAttribute(m_impl->path, m_impl->file.get(), "", name);
    switch (v.kind) {
    case AttributeValue::Absent:
        return {};
    case AttributeValue::Text:
        return v.text;
    case AttributeValue::Integer:
        return std::to_string(v.integer);
    case AttributeValue::Float: {
        char buf[40];
        std::snprintf(buf, sizeof buf, "%.17g", v.real);
        return buf;
    }
    default:
        throw Error(m_impl->path, "attribute " + name, "a string or a number", "another type");
    }
}

int64_t TraceReader::refresh()
{
    quietHdf5();
    TraceReaderImpl& r = *m_impl;
    if (!r.swmr)
        return r.tokens;
    // The root first: a writer sets completed only after its data is on disk, so data refreshed
    // after it is at least as long as completed promises.
    {
        Hid root(H5Gopen2(r.file.get(), "/", H5P_DEFAULT));
        if (!root.valid() || H5Orefresh(root.get()) < 0)
            throw Error(r.path, "cannot refresh the trace: " + hdf5Detail());
    }
    const AttributeValue completed = readAttribute(r.path, r.file.get(), "", "completed");
    r.completed = completed.kind == AttributeValue::Integer && completed.integer != 0;
    std::vector<ReadDataset*> all{&r.ids, &r.nll};
    if (r.offsets.id.valid())
        all.push_back(&r.offsets);
    for (ReadDataset& p : r.probes)
        all.push_back(&p);
    for (ReadDataset* d : all) {
        if (H5Drefresh(d->id.get()) < 0)
            throw Error(r.path, "cannot refresh " + d->name + ": " + hdf5Detail());
        r.readLength(*d);
    }
    r.computeTokens();
    return r.tokens;
}

} // namespace statescope
