// The architecture registry: one line per architecture. Adding one is its own file under
// engine/models/, its fixtures, and a line here (docs/adding-an-architecture.md).
#include "models/Architecture.h"

#include "Error.h"

#include <nlohmann/json.hpp>

namespace statescope {

const Architecture& mamba2Architecture(); // models/Mamba2.cpp
const Architecture& mambaArchitecture();  // models/Mamba.cpp
const Architecture& rwkv5Architecture();  // models/Rwkv5.cpp
const Architecture& rwkv6Architecture();  // models/Rwkv6.cpp
const Architecture& hgrn2Architecture();  // models/Hgrn2.cpp
const Architecture& glaArchitecture();    // models/Gla.cpp

const std::vector<const Architecture*>& architectures()
{
    static const std::vector<const Architecture*> all{
        &mamba2Architecture(), &mambaArchitecture(), &rwkv5Architecture(),
        &rwkv6Architecture(),  &hgrn2Architecture(), &glaArchitecture(),
    };
    return all;
}

const Architecture* findArchitecture(const std::string& name)
{
    for (const Architecture* a : architectures())
        if (a->name() == name)
            return a;
    return nullptr;
}

std::string supportedArchitectures()
{
    std::string s;
    for (const Architecture* a : architectures())
        s += (s.empty() ? "" : ", ") + a->displayName() + " (" + a->name() + ")";
    return s;
}

std::pair<const Architecture*, std::string> recogniseConfig(const nlohmann::json& config,
                                                            const std::string& file)
{
    // The architectures read these keys with a type in mind; a config that gives them another one is
    // named here rather than failing inside the JSON library with no file in the message.
    if (!config.is_object())
        throw Error(file, "top level", "a JSON object", config.type_name());
    auto type = config.find("model_type");
    if (type != config.end() && !type->is_string())
        throw Error(file, "model_type", "a string naming the architecture", type->dump());
    auto ssm = config.find("ssm_cfg");
    if (ssm != config.end() && !ssm->is_object() && !ssm->is_null())
        throw Error(file, "ssm_cfg", "an object", ssm->dump());
    if (ssm != config.end() && ssm->is_object()) {
        auto layer = ssm->find("layer");
        if (layer != ssm->end() && !layer->is_string())
            throw Error(file, "ssm_cfg.layer", "a string naming the layer (\"Mamba2\")", layer->dump());
    }
    for (const Architecture* a : architectures()) {
        const std::string layout = a->recognise(config);
        if (!layout.empty())
            return {a, layout};
    }
    std::string found;
    auto it = config.find("model_type");
    if (it != config.end())
        found = "model_type " + it->dump();
    else if (config.contains("ssm_cfg"))
        found = "ssm_cfg " + config["ssm_cfg"].dump();
    else
        found = "no model_type";
    throw Error(file, "model_type", "a supported architecture: " + supportedArchitectures(),
                found + " (unsupported architecture)");
}

nlohmann::json Architecture::configFromTensors(const std::map<std::string, std::vector<int64_t>>&,
                                               const nlohmann::json&, const std::string&) const
{
    return nullptr;
}

const char* probeDetailName(ProbeDetail d)
{
    return d == ProbeDetail::Full ? "full" : "summary";
}

} // namespace statescope
