// RWKV-6 ("Finch", the RWKV-6 World models): the data-dependent token shift (ddlerp: time_maa_* plus a
// LoRA of the shifted input) and the data-dependent decay w_t = exp(-exp(time_decay + tanh(xw_t W1) W2))
// per token and key channel. The block, the wkv and the loaders are shared with RWKV-5 (models/Rwkv.h).
#include "Error.h"
#include "io/Json.h"
#include "models/Rwkv.h"

#include <cmath>

namespace statescope {

namespace F = torch::nn::functional;

namespace {

class Rwkv6Model : public RwkvModel {
public:
    using RwkvModel::RwkvModel;

    // attMix: time_maa_x, _w, _k, _v, _r, _g.
    static void takeAttention(WeightLoader& w, const std::string& p, RwkvLayer& L, const RwkvConfig& c,
                              torch::ScalarType f32)
    {
        for (const char* maa :
             {"time_maa_x", "time_maa_w", "time_maa_k", "time_maa_v", "time_maa_r", "time_maa_g"})
            L.attMix.push_back(takeVector(w, p + maa, {c.dModel}, f32));
        const std::vector<int64_t> w1 = w.shapeOf(p + "time_maa_w1");
        if (w1.size() != 2 || w1[0] != c.dModel || w1[1] % 5 != 0 || w1[1] == 0)
            throw Error(w.fileOf(p + "time_maa_w1"), "tensor " + p + "time_maa_w1",
                        "[" + std::to_string(c.dModel) + ", 5 x rank]",
                        "a tensor of " + std::to_string(w1.size()) + " axes");
        const int64_t rank = w1[1] / 5;
        L.maaW1 = w.take(p + "time_maa_w1", {c.dModel, 5 * rank}, f32);
        L.maaW2 = w.take(p + "time_maa_w2", {5, rank, c.dModel}, f32);
        L.decay = takeVector(w, p + "time_decay", {c.dAtt}, f32);
        const std::vector<int64_t> d1 = w.shapeOf(p + "time_decay_w1");
        const int64_t decayRank = d1.size() == 2 ? d1[1] : 0;
        L.decayW1 = w.take(p + "time_decay_w1", {c.dModel, decayRank}, f32);
        L.decayW2 = w.take(p + "time_decay_w2", {decayRank, c.dAtt}, f32);
    }

protected:
    Mixed timeMix(const RwkvLayer& L, const torch::Tensor& xx, const torch::Tensor& sx) const override
    {
        const int64_t B = xx.size(0), T = xx.size(1), H = m_config.nHeads(), S = m_config.headSize;
        const int64_t rank = L.maaW2.size(1);
        const torch::Tensor dx = sx - xx;
        // ddlerp: five data-dependent offsets of the mixes, from one LoRA of x + dx * maa_x.
        const torch::Tensor lora =
            torch::tanh(torch::matmul(xx + dx * L.attMix[0], L.maaW1)).view({B, T, 5, rank});
        const torch::Tensor offsets = torch::einsum("btir,irc->btic", {lora, L.maaW2}); // [B, T, 5, C]
        auto mixed = [&](int64_t i) { return xx + dx * (L.attMix[size_t(i) + 1] + offsets.select(2, i)); };
        const torch::Tensor wx = mixed(0);
        Mixed m;
        m.k = project(mixed(1), L.wk).view({B, T, H, S});
        m.v = project(mixed(2), L.wv).view({B, T, H, S});
        m.r = project(mixed(3), L.wr).view({B, T, H, S});
        m.g = F::silu(project(mixed(4), L.wg));
        const torch::Tensor ww =
            L.decay + torch::matmul(torch::tanh(torch::matmul(wx, L.decayW1)), L.decayW2);
        m.logw = -ww.exp().view({B, T, H, S});
        return m;
    }

