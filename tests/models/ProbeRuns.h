#pragma once

// What the model tests share: the built-in tiny-collapse model and its held-out text, and a whole run
// collected as per-token NLL and probe values.
#include "runtime/Runner.h"
#include "tokenizers/Tokenizer.h"

#include <QFile>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace statescope::testing {

inline const std::string kCollapseModel = STATESCOPE_RESOURCES_DIR "/models/tiny-collapse";

// The first `bytes` bytes of the held-out KJV text in tiny-collapse's tokens (one a byte).
inline std::vector<int32_t> heldOutTokens(size_t bytes)
{
    QFile f(QStringLiteral(STATESCOPE_RESOURCES_DIR "/texts/kjv-heldout.txt"));
    if (!f.open(QIODevice::ReadOnly))
        return {};
    const QByteArray b = f.read(static_cast<qint64>(bytes));
    return Tokenizer::fromFile(kCollapseModel + "/tokenizer.json")
        .encode(std::string(b.constData(), b.size()))
        .ids;
}

struct Run {
    std::vector<float> nll;
    std::map<std::string, std::vector<float>> probes; // [T, layers, units]
    int64_t units = 0;                                // per token: layers * units
};

// The whole stream from a reset, chunk by chunk as the runner's options say.
inline Run runAll(Runner& runner, const std::vector<int32_t>& ids)
{
    Run r;
    const std::vector<ProbeDesc> descs = runner.probes();
    runner.reset();
    runner.run(ids, nullptr, [&](const ChunkProbes& c) {
        r.nll.insert(r.nll.end(), c.nll.begin(), c.nll.end());
        for (size_t i = 0; i < descs.size(); ++i) {
            auto& v = r.probes[descs[i].name];
            v.insert(v.end(), c.values[i].begin(), c.values[i].end());
        }
    });
    // Every architecture reports decay; a lookup with [] would add an empty probe.
    const auto decay = r.probes.find("decay");
    r.units = decay == r.probes.end() ? 0 : static_cast<int64_t>(decay->second.size() / ids.size());
    return r;
}

// The largest |a - b| / max(floor, |b|), NaN pairs skipped; infinite for different sizes. The floor
// makes a difference of values near 0 (an NLL near 0 is a difference of two near-equal logs) absolute.
inline double maxRelative(const std::vector<float>& a, const std::vector<float>& b, double floor = 1e-2)
{
    if (a.size() != b.size())
        return INFINITY;
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) && std::isnan(b[i]))
            continue;
        worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(floor, std::abs(double(b[i]))));
    }
    return worst;
}

} // namespace statescope::testing
