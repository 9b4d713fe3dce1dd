// What RWKV-5.2 and RWKV-6 share (models/Rwkv.h): the block, the wkv's two paths, both checkpoint
// layouts and the config dialects. The formulas are BlinkDL's (RWKV-LM, the `rwkv` package) as
// stuffed-mamba.md §3.5 and §6.4 give them.
#include "models/Rwkv.h"

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

std::string shapeString(const std::vector<int64_t>& s)
{
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i)
        out += (i ? ", " : "") + str(s[i]);
    return out + "]";
}

// The sizes of a shape once its size-1 axes are dropped: [1, 1, C] and [C] are both a vector of C.
std::vector<int64_t> squeezed(const std::vector<int64_t>& s)
{
    std::vector<int64_t> out;
    for (int64_t d : s)
        if (d != 1)
            out.push_back(d);
    return out;
}

int64_t defaultFfn(int64_t dModel)
{
    return int64_t(3.5 * double(dModel)) / 32 * 32;
}

torch::Tensor layerNorm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, double eps)
{
    return F::layer_norm(x, F::LayerNormFuncOptions({x.size(-1)}).weight(w).bias(b).eps(eps));
}

} // namespace

double RwkvConfig::minParameters() const
{
    const double C = double(dModel), A = double(dAtt), Fd = double(dFfn);
    const double perLayer = 4 * C + 4 * A * C + C * A + 2 * A + 2 * C + Fd * C + C * C + C * Fd;
    return 2 * double(vocabSize) * C + 4 * C + double(nLayer) * perLayer;
}

void RwkvConfig::validate(const std::string& file) const
{
    auto inRange = [&](const char* name, int64_t v, int64_t max) {
        if (v <= 0 || v > max)
            throw Error(file, name, "an integer in [1, " + str(max) + "]", str(v));
    };
    inRange("hidden_size", dModel, kMaxWidth);
    inRange("num_hidden_layers", nLayer, 1 << 12);
    inRange("attention_hidden_size", dAtt, kMaxWidth);
    inRange("head_size", headSize, 1 << 12);
    inRange("intermediate_size", dFfn, 1 << 20);
    inRange("vocab_size", vocabSize, int64_t(1) << 31);
    if (dAtt % headSize != 0)
        throw Error(file, "head_size", "a divisor of attention_hidden_size = " + str(dAtt), str(headSize));
    if (!(headSizeDivisor > 0) || !std::isfinite(headSizeDivisor))
        throw Error(file, "head_size_divisor", "a finite number > 0", std::to_string(headSizeDivisor));
    if (!(normEps > 0) || !std::isfinite(normEps))
        throw Error(file, "layer_norm_epsilon", "a finite number > 0", std::to_string(normEps));
    if (chunkSize % kKeyDecaySubBlock != 0 || chunkSize <= 0 || chunkSize > 4096)
        throw Error(file, "chunk_size", "a multiple of 16 in [16, 4096]", str(chunkSize));
}

RwkvConfig parseRwkvConfig(const nlohmann::json& j, int version, const std::string& file)
{
    RwkvConfig c;
    c.version = version;
    c.dModel = intField(j, "hidden_size", 2048, file, "", 1, kMaxWidth);
    c.nLayer = intField(j, "num_hidden_layers", 24, file, "", 1, 1 << 12);
    c.dAtt = intField(j, "attention_hidden_size", c.dModel, file, "", 1, kMaxWidth);
    c.headSize = intField(j, "head_size", 64, file, "", 1, 1 << 12);
    c.dFfn = intField(j, "intermediate_size", defaultFfn(c.dModel), file, "", 1, 1 << 20);
    c.vocabSize = intField(j, "vocab_size", 65536, file, "", 1, int64_t(1) << 31);
    c.headSizeDivisor = numberField(j, "head_size_divisor", 8.0, file);
    c.normEps = numberField(j, "layer_norm_epsilon", 1e-5, file);
    c.rescaleEvery = intField(j, "rescale_every", 6, file, "", 0, 1 << 12);
    c.chunkSize = intField(j, "chunk_size", 64, file, "", 1, 4096);
    if (j.contains("num_attention_heads") && !j["num_attention_heads"].is_null()) {
        const int64_t heads = intField(j, "num_attention_heads", 0, file, "", 1, kMaxWidth);
        if (heads * c.headSize != c.dAtt)
            throw Error(file, "num_attention_heads",
                        "attention_hidden_size / head_size = " + str(c.dAtt / c.headSize), str(heads));
    }
    c.validate(file);
    return c;
}

