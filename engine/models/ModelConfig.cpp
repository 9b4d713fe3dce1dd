#include "models/ModelConfig.h"

#include "Error.h"
#include "io/Json.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace statescope {

namespace {

int64_t intField(const nlohmann::json& obj, const char* key, int64_t fallback, const std::string& file,
                 const std::string& prefix = "")
{
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null())
        return fallback;
    if (!it->is_number_integer() && !(it->is_number() && std::floor(it->get<double>()) == it->get<double>()))
        throw Error(file, prefix + key, "an integer", it->dump());
    return it->get<int64_t>();
}

bool boolField(const nlohmann::json& obj, const char* key, bool fallback, const std::string& file,
               const std::string& prefix = "")
{
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null())
        return fallback;
    if (!it->is_boolean())
        throw Error(file, prefix + key, "true or false", it->dump());
    return it->get<bool>();
}

std::string readText(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void readDtLimit(const nlohmann::json& limit, const std::string& file, const std::string& field, Mamba2Config& c)
{
    if (!limit.is_array() || limit.size() != 2)
        throw Error(file, field, "a pair [min, max]", limit.dump());
    c.dtLimitMin = jsonNumber(limit[0], file, field + "[0]");
    c.dtLimitMax = jsonNumber(limit[1], file, field + "[1]");
}

// state-spaces / mamba_ssm: {d_model, n_layer, vocab_size, ssm_cfg: {layer: "Mamba2", ...}, ...}
Mamba2Config parseMambaSsm(const nlohmann::json& j, const std::string& file)
{
    Mamba2Config c;
    c.dModel = intField(j, "d_model", 0, file);
    c.nLayer = intField(j, "n_layer", 0, file);
    c.vocabSize = intField(j, "vocab_size", 0, file);
    c.padVocabSizeMultiple = intField(j, "pad_vocab_size_multiple", 8, file);
    c.tieEmbeddings = boolField(j, "tie_embeddings", true, file);
    c.residualInFp32 = boolField(j, "residual_in_fp32", true, file);
    if (!boolField(j, "rms_norm", true, file))
        throw Error(file, "rms_norm", "true (LayerNorm blocks are not supported)", "false");
    if (intField(j, "d_intermediate", 0, file) != 0)
        throw Error(file, "d_intermediate", "0 (MLP blocks are not supported)",
                    std::to_string(intField(j, "d_intermediate", 0, file)));
    if (j.contains("attn_layer_idx") && j["attn_layer_idx"].is_array() && !j["attn_layer_idx"].empty())
        throw Error(file, "attn_layer_idx", "[] (hybrid attention models are not supported)",
                    j["attn_layer_idx"].dump());
    const nlohmann::json& s = j.at("ssm_cfg");
    const std::string p = "ssm_cfg.";
    c.dState = intField(s, "d_state", 128, file, p);
    c.headdim = intField(s, "headdim", 64, file, p);
    c.ngroups = intField(s, "ngroups", 1, file, p);
    c.dConv = intField(s, "d_conv", 4, file, p);
    c.expand = intField(s, "expand", 2, file, p);
    c.chunkSize = intField(s, "chunk_size", 256, file, p);
    c.bias = boolField(s, "bias", false, file, p);
    c.convBias = boolField(s, "conv_bias", true, file, p);
    c.dHasHdim = boolField(s, "D_has_hdim", false, file, p);
    if (!boolField(s, "rmsnorm", true, file, p))
        throw Error(file, p + "rmsnorm", "true", "false");
    if (boolField(s, "norm_before_gate", false, file, p))
        throw Error(file, p + "norm_before_gate", "false", "true");
    if (s.contains("d_ssm") && !s["d_ssm"].is_null() && intField(s, "d_ssm", 0, file, p) != c.dInner())
        throw Error(file, p + "d_ssm", "null or d_inner (" + std::to_string(c.dInner()) + ")", s["d_ssm"].dump());
    if (s.contains("dt_limit"))
        readDtLimit(s["dt_limit"], file, p + "dt_limit", c);
    return c;
}

// Hugging Face transformers: {model_type: "mamba2", hidden_size, num_heads, head_dim, ...}
Mamba2Config parseTransformers(const nlohmann::json& j, const std::string& file)
{
    Mamba2Config c;
    c.dModel = intField(j, "hidden_size", 4096, file);
    c.nLayer = intField(j, "num_hidden_layers", 64, file);
    c.vocabSize = intField(j, "vocab_size", 32768, file);
    c.padVocabSizeMultiple = intField(j, "pad_vocab_size_multiple", 1, file);
    c.dState = intField(j, "state_size", 128, file);
    c.headdim = intField(j, "head_dim", 64, file);
    c.ngroups = intField(j, "n_groups", 8, file);
    c.dConv = intField(j, "conv_kernel", 4, file);
    c.expand = intField(j, "expand", 2, file);
    c.chunkSize = intField(j, "chunk_size", 256, file);
    c.tieEmbeddings = boolField(j, "tie_word_embeddings", false, file);
    c.residualInFp32 = boolField(j, "residual_in_fp32", true, file);
    c.bias = boolField(j, "use_bias", false, file);
    c.convBias = boolField(j, "use_conv_bias", true, file);
    if (!boolField(j, "rms_norm", true, file))
        throw Error(file, "rms_norm", "true", "false");
    if (j.contains("layer_norm_epsilon"))
        c.normEps = jsonNumber(j["layer_norm_epsilon"], file, "layer_norm_epsilon");
    if (j.contains("time_step_limit"))
        readDtLimit(j["time_step_limit"], file, "time_step_limit", c);
    const int64_t heads = intField(j, "num_heads", 128, file);
    if (heads * c.headdim != c.dInner())
        throw Error(file, "num_heads * head_dim", "expand * hidden_size = " + std::to_string(c.dInner()),
                    std::to_string(heads * c.headdim));
    return c;
}

} // namespace

