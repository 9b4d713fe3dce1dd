#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace statescope {

// How a view reduces a probe over its second axis (heads, channel groups) to one value per layer.
enum class ProbeSummary {
    Mean,          // arithmetic mean (step sizes)
    GeoMean,       // exp(mean log): forget gates, so that a layer's value is its typical per-token decay
    RootSumSquare, // sqrt(sum x^2): norms, so that the layer value is the norm of the layer's whole state
};

const char* probeSummaryName(ProbeSummary s); // "mean", "geomean", "rss"
// Throws Error(field = "summary") for an unknown name.
ProbeSummary probeSummaryFromName(const std::string& name);

// What a probe measures, independent of the architecture that produced it. Every architecture
// reports `decay` (a forget gate per head or channel group, in (0, 1]) and `state_norm` (the
// Frobenius norm of that unit's recurrent state after the token), both shaped [layer, unit];
// anything else (Mamba's `dt`) is an extra probe that traces store and views show by its
// descriptor alone. nll is not a probe: every run has it.
struct ProbeDesc {
    std::string name;              // "dt", "decay", "state_norm"; also its dataset name in the trace
    std::string description;       // one line for tooltips and the trace's attributes
    std::vector<int64_t> shape;    // per token, e.g. {layers, heads}
    std::vector<std::string> axes; // e.g. {"layer", "head"} or {"layer", "channel_group"}
    std::string headMeaning;       // what one unit of the second axis is, e.g. "Mamba-2 SSM head: ..."
    std::string unit;              // "" for dimensionless, "nats", ...
    ProbeSummary summary = ProbeSummary::Mean;
    std::string label; // short name for axes and legends: "α", "‖S‖", "Δ"
    // A probe that a trace stores as a function of another instead of its own values (schema 4,
    // docs/trace-format.md "Derived probes"): value = derivedScale[i] * (-ln derivedFrom[i]) for
    // the i-th value of a token. Mamba-2's Delta is -ln(alpha) / |A| per head, so a large model's
    // trace need not hold both. Empty: the values are stored.
    std::string derivedFrom;
    std::vector<float> derivedScale; // valuesPerToken() values

    int64_t valuesPerToken() const
    {
        int64_t n = 1;
        for (int64_t d : shape)
            n *= d;
        return n;
    }
};

// The probe names every architecture reports.
inline constexpr const char* kDecayProbe = "decay";
inline constexpr const char* kStateNormProbe = "state_norm";

// The results for one contiguous run of tokens [start, start + count).
struct ChunkProbes {
    int64_t start = 0;
    std::vector<int32_t> ids;     // count
    std::vector<int64_t> offsets; // 2 * count (byte begin, end in the input text) or empty
    std::vector<float> nll;       // count; nats; NaN for the first token of the stream
    // One entry per ProbeDesc of the run, each count * valuesPerToken() floats, token-major.
    std::vector<std::vector<float>> values;
    // A probe already in the half-precision encoding its trace stores (trace/ProbeEncoding.h), whose
    // values entry is then empty: a run whose chunks go to a trace alone has the engine encode them
    // where it computed them, so that half the bytes reach the host and no core encodes them again
    // (issue 15). Read-only memory, kept alive by `owner`.
    struct Encoded {
        const uint16_t* data = nullptr; // count * valuesPerToken() halves, or none
        size_t size = 0;
    };
    std::vector<Encoded> encoded; // empty, or one per probe
    std::shared_ptr<const void> encodedOwner;
    // Float values left where the engine put them, its page-locked buffer (a run asked for that with
    // RunLoop::valuesInPlace), whose values entry is then empty: copying them out was the engine
    // thread's largest cost after the launches (issue 15). Read-only memory, kept alive by
    // `inPlaceOwner`; probeValues() reads either kind.
    struct Floats {
        const float* data = nullptr;
        size_t size = 0;
    };
    std::vector<Floats> inPlace; // empty, or one per probe (data null where values holds it)
    std::shared_ptr<const void> inPlaceOwner;

    int64_t count() const { return static_cast<int64_t>(ids.size()); }
    bool isEncoded(size_t probe) const { return probe < encoded.size() && encoded[probe].data != nullptr; }
    bool isInPlace(size_t probe) const { return probe < inPlace.size() && inPlace[probe].data != nullptr; }
    // A probe's float values, in place or in values.
    Floats probeValues(size_t probe) const
    {
        if (isInPlace(probe))
            return inPlace[probe];
        return probe < values.size() ? Floats{values[probe].data(), values[probe].size()} : Floats{};
    }
};

// Which probes a trace keeps, and how finely (issue 15: a 2.7b model's probes are 61 KB a token).
// The engine computes every probe alike; the selection applies to what a run hands on.
struct ProbeSelection {
    std::vector<std::string> names; // empty: every probe; else these, which must include decay and state_norm
    // Each [layer, unit] probe as one value per layer, [layer, 1], reduced by its summary: a view's
    // layer value of the kept trace is the same as of the whole one.
    bool layerSummaries = false;

    bool selectsAll() const { return names.empty() && !layerSummaries; }
};

// The descriptors a selection leaves, in the model's order. Throws Error(what, "probes", ...) for a
// name the model does not report, a duplicate, or a list without decay and state_norm.
std::vector<ProbeDesc> selectProbes(const std::vector<ProbeDesc>& all, const ProbeSelection& selection,
                                    const std::string& what);
// The same selection applied to a chunk computed with the descriptors `all`, on the host: the
// readable reference of what the runner does on the device (TestArchitectures compares the two).
void selectChunk(const std::vector<ProbeDesc>& all, const ProbeSelection& selection, ChunkProbes* chunk);
// Whether a selection keeps the probe, and whether the probe is [layer, unit] (layer summaries apply).
bool probeKept(const ProbeDesc& p, const ProbeSelection& s);
bool probeHasLayerUnits(const ProbeDesc& p);

} // namespace statescope
