// RWKV-5.2 ("Eagle", the RWKV-5 World models): a static decay per key channel, w = exp(-exp(time_decay)),
// and the token shift mixed by time_mix_{k,v,r,g}. The block, the wkv and the loaders are shared with
// RWKV-6 (models/Rwkv.h); this file holds what is RWKV-5's own.
#include "Error.h"
#include "io/Json.h"
#include "models/Rwkv.h"

#include <cmath>

namespace statescope {

namespace F = torch::nn::functional;

namespace {

class Rwkv5Model : public RwkvModel {
public:
    using RwkvModel::RwkvModel;

    static void takeAttention(WeightLoader& w, const std::string& p, RwkvLayer& L, const RwkvConfig& c,
                              torch::ScalarType f32)
    {
        for (const char* mix : {"time_mix_k", "time_mix_v", "time_mix_r", "time_mix_g"})
            L.attMix.push_back(takeVector(w, p + mix, {c.dModel}, f32));
        L.decay = takeVector(w, p + "time_decay", {c.nHeads(), c.headSize}, f32);
    }

protected:
    Mixed timeMix(const RwkvLayer& L, const torch::Tensor& xx, const torch::Tensor& sx) const override
    {
        const int64_t B = xx.size(0), T = xx.size(1), H = m_config.nHeads(), S = m_config.headSize;
        auto mixed = [&](size_t i) { return xx * L.attMix[i] + sx * (1 - L.attMix[i]); };
        Mixed m;
        m.k = project(mixed(0), L.wk).view({B, T, H, S});
        m.v = project(mixed(1), L.wv).view({B, T, H, S});
        m.r = project(mixed(2), L.wr).view({B, T, H, S});
        m.g = F::silu(project(mixed(3), L.wg));
        m.logw = -L.decay.exp().view({1, 1, H, S});
        return m;
    }

    void putAttention(const RwkvLayer& L, const std::string& p,
                      std::vector<std::pair<std::string, torch::Tensor>>& out) const override
    {
        // transformers' RWKV-5 names, which the loader maps back like the native ones.
        const char* names[] = {"time_mix_key", "time_mix_value", "time_mix_receptance", "time_mix_gate"};
        for (size_t i = 0; i < 4; ++i)
            out.push_back({p + names[i], L.attMix[i].view({1, 1, -1})});
        out.push_back({p + "time_decay", L.decay});
    }
};

class Rwkv5Architecture : public Architecture {
public:
    std::string name() const override { return "rwkv5"; }
    std::string displayName() const override { return "RWKV-5"; }
    std::string recognise(const nlohmann::json& j) const override { return rwkvLayout(j, "rwkv5"); }

    ModelShape describe(const nlohmann::json& j, const std::string& layout, const std::string& file,
                        ProbeDetail detail) const override
    {
        return describeRwkv(parseRwkvConfig(j, 5, file), layout, name(), displayName(), detail);
    }

    std::vector<std::string> shapeNames() const override { return rwkvShapeNames(5); }
    nlohmann::json shapeConfig(const std::string& shape, const nlohmann::json& overrides) const override
    {
        return rwkvShapeConfig(5, shape, overrides);
    }
    nlohmann::json configFromTensors(const std::map<std::string, std::vector<int64_t>>& shapes,
                                     const nlohmann::json& overrides, const std::string& file) const override
    {
        return rwkvConfigFromTensors(5, shapes, overrides, file);
    }

    std::unique_ptr<RecurrentModel> load(const ModelFolder& folder, const TorchTarget& target) const override
    {
        const RwkvConfig c =
            parseRwkvConfig(parsePythonJson(folder.configJson, folder.configPath), 5, folder.configPath);
        RwkvWeights w =
            RwkvModel::loadWeights(folder, c, target.device, target.dtype, Rwkv5Model::takeAttention);
        return std::make_unique<Rwkv5Model>(c, std::move(w), target.dtype, target.probeDetail);
    }

    std::unique_ptr<RecurrentModel> random(const nlohmann::json& config, uint64_t seed,
                                           const TorchTarget& target) const override
    {
        const RwkvConfig c = parseRwkvConfig(config, 5, "random model config");
        torch::manual_seed(seed);
        RwkvWeights w = RwkvModel::randomWeights(c, target.device, target.dtype);
        auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(target.device);
        for (size_t l = 0; l < w.layers.size(); ++l) {
            RwkvLayer& L = w.layers[l];
            for (int i = 0; i < 4; ++i)
                L.attMix.push_back(torch::rand({c.dModel}, f32));
            // RWKV-LM's decay speeds: -6 + 5 (i / (A - 1))^(0.7 + 1.3 depth), w from 0.9975 to 0.07.
            const double depth = c.nLayer > 1 ? double(l) / double(c.nLayer - 1) : 0.0;
            L.decay = (torch::linspace(0, 1, c.dAtt, f32).pow(0.7 + 1.3 * depth) * 5 - 6)
                          .view({c.nHeads(), c.headSize});
        }
        return std::make_unique<Rwkv5Model>(c, std::move(w), target.dtype, target.probeDetail);
    }
};

} // namespace

const Architecture& rwkv5Architecture()
{
    static const Rwkv5Architecture instance;
    return instance;
}

} // namespace statescope