nlohmann::ordered_json rwkvConfigJson(const RwkvConfig& c)
{
    nlohmann::ordered_json j;
    j["architectures"] = {c.version == 5 ? "Rwkv5ForCausalLM" : "Rwkv6ForCausalLM"};
    j["model_type"] = c.version == 5 ? "rwkv5" : "rwkv6";
    j["hidden_size"] = c.dModel;
    j["num_hidden_layers"] = c.nLayer;
    j["attention_hidden_size"] = c.dAtt;
    j["head_size"] = c.headSize;
    j["head_size_divisor"] = c.headSizeDivisor;
    j["intermediate_size"] = c.dFfn;
    j["vocab_size"] = c.vocabSize;
    j["layer_norm_epsilon"] = c.normEps;
    j["rescale_every"] = c.rescaleEvery;
    j["tie_word_embeddings"] = false;
    return j;
}

std::string rwkvNativeName(const std::string& stored)
{
    std::string n = stored;
    auto replace = [&](const std::string& from, const std::string& to) {
        const size_t at = n.find(from);
        if (at != std::string::npos)
            n.replace(at, from.size(), to);
    };
    if (n.rfind("rwkv.", 0) == 0)
        n = n.substr(5);
    if (n == "embeddings.weight")
        return "emb.weight";
    replace(".pre_ln.", ".ln0.");
    replace(".attention.", ".att.");
    replace(".feed_forward.", ".ffn.");
    // transformers' RWKV-5 spells the token-shift mixes out.
    for (const auto& [from, to] : {std::pair<const char*, const char*>{".time_mix_key", ".time_mix_k"},
                                   {".time_mix_value", ".time_mix_v"},
                                   {".time_mix_receptance", ".time_mix_r"},
                                   {".time_mix_gate", ".time_mix_g"}})
        if (n.size() >= std::string(from).size() &&
            n.compare(n.size() - std::string(from).size(), std::string::npos, from) == 0)
            replace(from, to);
    return n;
}

