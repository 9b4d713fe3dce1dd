#include "models/ModelFolder.h"

#include "Error.h"
#include "io/Json.h"
#include "io/MappedFile.h"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace statescope {

namespace {

// A config.json: "" when missing (the caller says so); a FIFO, a device or a huge file is refused
// rather than read forever.
std::string readText(const std::string& path)
{
    std::error_code ec;
    if (!fs::exists(path, ec))
        return {};
    const auto file = MappedFile::open(path);
    constexpr size_t kMaxConfigBytes = 16u << 20;
    if (file->size() > kMaxConfigBytes)
        throw Error(path, "file size", "at most 16 MiB for a config.json",
                    std::to_string(file->size()) + " bytes");
    return std::string(reinterpret_cast<const char*>(file->data()), file->size());
}

std::string humanBytes(double bytes)
{
    const char* units[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
    int u = 0;
    while (bytes >= 1000 && u < 6) {
        bytes /= 1000;
        ++u;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
    return buf;
}

} // namespace

// The weight files must hold at least two bytes (16-bit, the narrowest dtype read) per parameter the
// config implies: a config that claims a larger model than its weights is refused here, before a
// loader or LibTorch tries to allocate for it.
void checkWeightBytes(const ModelFolder& m, uint64_t total)
{
    const double needed = 2.0 * static_cast<double>(m.shape.minParameters);
    if (needed > static_cast<double>(total)) {
        std::string files = fs::path(m.weightFiles.front()).filename().string();
        if (m.weightFiles.size() > 1)
            files += " and " + std::to_string(m.weightFiles.size() - 1) + " more";
        throw Error(m.configPath, "model size",
                    "weights the config describes: at least " + std::to_string(m.shape.minParameters) +
                        " parameters, " + humanBytes(needed) + " in 16-bit",
                    humanBytes(static_cast<double>(total)) + " in " + files);
    }
}

void checkMemoryFor(const ModelShape& shape, int bytesPerElement, const std::string& what)
{
    const double needed = static_cast<double>(shape.minParameters) * bytesPerElement;
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    double kb = 0;
    while (meminfo >> key >> kb) {
        if (key == "MemAvailable:")
            break;
        meminfo.ignore(1 << 10, '\n');
        kb = 0;
    }
    if (kb > 0 && needed > kb * 1024.0)
        throw Error(what, "memory",
                    "weights that fit in this machine's " + humanBytes(kb * 1024.0) + " of available memory",
                    std::to_string(shape.minParameters) + " parameters, " + humanBytes(needed));
}

std::optional<double> predictedForgetThreshold(int64_t stateSize)
{
    const double nsMillions = static_cast<double>(stateSize) / 1e6;
    const double t = (5.172 * nsMillions - 4.469) * 1000.0;
    if (!(t > 0))
        return std::nullopt;
    return t;
}

ModelFolder inspectModelFolder(const std::string& dir, ProbeDetail detail)
{
    ModelFolder m;
    m.path = dir;
    std::error_code ec;
    if (!fs::exists(dir, ec))
        throw Error(dir, "model folder does not exist");
    if (!fs::is_directory(dir, ec))
        throw Error(dir, "not a folder (a model is a folder with config.json and weights)");
    m.configPath = (fs::path(dir) / "config.json").string();
    if (!fs::exists(m.configPath, ec))
        throw Error(m.configPath, "missing: a model folder needs config.json");
    m.configJson = readText(m.configPath);
    const nlohmann::json j = parsePythonJson(m.configJson, m.configPath);
    if (!j.is_object())
        throw Error(m.configPath, "top level", "a JSON object", j.type_name());

    const auto [architecture, layout] = recogniseConfig(j, m.configPath);
    m.architecture = architecture;
    m.shape = architecture->describe(j, layout, m.configPath, detail);

    const fs::path p(dir);
    if (fs::exists(p / "model.safetensors.index.json", ec)) {
        const std::string indexPath = (p / "model.safetensors.index.json").string();
        const nlohmann::json idx = loadPythonJson(indexPath);
        if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
            throw Error(indexPath, "weight_map", "an object mapping tensor names to shard files", "none");
        std::vector<std::string> shards;
        for (const auto& [name, file] : idx["weight_map"].items()) {
            if (!file.is_string())
                throw Error(indexPath, "weight_map." + name, "a file name", file.dump());
            const std::string f = file.get<std::string>();
            if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
                throw Error(indexPath, "weight_map." + name, "a file inside the model folder", f);
            if (std::find(shards.begin(), shards.end(), f) == shards.end())
                shards.push_back(f);
        }
        for (const auto& s : shards)
            m.weightFiles.push_back((p / s).string());
        m.weightsFormat = "safetensors";
    } else if (fs::exists(p / "model.safetensors", ec)) {
        m.weightFiles.push_back((p / "model.safetensors").string());
        m.weightsFormat = "safetensors";
    } else if (fs::exists(p / "pytorch_model.bin", ec)) {
        m.weightFiles.push_back((p / "pytorch_model.bin").string());
        m.weightsFormat = "pytorch";
    } else {
        throw Error(
            dir, "no weights: expected model.safetensors, model.safetensors.index.json or pytorch_model.bin");
    }

    if (fs::exists(p / "tokenizer.json", ec))
        m.tokenizerPath = (p / "tokenizer.json").string();
    if (fs::exists(p / "model_card.json", ec)) {
        m.cardPath = (p / "model_card.json").string();
        m.card = readModelCard(*m.cardPath);
        m.trainingLength = m.card->trainingLength();
    }
    return m;
}

} // namespace statescope
