#include "models/ModelFolder.h"

#include "Error.h"
#include "io/Json.h"
#include "io/MappedFile.h"
#include "io/TorchCheckpoint.h"
#include "util/Resources.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
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
    const double t = (5.172 * nsMillions - 4.469) * 1024.0; // the paper counts K tokens as 1024
    if (!(t > 0))
        return std::nullopt;
    return t;
}

namespace {

// The one .pth in a folder ("" if none); Error if several, since which one is meant is unclear.
std::string singlePth(const fs::path& dir)
{
    std::string found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        if (e.path().extension() != ".pth" || !e.is_regular_file(ec))
            continue;
        if (!found.empty())
            throw Error(dir.string(), "checkpoint", "one .pth file (or a config.json with model_type)",
                        fs::path(found).filename().string() + " and " + e.path().filename().string());
        found = e.path().string();
    }
    return found;
}

// A checkpoint published without a config (BlinkDL's RWKV .pth): each architecture is asked whether
// the tensors' names and shapes are its own, and the one that says yes writes the config. A
// config.json beside it, if any, holds overrides in the training code's names.
nlohmann::json configFromCheckpoint(const std::string& pth, const std::string& overridesPath)
{
    std::map<std::string, std::vector<int64_t>> shapes;
    for (const RawTensor& t : readTorchCheckpoint(pth))
        shapes[t.name] = t.shape;
    nlohmann::json overrides;
    if (!overridesPath.empty())
        overrides = parsePythonJson(readText(overridesPath), overridesPath);
    const std::string file = overridesPath.empty() ? pth : overridesPath;
    for (const Architecture* a : architectures()) {
        nlohmann::json c = a->configFromTensors(shapes, overrides, file);
        if (!c.is_null())
            return c;
    }
    std::string names;
    int shown = 0;
    for (const auto& [name, shape] : shapes)
        if (shown++ < 3)
            names += (names.empty() ? "" : ", ") + name;
    throw Error(
        pth, "tensors",
        "a checkpoint whose keys name its architecture (without a config.json only RWKV-5.2 and RWKV-6 "
        ".pth files can be read)",
        std::to_string(shapes.size()) + " tensors: " + (names.empty() ? "none" : names + ", ..."));
}

} // namespace

ModelFolder inspectModelFolder(const std::string& dir, ProbeDetail detail)
{
    ModelFolder m;
    m.path = dir;
    std::error_code ec;
    if (!fs::exists(dir, ec))
        throw Error(dir, "model folder does not exist");
    std::string pth;
    nlohmann::json j;
    if (!fs::is_directory(dir, ec)) {
        if (fs::path(dir).extension() != ".pth")
            throw Error(dir, "not a folder (a model is a folder with config.json and weights, or a .pth "
                             "checkpoint that names its architecture in its keys)");
        pth = dir;
        m.configPath = dir;
    } else {
        m.configPath = (fs::path(dir) / "config.json").string();
        const bool hasConfig = fs::exists(m.configPath, ec);
        if (hasConfig) {
            m.configJson = readText(m.configPath);
            j = parsePythonJson(m.configJson, m.configPath);
        }
        // A config.json without model_type beside a .pth is RWKV-LM's arguments, not a HF config.
        const bool hfConfig = j.is_object() && (j.contains("model_type") || j.contains("ssm_cfg"));
        if (!hfConfig)
            pth = singlePth(dir);
        if (pth.empty() && !hasConfig)
            throw Error(m.configPath, "missing: a model folder needs config.json (or one RWKV .pth)");
    }
    if (!pth.empty()) {
        const std::string overrides =
            fs::is_directory(dir, ec) && fs::exists(fs::path(dir) / "config.json", ec) ? m.configPath : "";
        j = configFromCheckpoint(pth, overrides);
        m.configJson = j.dump(2);
        if (overrides.empty())
            m.configPath = pth;
    }
    if (!j.is_object())
        throw Error(m.configPath, "top level", "a JSON object", j.type_name());

    const auto [architecture, layout] = recogniseConfig(j, m.configPath);
    m.architecture = architecture;
    m.shape = architecture->describe(j, layout, m.configPath, detail);

    const fs::path p = pth.empty() || fs::is_directory(dir, ec) ? fs::path(dir) : fs::path(dir).parent_path();
    if (!pth.empty()) {
        m.weightFiles.push_back(pth);
        m.weightsFormat = "pytorch";
    } else if (fs::exists(p / "model.safetensors.index.json", ec)) {
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
    else if (fs::exists(p / "tokenizer.model", ec)) // a SentencePiece model only: its scores give the merges
        m.tokenizerPath = (p / "tokenizer.model").string();
    else if (m.shape.tokenizer == "world") // RWKV checkpoints ship none: the World vocabulary
        m.tokenizerPath = worldTokenizerPath();
    else if (m.shape.tokenizer == "bytes") // a byte-level vocabulary: ids are the bytes
        m.tokenizerPath = byteLevelTokenizerPath();
    else if (m.shape.tokenizer == "llama") // fla-hub ships one; a model made here gets the built-in one
        m.tokenizerPath = llamaStyleTokenizerPath();
    if (fs::exists(p / "model_card.json", ec)) {
        m.cardPath = (p / "model_card.json").string();
        m.card = readModelCard(*m.cardPath);
        m.trainingLength = m.card->trainingLength();
    }
    return m;
}

} // namespace statescope