nlohmann::json rwkvConfigFromTensors(int version, const std::map<std::string, std::vector<int64_t>>& shapes,
                                     const nlohmann::json& overrides, const std::string& file)
{
    auto has = [&](const std::string& n) { return shapes.count(n) != 0; };
    auto shape = [&](const std::string& n) { return shapes.at(n); };
    if (!has("emb.weight") || !has("blocks.0.att.key.weight"))
        return nullptr;
    const bool v6 = has("blocks.0.att.time_maa_x");
    if (version == 6 && !v6)
        return nullptr;
    if (version == 5) {
        if (v6)
            return nullptr;
        // BlinkDL's version rules: ln_x makes it 5.x, a gate 5.1, a [H, S] time_decay 5.2.
        const bool lnx = has("blocks.0.att.ln_x.weight"), gate = has("blocks.0.att.gate.weight");
        const std::vector<int64_t> decay = has("blocks.0.att.time_decay")
                                               ? squeezed(shape("blocks.0.att.time_decay"))
                                               : std::vector<int64_t>{};
        if (!lnx)
            return nullptr; // RWKV-4 or something else: not ours
        if (!gate || decay.size() != 2)
            throw Error(
                file, "version",
                "RWKV-5.2 or RWKV-6.0 (RWKV-5.0 and 5.1, without att.gate or with one decay per head, "
                "are not supported)",
                std::string(gate ? "RWKV-5.1" : "RWKV-5.0") + " (blocks.0.att.time_decay " +
                    shapeString(has("blocks.0.att.time_decay") ? shape("blocks.0.att.time_decay")
                                                               : std::vector<int64_t>{}) +
                    ")");
    }
    const std::vector<int64_t> emb = shape("emb.weight");
    if (emb.size() != 2)
        throw Error(file, "tensor emb.weight", "[vocab, d_model]", shapeString(emb));
    int64_t layers = 0;
    while (has("blocks." + str(layers) + ".ln1.weight"))
        ++layers;
    const std::vector<int64_t> key = shape("blocks.0.att.key.weight");
    if (key.size() != 2 || key[1] != emb[1])
        throw Error(file, "tensor blocks.0.att.key.weight", "[d_att, " + str(emb[1]) + "]", shapeString(key));
    if (!has("blocks.0.att.time_faaaa"))
        throw Error(file, "tensor blocks.0.att.time_faaaa", "present (the bonus u, [heads, head_size])",
                    "missing");
    const std::vector<int64_t> faaaa = shape("blocks.0.att.time_faaaa");
    if (faaaa.empty() || faaaa[0] <= 0 || key[0] % faaaa[0] != 0)
        throw Error(file, "tensor blocks.0.att.time_faaaa",
                    "[heads, d_att / heads] with d_att " + str(key[0]), shapeString(faaaa));
    if (!has("blocks.0.ffn.key.weight") || shape("blocks.0.ffn.key.weight").size() != 2)
        throw Error(file, "tensor blocks.0.ffn.key.weight", "[d_ffn, d_model]",
                    has("blocks.0.ffn.key.weight") ? shapeString(shape("blocks.0.ffn.key.weight"))
                                                   : "missing");
    nlohmann::json c = {{"model_type", v6 ? "rwkv6" : "rwkv5"},
                        {"hidden_size", emb[1]},
                        {"num_hidden_layers", layers},
                        {"attention_hidden_size", key[0]},
                        {"head_size", key[0] / faaaa[0]},
                        {"head_size_divisor", 8},
                        {"intermediate_size", shape("blocks.0.ffn.key.weight")[0]},
                        {"vocab_size", emb[0]},
                        {"layer_norm_epsilon", 1e-5},
                        {"rescale_every", 6},
                        {"statescope_layout", "blinkdl"}};
    if (overrides.is_null())
        return c;
    if (!overrides.is_object())
        throw Error(file, "top level", "a JSON object with RWKV-LM's argument names", overrides.type_name());
    // RWKV-LM's names for what the shapes already say must agree with them.
    const std::pair<const char*, const char*> checked[] = {
        {"n_layer", "num_hidden_layers"},     {"n_embd", "hidden_size"},
        {"vocab_size", "vocab_size"},         {"head_size_a", "head_size"},
        {"dim_att", "attention_hidden_size"}, {"dim_ffn", "intermediate_size"}};
    for (const auto& [theirs, ours] : checked)
        if (overrides.contains(theirs) && !overrides[theirs].is_null()) {
            const int64_t v = intField(overrides, theirs, 0, file, "", 1, int64_t(1) << 40);
            if (v != c[ours].get<int64_t>())
                throw Error(file, theirs, str(c[ours].get<int64_t>()) + " (from the checkpoint's shapes)",
                            str(v));
        }
    if (overrides.contains("version") && !overrides["version"].is_null()) {
        const nlohmann::json& v = overrides["version"];
        const std::string given = v.is_string() ? v.get<std::string>() : v.dump();
        const std::string expected = v6 ? "6" : "5.2";
        if (given != expected && given != expected + ".0")
            throw Error(file, "version", expected + " (from the checkpoint's keys)", given);
    }
    if (overrides.contains("head_size_divisor"))
        c["head_size_divisor"] = numberField(overrides, "head_size_divisor", 8.0, file);
    if (overrides.contains("layer_norm_epsilon"))
        c["layer_norm_epsilon"] = numberField(overrides, "layer_norm_epsilon", 1e-5, file);
    return c;
}

// --- the model ---------------------------------------------------------------------------------------

RwkvModel::RwkvModel(RwkvConfig config, RwkvWeights weights, torch::ScalarType dtype, ProbeDetail detail)
    : m_config(std::move(config)), m_weights(std::move(weights)), m_dtype(dtype), m_detail(detail)
{
    if (m_dtype == torch::kFloat64) {
        widenToFloat64({&m_weights.ln0W, &m_weights.ln0B, &m_weights.lnOutW, &m_weights.lnOutB});
        for (RwkvLayer& L : m_weights.layers) {
            widenToFloat64({&L.ln1W, &L.ln1B, &L.ln2W, &L.ln2B, &L.decay, &L.u, &L.lnxW, &L.lnxB, &L.ffnMixK,
                            &L.ffnMixR, &L.maaW1, &L.maaW2, &L.decayW1, &L.decayW2});
            for (torch::Tensor& t : L.attMix)
                widenToFloat64({&t});
        }
    }
    if (rescaled() && m_config.rescaleEvery > 0)
        for (size_t l = 0; l < m_weights.layers.size(); ++l) {
            const double f = std::ldexp(1.0, -int(int64_t(l) / m_config.rescaleEvery));
            m_weights.layers[l].wo = (m_weights.layers[l].wo.to(torch::kFloat32) * f).to(m_dtype);
            m_weights.layers[l].ffnV = (m_weights.layers[l].ffnV.to(torch::kFloat32) * f).to(m_dtype);
        }
}

torch::Tensor RwkvModel::takeVector(WeightLoader& w, const std::string& name,
                                    const std::vector<int64_t>& shape, torch::ScalarType dtype)
{
    const std::vector<int64_t> stored = w.shapeOf(name);
    if (squeezed(stored) != squeezed(shape))
        throw Error(w.fileOf(name), "tensor " + name, shapeString(shape), shapeString(stored));
    return w.take(name, stored, dtype).reshape(shape).contiguous();
}

