// Fuzz harness: trace files (trace/TraceFile.h) as the window opens them (widgets/TraceData.cpp
// loadFile): the header, every series block by block, the input's tokens and offsets, the
// attributes it shows, and a refresh as for a growing trace. The bytes go through HDF5 itself, which
// is not instrumented: a crash inside libhdf5 is a finding about the library, reported all the same.
#include "Error.h"
#include "FuzzInput.h"
#include "trace/TraceCheck.h"
#include "trace/TraceFile.h"

#include <algorithm>
#include <string>

using statescope::fuzz::keep;

namespace {

// The window reads 8M floats a block (TraceData.cpp kLoadBlockFloats), between 256 and 65536 tokens.
constexpr int64_t kBlockFloats = int64_t(8) << 20;
// The window reads every token; the harness reads the first blocks and the last token, so that an
// input claiming billions of (fill-value) tokens stays one input and not an hour.
constexpr int64_t kMaxBlocks = 3;

void readBlock(const statescope::TraceReader& reader, int64_t begin, int64_t end)
{
    const statescope::TraceHeader& h = reader.header();
    keep(reader.ids(begin, end));
    if (h.hasOffsets)
        keep(reader.offsets(begin, end));
    keep(reader.nll(begin, end));
    for (const statescope::ProbeDesc& p : h.probes)
        keep(reader.probe(p.name, begin, end));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string& path = statescope::fuzz::writeInputFile(data, size, "trace.h5");
    try {
        // As the window does: a trace it did not write is first read by statescope-trace-check, in a
        // process of its own (crashes inside libhdf5 1.10 end that process, not this one). Where the
        // checker is not built (a fuzzing build), this reads in process, and libhdf5's own crashes
        // are what the fuzzer finds.
        statescope::checkTraceIsolated(path, statescope::TraceCheckDepth::Full);
        statescope::TraceReader reader(path);
        const statescope::TraceHeader& h = reader.header();
        keep(reader.completed());
        int64_t perToken = 1;
        for (const statescope::ProbeDesc& p : h.probes) {
            perToken += p.valuesPerToken();
            keep(p.name.size() + p.label.size() + p.unit.size() + p.axes.size());
        }
        const int64_t block =
            std::clamp<int64_t>(kBlockFloats / std::max<int64_t>(perToken, 1), 256, 1 << 16);
        const int64_t total = reader.tokens();
        int64_t blocks = 0;
        for (int64_t begin = 0; begin < total && blocks < kMaxBlocks; begin += block, ++blocks)
            readBlock(reader, begin, std::min(total, begin + block));
        if (total > 0)
            readBlock(reader, std::max<int64_t>(0, total - 1), total);
        for (const char* name : {"model_config", "input", "run_settings", "tokens", "completed", "end_time"})
            keep(reader.attribute(name));
        keep(statescope::parseSchema1Input(h.input).kind);
        keep(reader.refresh());
    } catch (const statescope::Error&) {
    }
    return 0;
}
