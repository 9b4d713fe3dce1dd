#pragma once

// The trace file (HDF5, schema version 2; version 1 still opens): what one run recorded, token by
// token, and everything needed to show it without the model folder. docs/trace-format.md describes
// the layout for readers outside StateScope (h5py, MATLAB, ...).
#include "probes/Probes.h"
#include "trace/ProbeEncoding.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace statescope {

// 3: probes may be stored in half precision (ProbeEncoding, each probe's `encoding` attribute). The
// writer writes 2 when every probe is float32, so that readers of schema 2 keep reading those.
// 4: a probe may be derived from another (ProbeDesc::derivedFrom, /derived/<name>); written only then.
constexpr int kTraceSchemaVersion = 4;
// The one rule a derived probe has: value = scale * (-ln from), elementwise over a token's values.
inline constexpr const char* kDerivedRule = "scale_times_neg_log";

// Where a run's tokens came from, in machine-readable form (schema 2).
struct TraceInput {
    std::string kind;          // "text" (a file or typed text), "ids" (a file of ids), "prompt" (a generator)
    std::string path;          // the file read, absolute; "" for typed text and generated prompts
    std::string prompt;        // the generator spec, e.g. "newlines:4096"; "" otherwise
    std::string tokenizer;     // identity: "gpt-neox-20b.json (byte-level BPE, 50277 tokens)"; "" for ids
    std::string tokenizerPath; // the tokenizer.json used, absolute; "" if none
    // A passkey prompt's needle sentence ("The passkey is K. Remember it. K is the passkey."): the
    // key and the tokens it spans, first..last inclusive; "" and -1 when the input has none.
    std::string passkey;
    int64_t needleFirst = -1, needleLast = -1;
};

struct TraceHeader {
    int schemaVersion = kTraceSchemaVersion; // as read; the writer always writes the current one
    std::string architecture;                // registry name, "mamba2"
    std::string architectureName;            // display name, "Mamba-2" (schema 1: empty)
    std::string modelConfigJson, modelPath, dtype, device;
    std::string input; // human-readable description of the input
    std::string startTime, softwareVersion;
    bool hasOffsets = false;
    std::vector<ProbeDesc> probes;

    // Schema 2: the trace describes itself, so the window never needs the model folder.
    TraceInput inputSource;
    int64_t layers = 0, units = 0; // the probes' [layer, unit] axes
    std::string unitName;          // "head", "channel group"
    int64_t stateSize = 0;         // N_S (0: unknown)
    std::string stateSizeDefinition;
    double forgetThreshold = -1; // tokens, the paper's fit; < 0: none
    int64_t trainingLength = 0;  // tokens, from the model card; 0: unknown
    int64_t vocabSize = 0;       // padded rows of the output layer; 0: unknown
    std::string runSettings; // JSON: {"chunk_size": 2048, "threads": 2, "reference": false, "probe_detail":
                             // "summary"}
    // How the probes are stored (schema 3): written by the writer, and read back as Float16 when any
    // probe is stored in half precision. TraceReader::probeEncoding() gives each probe's encoding.
    ProbePrecision probePrecision = ProbePrecision::Float32;
};

// What a schema-1 trace's free-text `input` attribute tells of the input: "text: FILE (N bytes,
// tokenizer NAME)", "ids: FILE" and "prompt: SPEC (...)" from the CLI, the window's "text: FILE",
// "typed text" and generator descriptions ("newlines × 4096"). Empty fields for anything else.
TraceInput parseSchema1Input(const std::string& input);

class TraceWriterImpl;
class TraceReaderImpl;

// Where a TraceWriter's appends spent their time, summed: what bounds a traced run (bench prints it).
struct TraceWriteTimings {
    double encode = 0;       // the half-precision encoding of the probes
    double compressWait = 0; // waiting for the compressor threads
    double write = 0;        // everything else: HDF5's chunk writes, extents and flushes
    // Chunks written, and of them those stored unfiltered (incompressible values, or the rewrites
    // of an unfinished chunk that docs/trace-format.md describes).
    int64_t chunks = 0;
    int64_t chunksUnfiltered = 0;
    // Chunks whose zlib streams hold literals only (literalDeflate), and of the whole chunks
    // compressed, those coded so because setCatchingUp() was on (whatever the dataset's verdict).
    int64_t chunksLiterals = 0;
    int64_t chunksBehind = 0;
};

