#include "Error.h"
#include "trace/Hdf5Util.h"
#include "trace/TraceFile.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>

#include <sys/stat.h>

namespace statescope {

using h5::AttributeValue;
using h5::Hid;

namespace {

namespace fs = std::filesystem;

constexpr size_t kChunkCacheSlots = 521; // prime, as HDF5 advises
constexpr size_t kReaderChunkCacheBytes = 8 << 20;
constexpr int64_t kMaxReadChunkBytes = int64_t(64) << 20;
constexpr size_t kMaxProbes = 4096;
constexpr int kOldestSchemaVersion = 1;
constexpr unsigned kSwmrReadAttempts = 4;

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

// A probe's axes after the token axis, from its `axes` attribute; generic names where they do not
// match its shape (another producer's file).
std::vector<std::string> probeAxes(const std::string& attribute, size_t rank)
{
    std::vector<std::string> axes = splitAxes(attribute);
    if (!axes.empty() && axes.front() == "token")
        axes.erase(axes.begin());
    if (axes.size() != rank) {
        axes.clear();
        for (size_t k = 0; k < rank; ++k)
            axes.push_back("axis" + std::to_string(k + 1));
    }
    return axes;
}

bool startsWith(const std::string& s, const std::string& prefix)
{
    return s.compare(0, prefix.size(), prefix) == 0;
}

bool allDigits(const std::string& s)
{
    return !s.empty() && std::all_of(s.begin(), s.end(),
                                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

// The CLI of schema 1 ended text and prompt inputs with " (N bytes, tokenizer NAME)". The file name
// before it may hold spaces and parentheses, and so may NAME, so the group is the rightmost " ("
// after which the rest has exactly that form. Strips it from *s and returns NAME; "" if none.
std::string stripSizeGroup(std::string* s)
{
    static const std::string kBytes = " bytes, tokenizer ";
    if (s->empty() || s->back() != ')')
        return {};
    for (size_t pos = s->rfind(" ("); pos != std::string::npos;
         pos = pos ? s->rfind(" (", pos - 1) : std::string::npos) {
        const size_t digits = pos + 2;
        const size_t bytes = s->find(kBytes, digits);
        if (bytes == std::string::npos || !allDigits(s->substr(digits, bytes - digits)))
            continue;
        const size_t nameBegin = bytes + kBytes.size();
        std::string name = s->substr(nameBegin, s->size() - 1 - nameBegin);
        s->erase(pos);
        return name;
    }
    return {};
}

// What a schema-1 probe's name says of how views summarize and label it: the probes StateScope's
// Mamba-2 recorded then.
ProbeSummary summaryByName(const std::string& name)
{
    if (name == kDecayProbe)
        return ProbeSummary::GeoMean;
    if (name == kStateNormProbe)
        return ProbeSummary::RootSumSquare;
    return ProbeSummary::Mean;
}

std::string labelByName(const std::string& name)
{
    if (name == kDecayProbe)
        return "\xCE\xB1"; // α
    if (name == kStateNormProbe)
        return "\xE2\x80\x96S\xE2\x80\x96"; // ‖S‖
    if (name == "dt")
        return "\xCE\x94"; // Δ
    return name;
}

// Everything schema 2 records that a schema-1 trace implies: the fallback for each schema-2 field.
void deriveSchema2Fields(TraceHeader* h)
{
    h->inputSource = parseSchema1Input(h->input);
    const ProbeDesc* shaped = nullptr;
    for (const char* name : {kDecayProbe, kStateNormProbe})
        for (const ProbeDesc& p : h->probes)
            if (!shaped && p.name == name)
                shaped = &p;
    if (!shaped && !h->probes.empty())
        shaped = &h->probes.front();
    // [layer, unit]; a probe of one axis is taken as one unit per layer.
    if (shaped && !shaped->shape.empty()) {
        h->layers = shaped->shape[0];
        h->units = shaped->shape.size() > 1 ? shaped->shape[1] : 1;
    }
    h->unitName = "head";
    for (ProbeDesc& p : h->probes) {
        p.summary = summaryByName(p.name);
        p.label = labelByName(p.name);
    }
}

} // namespace

TraceInput parseSchema1Input(const std::string& input)
{
    static const std::string kTimes = " \xC3\x97 "; // " × "
    TraceInput in;
    if (startsWith(input, "text: ")) {
        in.kind = "text";
        in.path = input.substr(6);
        in.tokenizer = stripSizeGroup(&in.path);
    } else if (startsWith(input, "ids: ")) {
        in.kind = "ids"; // the CLI wrote no size group for ids
        in.path = input.substr(5);
    } else if (startsWith(input, "prompt: ")) {
        in.kind = "prompt";
        in.prompt = input.substr(8);
        in.tokenizer = stripSizeGroup(&in.prompt);
    } else if (input == "typed text") { // the window's editor
        in.kind = "text";
    } else {
        // The window's generators: "newlines × 4096", "capital-cities sentence × 3".
        for (const auto& [label, spec] :
             {std::pair<std::string, std::string>{"newlines", "newlines"},
              std::pair<std::string, std::string>{"capital-cities sentence", "capitals"}}) {
            const std::string prefix = label + kTimes;
            if (startsWith(input, prefix) && allDigits(input.substr(prefix.size()))) {
                in.kind = "prompt";
                in.prompt = spec + ":" + input.substr(prefix.size());
            }
        }
        // "passkey haystack: 12 blocks, depth 0.5, seed 7, passkey ..., needle in block 6"
        unsigned long long blocks = 0, seed = 0;
        char depth[32] = {};
        int used = 0;
        if (in.kind.empty() &&
            std::sscanf(input.c_str(), "passkey haystack: %llu blocks, depth %31[0-9.eE+-], seed %llu,%n",
                        &blocks, depth, &seed, &used) == 3 &&
            used > 0) {
            in.kind = "prompt";
            in.prompt = "passkey:" + std::to_string(blocks) + ":" + depth + ":" + std::to_string(seed);
        }
    }
    return in;
}

struct ReadDataset {
    Hid id;
    std::string name;           // full path in the file
    std::vector<hsize_t> shape; // per token
    int64_t valuesPerToken = 1;
    int64_t length = 0;
    // Chunked layout: tokens and bytes a chunk, whether a filter (deflate) stores it, and which
    // chunks' index entries have been checked (checkChunks).
    int64_t chunkTokens = 0;
    int64_t chunkBytes = 0;
    bool filtered = false;
    mutable std::vector<uint8_t> chunkChecked;
    size_t elementBytes = 4;
    ProbeEncoding encoding = ProbeEncoding::Float32; // probes only
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
    // Schema 4's derived probes: value = scale * (-ln source), source an index into probes.
    struct Derived {
        size_t source = 0;
        std::vector<float> scale;
    };
    std::map<std::string, Derived> derived;
    void readDerived();

    int readSchemaVersion();
    void readSchema2Header();
    void readProbes();
    ReadDataset openDataset(hid_t loc, const std::string& fullName, const std::string& linkName,
                            H5T_class_t cls, int rank /* 0: any */);
    void readLength(ReadDataset& d);
    void readChunking(ReadDataset& d) const;
    void checkChunks(const ReadDataset& d, int64_t begin, int64_t end) const;
    int64_t storedTokens(const ReadDataset& d, hid_t space) const;
    void computeTokens();
    void checkRange(int64_t begin, int64_t* end) const;
    template <typename T>
    std::vector<T> read(const ReadDataset& d, hid_t memType, int64_t begin, int64_t end) const;

    // Schema 2's optional reads: an absent attribute leaves *out as derived; one of the wrong type
    // is an Error.
    void readText(hid_t loc, const std::string& where, const char* name, std::string* out) const;
    void readCount(const char* name, int64_t* out) const;
};

int TraceReaderImpl::readSchemaVersion()
{
    const AttributeValue version = h5::readAttribute(path, file.get(), "", "schema_version");
    if (version.kind == AttributeValue::Absent)
        throw Error(path, "not a StateScope trace: the root has no schema_version attribute");
    if (version.kind != AttributeValue::Integer)
        throw Error(path, "schema_version", "an integer",
                    version.kind == AttributeValue::Text ? "a string" : "another type");
    if (version.integer < kOldestSchemaVersion || version.integer > kTraceSchemaVersion)
        throw Error(path, "schema_version",
                    std::to_string(kOldestSchemaVersion) + " to " + std::to_string(kTraceSchemaVersion),
                    std::to_string(version.integer));
    return static_cast<int>(version.integer);
}

void TraceReaderImpl::readText(hid_t loc, const std::string& where, const char* name, std::string* out) const
{
    const AttributeValue v = h5::readAttribute(path, loc, where, name);
    if (v.kind == AttributeValue::Absent)
        return;
    if (v.kind != AttributeValue::Text)
        throw Error(path, "attribute " + where + name, "a string", "another type");
    *out = v.text;
}

void TraceReaderImpl::readCount(const char* name, int64_t* out) const
{
    const AttributeValue v = h5::readAttribute(path, file.get(), "", name);
    if (v.kind == AttributeValue::Absent)
        return;
    if (v.kind != AttributeValue::Integer)
        throw Error(path, std::string("attribute ") + name, "an integer", "another type");
    if (v.integer < 0)
        throw Error(path, std::string("attribute ") + name, "a count >= 0 (0: unknown)",
                    std::to_string(v.integer));
    *out = v.integer;
}

void TraceReaderImpl::readSchema2Header()
{
    const hid_t f = file.get();
    TraceHeader& h = header;
    readText(f, "", "architecture_name", &h.architectureName);
    readText(f, "", "input_kind", &h.inputSource.kind);
    readText(f, "", "input_path", &h.inputSource.path);
    readText(f, "", "input_prompt", &h.inputSource.prompt);
    readText(f, "", "tokenizer", &h.inputSource.tokenizer);
    readText(f, "", "tokenizer_path", &h.inputSource.tokenizerPath);
    readCount("layers", &h.layers);
    readCount("units", &h.units);
    readText(f, "", "unit_name", &h.unitName);
    readCount("state_size", &h.stateSize);
    readText(f, "", "state_size_definition", &h.stateSizeDefinition);
    const AttributeValue threshold = h5::readAttribute(path, f, "", "forget_threshold");
    if (threshold.kind == AttributeValue::Float)
        h.forgetThreshold = threshold.real >= 0 ? threshold.real : -1; // NaN: none
    else if (threshold.kind == AttributeValue::Integer)
        h.forgetThreshold = threshold.integer >= 0 ? static_cast<double>(threshold.integer) : -1;
    else if (threshold.kind != AttributeValue::Absent)
        throw Error(path, "attribute forget_threshold", "a number", "another type");
    readCount("training_length", &h.trainingLength);
    readCount("vocab_size", &h.vocabSize);
    readText(f, "", "run_settings", &h.runSettings);
    readText(f, "", "passkey", &h.inputSource.passkey);
    // -1 (or absent, before they existed): no needle. A range that is not one is refused.
    int64_t needle[2] = {-1, -1};
    const char* names[2] = {"needle_first", "needle_last"};
    for (int i = 0; i < 2; ++i) {
        const AttributeValue v = h5::readAttribute(path, f, "", names[i]);
        if (v.kind == AttributeValue::Integer)
            needle[i] = v.integer;
        else if (v.kind != AttributeValue::Absent)
            throw Error(path, std::string("attribute ") + names[i], "an integer", "another type");
    }
    if (needle[0] >= 0 || needle[1] >= 0) {
        if (needle[0] < 0 || needle[1] < needle[0])
            throw Error(path, "attributes needle_first, needle_last", "a token range first <= last",
                        std::to_string(needle[0]) + ", " + std::to_string(needle[1]));
        h.inputSource.needleFirst = needle[0];
        h.inputSource.needleLast = needle[1];
    }

    for (size_t i = 0; i < probes.size(); ++i) {
        ProbeDesc& p = h.probes[i];
        const hid_t ds = probes[i].id.get();
        const std::string where = probes[i].name + ":";
        readText(ds, where, "unit", &p.unit);
        readText(ds, where, "label", &p.label);
        std::string summary;
        readText(ds, where, "summary", &summary);
        if (!summary.empty()) {
            try {
                p.summary = probeSummaryFromName(summary);
            } catch (const Error& e) {
                throw Error(path, "attribute " + where + "summary", e.expected(), e.actual());
            }
        }
        if (h.schemaVersion < 3)
            continue;
        // Schema 3 names every probe's encoding: a reader that guessed would show ln(norm) as a norm.
        std::string encoding;
        readText(ds, where, "encoding", &encoding);
        if (!parseProbeEncoding(encoding, &probes[i].encoding))
            throw Error(path, "attribute " + where + "encoding",
                        "float32, float16, log_float16 or neg_log_float16",
                        encoding.empty() ? "nothing" : "\"" + encoding + "\"");
        const size_t want = probeEncodingBytes(probes[i].encoding);
        // float32 may come as any float (HDF5 converts); halves must be halves.
        if (probes[i].encoding != ProbeEncoding::Float32 && probes[i].elementBytes != want)
            throw Error(path, probes[i].name + " type",
                        "a " + std::to_string(want) + "-byte float (encoding " + encoding + ")",
                        "a " + std::to_string(probes[i].elementBytes) + "-byte float");
        if (probes[i].encoding != ProbeEncoding::Float32)
            h.probePrecision = ProbePrecision::Float16;
    }
}

void TraceReaderImpl::readLength(ReadDataset& d)
{
    Hid space(H5Dget_space(d.id.get()));
    if (!space.valid())
        throw Error(path, "cannot read the shape of " + d.name + ": " + h5::errorDetail());
    const std::vector<hsize_t> dims = h5::spaceDims(path, space.get(), d.name);
    if (dims.empty())
        throw Error(path, d.name + " rank", "at least 1", "0");
    if (dims[0] > static_cast<hsize_t>(std::numeric_limits<int64_t>::max()))
        throw Error(path, d.name + " length", "at most 2^63 - 1 tokens", std::to_string(dims[0]));
    d.length = std::min(static_cast<int64_t>(dims[0]), storedTokens(d, space.get()));
}

// How many tokens the file really stores for d: a dataspace can claim any length, and HDF5 fills
// the part no chunk covers with zeros, so a crafted 10^15-token extent had the window reading
// zeros forever. The length a reader uses is the smaller of the two. A writer under SWMR extends
// a dataset before its chunk lands, so a growing trace's last chunk may be missing for a moment.
int64_t TraceReaderImpl::storedTokens(const ReadDataset& d, hid_t space) const
{
    Hid plist(H5Dget_create_plist(d.id.get()));
    if (!plist.valid())
        throw Error(path, "cannot read the layout of " + d.name + ": " + h5::errorDetail());
    const H5D_layout_t layout = H5Pget_layout(plist.get());
    const int64_t perToken = std::max<int64_t>(d.valuesPerToken, 1);
    if (layout == H5D_CHUNKED) {
        const int rank = H5Sget_simple_extent_ndims(space);
        std::vector<hsize_t> chunk(static_cast<size_t>(std::max(rank, 1)), 0);
        hsize_t chunks = 0;
        if (rank < 1 || H5Pget_chunk(plist.get(), rank, chunk.data()) != rank ||
            H5Dget_num_chunks(d.id.get(), space, &chunks) < 0)
            throw Error(path, "cannot read the chunk index of " + d.name + ": " + h5::errorDetail());
        // Chunks span whole tokens in every trace StateScope writes; for any other chunking this
        // bound (values covered / values per token) is still an upper bound on what is stored.
        double covered = static_cast<double>(chunks);
        for (hsize_t c : chunk)
            covered *= static_cast<double>(c);
        const double tokens = std::floor(covered / static_cast<double>(perToken));
        return tokens >= 9.2e18 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(tokens);
    }
    // Contiguous or compact: the bytes allocated in the file.
    Hid type(H5Dget_type(d.id.get()));
    const size_t elementSize = type.valid() ? H5Tget_size(type.get()) : 0;
    if (elementSize == 0)
        throw Error(path, "cannot read the type of " + d.name + ": " + h5::errorDetail());
    const double bytes = static_cast<double>(H5Dget_storage_size(d.id.get()));
    return static_cast<int64_t>(
        std::floor(bytes / static_cast<double>(elementSize) / static_cast<double>(perToken)));
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
        throw Error(path, "cannot read " + fullName + ": " + h5::errorDetail());
    if (H5Tget_class(type.get()) != cls)
        throw Error(path, fullName + " type", kind, "another type");
    d.elementBytes = H5Tget_size(type.get());
    const std::vector<hsize_t> dims = h5::spaceDims(path, space.get(), fullName);
    const int ndims = static_cast<int>(dims.size());
    if (ndims < 1 || (rank > 0 && ndims != rank))
        throw Error(path, fullName + " rank", rank > 0 ? std::to_string(rank) : "at least 1",
                    std::to_string(ndims));
    d.shape.assign(dims.begin() + 1, dims.end());
    d.valuesPerToken = 1;
    for (hsize_t s : d.shape) {
        // Room for 8 bytes a value too, so that no window's size in bytes can overflow.
        if (s < 1 || s > static_cast<hsize_t>(std::numeric_limits<int64_t>::max()) ||
            h5::mulOverflows(d.valuesPerToken, static_cast<int64_t>(s), &d.valuesPerToken) ||
            d.valuesPerToken > std::numeric_limits<int64_t>::max() / 8)
            throw Error(path, fullName + " shape", "positive dimensions of a sane size",
                        shapeToString(std::vector<int64_t>(dims.begin(), dims.end())));
    }
    readLength(d);
    readChunking(d);
    return d;
}

// libhdf5 1.10 allocates, for each chunk a read touches, as many bytes as the file's chunk index
// says the chunk takes, and reads them: one index entry saying 1.9 GB made a 27 KB trace take 2 GB
// (fuzzing, issue 10). So the chunk shape is checked here, and each chunk's entry before the first
// read that touches it: its size against the chunk's (with room for deflate) and its end against
// the file's.
void TraceReaderImpl::readChunking(ReadDataset& d) const
{
    Hid plist(H5Dget_create_plist(d.id.get()));
    if (!plist.valid() || H5Pget_layout(plist.get()) != H5D_CHUNKED)
        return;
    const int rank = static_cast<int>(d.shape.size()) + 1;
    std::vector<hsize_t> chunk(static_cast<size_t>(rank), 0);
    if (H5Pget_chunk(plist.get(), rank, chunk.data()) != rank)
        throw Error(path, "cannot read the chunk shape of " + d.name + ": " + h5::errorDetail());
    for (int i = 1; i < rank; ++i)
        if (chunk[static_cast<size_t>(i)] != d.shape[static_cast<size_t>(i - 1)])
            throw Error(path, d.name + " chunk shape", "chunks of whole tokens (as StateScope writes them)",
                        "a chunk dimension " + std::to_string(i) + " of " +
                            std::to_string(chunk[static_cast<size_t>(i)]) + " where a token has " +
                            std::to_string(d.shape[static_cast<size_t>(i - 1)]));
    Hid type(H5Dget_type(d.id.get()));
    const auto elementSize = static_cast<int64_t>(type.valid() ? H5Tget_size(type.get()) : 0);
    int64_t bytes = 0;
    if (chunk[0] < 1 || chunk[0] > static_cast<hsize_t>(kMaxReadChunkBytes) ||
        h5::mulOverflows(static_cast<int64_t>(chunk[0]), d.valuesPerToken, &bytes) ||
        h5::mulOverflows(bytes, elementSize, &bytes) || bytes < 1 || bytes > kMaxReadChunkBytes)
        throw Error(path, d.name + " chunk size",
                    "at most " + std::to_string(kMaxReadChunkBytes >> 20) + " MiB",
                    std::to_string(chunk[0]) + " tokens of " + std::to_string(d.valuesPerToken) + " values");
    d.chunkTokens = static_cast<int64_t>(chunk[0]);
    d.chunkBytes = bytes;
    d.filtered = H5Pget_nfilters(plist.get()) > 0;
}

void TraceReaderImpl::checkChunks(const ReadDataset& d, int64_t begin, int64_t end) const
{
    if (d.chunkTokens <= 0 || end <= begin)
        return;
    const auto first = static_cast<size_t>(begin / d.chunkTokens);
    const auto last = static_cast<size_t>((end - 1) / d.chunkTokens);
    if (d.chunkChecked.size() <= last)
        d.chunkChecked.resize(last + 1, 0);
    hsize_t fileSize = 0;
    for (size_t k = first; k <= last; ++k) {
        if (d.chunkChecked[k])
            continue;
        // From the file system: libhdf5's own idea of the end of a file that a writer is still
        // growing (SWMR) is where the file ended when it was opened.
        if (fileSize == 0) {
            struct stat st {};
            if (::stat(path.c_str(), &st) != 0)
                throw Error(path, std::string("cannot read the file's size: ") + std::strerror(errno));
            fileSize = static_cast<hsize_t>(st.st_size);
        }
        std::vector<hsize_t> offset(d.shape.size() + 1, 0);
        offset[0] = static_cast<hsize_t>(k) * static_cast<hsize_t>(d.chunkTokens);
        unsigned filterMask = 0;
        haddr_t address = HADDR_UNDEF;
        hsize_t size = 0;
        if (H5Dget_chunk_info_by_coord(d.id.get(), offset.data(), &filterMask, &address, &size) < 0)
            throw Error(path, "cannot read the chunk index of " + d.name + ": " + h5::errorDetail());
        if (address != HADDR_UNDEF) { // else never written: read as the fill value, nothing allocated
            const auto expected = static_cast<hsize_t>(d.chunkBytes);
            // Deflate's worst case adds 5 bytes per 16 KB block; the bound leaves room to spare.
            const hsize_t most = d.filtered ? expected + expected / 8 + 4096 : expected;
            const bool sizeOk = d.filtered ? size >= 1 && size <= most : size == expected;
            if (!sizeOk || address > fileSize || size > fileSize - address)
                throw Error(path, d.name + " chunk " + std::to_string(k),
                            (d.filtered ? "at most " + std::to_string(most) : std::to_string(expected)) +
                                " bytes inside the file's " + std::to_string(fileSize),
                            std::to_string(size) + " bytes at byte " + std::to_string(address));
        }
        d.chunkChecked[k] = 1;
    }
}

void TraceReaderImpl::readProbes()
{
    const hid_t f = file.get();
    if (H5Lexists(f, "probes", H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        throw Error(path, "/probes", "a group", "nothing (missing)");
    }
    Hid group(H5Gopen2(f, "probes", H5P_DEFAULT));
    if (!group.valid()) {
        H5Eclear2(H5E_DEFAULT);
        throw Error(path, "/probes", "a group", "something else");
    }
    // Creation order when the writer kept it (StateScope does), else alphabetical.
    for (const std::string& name : h5::linkNames(path, group.get(), "/probes", kMaxProbes)) {
        ReadDataset d = openDataset(group.get(), "/probes/" + name, name, H5T_FLOAT, 0);
        ProbeDesc desc;
        desc.name = name;
        desc.shape.assign(d.shape.begin(), d.shape.end());
        desc.description = h5::readStringAttribute(path, d.id.get(), d.name + ":", "description");
        desc.headMeaning = h5::readStringAttribute(path, d.id.get(), d.name + ":", "head_meaning");
        desc.axes =
            probeAxes(h5::readStringAttribute(path, d.id.get(), d.name + ":", "axes"), desc.shape.size());
        probeIndex[name] = probes.size();
        probes.push_back(std::move(d));
        header.probes.push_back(std::move(desc));
    }
}

void TraceReaderImpl::readDerived()
{
    const hid_t f = file.get();
    if (header.schemaVersion < 4 || H5Lexists(f, "derived", H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return;
    }
    Hid group(H5Gopen2(f, "derived", H5P_DEFAULT));
    if (!group.valid()) {
        H5Eclear2(H5E_DEFAULT);
        throw Error(path, "/derived", "a group", "something else");
    }
    std::vector<std::pair<int64_t, ProbeDesc>> found;
    for (const std::string& name : h5::linkNames(path, group.get(), "/derived", kMaxProbes)) {
        const std::string where = "/derived/" + name;
        if (probeIndex.count(name) || derived.count(name))
            throw Error(path, where, "a probe not also stored in /probes",
                        "one named \"" + name + "\" there too");
        Hid ds(H5Dopen2(group.get(), name.c_str(), H5P_DEFAULT));
        Hid type(ds.valid() ? H5Dget_type(ds.get()) : H5I_INVALID_HID);
        if (!ds.valid() || !type.valid() || H5Tget_class(type.get()) != H5T_FLOAT) {
            H5Eclear2(H5E_DEFAULT);
            throw Error(path, where, "a float dataset", "something else");
        }
        Hid space(H5Dget_space(ds.get()));
        if (!space.valid())
            throw Error(path, "cannot read the shape of " + where + ": " + h5::errorDetail());
        const std::vector<hsize_t> dims = h5::spaceDims(path, space.get(), where);
        ProbeDesc desc;
        desc.name = name;
        desc.shape.assign(dims.begin(), dims.end());
        const std::string at = where + ":";
        desc.description = h5::readStringAttribute(path, ds.get(), at, "description");
        desc.headMeaning = h5::readStringAttribute(path, ds.get(), at, "head_meaning");
        readText(ds.get(), at, "unit", &desc.unit);
        readText(ds.get(), at, "label", &desc.label);
        std::string summary, rule;
        readText(ds.get(), at, "summary", &summary);
        if (!summary.empty()) {
            try {
                desc.summary = probeSummaryFromName(summary);
            } catch (const Error& e) {
                throw Error(path, "attribute " + at + "summary", e.expected(), e.actual());
            }
        }
        readText(ds.get(), at, "from", &desc.derivedFrom);
        readText(ds.get(), at, "rule", &rule);
        if (rule != kDerivedRule)
            throw Error(path, "attribute " + at + "rule", kDerivedRule, "\"" + rule + "\"");
        const auto source = probeIndex.find(desc.derivedFrom);
        if (source == probeIndex.end() || probes[source->second].shape != dims)
            throw Error(path, "attribute " + at + "from",
                        "a probe in /probes of the shape " + shapeToString(desc.shape),
                        "\"" + desc.derivedFrom + "\"");
        desc.axes = probeAxes(h5::readStringAttribute(path, ds.get(), at, "axes"), desc.shape.size());
        // Its size is that of one token of the source, which the source's own checks bounded.
        desc.derivedScale.resize(static_cast<size_t>(probes[source->second].valuesPerToken));
        if (H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, desc.derivedScale.data()) < 0)
            throw Error(path, "cannot read " + where + ": " + h5::errorDetail());
        for (float s : desc.derivedScale)
            if (!std::isfinite(s))
                throw Error(path, where, "finite scales", std::to_string(s));
        const AttributeValue position = h5::readAttribute(path, ds.get(), at, "position");
        derived[name] = {source->second, desc.derivedScale};
        found.emplace_back(position.kind == AttributeValue::Integer ? position.integer
                                                                    : std::numeric_limits<int64_t>::max(),
                           std::move(desc));
    }
    // In the order the model reported them: each at its position among all probes.
    std::stable_sort(found.begin(), found.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [position, desc] : found) {
        const int64_t at = std::clamp<int64_t>(position, 0, static_cast<int64_t>(header.probes.size()));
        header.probes.insert(header.probes.begin() + at, std::move(desc));
    }
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
    if (h5::mulOverflows(count, d.valuesPerToken, &values) ||
        static_cast<uint64_t>(values) > std::vector<T>().max_size())
        throw Error(path, "cannot read " + d.name + ": a window of " + std::to_string(count) +
                              " tokens is too large");
    std::vector<T> out;
    try {
        out.resize(static_cast<size_t>(values));
    } catch (const std::bad_alloc&) {
        throw Error(path, "cannot read " + d.name + ": a window of " + std::to_string(count) +
                              " tokens does not fit in memory");
    }
    if (values == 0)
        return out;
    const int rank = static_cast<int>(d.shape.size()) + 1;
    std::vector<hsize_t> start(rank, 0), dims(rank);
    start[0] = static_cast<hsize_t>(begin);
    dims[0] = static_cast<hsize_t>(count);
    for (int i = 1; i < rank; ++i)
        dims[i] = d.shape[i - 1];
    checkChunks(d, begin, end);
    Hid fileSpace(H5Dget_space(d.id.get()));
    // The memory space has the selection's shape: with any other (say 1-D) HDF5 maps elements to
    // chunks one at a time, several times slower.
    Hid memSpace(H5Screate_simple(rank, dims.data(), nullptr));
    if (!fileSpace.valid() || !memSpace.valid() ||
        H5Sselect_hyperslab(fileSpace.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr) <
            0 ||
        H5Dread(d.id.get(), memType, memSpace.get(), fileSpace.get(), H5P_DEFAULT, out.data()) < 0)
        throw Error(path, "cannot read tokens [" + std::to_string(begin) + ", " + std::to_string(end) +
                              ") of " + d.name + ": " + h5::errorDetail());
    return out;
}

TraceReader::TraceReader(const std::string& path) : m_impl(std::make_unique<TraceReaderImpl>())
{
    h5::quiet();
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
        throw Error(path, "cannot open the trace: " + h5::errorDetail());

    // SWMR read first: it is the only way into a file a writer still has open or a killed writer
    // left flagged as open; files in older formats need the plain open.
    // Under SWMR, HDF5 retries a metadata read whose checksum fails up to 100 times by default, with
    // growing sleeps between, in case a writer was midway through updating it: one flipped byte
    // made opening a trace take minutes. A few retries cover a live writer's torn reads.
    Hid fapl(H5Pcreate(H5P_FILE_ACCESS));
    if (!fapl.valid() || H5Pset_metadata_read_attempts(fapl.get(), kSwmrReadAttempts) < 0)
        throw Error(path, "cannot open the trace: " + h5::errorDetail());
    r.file = Hid(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()));
    r.swmr = r.file.valid();
    if (!r.swmr) {
        H5Eclear2(H5E_DEFAULT);
        r.file = Hid(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    }
    if (!r.file.valid())
        throw Error(path, "cannot open the trace: " + h5::errorDetail());
    const hid_t f = r.file.get();

    TraceHeader& h = r.header;
    h.schemaVersion = r.readSchemaVersion();
    h.architecture = h5::readStringAttribute(path, f, "", "architecture");
    h.modelConfigJson = h5::readStringAttribute(path, f, "", "model_config");
    h.modelPath = h5::readStringAttribute(path, f, "", "model_path");
    h.dtype = h5::readStringAttribute(path, f, "", "dtype");
    h.device = h5::readStringAttribute(path, f, "", "device");
    h.input = h5::readStringAttribute(path, f, "", "input");
    h.startTime = h5::readStringAttribute(path, f, "", "start_time");
    h.softwareVersion = h5::readStringAttribute(path, f, "", "software_version");
    const AttributeValue completed = h5::readAttribute(path, f, "", "completed");
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
    r.readProbes();

    // Schema 1 implies what schema 2 states; a schema-2 file that leaves an attribute out (another
    // producer, say h5py) gets the same fallback for it.
    deriveSchema2Fields(&h);
    if (h.schemaVersion >= 2)
        r.readSchema2Header();
    r.readDerived();

    r.computeTokens();
    if (r.completed) {
        const AttributeValue tokens = h5::readAttribute(path, f, "", "tokens");
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
    h5::quiet();
    return m_impl->read<int32_t>(m_impl->ids, H5T_NATIVE_INT32, begin, end);
}

std::vector<int64_t> TraceReader::offsets(int64_t begin, int64_t end) const
{
    h5::quiet();
    if (!m_impl->offsets.id.valid()) {
        m_impl->checkRange(begin, &end);
        return {};
    }
    return m_impl->read<int64_t>(m_impl->offsets, H5T_NATIVE_INT64, begin, end);
}

std::vector<float> TraceReader::nll(int64_t begin, int64_t end) const
{
    h5::quiet();
    return m_impl->read<float>(m_impl->nll, H5T_NATIVE_FLOAT, begin, end);
}

std::vector<float> TraceReader::probe(const std::string& name, int64_t begin, int64_t end) const
{
    h5::quiet();
    const auto it = m_impl->probeIndex.find(name);
    if (it == m_impl->probeIndex.end()) {
        const auto derived = m_impl->derived.find(name);
        if (derived == m_impl->derived.end())
            throw Error(m_impl->path, "no probe named \"" + name + "\" in the trace");
        const ReadDataset& d = m_impl->probes[derived->second.source];
        std::vector<float> values = m_impl->read<float>(d, H5T_NATIVE_FLOAT, begin, end);
        decodeDerivedInPlace(values.data(), values.size(), d.encoding, derived->second.scale);
        return values;
    }
    const ReadDataset& d = m_impl->probes[it->second];
    std::vector<float> values = m_impl->read<float>(d, H5T_NATIVE_FLOAT, begin, end);
    decodeInPlace(values.data(), values.size(), d.encoding);
    return values;
}

ProbeEncoding TraceReader::probeEncoding(const std::string& name) const
{
    const auto it = m_impl->probeIndex.find(name);
    if (it == m_impl->probeIndex.end() && m_impl->derived.count(name))
        return m_impl->probes[m_impl->derived.at(name).source]
            .encoding; // the source's, which bounds its error
    if (it == m_impl->probeIndex.end())
        throw Error(m_impl->path, "no probe named \"" + name + "\" in the trace");
    return m_impl->probes[it->second].encoding;
}

std::string TraceReader::attribute(const std::string& name) const
{
    h5::quiet();
    const AttributeValue v = h5::readAttribute(m_impl->path, m_impl->file.get(), "", name);
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

void TraceReader::readAllAttributes() const
{
    h5::quiet();
    const TraceReaderImpl& r = *m_impl;
    constexpr size_t kMaxAttributes = 1024;
    auto readAll = [&](hid_t loc, const std::string& where) {
        std::vector<std::string> names;
        auto collect = [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
            auto* out = static_cast<std::vector<std::string>*>(data);
            if (out->size() >= kMaxAttributes)
                return 1; // stop: the count is reported below
            out->emplace_back(name);
            return 0;
        };
        hsize_t index = 0;
        if (H5Aiterate2(loc, H5_INDEX_NAME, H5_ITER_NATIVE, &index, collect, &names) < 0)
            throw Error(r.path, "cannot list the attributes of " + where + ": " + h5::errorDetail());
        if (names.size() >= kMaxAttributes)
            throw Error(r.path, where + " attributes", "at most " + std::to_string(kMaxAttributes - 1),
                        "more");
        for (const std::string& name : names)
            h5::readAttribute(r.path, loc, where + ":", name);
    };
    readAll(r.file.get(), "/");
    for (const char* group : {"tokens", "probes"}) {
        Hid g(H5Gopen2(r.file.get(), group, H5P_DEFAULT));
        if (!g.valid()) {
            H5Eclear2(H5E_DEFAULT);
            continue;
        }
        readAll(g.get(), std::string("/") + group);
    }
    std::vector<const ReadDataset*> all{&r.ids, &r.nll};
    if (r.offsets.id.valid())
        all.push_back(&r.offsets);
    for (const ReadDataset& p : r.probes)
        all.push_back(&p);
    for (const ReadDataset* d : all)
        readAll(d->id.get(), d->name);
}

int64_t TraceReader::refresh()
{
    h5::quiet();
    TraceReaderImpl& r = *m_impl;
    if (!r.swmr)
        return r.tokens;
    // The root first: a writer sets completed only after its data is on disk, so data refreshed
    // after it is at least as long as completed promises.
    {
        Hid root(H5Gopen2(r.file.get(), "/", H5P_DEFAULT));
        if (!root.valid() || H5Orefresh(root.get()) < 0)
            throw Error(r.path, "cannot refresh the trace: " + h5::errorDetail());
    }
    const AttributeValue completed = h5::readAttribute(r.path, r.file.get(), "", "completed");
    r.completed = completed.kind == AttributeValue::Integer && completed.integer != 0;
    std::vector<ReadDataset*> all{&r.ids, &r.nll};
    if (r.offsets.id.valid())
        all.push_back(&r.offsets);
    for (ReadDataset& p : r.probes)
        all.push_back(&p);
    for (ReadDataset* d : all) {
        if (H5Drefresh(d->id.get()) < 0)
            throw Error(r.path, "cannot refresh " + d->name + ": " + h5::errorDetail());
        r.readLength(*d);
    }
    r.computeTokens();
    return r.tokens;
}

} // namespace statescope
