// What HGRN-2 and GLA share (models/Fla.h): fla's block, the recurrence's two paths, the loader of
// fla-hub's checkpoints and the config dialect. The formulas are fla's as stuffed-mamba.md §3.5 and
// §6.5 give them; docs/hgrn2-gla.md lists every option and what is refused.
#include "models/Fla.h"

#include "Error.h"
#include "models/ConfigFields.h"

#include <cmath>

namespace statescope {

namespace F = torch::nn::functional;

namespace {

constexpr int64_t kMaxWidth = 1 << 17;

std::string str(int64_t v)
{
    return std::to_string(v);
}

std::string num(double v)
{
    std::ostringstream o;
    o << v;
    return o.str();
}

// GatedMLP's default width: 2/3 of hidden x hidden_ratio, rounded up to a multiple of 256.
int64_t defaultFfn(int64_t dModel, double hiddenRatio)
{
    const auto i = int64_t(double(dModel) * hiddenRatio * 2.0 / 3.0);
    return (i + 255) / 256 * 256;
}

bool isNull(const nlohmann::json& j, const char* key)
{
    auto it = j.find(key);
    return it == j.end() || it->is_null();
}

} // namespace

double FlaConfig::minParameters() const
{
    const double C = double(dModel), Fd = double(dFfn);
    const double mixer = hgrn2() ? 2 * double(qWidth()) * C + 2 * C * C
                                 : (double(qWidth()) + double(kWidth()) + double(vWidth())) * C +
                                       (useOutputGate ? double(dValue) * C : 0) + C * double(dValue);
    const double perLayer = 2 * C + mixer + 3 * C * Fd;
    return (tieEmbeddings ? 1 : 2) * double(vocabSize) * C + C + double(nLayer) * perLayer;
}

void FlaConfig::validate(const std::string& file) const
{
    auto inRange = [&](const char* name, int64_t v, int64_t max) {
        if (v <= 0 || v > max)
            throw Error(file, name, "an integer in [1, " + str(max) + "]", str(v));
    };
    inRange("hidden_size", dModel, kMaxWidth);
    inRange("num_hidden_layers", nLayer, 1 << 12);
    inRange("num_heads", nHeads, 1 << 12);
    inRange("vocab_size", vocabSize, int64_t(1) << 31);
    inRange("intermediate_size", dFfn, 1 << 20);
    if (useShortConv)
        inRange("conv_size", convSize, 64);
    if (!(normEps > 0) || !std::isfinite(normEps))
        throw Error(file, "norm_eps", "a finite number > 0", num(normEps));
    if (chunkSize % kKeyDecaySubBlock != 0 || chunkSize <= 0 || chunkSize > 4096)
        throw Error(file, "chunk_size", "a multiple of 16 in [16, 4096]", str(chunkSize));
    if (hgrn2()) {
        inRange("expand_ratio", expandRatio, 1 << 12);
        if (dModel % nHeads != 0)
            throw Error(file, "num_heads", "a divisor of hidden_size = " + str(dModel), str(nHeads));
        // The lower bounds are one [hidden_size] row per layer that the forget gates index.
        if (useLowerBound && qWidth() != dModel)
            throw Error(file, "expand_ratio",
                        "hidden_size / num_heads = " + str(dModel / nHeads) +
                            " with use_lower_bound (the bounds have hidden_size channels)",
                        str(expandRatio));
    } else {
        inRange("num_kv_heads", nKvHeads, nHeads);
        if (nHeads % nKvHeads != 0)
            throw Error(file, "num_kv_heads", "a divisor of num_heads = " + str(nHeads), str(nKvHeads));
        if (dKey <= 0 || dKey % nHeads != 0)
            throw Error(file, "expand_k",
                        "hidden_size x expand_k a positive multiple of num_heads = " + str(nHeads),
                        "key width " + str(dKey));
        if (dValue <= 0 || dValue % nHeads != 0)
            throw Error(file, "expand_v",
                        "hidden_size x expand_v a positive multiple of num_heads = " + str(nHeads),
                        "value width " + str(dValue));
        inRange("gate_low_rank_dim", gateLowRank, 1 << 12);
        if (!(gateLogitNormalizer > 0) || !std::isfinite(gateLogitNormalizer))
            throw Error(file, "gate_logit_normalizer", "a finite number > 0", num(gateLogitNormalizer));
        if (clampMin && (!std::isfinite(*clampMin) || *clampMin > 0))
            throw Error(file, "clamp_min", "null or a finite log-decay <= 0", num(*clampMin));
    }
}

FlaConfig parseFlaConfig(const nlohmann::json& j, FlaConfig::Kind kind, const std::string& file)
{
    FlaConfig c;
    c.kind = kind;
    const bool hgrn2 = kind == FlaConfig::Kind::Hgrn2;
    c.dModel = intField(j, "hidden_size", 2048, file, "", 1, kMaxWidth);
    c.nLayer = intField(j, "num_hidden_layers", 24, file, "", 1, 1 << 12);
    c.vocabSize = intField(j, "vocab_size", 32000, file, "", 1, int64_t(1) << 31);
    // Older fla configs call it rms_norm_eps.
    c.normEps = numberField(j, "norm_eps",
                            isNull(j, "norm_eps") ? numberField(j, "rms_norm_eps", 1e-6, file) : 1e-6, file);
    c.useShortConv = boolField(j, "use_short_conv", false, file);
    c.convSize = intField(j, "conv_size", 4, file, "", 1, 64);
    c.convBias = boolField(j, "conv_bias", false, file);
    c.tieEmbeddings = boolField(j, "tie_word_embeddings", false, file);
    c.elementwiseAffine = boolField(j, "elementwise_affine", true, file);
    c.chunkSize = intField(j, "chunk_size", 64, file, "", 1, 4096);
    const double hiddenRatio = numberField(j, "hidden_ratio", 4.0, file);
    if (!(hiddenRatio > 0) || hiddenRatio > 64)
        throw Error(file, "hidden_ratio", "a number in (0, 64]", num(hiddenRatio));
    c.dFfn = intField(j, "intermediate_size", defaultFfn(c.dModel, hiddenRatio), file, "", 1, 1 << 20);

    // What fla can be configured to compute and this engine does not: refused by name.
    if (!isNull(j, "attn"))
        throw Error(file, "attn", "null (hybrid softmax-attention layers are not supported)",
                    j["attn"].dump().substr(0, 80));
    const std::string act = stringField(j, "hidden_act", "swish", file);
    if (act != "swish" && act != "silu")
        throw Error(file, "hidden_act", "\"swish\" (fla's GatedMLP accepts no other)", "\"" + act + "\"");
    const std::string mode = stringField(j, "attn_mode", "chunk", file);
    if (mode != "chunk" && mode != "fused_chunk" && mode != "fused_recurrent")
        throw Error(file, "attn_mode",
                    "\"chunk\", \"fused_chunk\" or \"fused_recurrent\" (the same recurrence)",
                    "\"" + mode + "\"");
    if (c.useShortConv && boolField(j, "share_conv_kernel", false, file))
        throw Error(file, "share_conv_kernel", "false (fla's 2024 shared h_conv1d is not supported)", "true");
    if (boolField(j, "use_l2warp", false, file))
        throw Error(file, "use_l2warp", "false", "true");

    if (hgrn2) {
        const bool hasRatio = !isNull(j, "expand_ratio"), hasHeads = !isNull(j, "num_heads");
        if (!hasRatio && !hasHeads)
            throw Error(file, "expand_ratio", "a head width (or num_heads)",
                        "both expand_ratio and num_heads null");
        if (hasRatio) {
            c.expandRatio = intField(j, "expand_ratio", 128, file, "", 1, 1 << 12);
            c.nHeads = c.dModel / c.expandRatio;
            if (c.nHeads < 1)
                throw Error(file, "expand_ratio", "at most hidden_size = " + str(c.dModel),
                            str(c.expandRatio));
            // fla derives the heads from expand_ratio when both are given; a config that says
            // otherwise describes a model fla would not build.
            if (hasHeads && intField(j, "num_heads", c.nHeads, file, "", 1, kMaxWidth) != c.nHeads)
                throw Error(file, "num_heads", "hidden_size / expand_ratio = " + str(c.nHeads),
                            j["num_heads"].dump());
        } else {
            c.nHeads = intField(j, "num_heads", 16, file, "", 1, kMaxWidth);
            c.expandRatio = c.dModel / c.nHeads;
        }
        c.useLowerBound = boolField(j, "use_lower_bound", true, file);
    } else {
        c.nHeads = intField(j, "num_heads", 4, file, "", 1, kMaxWidth);
        c.nKvHeads = isNull(j, "num_kv_heads")
                         ? c.nHeads
                         : intField(j, "num_kv_heads", c.nHeads, file, "", 1, kMaxWidth);
        const double expandK = numberField(j, "expand_k", 0.5, file),
                     expandV = numberField(j, "expand_v", 1.0, file);
        if (!(expandK > 0) || expandK > 64)
            throw Error(file, "expand_k", "a number in (0, 64]", num(expandK));
        if (!(expandV > 0) || expandV > 64)
            throw Error(file, "expand_v", "a number in (0, 64]", num(expandV));
        c.dKey = int64_t(double(c.dModel) * expandK);
        c.dValue = int64_t(double(c.dModel) * expandV);
        c.gateLogitNormalizer = numberField(j, "gate_logit_normalizer", 16.0, file);
        c.gateLowRank = intField(j, "gate_low_rank_dim", 16, file, "", 1, 1 << 12);
        if (!isNull(j, "clamp_min"))
            c.clampMin = numberField(j, "clamp_min", 0.0, file);
        c.useOutputGate = boolField(j, "use_output_gate", true, file);
        c.featureMap = isNull(j, "feature_map") ? "" : stringField(j, "feature_map", "", file);
        if (c.featureMap == "silu")
            c.featureMap = "swish";
        if (!c.featureMap.empty() && c.featureMap != "swish" && c.featureMap != "relu")
            throw Error(file, "feature_map", "null, \"swish\" or \"relu\"", "\"" + c.featureMap + "\"");
    }
    c.validate(file);
    return c;
}

nlohmann::ordered_json flaConfigJson(const FlaConfig& c)
{
    nlohmann::ordered_json j;
    j["architectures"] = {c.hgrn2() ? "HGRN2ForCausalLM" : "GLAForCausalLM"};
    j["model_type"] = c.hgrn2() ? "hgrn2" : "gla";
    j["hidden_size"] = c.dModel;
    j["num_hidden_layers"] = c.nLayer;
    j["num_heads"] = c.nHeads;
    if (c.hgrn2()) {
        j["expand_ratio"] = c.expandRatio;
        j["use_lower_bound"] = c.useLowerBound;
    } else {
        j["num_kv_heads"] = c.nKvHeads;
        j["expand_k"] = double(c.dKey) / double(c.dModel);
        j["expand_v"] = double(c.dValue) / double(c.dModel);
        j["gate_logit_normalizer"] = c.gateLogitNormalizer;
        j["gate_low_rank_dim"] = c.gateLowRank;
        j["clamp_min"] = c.clampMin ? nlohmann::ordered_json(*c.clampMin) : nlohmann::ordered_json(nullptr);
        j["use_output_gate"] = c.useOutputGate;
        j["feature_map"] =
            c.featureMap.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(c.featureMap);
    }
    j["attn_mode"] = "chunk";
    j["use_short_conv"] = c.useShortConv;
    j["conv_size"] = c.convSize;
    j["conv_bias"] = c.convBias;
    j["hidden_act"] = "swish";
    j["intermediate_size"] = c.dFfn;
    j["norm_eps"] = c.normEps;
    j["elementwise_affine"] = c.elementwiseAffine;
    j["tie_word_embeddings"] = c.tieEmbeddings;
    j["vocab_size"] = c.vocabSize;
    j["bos_token_id"] = 1;
    j["eos_token_id"] = 2;
    return j;
}

// --- the model ---------------------------------------------------------------------------------------

FlaModel::FlaModel(FlaConfig config, FlaWeights weights, torch::ScalarType dtype, ProbeDetail detail)
    : m_config(std::move(config)), m_weights(std::move(weights)), m_dtype(dtype), m_detail(detail)
{
    if (m_dtype == torch::kFloat64) {
        widenToFloat64({&m_weights.norm, &m_weights.lowerBounds});
        for (FlaLayer& L : m_weights.layers)
            widenToFloat64({&L.attnNorm, &L.mlpNorm, &L.gk0, &L.gk1, &L.gk1Bias, &L.gNorm, &L.convQ, &L.convK,
                            &L.convV, &L.convQBias, &L.convKBias, &L.convVBias, &L.lowerBound});
    }
}

FlaWeights FlaModel::load(const ModelFolder& folder, const FlaConfig& c, torch::Device device,
                          torch::ScalarType dtype)
{
    // fla's names under "model." (the backbone) and lm_head; taken without the prefix.
    WeightLoader w(
        readWeights(folder, [](const std::string& n) { return n.rfind("model.", 0) == 0 ? n.substr(6) : n; }),
        device);
    const auto f32 = dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    const int64_t C = c.dModel, I = c.dFfn, W = c.convSize;
    FlaWeights fw;
    const int64_t vocab = w.embeddingRows("embeddings.weight", C, c.vocabSize);
    fw.emb = w.take("embeddings.weight", {vocab, C}, dtype);
    fw.norm = w.take("norm.weight", {C}, f32);
    fw.head = c.tieEmbeddings ? fw.emb : w.take("lm_head.weight", {vocab, C}, dtype);
    torch::Tensor bounds;
    if (c.hgrn2() && c.useLowerBound) {
        // One row per layer; softmax over the layers, cumulative, minus the first: layer 0 has none.
        fw.lowerBounds = w.take("lower_bounds", {c.nLayer, C}, torch::kFloat32);
        const torch::Tensor p = fw.lowerBounds.softmax(0);
        bounds = (p.cumsum(0) - p.select(0, 0)).to(f32);
    }
    auto conv = [&](const std::string& name, int64_t channels, torch::Tensor& weight, torch::Tensor& bias) {
        weight = w.take(name + ".weight", {channels, 1, W}, f32).squeeze(1).contiguous();
        if (c.convBias)
            bias = w.take(name + ".bias", {channels}, f32);
    };
    for (int64_t l = 0; l < c.nLayer; ++l) {
        const std::string p = "layers." + str(l) + ".";
        const std::string a = p + "attn.";
        FlaLayer L;
        L.attnNorm = w.take(p + "attn_norm.weight", {C}, f32);
        L.mlpNorm = w.take(p + "mlp_norm.weight", {C}, f32);
        if (c.hgrn2()) {
            L.wq = w.take(a + "q_proj.weight", {c.qWidth(), C}, dtype);
            L.wk = w.take(a + "f_proj.weight", {c.kWidth(), C}, dtype);
            L.wv = w.take(a + "i_proj.weight", {c.vWidth(), C}, dtype);
            L.wo = w.take(a + "o_proj.weight", {C, C}, dtype);
            L.gNorm = c.elementwiseAffine
                          ? w.take(a + "g_norm.weight", {C}, f32)
                          : torch::ones({C}, torch::TensorOptions().dtype(f32).device(device));
            if (c.useShortConv) {
                conv(a + "q_conv1d", c.qWidth(), L.convQ, L.convQBias);
                conv(a + "f_conv1d", c.kWidth(), L.convK, L.convKBias);
                conv(a + "i_conv1d", c.vWidth(), L.convV, L.convVBias);
            }
            if (bounds.defined() && l > 0)
                L.lowerBound = bounds.select(0, l).contiguous();
        } else {
            L.wq = w.take(a + "q_proj.weight", {c.qWidth(), C}, dtype);
            L.wk = w.take(a + "k_proj.weight", {c.kWidth(), C}, dtype);
            L.wv = w.take(a + "v_proj.weight", {c.vWidth(), C}, dtype);
            if (c.useOutputGate)
                L.wg = w.take(a + "g_proj.weight", {c.dValue, C}, dtype);
            L.wo = w.take(a + "o_proj.weight", {C, c.dValue}, dtype);
            // The gate's low rank is not in fla's config: the stored matrix gives it.
            const std::vector<int64_t> g0 = w.shapeOf(a + "gk_proj.0.weight");
            const int64_t rank = g0.size() == 2 ? g0[0] : c.gateLowRank;
            L.gk0 = w.take(a + "gk_proj.0.weight", {rank, C}, f32);
            L.gk1 = w.take(a + "gk_proj.1.weight", {c.kWidth(), rank}, f32);
            L.gk1Bias = w.take(a + "gk_proj.1.bias", {c.kWidth()}, f32);
            // g_norm_swish_gate with the fused gate (fla's default), g_norm otherwise: the same norm.
            const std::string norm =
                w.has(a + "g_norm_swish_gate.weight") ? a + "g_norm_swish_gate.weight" : a + "g_norm.weight";
            L.gNorm = c.elementwiseAffine
                          ? w.take(norm, {c.headV()}, f32)
                          : torch::ones({c.headV()}, torch::TensorOptions().dtype(f32).device(device));
            if (c.useShortConv) {
                conv(a + "q_conv1d", c.qWidth(), L.convQ, L.convQBias);
                conv(a + "k_conv1d", c.kWidth(), L.convK, L.convKBias);
                conv(a + "v_conv1d", c.vWidth(), L.convV, L.convVBias);
            }
        }
        // fla's current GatedMLP keeps gate_proj and up_proj apart; its 2024 one fused them into one
        // [2I, C] gate_proj, gate rows first.
        if (w.has(p + "mlp.up_proj.weight")) {
            L.mlpGate = w.take(p + "mlp.gate_proj.weight", {I, C}, dtype);
            L.mlpUp = w.take(p + "mlp.up_proj.weight", {I, C}, dtype);
        } else {
            const torch::Tensor both = w.take(p + "mlp.gate_proj.weight", {2 * I, C}, dtype);
            L.mlpGate = both.narrow(0, 0, I).contiguous();
            L.mlpUp = both.narrow(0, I, I).contiguous();
        }
        L.mlpDown = w.take(p + "mlp.down_proj.weight", {C, I}, dtype);
        fw.layers.push_back(std::move(L));
    }
    return fw;
}

FlaWeights FlaModel::random(const FlaConfig& c, torch::Device device, torch::ScalarType dtype)
{
    auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    const int64_t C = c.dModel, I = c.dFfn, W = c.convSize;
    auto matrix = [&](int64_t rows, int64_t cols, double scale) {
        return (torch::randn({rows, cols}, f32) * (scale / std::sqrt(double(cols)))).to(dtype);
    };
    auto conv = [&](int64_t channels, torch::Tensor& weight, torch::Tensor& bias) {
        weight = torch::randn({channels, W}, f32) * (0.5 / std::sqrt(double(W)));
        if (c.convBias)
            bias = torch::randn({channels}, f32) * 0.1;
    };
    FlaWeights fw;
    fw.emb = (torch::randn({c.vocabSize, C}, f32) * 0.5).to(dtype);
    fw.norm = torch::ones({C}, f32);
    fw.head = c.tieEmbeddings ? fw.emb : matrix(c.vocabSize, C, 1.0);
    torch::Tensor bounds;
    if (c.hgrn2() && c.useLowerBound) {
        fw.lowerBounds = torch::randn({c.nLayer, C}, f32);
        const torch::Tensor p = fw.lowerBounds.softmax(0);
        bounds = p.cumsum(0) - p.select(0, 0);
    }
    const double out = 1.0 / std::sqrt(2.0 * double(c.nLayer));
    for (int64_t l = 0; l < c.nLayer; ++l) {
        FlaLayer L;
        L.attnNorm = torch::ones({C}, f32);
        L.mlpNorm = torch::ones({C}, f32);
        L.wq = matrix(c.qWidth(), C, 1.0);
        L.wk = matrix(c.kWidth(), C, c.hgrn2() ? 2.0 : 1.0);
        L.wv = matrix(c.vWidth(), C, 1.0);
        L.wo = matrix(C, c.hgrn2() ? C : c.dValue, out);
        if (c.hgrn2()) {
            L.gNorm = torch::ones({C}, f32);
            if (bounds.defined() && l > 0)
                L.lowerBound = bounds.select(0, l).contiguous();
        } else {
            if (c.useOutputGate)
                L.wg = matrix(c.dValue, C, 1.0);
            L.gk0 = torch::randn({c.gateLowRank, C}, f32) / std::sqrt(double(C));
            L.gk1 = torch::randn({c.kWidth(), c.gateLowRank}, f32) / std::sqrt(double(c.gateLowRank));
            L.gk1Bias = torch::randn({c.kWidth()}, f32) * 2;
            L.gNorm = torch::ones({c.headV()}, f32);
        }
        if (c.useShortConv) {
            conv(c.qWidth(), L.convQ, L.convQBias);
            conv(c.kWidth(), L.convK, L.convKBias);
            conv(c.vWidth(), L.convV, L.convVBias);
        }
        L.mlpGate = matrix(I, C, 1.0);
        L.mlpUp = matrix(I, C, 1.0);
        L.mlpDown = matrix(C, I, out);
        fw.layers.push_back(std::move(L));
    }
    return fw;
}

std::vector<ProbeDesc> flaProbeDescs(const FlaConfig& c, ProbeDetail detail)
{
    const std::vector<int64_t> shape{c.nLayer, c.nHeads};
    const std::vector<std::string> axes{"layer", "head"};
    const std::string kind = c.hgrn2() ? "HGRN-2" : "GLA";
    const std::string meaning = kind + " head: a " + str(c.headK()) + " x " + str(c.headV()) +
                                " (key x value) state with one data-dependent decay per key channel";
    const std::string gate = c.hgrn2() ? "g = lb + (1 - lb) sigmoid(f_proj x)"
                                       : "g = sigmoid(gk_proj x)^(1/" + num(c.gateLogitNormalizer) + ")";
    std::vector<ProbeDesc> d{
        {kDecayProbe, "forget gate exp(mean log g) over the head's key channels, " + gate, shape, axes,
         meaning, "", ProbeSummary::GeoMean, "g"},
        {kStateNormProbe, "Frobenius norm of the head's key x value state after the token", shape, axes,
         meaning, "", ProbeSummary::RootSumSquare, "‖S‖"},
    };
    if (detail == ProbeDetail::Full)
        d.push_back({"key_decay",
                     "decay g of each key channel (head h's key k at h x " + str(c.headK()) + " + k)",
                     {c.nLayer, c.nHeads * c.headK()},
                     {"layer", "key channel"},
                     "one key channel of a head: its row of the state decays by g each token",
                     "",
                     ProbeSummary::GeoMean,
                     "g_k"});
    return d;
}

std::vector<ProbeDesc> FlaModel::probeDescs() const
{
    std::vector<ProbeDesc> d = flaProbeDescs(m_config, m_detail);
    if (m_context.window > 0) {
        // The shared names in these models' terms: the decay is per key channel (retention is their
        // geometric mean), the key is B's counterpart; the short convolutions' RMS is not reported.
        const std::string meaning = d.front().headMeaning;
        for (ProbeDesc& p : oldContextProbeDescs({m_config.nLayer, m_config.nHeads}, {"layer", "head"},
                                                 meaning, m_context)) {
            if (p.name == "conv_rms")
                continue;
            if (p.name == "retention")
                p.description += " (the geometric mean over the head's key channels of g over the window)";
            else if (p.name == "old_share")
                p.description = "old-context share |g_{b+1:t} S_b| / |S_t| of the state, g per key row";
            else if (p.name == "old_readout_share")
                p.description = "read-out share |q . g_{b+1:t} S_b| / |q . S_t| of the old part";
            else if (p.name == "insertion")
                p.description = "insertion strength |k_t| |v_t| (the norm of the token's k^T v)";
            else if (p.name == "b_norm")
                p.description = "|k_t|, the key the token writes with (B's counterpart)";
            d.push_back(std::move(p));
        }
    }
    return d;
}

std::unique_ptr<ModelState> FlaModel::initialState(int64_t batch) const
{
    auto s = std::make_unique<ScanState>();
    auto o = torch::TensorOptions().dtype(accumulation()).device(device());
    const FlaConfig& c = m_config;
    for (int64_t l = 0; l < c.nLayer; ++l) {
        s->conv.push_back(torch::zeros({batch, c.convChannels(), c.useShortConv ? c.convSize - 1 : 0}, o));
        s->ssm.push_back(torch::zeros({batch, c.nHeads, c.headK(), c.headV()}, o));
        s->decaySum.push_back(torch::zeros({batch, c.nHeads, c.headK()}, o.dtype(torch::kFloat64)));
    }
    s->snapshots.resize(size_t(c.nLayer));
    s->contextSnapshots.resize(size_t(c.nLayer));
    return s;
}

int64_t FlaModel::parameterCount() const
{
    int64_t n = m_weights.emb.numel() + m_weights.norm.numel();
    if (!m_config.tieEmbeddings)
        n += m_weights.head.numel();
    if (m_weights.lowerBounds.defined())
        n += m_weights.lowerBounds.numel();
    for (const FlaLayer& L : m_weights.layers)
        for (const torch::Tensor* t : {&L.attnNorm, &L.mlpNorm, &L.wq, &L.wk, &L.wv, &L.wg, &L.wo, &L.gk0,
                                       &L.gk1, &L.gk1Bias, &L.convQ, &L.convK, &L.convV, &L.convQBias,
                                       &L.convKBias, &L.convVBias, &L.mlpGate, &L.mlpUp, &L.mlpDown})
            if (t->defined())
                n += t->numel();
    for (const FlaLayer& L : m_weights.layers)
        if (m_config.elementwiseAffine)
            n += L.gNorm.numel();
    return n;
}

void FlaModel::saveFolder(const std::string& dir) const
{
    const FlaConfig& c = m_config;
    writeConfigJson(dir, flaConfigJson(c).dump(2));
    FolderWriter w;
    w.put("model.embeddings.weight", m_weights.emb);
    for (size_t l = 0; l < m_weights.layers.size(); ++l) {
        const FlaLayer& L = m_weights.layers[l];
        const std::string p = "model.layers." + str(int64_t(l)) + ".";
        const std::string a = p + "attn.";
        w.put(p + "attn_norm.weight", L.attnNorm);
        w.put(p + "mlp_norm.weight", L.mlpNorm);
        const char* names[] = {"q", c.hgrn2() ? "f" : "k", c.hgrn2() ? "i" : "v"};
        w.put(a + names[0] + "_proj.weight", L.wq);
        w.put(a + names[1] + "_proj.weight", L.wk);
        w.put(a + names[2] + "_proj.weight", L.wv);
        w.put(a + "o_proj.weight", L.wo);
        if (c.elementwiseAffine)
            w.put(a + (c.hgrn2() || !c.useOutputGate ? "g_norm.weight" : "g_norm_swish_gate.weight"),
                  L.gNorm);
        if (!c.hgrn2()) {
            w.put(a + "g_proj.weight", L.wg);
            w.put(a + "gk_proj.0.weight", L.gk0);
            w.put(a + "gk_proj.1.weight", L.gk1);
            w.put(a + "gk_proj.1.bias", L.gk1Bias);
        }
        if (c.useShortConv) {
            const torch::Tensor* weights[] = {&L.convQ, &L.convK, &L.convV};
            const torch::Tensor* biases[] = {&L.convQBias, &L.convKBias, &L.convVBias};
            for (size_t i = 0; i < 3; ++i) {
                w.put(a + names[i] + "_conv1d.weight", weights[i]->unsqueeze(1));
                w.put(a + names[i] + "_conv1d.bias", *biases[i]);
            }
        }
        w.put(p + "mlp.gate_proj.weight", L.mlpGate);
        w.put(p + "mlp.up_proj.weight", L.mlpUp);
        w.put(p + "mlp.down_proj.weight", L.mlpDown);
    }
    w.put("model.norm.weight", m_weights.norm);
    if (m_weights.lowerBounds.defined())
        w.put("model.lower_bounds", m_weights.lowerBounds);
    if (!c.tieEmbeddings)
        w.put("lm_head.weight", m_weights.head);
    w.write(dir + "/model.safetensors");
}

torch::Tensor FlaModel::project(const torch::Tensor& x, const torch::Tensor& w) const
{
    return F::linear(x.to(m_dtype), w.to(m_dtype)).to(accumulation());
}

torch::Tensor FlaModel::logits(const torch::Tensor& hidden) const
{
    return project(hidden, m_weights.head);
}

void FlaModel::shortConvs(size_t l, torch::Tensor& q, torch::Tensor& k, torch::Tensor& v,
                          torch::Tensor& convState) const
{
    const FlaLayer& L = m_weights.layers[l];
    const int64_t Dq = q.size(-1), Dk = k.size(-1), Dv = v.size(-1);
    const torch::Tensor x = torch::cat({q, k, v}, -1).transpose(1, 2); // [B, D, T]
    const torch::Tensor padded = torch::cat({convState, x}, -1);       // [B, D, W - 1 + T]
    convState =
        padded.narrow(2, padded.size(2) - (m_config.convSize - 1), m_config.convSize - 1).contiguous();
    const torch::Tensor weight = torch::cat({L.convQ, L.convK, L.convV}, 0).unsqueeze(1);
    auto opts = F::Conv1dFuncOptions().groups(Dq + Dk + Dv);
    if (m_config.convBias)
        opts = opts.bias(torch::cat({L.convQBias, L.convKBias, L.convVBias}, 0));
    const auto parts = F::conv1d(padded, weight, opts).transpose(1, 2).split_with_sizes({Dq, Dk, Dv}, -1);
    q = parts[0];
    k = parts[1];
    v = parts[2];
}

void FlaModel::checkMitigation() const
{
    const std::string what = std::string(m_config.hgrn2() ? "hgrn2" : "gla") + " model";
    if (m_mitigation.dt != 1.0)
        throw Error(what, "mitigation dt", "alpha, A or B (the gates have no step size Delta)",
                    "dt=" + std::to_string(m_mitigation.dt));
}

ForwardResult FlaModel::forward(const torch::Tensor& ids, ModelState& state, bool recurrent, bool withProbes)
{
    checkMitigation();
    auto& s = static_cast<ScanState&>(state);
    const size_t nLayers = m_weights.layers.size();
    ForwardResult r;
    KeyDecayProbeStack probes(nLayers, m_detail == ProbeDetail::Full, m_context.window > 0);
    auto run = [&](const torch::Tensor& tokens) { // [B, T] -> [B, T, C]
        torch::Tensor x = F::embedding(tokens, m_weights.emb).to(accumulation());
        for (size_t l = 0; l < nLayers; ++l) {
            KeyDecayLayerProbes p;
            x = block(l, x, s, recurrent, withProbes ? &p : nullptr);
            if (withProbes)
                probes.add(l, p);
        }
        s.tokens += tokens.size(1);
        return rmsNorm(x, m_weights.norm, m_config.normEps);
    };
    r.hidden = overTokens(ids, recurrent, run);
    if (withProbes)
        r.probes = probes.stacked();
    return r;
}

torch::Tensor FlaModel::block(size_t l, torch::Tensor x, ScanState& s, bool recurrent,
                              KeyDecayLayerProbes* probes) const
{
    const FlaLayer& L = m_weights.layers[l];
    const FlaConfig& c = m_config;
    const int64_t Bsz = x.size(0), T = x.size(1), H = c.nHeads, K = c.headK();

    Mixed m = mix(l, rmsNorm(x, L.attnNorm, c.normEps), s.conv[l]);
    // lambda_alpha multiplies each key channel's decay, lambda_A raises it to a power, lambda_B scales
    // the key: each skipped at 1, so that the original run is reproduced bit for bit.
    if (m_mitigation.A != 1.0)
        m.logw = m.logw * m_mitigation.A;
    if (m_mitigation.alpha != 1.0)
        m.logw = m.logw + std::log(m_mitigation.alpha);
    if (m_mitigation.B != 1.0)
        m.k = m.k * m_mitigation.B;
    if (probes) {
        probes->decay = m.logw.mean(-1).exp();
        if (m_detail == ProbeDetail::Full)
            probes->keyDecay = m.logw.exp().reshape({Bsz, T, H * K});
    }
    const KeyDecayRecurrence scan(m_mitigation, m_tau, m_context, accumulation(), c.chunkSize);
    const torch::Tensor o =
        scan.run(l, m.q, m.k, m.v, m.logw, torch::Tensor(), s, recurrent, probes ? &probes->scan : nullptr);
    x = x + output(l, o, m);

    const torch::Tensor h = rmsNorm(x, L.mlpNorm, c.normEps);
    return x + project(F::silu(project(h, L.mlpGate)) * project(h, L.mlpUp), L.mlpDown);
}

ModelShape describeFla(const FlaConfig& c, const std::string& name, const std::string& displayName,
                       ProbeDetail detail)
{
    ModelShape s;
    s.architecture = name;
    s.displayName = displayName;
    s.layout = "fla";
    s.layers = c.nLayer;
    s.units = c.nHeads;
    s.unitName = "head";
    s.vocabSize = c.vocabSize;
    s.stateSize = c.stateSize();
    s.stateSizeDefinition = "per layer: heads x " + str(c.headK()) + " x " + str(c.headV()) +
                            " (each head's key x value state)" +
                            (c.useShortConv ? " + (conv_size - 1) x the short convolutions' channels" : "");
    s.minParameters = saturatedCount(c.minParameters());
    s.tokenizer = c.vocabSize == 256 ? "bytes" : "llama";
    s.forgetFitNote = "the paper's fit was measured on Mamba-2 (its Fig. 11); an " + displayName +
                      " model's forget threshold has to be measured (statescope-cli eval)";
    s.details = {{"d_model", str(c.dModel)}, {"layers", str(c.nLayer)}};
    if (c.hgrn2()) {
        s.details.push_back({"heads", str(c.nHeads) + " x expand_ratio " + str(c.expandRatio) + " (key) x " +
                                          str(c.headV()) + " (value)"});
        s.details.push_back({"lower bounds", c.useLowerBound ? "yes (layer 0 none)" : "no"});
    } else {
        s.details.push_back({"heads", str(c.nHeads) + " x " + str(c.headK()) + " (key) x " + str(c.headV()) +
                                          " (value), " + str(c.nKvHeads) + " key/value heads"});
        s.details.push_back({"gate", "logsigmoid / " + num(c.gateLogitNormalizer) +
                                         (c.clampMin ? ", clamp_min " + num(*c.clampMin) : "")});
        s.details.push_back({"output gate", c.useOutputGate ? "swish" : "none"});
        if (!c.featureMap.empty())
            s.details.push_back({"feature map", c.featureMap});
    }
    s.details.push_back({"short conv", c.useShortConv ? "yes, " + str(c.convSize) + " taps" : "no"});
    s.details.push_back({"d_ffn", str(c.dFfn)});
    s.details.push_back({"vocabulary", str(c.vocabSize)});
    s.probes = flaProbeDescs(c, detail);
    return s;
}

std::vector<std::string> flaShapeNames(FlaConfig::Kind)
{
    return {"130m", "340m", "1.3b", "2.7b", "tiny"};
}

nlohmann::json flaShapeConfig(FlaConfig::Kind kind, const std::string& shape, const nlohmann::json& overrides)
{
    struct Row {
        const char* name;
        int64_t d, l;
    };
    // fla-hub's sizes (hgrn2-/gla-340M-15B, -1.3B-100B, -2.7B-100B) and a 130M one like Mamba's smallest.
    const std::vector<Row> rows{
        {"130m", 768, 12}, {"340m", 1024, 24}, {"1.3b", 2048, 24}, {"2.7b", 2560, 32}, {"tiny", 64, 2}};
    const bool hgrn2 = kind == FlaConfig::Kind::Hgrn2;
    for (const Row& r : rows) {
        if (shape != r.name)
            continue;
        const bool tiny = shape == "tiny";
        nlohmann::json c = {{"model_type", hgrn2 ? "hgrn2" : "gla"},
                            {"hidden_size", r.d},
                            {"num_hidden_layers", r.l},
                            // tiny: room for the built-in llama-style tokenizer's 3,256 ids
                            {"vocab_size", tiny ? 4096 : 32000},
                            {"norm_eps", 1e-6},
                            {"hidden_ratio", 4},
                            {"use_short_conv", false},
                            {"tie_word_embeddings", false}};
        if (hgrn2) {
            c["expand_ratio"] = tiny ? 16 : 128;
            c["use_lower_bound"] = true;
        } else {
            c["num_heads"] = tiny ? 2 : 4;
            c["expand_k"] = 0.5;
            c["expand_v"] = 1.0;
        }
        for (const auto& [key, value] : overrides.items())
            c[key] = value;
        // The CLI's shape options speak Mamba's names: an HGRN-2 head's key width is expand_ratio.
        for (const char* alias : {"head_dim", "state_size"})
            if (c.contains(alias)) {
                if (hgrn2 && !overrides.contains("expand_ratio"))
                    c["expand_ratio"] = c[alias];
                c.erase(alias);
            }
        c.erase("n_groups");
        return c;
    }
    return nullptr;
}

} // namespace statescope