void Mamba2Config::validate(const std::string& file) const
{
    auto positive = [&](const char* name, int64_t v) {
        if (v <= 0)
            throw Error(file, name, "a positive integer", std::to_string(v));
    };
    positive("d_model", dModel);
    positive("n_layer", nLayer);
    positive("d_state", dState);
    positive("headdim", headdim);
    positive("ngroups", ngroups);
    positive("d_conv", dConv);
    positive("expand", expand);
    positive("chunk_size", chunkSize);
    if (dInner() % headdim != 0)
        throw Error(file, "headdim", "a divisor of d_inner = " + std::to_string(dInner()), std::to_string(headdim));
    if (nHeads() % ngroups != 0)
        throw Error(file, "ngroups", "a divisor of the head count " + std::to_string(nHeads()),
                    std::to_string(ngroups));
}

double predictedForgetThreshold(int64_t stateSize)
{
    const double nsMillions = static_cast<double>(stateSize) / 1e6;
    return std::max(0.0, (5.172 * nsMillions - 4.469) * 1000.0);
}

std::string canonicalMamba2Name(const std::string& name)
{
    std::string n = name;
    if (n.rfind("model.", 0) == 0)
        n = n.substr(6);
    const std::string hfEmbedding = "backbone.embeddings.";
    if (n.rfind(hfEmbedding, 0) == 0)
        n = "backbone.embedding." + n.substr(hfEmbedding.size());
    return n;
}

ModelFolder inspectModelFolder(const std::string& dir)
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

    const std::string modelType = j.value("model_type", std::string());
    if (modelType == "mamba2") {
        m.layout = "transformers";
        m.mamba2 = parseTransformers(j, m.configPath);
    } else if (j.contains("ssm_cfg") && j.contains("d_model")) {
        const auto& s = j["ssm_cfg"];
        const std::string layer = s.is_object() ? s.value("layer", std::string("Mamba1")) : std::string("Mamba1");
        if (layer != "Mamba2")
            throw Error(m.configPath, "ssm_cfg.layer", "\"Mamba2\" (supported architectures: Mamba-2)",
                        "\"" + layer + "\" (Mamba-1 is not supported yet)");
        m.layout = "mamba_ssm";
        m.mamba2 = parseMambaSsm(j, m.configPath);
    } else {
        std::string found = modelType.empty() ? "no model_type and no ssm_cfg" : "\"" + modelType + "\"";
        throw Error(m.configPath, "model_type", "\"mamba2\" or a mamba_ssm config with ssm_cfg.layer \"Mamba2\"",
                    found + " (unsupported architecture)");
    }
    m.architecture = "mamba2";
    m.mamba2.validate(m.configPath);

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
        throw Error(dir, "no weights: expected model.safetensors, model.safetensors.index.json or pytorch_model.bin");
    }

    if (fs::exists(p / "tokenizer.json", ec))
        m.tokenizerPath = (p / "tokenizer.json").string();
    if (fs::exists(p / "model_card.json", ec)) {
        m.cardPath = (p / "model_card.json").string();
        const nlohmann::json card = loadPythonJson(*m.cardPath);
        if (card.contains("training_length") && card["training_length"].is_number_integer())
            m.trainingLength = card["training_length"].get<int64_t>();
    }
    return m;
}

} // namespace statescope