RwkvWeights
RwkvModel::loadWeights(const ModelFolder& folder, const RwkvConfig& c, torch::Device device,
                       torch::ScalarType dtype,
                       const std::function<void(WeightLoader&, const std::string&, RwkvLayer&,
                                                const RwkvConfig&, torch::ScalarType)>& takeAttention)
{
    WeightLoader w(readWeights(folder, rwkvNativeName), device);
    const auto f32 = dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    const int64_t C = c.dModel, A = c.dAtt, Fd = c.dFfn;
    RwkvWeights rw;
    const int64_t vocab = w.embeddingRows("emb.weight", C, c.vocabSize);
    rw.emb = w.take("emb.weight", {vocab, C}, dtype);
    rw.ln0W = takeVector(w, "blocks.0.ln0.weight", {C}, f32);
    rw.ln0B = takeVector(w, "blocks.0.ln0.bias", {C}, f32);
    for (int64_t l = 0; l < c.nLayer; ++l) {
        const std::string p = "blocks." + str(l) + ".";
        RwkvLayer L;
        L.ln1W = takeVector(w, p + "ln1.weight", {C}, f32);
        L.ln1B = takeVector(w, p + "ln1.bias", {C}, f32);
        L.ln2W = takeVector(w, p + "ln2.weight", {C}, f32);
        L.ln2B = takeVector(w, p + "ln2.bias", {C}, f32);
        takeAttention(w, p + "att.", L, c, f32);
        L.u = takeVector(w, p + "att.time_faaaa", {c.nHeads(), c.headSize}, f32);
        L.wr = w.take(p + "att.receptance.weight", {A, C}, dtype);
        L.wk = w.take(p + "att.key.weight", {A, C}, dtype);
        L.wv = w.take(p + "att.value.weight", {A, C}, dtype);
        L.wg = w.take(p + "att.gate.weight", {A, C}, dtype);
        L.wo = w.take(p + "att.output.weight", {C, A}, dtype);
        L.lnxW = takeVector(w, p + "att.ln_x.weight", {A}, f32);
        L.lnxB = takeVector(w, p + "att.ln_x.bias", {A}, f32);
        const char* mixK = c.version == 5 ? "ffn.time_mix_k" : "ffn.time_maa_k";
        const char* mixR = c.version == 5 ? "ffn.time_mix_r" : "ffn.time_maa_r";
        L.ffnMixK = takeVector(w, p + mixK, {C}, f32);
        L.ffnMixR = takeVector(w, p + mixR, {C}, f32);
        L.ffnK = w.take(p + "ffn.key.weight", {Fd, C}, dtype);
        L.ffnR = w.take(p + "ffn.receptance.weight", {C, C}, dtype);
        L.ffnV = w.take(p + "ffn.value.weight", {C, Fd}, dtype);
        rw.layers.push_back(std::move(L));
    }
    rw.lnOutW = takeVector(w, "ln_out.weight", {C}, f32);
    rw.lnOutB = takeVector(w, "ln_out.bias", {C}, f32);
    rw.head = w.take("head.weight", {vocab, C}, dtype);
    return rw;
}

RwkvWeights RwkvModel::randomWeights(const RwkvConfig& c, torch::Device device, torch::ScalarType dtype)
{
    auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    const int64_t C = c.dModel, A = c.dAtt, Fd = c.dFfn, H = c.nHeads(), S = c.headSize;
    auto matrix = [&](int64_t rows, int64_t cols, double scale) {
        return (torch::randn({rows, cols}, f32) * (scale / std::sqrt(double(cols)))).to(dtype);
    };
    RwkvWeights rw;
    rw.emb = (torch::randn({c.vocabSize, C}, f32) * 0.5).to(dtype);
    rw.ln0W = torch::ones({C}, f32);
    rw.ln0B = torch::zeros({C}, f32);
    for (int64_t l = 0; l < c.nLayer; ++l) {
        RwkvLayer L;
        L.ln1W = torch::ones({C}, f32);
        L.ln1B = torch::zeros({C}, f32);
        L.ln2W = torch::ones({C}, f32);
        L.ln2B = torch::zeros({C}, f32);
        L.u = torch::rand({H, S}, f32) * 0.5 + 0.25;
        L.wr = matrix(A, C, 1.0);
        L.wk = matrix(A, C, 0.5);
        L.wv = matrix(A, C, 1.0);
        L.wg = matrix(A, C, 1.0);
        L.wo = matrix(C, A, 1.0 / std::sqrt(2.0 * double(c.nLayer)));
        L.lnxW = torch::ones({A}, f32);
        L.lnxB = torch::zeros({A}, f32);
        L.ffnMixK = torch::rand({C}, f32);
        L.ffnMixR = torch::rand({C}, f32);
        L.ffnK = matrix(Fd, C, 1.0);
        L.ffnR = matrix(C, C, 1.0);
        L.ffnV = matrix(C, Fd, 1.0 / std::sqrt(2.0 * double(c.nLayer)));
        rw.layers.push_back(std::move(L));
    }
    rw.lnOutW = torch::ones({C}, f32);
    rw.lnOutB = torch::zeros({C}, f32);
    rw.head = matrix(c.vocabSize, C, 1.0);
    return rw;
}