// Appends a run to a trace as it goes, so that memory does not grow with the run and a run that is
// cancelled or killed still leaves a readable file with everything appended before, marked
// completed = 0. The file stays in SWMR write mode until finish() or destruction: other processes
// may read it meanwhile (TraceReader, or h5py with swmr=True). Not thread-safe: one thread at a time.
class TraceWriter {
public:
    // Creates or truncates path. Throws Error naming the path if it cannot, or if the header's probes
    // are malformed (empty or duplicate names, a dimension <= 0, axis names not matching the shape).
    // appendTokens: how many tokens the caller's appends will mostly hold (the window's 64, the
    // command line's --chunk-size). Chunks then hold up to the largest power of two that divides it
    // (64 when it is no multiple of 64; at most 4096 tokens and about 1 MiB), so that such appends
    // fill whole chunks; appends of other sizes work too, at some cost (docs/trace-format.md).
    static constexpr int64_t kWindowAppendTokens = 64;
    TraceWriter(const std::string& path, const TraceHeader& header,
                int64_t appendTokens = kWindowAppendTokens);
    ~TraceWriter(); // closes without marking the trace complete; never throws
    TraceWriter(const TraceWriter&) = delete;
    TraceWriter& operator=(const TraceWriter&) = delete;

    // chunk.start must equal tokens(); sizes must match the header. The chunk is on disk (and
    // survives a kill) when this returns. Throws Error; after an I/O failure the writer refuses
    // further appends.
    void append(const ChunkProbes& chunk);
    // The checks of append() that need no file: the sizes of the chunk's arrays against the header.
    // Throws Error naming the array. Reads only what the constructor set, so another thread may call
    // it while one appends.
    void checkChunk(const ChunkProbes& chunk) const;
    // Records end_time and completed = 1, then closes the file. A second call does nothing.
    void finish();
    // While on, the following appends code every compressed whole chunk as literals (literalDeflate,
    // about eight times faster than deflate), whatever its dataset's verdict, for a file no larger than
    // unfiltered and as small as deflate's on noisy values (docs/trace-format.md). AsyncTraceWriter
    // turns it on while another chunk waits behind the one it writes, so that the trace keeps up
    // with the engine.
    void setCatchingUp(bool on);

    int64_t tokens() const;
    const std::string& path() const;
    TraceWriteTimings timings() const;

private:
    std::unique_ptr<TraceWriterImpl> m_impl;
};

// Reads a trace, whole or in token windows (hyperslabs), without loading more than asked for. Opens
// files that a writer still has open (or that a killed writer left) in SWMR read mode.
class TraceReader {
public:
    // Throws Error naming the file if it is not HDF5, has no schema_version or one other than 1 or 2,
    // or its datasets are missing, of the wrong rank or type, or of uneven lengths in a completed
    // trace. A schema-1 trace (or a schema-2 one lacking an attribute) gets the schema-2 fields its
    // probes and `input` imply (docs/trace-format.md, "Reading schema 1").
    explicit TraceReader(const std::string& path);
    ~TraceReader();
    TraceReader(TraceReader&&) noexcept;
    TraceReader& operator=(TraceReader&&) noexcept;

    const TraceHeader& header() const; // probes in the order the writer created them
    bool completed() const;
    // Tokens readable in every dataset: the length of /tokens/ids, or the shortest dataset if a
    // killed writer left them uneven.
    int64_t tokens() const;

    // [begin, end) with end = -1 meaning tokens(); Error if the range is outside [0, tokens()].
    std::vector<int32_t> ids(int64_t begin = 0, int64_t end = -1) const;
    std::vector<int64_t> offsets(int64_t begin = 0, int64_t end = -1) const; // 2 per token; empty if none
    std::vector<float> nll(int64_t begin = 0, int64_t end = -1) const;
    // Token-major: (end - begin) * valuesPerToken() floats. Error for an unknown probe.
    std::vector<float> probe(const std::string& name, int64_t begin = 0, int64_t end = -1) const;
    // How the probe is stored; probe() returns the values decoded alike.
    ProbeEncoding probeEncoding(const std::string& name) const;

    // A root attribute as text: strings as they are, numbers in decimal; "" if absent.
    std::string attribute(const std::string& name) const;
    // Reads every attribute of the root, the groups and the datasets (the isolated trace check of
    // trace/TraceCheck.h: whatever the file holds is read once where a crash harms nothing).
    void readAllAttributes() const;

    // Picks up what a live writer did since the reader opened (SWMR): new tokens, and completed
    // once it finished. Returns tokens(). Header attributes are read once, at open.
    int64_t refresh();

    const std::string& path() const;

private:
    std::unique_ptr<TraceReaderImpl> m_impl;
};

} // namespace statescope
