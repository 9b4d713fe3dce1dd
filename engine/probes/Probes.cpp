#include "probes/Probes.h"

#include "Error.h"

#include <algorithm>
#include <cmath>

namespace statescope {

const char* probeSummaryName(ProbeSummary s)
{
    switch (s) {
    case ProbeSummary::Mean:
        return "mean";
    case ProbeSummary::GeoMean:
        return "geomean";
    case ProbeSummary::RootSumSquare:
        return "rss";
    }
    return "mean";
}

ProbeSummary probeSummaryFromName(const std::string& name)
{
    for (ProbeSummary s : {ProbeSummary::Mean, ProbeSummary::GeoMean, ProbeSummary::RootSumSquare})
        if (name == probeSummaryName(s))
            return s;
    throw Error("probe", "summary", "mean, geomean or rss", "\"" + name + "\"");
}

bool probeHasLayerUnits(const ProbeDesc& p)
{
    return p.shape.size() == 2;
}

bool probeKept(const ProbeDesc& p, const ProbeSelection& s)
{
    return s.names.empty() || std::find(s.names.begin(), s.names.end(), p.name) != s.names.end();
}

std::vector<ProbeDesc> selectProbes(const std::vector<ProbeDesc>& all, const ProbeSelection& selection,
                                    const std::string& what)
{
    std::string known;
    for (const ProbeDesc& p : all)
        known += (known.empty() ? "" : ", ") + p.name;
    std::vector<std::string> seen;
    for (const std::string& name : selection.names) {
        const bool exists =
            std::any_of(all.begin(), all.end(), [&](const ProbeDesc& p) { return p.name == name; });
        if (!exists || std::find(seen.begin(), seen.end(), name) != seen.end())
            throw Error(what, "probes", "names of this model's probes (" + known + "), each once",
                        "\"" + name + "\"");
        seen.push_back(name);
    }
    if (!selection.names.empty())
        for (const char* required : {kDecayProbe, kStateNormProbe})
            if (std::find(seen.begin(), seen.end(), required) == seen.end())
                throw Error(what, "probes",
                            std::string("a list that includes ") + kDecayProbe + " and " + kStateNormProbe +
                                " (every trace has them)",
                            "no " + std::string(required));
    std::vector<ProbeDesc> out;
    for (const ProbeDesc& p : all) {
        if (!probeKept(p, selection))
            continue;
        ProbeDesc d = p;
        if (selection.layerSummaries && probeHasLayerUnits(d)) {
            d.shape[1] = 1;
            d.description += " (" + std::string(probeSummaryName(d.summary)) + " over the layer's " +
                             std::to_string(p.shape[1]) + " " + (p.axes.size() > 1 ? p.axes[1] : "unit") +
                             "s)";
            if (d.axes.size() > 1)
                d.axes[1] = "layer_summary";
        }
        out.push_back(std::move(d));
    }
    return out;
}

void selectChunk(const std::vector<ProbeDesc>& all, const ProbeSelection& selection, ChunkProbes* chunk)
{
    if (selection.selectsAll())
        return;
    std::vector<std::vector<float>> values;
    const int64_t n = chunk->count();
    for (size_t i = 0; i < all.size() && i < chunk->values.size(); ++i) {
        const ProbeDesc& p = all[i];
        if (!probeKept(p, selection))
            continue;
        std::vector<float>& v = chunk->values[i];
        if (!selection.layerSummaries || !probeHasLayerUnits(p)) {
            values.push_back(std::move(v));
            continue;
        }
        const int64_t layers = p.shape[0], units = p.shape[1];
        std::vector<float> out(static_cast<size_t>(n * layers));
        for (int64_t k = 0; k < n * layers; ++k) {
            const float* x = v.data() + k * units;
            double acc = 0;
            switch (p.summary) {
            case ProbeSummary::Mean:
                for (int64_t u = 0; u < units; ++u)
                    acc += x[u];
                acc /= static_cast<double>(units);
                break;
            case ProbeSummary::GeoMean:
                for (int64_t u = 0; u < units; ++u)
                    acc += std::log(static_cast<double>(x[u]));
                acc = std::exp(acc / static_cast<double>(units));
                break;
            case ProbeSummary::RootSumSquare:
                for (int64_t u = 0; u < units; ++u)
                    acc += static_cast<double>(x[u]) * x[u];
                acc = std::sqrt(acc);
                break;
            }
            out[static_cast<size_t>(k)] = static_cast<float>(acc);
        }
        values.push_back(std::move(out));
    }
    chunk->values = std::move(values);
}

} // namespace statescope