std::vector<ProbeDesc> rwkvProbeDescs(const RwkvConfig& c, ProbeDetail detail)
{
    const std::vector<int64_t> shape{c.nLayer, c.nHeads()};
    const std::vector<std::string> axes{"layer", "head"};
    const std::string meaning = std::string(c.version == 5 ? "RWKV-5.2" : "RWKV-6") +
                                " head: a head_size x head_size wkv matrix with one decay per key channel" +
                                (c.version == 5 ? " (static)" : " (data-dependent)");
    std::vector<ProbeDesc> d{
        {kDecayProbe,
         "forget gate exp(mean log w) over the head's key channels, w = exp(-exp(time_decay...))", shape,
         axes, meaning, "", ProbeSummary::GeoMean, "w"},
        {kStateNormProbe, "Frobenius norm of the head's wkv matrix after the token", shape, axes, meaning, "",
         ProbeSummary::RootSumSquare, "‖S‖"},
    };
    if (detail == ProbeDetail::Full)
        d.push_back({"key_decay",
                     "decay w of each key channel (head h's key k at h x head_size + k)",
                     {c.nLayer, c.nHeads() * c.headSize},
                     {"layer", "key channel"},
                     "one key channel of a head: its row of the wkv matrix decays by w each token",
                     "",
                     ProbeSummary::GeoMean,
                     "w_k"});
    return d;
}

std::vector<ProbeDesc> RwkvModel::probeDescs() const
{
    std::vector<ProbeDesc> d = rwkvProbeDescs(m_config, m_detail);
    if (m_context.window > 0) {
        // The shared names and summaries, in RWKV's terms: the decay is per key channel (retention is
        // their geometric mean), the key is B's counterpart, and the token-shift state has no conv RMS.
        const std::string meaning = d.front().headMeaning;
        for (ProbeDesc& p : oldContextProbeDescs({m_config.nLayer, m_config.nHeads()}, {"layer", "head"},
                                                 meaning, m_context)) {
            if (p.name == "conv_rms")
                continue;
            if (p.name == "retention")
                p.description +=
                    " (RWKV: the geometric mean over the head's key channels of w over the window)";
            else if (p.name == "old_share")
                p.description = "old-context share |w_{b+1:t} S_b| / |S_t| of the wkv matrix, w per key row";
            else if (p.name == "old_readout_share")
                p.description = "read-out share |r . w_{b+1:t-1} S_b| / |wkv output| of the old part";
            else if (p.name == "insertion")
                p.description = "insertion strength |k_t| |v_t| (the norm of the token's k^T v)";
            else if (p.name == "b_norm")
                p.description = "|k_t|, the key the token writes with (B's counterpart)";
            d.push_back(std::move(p));
        }
    }
    return d;
}

std::unique_ptr<ModelState> RwkvModel::initialState(int64_t batch) const
{
    auto s = std::make_unique<RwkvState>();
    auto o = torch::TensorOptions().dtype(accumulation()).device(device());
    const int64_t H = m_config.nHeads(), S = m_config.headSize;
    for (int64_t l = 0; l < m_config.nLayer; ++l) {
        s->conv.push_back(torch::zeros({batch, 2, m_config.dModel}, o));
        s->ssm.push_back(torch::zeros({batch, H, S, S}, o));
        s->decaySum.push_back(torch::zeros({batch, H, S}, o.dtype(torch::kFloat64))); // per key channel
    }
    s->snapshots.resize(size_t(m_config.nLayer));
    s->contextSnapshots.resize(size_t(m_config.nLayer));
    return s;
}