    void putAttention(const RwkvLayer& L, const std::string& p,
                      std::vector<std::pair<std::string, torch::Tensor>>& out) const override
    {
        const char* names[] = {"time_maa_x", "time_maa_w", "time_maa_k",
                               "time_maa_v", "time_maa_r", "time_maa_g"};
        for (size_t i = 0; i < 6; ++i)
            out.push_back({p + names[i], L.attMix[i].view({1, 1, -1})});
        out.push_back({p + "time_maa_w1", L.maaW1});
        out.push_back({p + "time_maa_w2", L.maaW2});
        out.push_back({p + "time_decay", L.decay.view({1, 1, -1})});
        out.push_back({p + "time_decay_w1", L.decayW1});
        out.push_back({p + "time_decay_w2", L.decayW2});
    }
};

class Rwkv6Architecture : public Architecture {
public:
    std::string name() const override { return "rwkv6"; }
    std::string displayName() const override { return "RWKV-6"; }
    std::string recognise(const nlohmann::json& j) const override { return rwkvLayout(j, "rwkv6"); }

    ModelShape describe(const nlohmann::json& j, const std::string& layout, const std::string& file,
                        ProbeDetail detail) const override
    {
        return describeRwkv(parseRwkvConfig(j, 6, file), layout, name(), displayName(), detail);
    }

    std::vector<std::string> shapeNames() const override { return rwkvShapeNames(6); }
    nlohmann::json shapeConfig(const std::string& shape, const nlohmann::json& overrides) const override
    {
        return rwkvShapeConfig(6, shape, overrides);
    }
    nlohmann::json configFromTensors(const std::map<std::string, std::vector<int64_t>>& shapes,
                                     const nlohmann::json& overrides, const std::string& file) const override
    {
        return rwkvConfigFromTensors(6, shapes, overrides, file);
    }

    std::unique_ptr<RecurrentModel> load(const ModelFolder& folder, const TorchTarget& target) const override
    {
        const RwkvConfig c =
            parseRwkvConfig(parsePythonJson(folder.configJson, folder.configPath), 6, folder.configPath);
        RwkvWeights w =
            RwkvModel::loadWeights(folder, c, target.device, target.dtype, Rwkv6Model::takeAttention);
        return std::make_unique<Rwkv6Model>(c, std::move(w), target.dtype, target.probeDetail);
    }

    std::unique_ptr<RecurrentModel> random(const nlohmann::json& config, uint64_t seed,
                                           const TorchTarget& target) const override
    {
        const RwkvConfig c = parseRwkvConfig(config, 6, "random model config");
        torch::manual_seed(seed);
        RwkvWeights w = RwkvModel::randomWeights(c, target.device, target.dtype);
        auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(target.device);
        const int64_t C = c.dModel, A = c.dAtt, R = c.maaRank, R2 = c.decayRank;
        for (size_t l = 0; l < w.layers.size(); ++l) {
            RwkvLayer& L = w.layers[l];
            for (int i = 0; i < 6; ++i)
                L.attMix.push_back(torch::rand({C}, f32));
            L.maaW1 = torch::randn({C, 5 * R}, f32) * (0.5 / std::sqrt(double(C)));
            L.maaW2 = torch::randn({5, R, C}, f32) * (0.5 / std::sqrt(double(R)));
            const double depth = c.nLayer > 1 ? double(l) / double(c.nLayer - 1) : 0.0;
            L.decay = torch::linspace(0, 1, A, f32).pow(0.7 + 1.3 * depth) * 5 - 6;
            L.decayW1 = torch::randn({C, R2}, f32) * (1.0 / std::sqrt(double(C)));
            L.decayW2 = torch::randn({R2, A}, f32) * (0.5 / std::sqrt(double(R2)));
        }
        return std::make_unique<Rwkv6Model>(c, std::move(w), target.dtype, target.probeDetail);
    }
};

} // namespace

const Architecture& rwkv6Architecture()
{
    static const Rwkv6Architecture instance;
    return instance;
}

} // namespace statescope
