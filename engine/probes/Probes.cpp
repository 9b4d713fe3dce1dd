#include "probes/Probes.h"

#include "Error.h"

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

} // namespace statescope