int64_t RwkvModel::parameterCount() const
{
    int64_t n = m_weights.emb.numel() + m_weights.head.numel() + 4 * m_config.dModel;
    for (const RwkvLayer& L : m_weights.layers) {
        for (const torch::Tensor* t :
             {&L.ln1W,    &L.ln1B,    &L.ln2W,    &L.ln2B, &L.maaW1, &L.maaW2, &L.decay, &L.decayW1,
              &L.decayW2, &L.u,       &L.wr,      &L.wk,   &L.wv,    &L.wg,    &L.wo,    &L.lnxW,
              &L.lnxB,    &L.ffnMixK, &L.ffnMixR, &L.ffnK, &L.ffnR,  &L.ffnV})
            if (t->defined())
                n += t->numel();
        for (const torch::Tensor& t : L.attMix)
            n += t.numel();
    }
    return n;
}

void RwkvModel::saveFolder(const std::string& dir) const
{
    writeConfigJson(dir, rwkvConfigJson(m_config).dump(2));
    FolderWriter w;
    // Written in the Hugging Face remote-code names, which load() reads back like native ones.
    auto hf = [](const std::string& native) {
        std::string n = native;
        auto replace = [&](const std::string& from, const std::string& to) {
            const size_t at = n.find(from);
            if (at != std::string::npos)
                n.replace(at, from.size(), to);
        };
        replace(".att.", ".attention.");
        replace(".ffn.", ".feed_forward.");
        replace(".ln0.", ".pre_ln.");
        return "rwkv." + n;
    };
    w.put("rwkv.embeddings.weight", m_weights.emb);
    w.put(hf("blocks.0.ln0.weight"), m_weights.ln0W);
    w.put(hf("blocks.0.ln0.bias"), m_weights.ln0B);
    for (size_t l = 0; l < m_weights.layers.size(); ++l) {
        const RwkvLayer& L = m_weights.layers[l];
        const std::string p = "blocks." + str(int64_t(l)) + ".";
        const double undo = rescaled() && m_config.rescaleEvery > 0
                                ? std::ldexp(1.0, int(int64_t(l) / m_config.rescaleEvery))
                                : 1.0;
        std::vector<std::pair<std::string, torch::Tensor>> att;
        putAttention(L, p + "att.", att);
        for (auto& [name, t] : att)
            w.put(hf(name), t);
        for (const auto& [name, t] : std::vector<std::pair<std::string, torch::Tensor>>{
                 {"ln1.weight", L.ln1W},
                 {"ln1.bias", L.ln1B},
                 {"ln2.weight", L.ln2W},
                 {"ln2.bias", L.ln2B},
                 {"att.time_faaaa", L.u},
                 {"att.receptance.weight", L.wr},
                 {"att.key.weight", L.wk},
                 {"att.value.weight", L.wv},
                 {"att.gate.weight", L.wg},
                 {"att.output.weight", L.wo.to(torch::kFloat32) * undo},
                 {"att.ln_x.weight", L.lnxW},
                 {"att.ln_x.bias", L.lnxB},
                 {"ffn.key.weight", L.ffnK},
                 {"ffn.receptance.weight", L.ffnR},
                 {"ffn.value.weight", L.ffnV.to(torch::kFloat32) * undo}})
            w.put(hf(p + name), t);
        w.put(hf(p + (m_config.version == 5 ? "ffn.time_mix_key" : "ffn.time_maa_k")), L.ffnMixK);
        w.put(hf(p + (m_config.version == 5 ? "ffn.time_mix_receptance" : "ffn.time_maa_r")), L.ffnMixR);
    }
    w.put("rwkv.ln_out.weight", m_weights.lnOutW);
    w.put("rwkv.ln_out.bias", m_weights.lnOutB);
    w.put("head.weight", m_weights.head);
    w.write(dir + "/model.safetensors");
}

torch::Tensor RwkvModel::project(const torch::Tensor& x, const torch::Tensor& w) const
{
    return F::linear(x.to(m_dtype), w.to(m_dtype)).to(accumulation());
}

torch::Tensor RwkvModel::logits(const torch::Tensor& hidden) const
{
    return project(hidden, m_weights.head);
}

void RwkvModel::checkMitigation() const
{
    const std::string what = architecture() + " model";
    if (m_mitigation.dt != 1.0)
        throw Error(what, "mitigation dt", "alpha, A or B (RWKV has no step size Delta)",
                    "dt=" + std::to_string(m_mitigation.dt));
}

