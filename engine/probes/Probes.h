#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace statescope {

// What a probe measures, independent of the architecture: a name (also its dataset name in the
// trace), the shape it has for one token, the names of those axes, and what the "head" axis means
// for the architecture that produced it (a Mamba-2 SSM head, an RWKV wkv head, ...).
struct ProbeDesc {
    std::string name;                 // "dt", "decay", "state_norm"
    std::string description;          // one line for tooltips and the trace's attributes
    std::vector<int64_t> shape;       // per token, e.g. {layers, heads}
    std::vector<std::string> axes;    // e.g. {"layer", "head"}
    std::string headMeaning;          // e.g. "Mamba-2 SSM head: headdim x d_state state matrix"

    int64_t valuesPerToken() const
    {
        int64_t n = 1;
        for (int64_t d : shape)
            n *= d;
        return n;
    }
};

// The probes the Mamba-2 family reports, with shapes filled in for a model's size.
std::vector<ProbeDesc> mamba2ProbeDescs(int64_t layers, int64_t heads);

// The results for one contiguous run of tokens [start, start + count).
struct ChunkProbes {
    int64_t start = 0;
    std::vector<int32_t> ids;     // count
    std::vector<int64_t> offsets; // 2 * count (byte begin, end in the input text) or empty
    std::vector<float> nll;       // count; nats; NaN for the first token of the stream
    // One entry per ProbeDesc of the run, each count * valuesPerToken() floats, token-major.
    std::vector<std::vector<float>> values;

    int64_t count() const { return static_cast<int64_t>(ids.size()); }
};

} // namespace statescope
