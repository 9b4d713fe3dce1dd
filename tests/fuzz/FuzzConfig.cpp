// Fuzz harness: a model's config.json as `info` and every run read it (models/ModelFolder.cpp):
// parsePythonJson, the registry's recogniseConfig, then the architecture's describe() for both probe
// details. describe() validates every size a model is built from, so its arithmetic is what a
// hostile config attacks.
#include "Error.h"
#include "FuzzInput.h"
#include "io/Json.h"
#include "models/Architecture.h"
#include "models/ModelFolder.h"

#include <nlohmann/json.hpp>

#include <string>

using statescope::fuzz::keep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string kFile = "config.json";
    try {
        const nlohmann::json j =
            statescope::parsePythonJson(std::string(reinterpret_cast<const char*>(data), size), kFile);
        // inspectModelFolder refuses anything but an object before the registry sees it.
        if (!j.is_object())
            return 0;
        const auto [architecture, layout] = statescope::recogniseConfig(j, kFile);
        for (const statescope::ProbeDetail detail :
             {statescope::ProbeDetail::Summary, statescope::ProbeDetail::Full}) {
            const statescope::ModelShape shape = architecture->describe(j, layout, kFile, detail);
            // What `info` and the trace header compute from the shape.
            keep(statescope::predictedForgetThreshold(shape.stateSize));
            for (const statescope::ProbeDesc& p : shape.probes)
                keep(p.valuesPerToken());
            for (const auto& [key, value] : shape.details)
                keep(key.size() + value.size());
        }
    } catch (const statescope::Error&) {
    }
    return 0;
}