// lambda_alpha multiplies each key channel's decay, lambda_A raises it to a power, lambda_B scales
// the key: each skipped at 1, so that the original run is reproduced bit for bit.
void RwkvModel::applyKnobs(Mixed& m) const
{
    if (m_mitigation.A != 1.0)
        m.logw = m.logw * m_mitigation.A;
    if (m_mitigation.alpha != 1.0)
        m.logw = m.logw + std::log(m_mitigation.alpha);
    if (m_mitigation.B != 1.0)
        m.k = m.k * m_mitigation.B;
}

ForwardResult RwkvModel::forward(const torch::Tensor& ids, ModelState& state, bool recurrent, bool withProbes)
{
    checkMitigation();
    auto& s = static_cast<RwkvState&>(state);
    const size_t nLayers = m_weights.layers.size();
    ForwardResult r;
    KeyDecayProbeStack probes(nLayers, m_detail == ProbeDetail::Full, m_context.window > 0);
    auto embed = [&](const torch::Tensor& tokens) {
        const torch::Tensor e = F::embedding(tokens, m_weights.emb).to(accumulation());
        return layerNorm(e, m_weights.ln0W, m_weights.ln0B, m_config.normEps);
    };
    auto run = [&](const torch::Tensor& tokens) { // [B, T] -> [B, T, C]
        torch::Tensor x = embed(tokens);
        for (size_t l = 0; l < nLayers; ++l) {
            KeyDecayLayerProbes p;
            x = block(l, x, s, recurrent, withProbes ? &p : nullptr);
            if (withProbes)
                probes.add(l, p);
        }
        s.tokens += tokens.size(1);
        return layerNorm(x, m_weights.lnOutW, m_weights.lnOutB, m_config.normEps);
    };
    r.hidden = overTokens(ids, recurrent, run);
    if (withProbes)
        r.probes = probes.stacked();
    return r;
}

torch::Tensor RwkvModel::block(size_t l, torch::Tensor x, RwkvState& s, bool recurrent,
                               KeyDecayLayerProbes* probes) const
{
    const RwkvLayer& L = m_weights.layers[l];
    const RwkvConfig& c = m_config;
    const int64_t Bsz = x.size(0), T = x.size(1), H = c.nHeads(), S = c.headSize;
    const torch::Tensor shift = s.conv[l];                       // [B, 2, C]
    auto shifted = [&](const torch::Tensor& xx, int64_t which) { // the previous token's, [B, T, C]
        const torch::Tensor first = shift.select(1, which).unsqueeze(1);
        return T == 1 ? first : torch::cat({first, xx.narrow(1, 0, T - 1)}, 1);
    };

    // Time mix.
    const torch::Tensor xx = layerNorm(x, L.ln1W, L.ln1B, c.normEps);
    Mixed m = timeMix(L, xx, shifted(xx, 0));
    applyKnobs(m);
    if (probes) {
        probes->decay = m.logw.expand({Bsz, T, H, S}).mean(-1).exp();
        if (m_detail == ProbeDetail::Full)
            probes->keyDecay = m.logw.expand({Bsz, T, H, S}).exp().reshape({Bsz, T, H * S});
    }
    const KeyDecayRecurrence wkv(m_mitigation, m_tau, m_context, accumulation(), c.chunkSize);
    torch::Tensor y = wkv.run(l, m.r, m.k, m.v, m.logw, L.u, s, recurrent, probes ? &probes->scan : nullptr);
    // ln_x: a GroupNorm with one group per head.
    y = (y - y.mean(-1, true)) * torch::rsqrt(y.var(-1, false, true) + c.groupNormEps());
    y = y.reshape({Bsz, T, c.dAtt}) * L.lnxW + L.lnxB;
    x = x + project(y * m.g, L.wo);

    // Channel mix.
    const torch::Tensor xx2 = layerNorm(x, L.ln2W, L.ln2B, c.normEps);
    const torch::Tensor sx2 = shifted(xx2, 1);
    torch::Tensor kx, rx;
    if (c.version == 5) { // time_mix: x * mix + previous * (1 - mix)
        kx = xx2 * L.ffnMixK + sx2 * (1 - L.ffnMixK);
        rx = xx2 * L.ffnMixR + sx2 * (1 - L.ffnMixR);
    } else { // time_maa: x + (previous - x) * maa
        kx = xx2 + (sx2 - xx2) * L.ffnMixK;
        rx = xx2 + (sx2 - xx2) * L.ffnMixR;
    }
    const torch::Tensor k = torch::relu(project(kx, L.ffnK)).square();
    x = x + torch::sigmoid(project(rx, L.ffnR)) * project(k, L.ffnV);
    s.conv[l] = torch::stack({xx.select(1, T - 1), xx2.select(1, T - 1)}, 1);
    if (rescaled() && c.rescaleEvery > 0 && (int64_t(l) + 1) % c.rescaleEvery == 0)
        x = x / 2;
    return x;
}

