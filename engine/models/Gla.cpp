// GLA, gated linear attention (fla's GatedLinearAttention; stuffed-mamba.md §3.5): the per-key decay
// g = sigmoid(gk)^(1 / gate_logit_normalizer) from a low-rank gk_proj (optionally clamped in log
// space), plain q, k, v projections (shared by groups of heads when num_kv_heads < num_heads), and per
// head an RMSNorm gated by swish(g_proj x) before o_proj. The block, the recurrence and the loader are
// shared with HGRN-2 (models/Fla.h).
#include "Error.h"
#include "io/Json.h"
#include "models/Fla.h"

#include <cmath>

namespace statescope {

namespace F = torch::nn::functional;

namespace {

class GlaModel : public FlaModel {
public:
    using FlaModel::FlaModel;
    std::string architecture() const override { return "gla"; }

protected:
    Mixed mix(size_t l, const torch::Tensor& h, torch::Tensor& convState) const override
    {
        const FlaLayer& L = m_weights.layers[l];
        const FlaConfig& c = m_config;
        const int64_t B = h.size(0), T = h.size(1), H = c.nHeads, K = c.headK(), V = c.headV();
        const int64_t group = c.nHeads / c.nKvHeads;
        torch::Tensor q = project(h, L.wq), k = project(h, L.wk), v = project(h, L.wv);
        if (c.useShortConv) {
            shortConvs(l, q, k, v, convState);
            q = F::silu(q);
            k = F::silu(k);
            v = F::silu(v);
        }
        // The gate reads the block's input, not the convolved projections.
        torch::Tensor logw =
            F::logsigmoid(F::linear(F::linear(h, L.gk0), L.gk1, L.gk1Bias)) / c.gateLogitNormalizer;
        if (c.clampMin)
            logw = logw.clamp_min(*c.clampMin);
        if (c.featureMap == "swish") {
            q = F::silu(q);
            k = F::silu(k);
        } else if (c.featureMap == "relu") {
            q = F::relu(q);
            k = F::relu(k);
        }
        auto heads = [&](const torch::Tensor& x, int64_t width) { // key/value heads -> query heads
            torch::Tensor y = x.view({B, T, H / group, width});
            return group == 1 ? y : y.repeat_interleave(group, 2);
        };
        Mixed m;
        m.q = q.view({B, T, H, K}) * (1.0 / std::sqrt(double(K)));
        m.k = heads(k, K);
        m.logw = heads(logw, K);
        m.v = heads(v, V);
        if (c.useOutputGate)
            m.gate = project(h, L.wg).view({B, T, H, V});
        return m;
    }

    torch::Tensor output(size_t l, const torch::Tensor& o, const Mixed& m) const override
    {
        const FlaLayer& L = m_weights.layers[l];
        torch::Tensor y = rmsNorm(o, L.gNorm, m_config.normEps); // per head, one weight for all heads
        if (m.gate.defined())
            y = y * F::silu(m.gate);
        return project(y.reshape({o.size(0), o.size(1), m_config.dValue}), L.wo);
    }
};

class GlaArchitecture : public Architecture {
public:
    std::string name() const override { return "gla"; }
    std::string displayName() const override { return "GLA"; }
    std::string recognise(const nlohmann::json& j) const override
    {
        auto type = j.find("model_type");
        return type != j.end() && type->is_string() && type->get<std::string>() == "gla" ? "fla" : "";
    }

    ModelShape describe(const nlohmann::json& j, const std::string&, const std::string& file,
                        ProbeDetail detail) const override
    {
        return describeFla(parseFlaConfig(j, FlaConfig::Kind::Gla, file), name(), displayName(), detail);
    }

    std::vector<std::string> shapeNames() const override { return flaShapeNames(FlaConfig::Kind::Gla); }
    nlohmann::json shapeConfig(const std::string& shape, const nlohmann::json& overrides) const override
    {
        return flaShapeConfig(FlaConfig::Kind::Gla, shape, overrides);
    }

    std::unique_ptr<RecurrentModel> load(const ModelFolder& folder, const TorchTarget& target) const override
    {
        const FlaConfig c = parseFlaConfig(parsePythonJson(folder.configJson, folder.configPath),
                                           FlaConfig::Kind::Gla, folder.configPath);
        return std::make_unique<GlaModel>(c, FlaModel::load(folder, c, target.device, target.dtype),
                                          target.dtype, target.probeDetail);
    }

    std::unique_ptr<RecurrentModel> random(const nlohmann::json& config, uint64_t seed,
                                           const TorchTarget& target) const override
    {
        const FlaConfig c = parseFlaConfig(config, FlaConfig::Kind::Gla, "random model config");
        torch::manual_seed(seed);
        return std::make_unique<GlaModel>(c, FlaModel::random(c, target.device, target.dtype), target.dtype,
                                          target.probeDetail);
    }
};

} // namespace

const Architecture& glaArchitecture()
{
    static const GlaArchitecture instance;
    return instance;
}

} // namespace statescope
