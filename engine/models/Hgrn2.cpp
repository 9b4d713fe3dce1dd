// HGRN-2 (fla's HGRN2Attention; stuffed-mamba.md §3.5, §6.5): the forget gate g = lb + (1 - lb)
// sigmoid(f_proj x) with a lower bound lb that rises with depth (a softmax of the model's lower_bounds
// over the layers, cumulative, minus the first: layer 0 has none), the key k = 1 - g, the value
// i_proj x and the query swish(q_proj x); the heads' outputs go through one RMSNorm over d_model and
// o_proj. The block, the recurrence and the loader are shared with GLA (models/Fla.h).
#include "Error.h"
#include "io/Json.h"
#include "models/Fla.h"

#include <cmath>

namespace statescope {

namespace F = torch::nn::functional;

namespace {

// fla's rms_norm_linear is called without an eps, so its default applies whatever norm_eps says.
constexpr double kOutputNormEps = 1e-5;

class Hgrn2Model : public FlaModel {
public:
    using FlaModel::FlaModel;
    std::string architecture() const override { return "hgrn2"; }

protected:
    Mixed mix(size_t l, const torch::Tensor& h, torch::Tensor& convState) const override
    {
        const FlaLayer& L = m_weights.layers[l];
        const FlaConfig& c = m_config;
        const int64_t B = h.size(0), T = h.size(1), H = c.nHeads, K = c.headK(), V = c.headV();
        torch::Tensor q = project(h, L.wq), f = project(h, L.wk), v = project(h, L.wv);
        if (c.useShortConv) // fla's current HGRN-2 convolutions have no activation
            shortConvs(l, q, f, v, convState);
        Mixed m;
        // log g and 1 - g from f without forming g: exact where g is close to 1, where the state
        // remembers longest.
        if (L.lowerBound.defined()) {
            const torch::Tensor lb = L.lowerBound;
            m.logw = torch::logaddexp(lb.log(), torch::log1p(-lb) + F::logsigmoid(f));
            m.k = (1 - lb) * torch::sigmoid(-f);
        } else {
            m.logw = F::logsigmoid(f);
            m.k = torch::sigmoid(-f);
        }
        m.q = F::silu(q).view({B, T, H, K}) * (1.0 / std::sqrt(double(K)));
        m.logw = m.logw.view({B, T, H, K});
        m.k = m.k.view({B, T, H, K});
        m.v = v.view({B, T, H, V});
        return m;
    }

    torch::Tensor output(size_t l, const torch::Tensor& o, const Mixed&) const override
    {
        const FlaLayer& L = m_weights.layers[l];
        const torch::Tensor flat = o.reshape({o.size(0), o.size(1), m_config.dModel});
        return project(rmsNorm(flat, L.gNorm, kOutputNormEps), L.wo);
    }
};

class Hgrn2Architecture : public Architecture {
public:
    std::string name() const override { return "hgrn2"; }
    std::string displayName() const override { return "HGRN-2"; }
    std::string recognise(const nlohmann::json& j) const override
    {
        auto type = j.find("model_type");
        return type != j.end() && type->is_string() && type->get<std::string>() == "hgrn2" ? "fla" : "";
    }

    ModelShape describe(const nlohmann::json& j, const std::string&, const std::string& file,
                        ProbeDetail detail) const override
    {
        return describeFla(parseFlaConfig(j, FlaConfig::Kind::Hgrn2, file), name(), displayName(), detail);
    }

    std::vector<std::string> shapeNames() const override { return flaShapeNames(FlaConfig::Kind::Hgrn2); }
    nlohmann::json shapeConfig(const std::string& shape, const nlohmann::json& overrides) const override
    {
        return flaShapeConfig(FlaConfig::Kind::Hgrn2, shape, overrides);
    }

    std::unique_ptr<RecurrentModel> load(const ModelFolder& folder, const TorchTarget& target) const override
    {
        const FlaConfig c = parseFlaConfig(parsePythonJson(folder.configJson, folder.configPath),
                                           FlaConfig::Kind::Hgrn2, folder.configPath);
        return std::make_unique<Hgrn2Model>(c, FlaModel::load(folder, c, target.device, target.dtype),
                                            target.dtype, target.probeDetail);
    }

    std::unique_ptr<RecurrentModel> random(const nlohmann::json& config, uint64_t seed,
                                           const TorchTarget& target) const override
    {
        const FlaConfig c = parseFlaConfig(config, FlaConfig::Kind::Hgrn2, "random model config");
        torch::manual_seed(seed);
        return std::make_unique<Hgrn2Model>(c, FlaModel::random(c, target.device, target.dtype), target.dtype,
                                            target.probeDetail);
    }
};

} // namespace

const Architecture& hgrn2Architecture()
{
    static const Hgrn2Architecture instance;
    return instance;
}

} // namespace statescope