// --- the registry's side --------------------------------------------------------------------------

ModelShape describeRwkv(const RwkvConfig& c, const std::string& layout, const std::string& name,
                        const std::string& displayName, ProbeDetail detail)
{
    ModelShape s;
    s.architecture = name;
    s.displayName = displayName;
    s.layout = layout;
    s.layers = c.nLayer;
    s.units = c.nHeads();
    s.unitName = "head";
    s.vocabSize = c.vocabSize;
    s.stateSize = c.stateSize();
    s.stateSizeDefinition = "per layer: heads x head_size^2 (the wkv matrices); the two token-shift vectors "
                            "(2 x d_model per layer) are not counted, as in the paper's table";
    s.minParameters = saturatedCount(c.minParameters());
    s.tokenizer = c.vocabSize == 65536 ? "world" : c.vocabSize == 256 ? "bytes" : "";
    s.forgetFitNote = "the paper's fit was measured on Mamba-2 (its Fig. 11); an RWKV model's forget "
                      "threshold has to be measured (statescope-cli eval)";
    s.details = {{"version", c.version == 5 ? "5.2" : "6.0"},
                 {"d_model", str(c.dModel)},
                 {"layers", str(c.nLayer)},
                 {"heads", str(c.nHeads()) + " x head_size " + str(c.headSize)},
                 {"d_ffn", str(c.dFfn)},
                 {"head_size_divisor", std::to_string(c.headSizeDivisor)},
                 {"vocabulary", str(c.vocabSize)}};
    s.probes = rwkvProbeDescs(c, detail);
    return s;
}

std::vector<std::string> rwkvShapeNames(int version)
{
    if (version == 5)
        return {"0.4b", "1.5b", "3b", "7b", "tiny"};
    return {"1.6b", "3b", "7b", "14b", "tiny"};
}

nlohmann::json rwkvShapeConfig(int version, const std::string& shape, const nlohmann::json& overrides)
{
    struct Row {
        const char* name;
        int64_t d, l;
    };
    // The World models' sizes (RWKV-5: stuffed-mamba.md §6.4; RWKV-6 Finch 1.6B/3B/7B/14B).
    const std::vector<Row> rows =
        version == 5
            ? std::vector<Row>{{"0.4b", 1024, 24},
                               {"1.5b", 2048, 24},
                               {"3b", 2560, 32},
                               {"7b", 4096, 32},
                               {"tiny", 64, 2}}
            : std::vector<Row>{
                  {"1.6b", 2048, 24}, {"3b", 2560, 32}, {"7b", 4096, 32}, {"14b", 4096, 61}, {"tiny", 64, 2}};
    for (const Row& r : rows)
        if (shape == r.name) {
            const bool tiny = shape == "tiny";
            nlohmann::json c = {{"model_type", version == 5 ? "rwkv5" : "rwkv6"},
                                {"hidden_size", r.d},
                                {"num_hidden_layers", r.l},
                                {"attention_hidden_size", r.d},
                                {"head_size", tiny ? 16 : 64},
                                {"head_size_divisor", 8},
                                {"vocab_size", tiny ? 512 : 65536},
                                {"layer_norm_epsilon", 1e-5},
                                {"rescale_every", 6}};
            for (const auto& [key, value] : overrides.items())
                c[key] = value;
            // The CLI's shape options speak Mamba's names: a head's state is head_size x head_size, so
            // both its head_dim and its state_size are RWKV's head_size.
            for (const char* alias : {"head_dim", "state_size"})
                if (c.contains(alias)) {
                    if (!overrides.contains("head_size"))
                        c["head_size"] = c[alias];
                    c.erase(alias);
                }
            c.erase("n_groups");
            if (!overrides.contains("attention_hidden_size"))
                c["attention_hidden_size"] = c["hidden_size"];
            if (!overrides.contains("intermediate_size") && c["hidden_size"].is_number_integer())
                c["intermediate_size"] = defaultFfn(c["hidden_size"].get<int64_t>());
            return c;
        }
    return nullptr;
}

std::string rwkvLayout(const nlohmann::json& j, const char* modelType)
{
    auto type = j.find("model_type");
    if (type == j.end() || !type->is_string() || type->get<std::string>() != modelType)
        return "";
    auto layout = j.find("statescope_layout");
    if (layout != j.end() && layout->is_string() && layout->get<std::string>() == "blinkdl")
        return "blinkdl";
    return "transformers";
}

} // namespace statescope
