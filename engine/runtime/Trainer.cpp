#include "runtime/Trainer.h"

#include "Error.h"
#include "io/AtomicFile.h"
#include "io/Json.h"
#include "io/MappedFile.h"
#include "models/ConfigFields.h"
#include "models/Mamba2.h"
#include "models/ModelCard.h"
#include "runtime/DataParallel.h"
#include "runtime/Passkey.h"
#include "runtime/Profiler.h"
#include "runtime/Runner.h"
#include "runtime/TokenCorpus.h"
#include "tokenizers/ByteTokenizerJson.h"
#include "tokenizers/Tokenizer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;

namespace statescope {

namespace {

double learningRate(const TrainOptions& o, int64_t step)
{
    const double minLr = o.lr * o.minLrRatio;
    if (step < o.warmup)
        return o.lr * double(step + 1) / double(o.warmup);
    const double progress = double(step - o.warmup) / double(std::max<int64_t>(1, o.steps - o.warmup));
    if (o.schedule == "wsd") {
        const double decayStart = 0.8;
        if (progress < decayStart)
            return o.lr;
        return minLr + (o.lr - minLr) * (1.0 - (progress - decayStart) / (1.0 - decayStart));
    }
    return minLr + 0.5 * (o.lr - minLr) * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

// Random windows of `length` tokens from the corpus.
void fillFromCorpus(const TokenCorpus& corpus, int64_t length, std::mt19937_64& rng, int64_t* row)
{
    std::uniform_int_distribution<int64_t> start(0, corpus.size() - length);
    corpus.copy(start(rng), length, row);
}

torch::Tensor sampleBatch(const TokenCorpus& corpus, int64_t batch, int64_t length, std::mt19937_64& rng)
{
    torch::Tensor ids = torch::empty({batch, length + 1}, torch::kLong);
    for (int64_t b = 0; b < batch; ++b)
        fillFromCorpus(corpus, length + 1, rng, ids[b].data_ptr<int64_t>());
    return ids;
}

// The passkey documents of TrainOptions::passkeyFraction, made by the sweep's own template code.
class PasskeyDocuments {
public:
    PasskeyDocuments(const TrainOptions& o, Tokenizer tokenizer)
        : m_tokenizer(std::move(tokenizer)), m_seed(o.seed + kSeedOffset)
    {
        const int64_t answer = static_cast<int64_t>(answerIds("00000").size());
        m_minLength = o.passkeyMinLength;
        if (m_minLength <= 0) {
            // The shortest length that holds prefix, suffix and one block: makePasskeySample says which.
            for (m_minLength = 1; m_minLength < kLongestPrompt; ++m_minLength) {
                try {
                    makePasskeySample(m_tokenizer, m_minLength, 0, 1, m_seed);
                    break;
                } catch (const Error&) {
                }
            }
        }
        m_maxLength = o.trainLength + 1 - answer;
        if (m_minLength > m_maxLength)
            throw Error("passkey documents", "T_train",
                        "at least " + std::to_string(m_minLength + answer - 1) +
                            " tokens (the shortest passkey prompt and its answer)",
                        std::to_string(o.trainLength));
        makePasskeySample(m_tokenizer, m_minLength, 0, 1, m_seed); // throws, naming the length, if too short
    }

    int64_t minLength() const { return m_minLength; }
    int64_t maxLength() const { return m_maxLength; }

    // Writes one document and the corpus after it into row[0, length); returns where the answer's
    // tokens begin and end in the row.
    std::pair<int64_t, int64_t> fill(const TokenCorpus& corpus, int64_t length, std::mt19937_64& rng,
                                     int64_t* row) const
    {
        const int64_t promptLength = std::uniform_int_distribution<int64_t>(m_minLength, m_maxLength)(rng);
        const int64_t index = std::uniform_int_distribution<int64_t>(0, kDepths - 1)(rng);
        const PasskeySample s = makePasskeySample(m_tokenizer, promptLength, index, kDepths, m_seed);
        std::vector<int32_t> doc = s.ids;
        const std::vector<int32_t> answer = answerIds(s.passkey);
        doc.insert(doc.end(), answer.begin(), answer.end());
        const int64_t n = std::min<int64_t>(length, static_cast<int64_t>(doc.size()));
        for (int64_t t = 0; t < n; ++t)
            row[t] = doc[t];
        if (n < length)
            fillFromCorpus(corpus, length - n, rng, row + n);
        return {static_cast<int64_t>(s.ids.size()), n};
    }

private:
    static constexpr int64_t kDepths = 1000;
    static constexpr int64_t kLongestPrompt = 1 << 16; // where the search for the shortest one gives up
    // Training keys come from another seed than a sweep's default (0) would use.
    static constexpr uint64_t kSeedOffset = 0x5eed;

    std::vector<int32_t> answerIds(const std::string& key) const
    {
        return m_tokenizer.encode(" " + key + ".\n").ids;
    }

    Tokenizer m_tokenizer;
    uint64_t m_seed;
    int64_t m_minLength = 0, m_maxLength = 0;
};

// The model's tokenizer: the given tokenizer.json, or bytes. `text` receives the file's content,
// which the model folder keeps as its tokenizer.json.
Tokenizer trainingTokenizer(const TrainOptions& o, std::string* text = nullptr)
{
    if (o.tokenizer.empty()) {
        if (text)
            *text = byteLevelTokenizerJson();
        return Tokenizer(BpeTokenizer::fromJson(byteLevelTokenizerJson(), "byte-level tokenizer"));
    }
    if (fs::path(o.tokenizer).extension() != ".json")
        throw Error(o.tokenizer, "tokenizer", "a Hugging Face tokenizer.json (what the model folder keeps)",
                    fs::path(o.tokenizer).filename().string());
    Tokenizer t = Tokenizer::fromFile(o.tokenizer);
    if (text) {
        const auto file = MappedFile::open(o.tokenizer);
        text->assign(reinterpret_cast<const char*>(file->data()), file->size());
    }
    return t;
}

// The output layer's rows: the tokenizer's ids rounded up to a multiple of 16, as mamba_ssm pads them
// (GPT-NeoX's 50,277 become 50,288). An odd row count leaves the logits' GEMMs on unaligned kernels.
int64_t paddedVocabulary(const Tokenizer& tokenizer)
{
    constexpr int64_t kMultiple = 16;
    return (tokenizer.vocabSize() + kMultiple - 1) / kMultiple * kMultiple;
}

std::shared_ptr<TokenCorpus> openTokens(const TrainOptions& o, const std::string& path,
                                        const Tokenizer* tokenizer, const std::string& tokenizerText)
{
    if (!tokenizer)
        return TokenCorpus::bytes(path);
    // Every core, whatever --threads gives LibTorch: tokenising is a one-off step before any training,
    // and a sweep's shards wait for the one that does it (TokenCorpus).
    const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return TokenCorpus::tokenised(path, *tokenizer, tokenizerText, o.out, threads);
}

std::shared_ptr<TokenCorpus> openCorpus(const TrainOptions& o, const Tokenizer* tokenizer,
                                        const std::string& tokenizerText)
{
    auto corpus = openTokens(o, o.data, tokenizer, tokenizerText);
    if (corpus->size() < 2 * (o.trainLength + 1))
        throw Error(o.data, "corpus", "at least " + std::to_string(2 * (o.trainLength + 1)) + " tokens",
                    std::to_string(corpus->size()));
    return corpus;
}

std::unique_ptr<PasskeyDocuments> passkeyDocuments(const TrainOptions& o, const Tokenizer& tokenizer)
{
    if (!(o.passkeyFraction >= 0 && o.passkeyFraction <= 1))
        throw Error("passkey fraction", "value", "in [0, 1]", std::to_string(o.passkeyFraction));
    return o.passkeyFraction > 0 ? std::make_unique<PasskeyDocuments>(o, tokenizer) : nullptr;
}

struct Batch {
    torch::Tensor ids;    // [batch, length + 1]
    torch::Tensor answer; // [batch, length] float: 1 where the target is a passkey answer's token
    int64_t answerTokens = 0;
};

Batch sampleMixedBatch(const TokenCorpus& corpus, const PasskeyDocuments* passkeys, double fraction,
                       int64_t batch, int64_t length, std::mt19937_64& rng)
{
    Batch out;
    if (!passkeys) {
        out.ids = sampleBatch(corpus, batch, length, rng);
        return out;
    }
    out.ids = torch::empty({batch, length + 1}, torch::kLong);
    out.answer = torch::zeros({batch, length}, torch::kFloat32);
    std::bernoulli_distribution isPasskey(fraction);
    for (int64_t b = 0; b < batch; ++b) {
        int64_t* row = out.ids[b].data_ptr<int64_t>();
        if (isPasskey(rng)) {
            const auto [first, end] = passkeys->fill(corpus, length + 1, rng, row);
            // Target t is token t + 1.
            if (end > first) {
                out.answer[b].narrow(0, first - 1, end - first).fill_(1.0f);
                out.answerTokens += end - first;
            }
        } else {
            fillFromCorpus(corpus, length + 1, rng, row);
        }
    }
    return out;
}

double lossOf(Mamba2Model& model, const torch::Tensor& ids)
{
    auto state = model.initialState(ids.size(0));
    torch::Tensor input = ids.narrow(1, 0, ids.size(1) - 1);
    torch::Tensor target = ids.narrow(1, 1, ids.size(1) - 1);
    torch::Tensor hidden = model.forward(input, *state, false, false).hidden;
    torch::Tensor logits = model.logits(hidden);
    return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), target.reshape({-1}))
        .item<double>();
}

// The output layer's cross-entropy per token, without keeping the logits. Autograd through
// F::linear and cross_entropy keeps, for N tokens and V words, the logits in the compute dtype, their
// float32 copy and log-softmax, and in backward their gradients: about 26 GB for 32 K tokens of
// GPT-NeoX's vocabulary in bfloat16, more than a d512 model's layers. Here each chunk of rows is
// projected, reduced to its loss and to the loss's gradient w.r.t. its logits (softmax − one-hot),
// and only that gradient is kept, in the compute dtype (3.3 GB); backward scales its rows by the
// upstream gradient and runs the same two GEMMs autograd would. Its reference is
// checkOutputCrossEntropy, against the plain path.
class OutputCrossEntropy : public torch::autograd::Function<OutputCrossEntropy> {
public:
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                                 const torch::Tensor& w, const torch::Tensor& target, int64_t computeDtype,
                                 int64_t chunkElements)
    {
        const auto compute = static_cast<torch::ScalarType>(computeDtype);
        const auto accumulation = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
        const torch::Tensor xc = x.to(compute), wc = w.to(compute);
        const int64_t n = x.size(0), vocab = w.size(0);
        const int64_t chunkRows = std::max<int64_t>(1, chunkElements / vocab);
        torch::Tensor loss = torch::empty({n}, x.options().dtype(accumulation));
        torch::Tensor grad = torch::empty({n, vocab}, xc.options());
        for (int64_t r = 0; r < n; r += chunkRows) {
            const int64_t m = std::min(chunkRows, n - r);
            // The plain path's numbers: the product in the compute dtype, then widened.
            torch::Tensor logits = torch::mm(xc.narrow(0, r, m), wc.t()).to(accumulation);
            const torch::Tensor t = target.narrow(0, r, m).unsqueeze(1);
            const torch::Tensor lse = logits.logsumexp(1, true);
            loss.narrow(0, r, m).copy_((lse - logits.gather(1, t)).squeeze(1));
            logits.sub_(lse).exp_();
            logits.scatter_(1, t, logits.gather(1, t) - 1);
            grad.narrow(0, r, m).copy_(logits);
        }
        ctx->save_for_backward({xc, wc, grad});
        ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
        ctx->saved_data["w_dtype"] = static_cast<int64_t>(w.scalar_type());
        return loss;
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list upstream)
    {
        const auto saved = ctx->get_saved_variables();
        const torch::Tensor &xc = saved[0], &wc = saved[1];
        torch::Tensor grad = saved[2];
        // In place: a second backward through the same graph finds the version changed and refuses.
        grad.mul_(upstream[0].unsqueeze(1));
        const auto xDtype = static_cast<torch::ScalarType>(ctx->saved_data["x_dtype"].toInt());
        const auto wDtype = static_cast<torch::ScalarType>(ctx->saved_data["w_dtype"].toInt());
        return {torch::mm(grad, wc).to(xDtype), torch::mm(grad.t(), xc).to(wDtype), torch::Tensor(),
                torch::Tensor(), torch::Tensor()};
    }
};

// About 64 M logits a chunk: 256 MB in float32, GEMMs still large enough for tensor cores.
constexpr int64_t kLossChunkElements = int64_t(1) << 26;

// Per-token NLL of targets [N] after hidden states [N, d] through model's output layer.
torch::Tensor outputCrossEntropy(Mamba2Model& model, const torch::Tensor& hidden, const torch::Tensor& target)
{
    return OutputCrossEntropy::apply(hidden, model.weights().lmHead, target,
                                     static_cast<int64_t>(model.computeDtype()), kLossChunkElements);
}

void writeJson(const std::string& path, const nlohmann::ordered_json& j)
{
    writeFileAtomically(path, j.dump(2) + "\n");
}

// A trainer_state.json's seconds; 0 for one written before they were counted.
double stateSeconds(const nlohmann::json& st)
{
    return st.contains("seconds") && st["seconds"].is_number() ? st["seconds"].get<double>() : 0;
}

} // namespace

CrossEntropyCheck checkOutputCrossEntropy(const std::string& computeDtype, int64_t rows, int64_t dModel,
                                          int64_t vocab, int64_t chunkElements, uint64_t seed)
{
    torch::ScalarType compute;
    if (computeDtype == "float32")
        compute = torch::kFloat32;
    else if (computeDtype == "bfloat16")
        compute = torch::kBFloat16;
    else
        throw Error("checkOutputCrossEntropy", "computeDtype", "float32 or bfloat16", computeDtype);
    torch::manual_seed(seed);
    const torch::Tensor x0 = torch::randn({rows, dModel}), w0 = torch::randn({vocab, dModel}) * 0.3;
    const torch::Tensor target = torch::randint(vocab, {rows}, torch::kLong);
    // Tokens weighted unevenly, as the passkey answers are: backward must scale each row by its own.
    const torch::Tensor upstream = torch::rand({rows}) + 0.5;
    auto run = [&](bool kept) {
        const torch::Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
        const torch::Tensor loss =
            kept ? OutputCrossEntropy::apply(x, w, target, static_cast<int64_t>(compute), chunkElements)
                 : torch::nn::functional::cross_entropy(
                       torch::nn::functional::linear(x.to(compute), w.to(compute)).to(torch::kFloat32),
                       target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
        (loss * upstream).sum().backward();
        return std::vector<torch::Tensor>{loss.detach(), x.grad(), w.grad()};
    };
    const auto want = run(false), got = run(true);
    auto error = [](const torch::Tensor& a, const torch::Tensor& b) {
        return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
    };
    return {error(got[0], want[0]), error(got[1], want[1]), error(got[2], want[2])};
}

ForwardPair trainingAndInferenceNll(const std::string& folder, const std::vector<std::vector<int64_t>>& rows,
                                    const std::string& device, bool bf16)
{
    if (rows.empty() || rows.front().size() < 2)
        throw Error(folder, "rows", "at least one row of two or more ids",
                    std::to_string(rows.size()) + " rows");
    const int64_t width = static_cast<int64_t>(rows.front().size());
    torch::Tensor ids = torch::empty({static_cast<int64_t>(rows.size()), width}, torch::kLong);
    for (size_t r = 0; r < rows.size(); ++r) {
        if (static_cast<int64_t>(rows[r].size()) != width)
            throw Error(folder, "rows", "rows of one length", std::to_string(rows[r].size()));
        std::copy(rows[r].begin(), rows[r].end(), ids[static_cast<int64_t>(r)].data_ptr<int64_t>());
    }
    auto model = Mamba2Model::load(inspectModelFolder(folder), torch::Device(device), torch::kFloat32);
    ids = ids.to(model->device());
    const torch::Tensor input = ids.narrow(1, 0, width - 1), target = ids.narrow(1, 1, width - 1);
    auto nll = [&] {
        auto state = model->initialState(ids.size(0));
        const torch::Tensor logits = model->logits(model->forward(input, *state, false, false).hidden);
        const torch::Tensor v = torch::nn::functional::cross_entropy(
            logits.reshape({-1, logits.size(-1)}), target.reshape({-1}),
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
        const torch::Tensor host = v.detach().to(torch::kCPU, torch::kFloat64).contiguous();
        return std::vector<double>(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
    };
    ForwardPair out;
    {
        torch::NoGradGuard ng;
        out.inference = nll();
    }
    for (auto& p : model->parameters())
        p.requires_grad_(true);
    if (bf16)
        model->setComputeDtype(torch::kBFloat16);
    model->setTraining(true);
    out.training = nll();
    return out;
}

double trainedSeconds(const std::string& out)
{
    const std::string path = out + "/trainer_state.json";
    return fs::exists(path) ? stateSeconds(loadPythonJson(path)) : 0;
}

std::string snapshotFolder(const std::string& out, int64_t step)
{
    char name[32];
    std::snprintf(name, sizeof name, "step-%07lld", static_cast<long long>(step));
    return (fs::path(out) / "snapshots" / name).string();
}

std::vector<std::vector<int64_t>> drawTrainingRows(const TrainOptions& o, int64_t rows, uint64_t seed)
{
    std::string tokenizerText;
    const Tokenizer tokenizer = trainingTokenizer(o, &tokenizerText);
    const auto corpus = openCorpus(o, o.tokenizer.empty() ? nullptr : &tokenizer, tokenizerText);
    const auto passkeys = passkeyDocuments(o, tokenizer);
    std::mt19937_64 rng(seed);
    const torch::Tensor ids =
        sampleMixedBatch(*corpus, passkeys.get(), o.passkeyFraction, rows, o.trainLength, rng).ids;
    std::vector<std::vector<int64_t>> out;
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t* p = ids[r].data_ptr<int64_t>();
        out.emplace_back(p, p + ids.size(1));
    }
    return out;
}

void trainModel(const TrainOptions& options, const std::function<void(const TrainProgress&)>& log)
{
    TrainOptions o = options; // steps may be cut to fit the time budget
    if (o.dtInitMin <= 0 || o.dtInitMax < o.dtInitMin)
        throw Error("dt_init", "range", "0 < MIN <= MAX",
                    std::to_string(o.dtInitMin) + ":" + std::to_string(o.dtInitMax));
    if (o.aInitMin <= 0 || o.aInitMax < o.aInitMin)
        throw Error("a_init", "range", "0 < MIN <= MAX",
                    std::to_string(o.aInitMin) + ":" + std::to_string(o.aInitMax));
    torch::set_num_threads(o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency()));
    torch::Device device(o.device);
    if (device.is_cuda() && !torch::cuda::is_available())
        throw Error("device", "device", "cpu (CUDA is not available)", o.device);
    // Started the way torchrun starts workers: one rank of a data-parallel group. Every rank draws the
    // same global batch and trains on its share of the rows; the gradients are averaged, so the run
    // follows the single-process one with the same global batch.
    const DistributedEnv env = distributedEnvironment();
    std::unique_ptr<DataParallel> dp;
    if (env.worldSize > 1) {
        if (o.batch % env.worldSize != 0)
            throw Error("batch", "batch", "a multiple of WORLD_SIZE " + std::to_string(env.worldSize),
                        std::to_string(o.batch));
        if (device.is_cuda() && !device.has_index())
            device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.localRank));
        if (device.is_cuda())
            torch::cuda::synchronize(device.index()); // creates the context on this rank's GPU first
        dp = std::make_unique<DataParallel>(env, device);
    }
    const bool rank0 = env.rank == 0;
    const int64_t rows = o.batch / env.worldSize, firstRow = env.rank * rows;
    std::string tokenizerText;
    const Tokenizer tokenizer = trainingTokenizer(o, &tokenizerText);
    const Tokenizer* textTokenizer = o.tokenizer.empty() ? nullptr : &tokenizer;
    // Every rank reads the same cache; rank 0 builds it first, so that they do not all tokenise.
    std::shared_ptr<TokenCorpus> corpus, heldOut;
    auto openTexts = [&] {
        corpus = openCorpus(o, textTokenizer, tokenizerText);
        if (!o.heldOut.empty())
            heldOut = openTokens(o, o.heldOut, textTokenizer, tokenizerText);
    };
    if (rank0)
        openTexts();
    if (dp)
        dp->barrier();
    if (!rank0)
        openTexts();
    if (heldOut && heldOut->size() < o.trainLength + 1)
        throw Error(o.heldOut, "held-out text", "at least " + std::to_string(o.trainLength + 1) + " tokens",
                    std::to_string(heldOut->size()));
    const auto passkeys = passkeyDocuments(o, tokenizer);

    if (o.architecture != "mamba2")
        throw Error("architecture", "architecture", "mamba2 (the trainer trains Mamba-2 only so far)",
                    "\"" + o.architecture + "\"");
    // The tokenizer's ids (256 for bytes), whatever the shape's vocabulary.
    nlohmann::json overrides = o.shapeOverrides.empty()
                                   ? nlohmann::json::object()
                                   : parsePythonJson(o.shapeOverrides, "shape overrides");
    overrides["vocab_size"] = paddedVocabulary(tokenizer);
    const Mamba2Config shape = parseMamba2Config(
        nlohmann::json::parse(Runner::shapeConfig(o.architecture, o.shape, overrides.dump())), "transformers",
        "train shape " + o.shape);
    std::unique_ptr<Mamba2Model> model;
    int64_t startStep = 0;
    const std::string statePath = o.out + "/trainer_state.json";
    const std::string optimPath = o.out + "/optimizer.pt";
    std::string samplerState;    // the batch sampler where the checkpoint left it
    double priorSeconds = 0;     // trained before this process, up to the checkpoint it resumes from
    if (fs::exists(statePath)) { // resume
        const nlohmann::json st = loadPythonJson(statePath);
        startStep = intField(st, "step", 0, statePath, "", 0, int64_t(1) << 40);
        if (st.contains("sampler") && st["sampler"].is_string())
            samplerState = st["sampler"].get<std::string>();
        priorSeconds = stateSeconds(st);
        model = Mamba2Model::load(inspectModelFolder(o.out), device, torch::kFloat32);
        if (model->config().vocabSize != paddedVocabulary(tokenizer))
            throw Error(o.out + "/config.json", "vocab_size",
                        std::to_string(paddedVocabulary(tokenizer)) + " (the tokenizer's, padded, " +
                            (o.tokenizer.empty() ? std::string("bytes") : o.tokenizer) + ")",
                        std::to_string(model->config().vocabSize));
    } else {
        if (device.is_cpu()) { // weights, gradients and Adam's two moments, in float32
            ModelShape need;
            need.minParameters = saturatedCount(shape.minParameters());
            checkMemoryFor(need, 16, "train shape " + o.shape);
        }
        model = Mamba2Model::random(shape, o.seed, device, torch::kFloat32);
        if (o.dtInitMin != 1e-3 || o.dtInitMax != 0.1 || o.aInitMin != 1 || o.aInitMax != 16) {
            torch::NoGradGuard ng;
            for (auto& L : model->weights().layers) {
                L.ALog.copy_(torch::log(torch::rand_like(L.ALog) * (o.aInitMax - o.aInitMin) + o.aInitMin));
                const double lo = std::log(o.dtInitMin), hi = std::log(o.dtInitMax);
                torch::Tensor dt = (torch::rand_like(L.dtBias) * (hi - lo) + lo).exp();
                L.dtBias.copy_(dt + torch::log(-torch::expm1(-dt))); // softplus^-1
            }
        }
    }
    if (o.bf16)
        model->setComputeDtype(torch::kBFloat16);
    model->setTraining(true);
    std::vector<torch::Tensor> params = model->parameters();
    if (dp)
        dp->broadcast(params);
    // Weight decay on matrices only, as mamba_ssm does: decaying A_log and dt_bias towards 0 would pull
    // every head towards alpha = exp(-softplus(0)) = 0.5, i.e. teach forgetting the data never asked for.
    std::vector<torch::Tensor> decayed, undecayed;
    for (auto& p : params) {
        p.requires_grad_(true);
        (p.dim() >= 2 ? decayed : undecayed).push_back(p);
    }
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decayed,
                        std::make_unique<torch::optim::AdamWOptions>(
                            torch::optim::AdamWOptions(o.lr).weight_decay(o.weightDecay).betas({0.9, 0.95})));
    groups.emplace_back(undecayed,
                        std::make_unique<torch::optim::AdamWOptions>(
                            torch::optim::AdamWOptions(o.lr).weight_decay(0.0).betas({0.9, 0.95})));
    torch::optim::AdamW optimizer(groups, torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}));
    if (startStep > 0 && fs::exists(optimPath)) {
        try {
            torch::load(optimizer, optimPath);
        } catch (const c10::Error& e) {
            throw Error(optimPath, "cannot read the optimizer state (" + errorLine(e) +
                                       "); move it aside to resume with a fresh optimizer");
        }
    }

    std::mt19937_64 rng(o.seed * 7919);
    if (!samplerState.empty()) {
        // The generator's state as the checkpoint wrote it: the resumed run draws the batches that
        // the run never interrupted would have drawn, so a job's result does not depend on where a
        // shard was stopped.
        std::istringstream in(samplerState);
        in >> rng;
        if (!in)
            throw Error(statePath, "sampler", "the state of a std::mt19937_64 (312 numbers)",
                        std::to_string(samplerState.size()) + " characters that are not");
    } else if (startStep > 0) {
        // A checkpoint written before the sampler's state was kept: a stream of its own, as then.
        rng.seed(o.seed * 7919 + static_cast<uint64_t>(startStep));
    }
    // The model, its tokenizer and its card: the folder every loader reads.
    auto writeModel = [&](const std::string& folder, int64_t step, double loss, double heldOutLoss) {
        torch::NoGradGuard ng;
        model->saveFolder(folder);
        writeFileAtomically(folder + "/tokenizer.json", tokenizerText);
        const Mamba2Config& c = model->config();
        nlohmann::ordered_json card;
        card["name"] = fs::path(o.out).filename().string();
        card["architecture"] = "mamba2";
        card["d_model"] = c.dModel;
        card["n_layer"] = c.nLayer;
        card["d_state"] = c.dState;
        card["headdim"] = c.headdim;
        card["state_size"] = c.stateSize();
        if (const auto t = predictedForgetThreshold(c.stateSize()))
            card["forget_threshold_fit"] = *t;
        else
            card["forget_threshold_fit"] = nullptr;
        card["training_length"] = o.trainLength;
        card["batch"] = o.batch;
        if (dp) {
            card["world_size"] = env.worldSize;
            card["process_group"] = dp->backend();
        }
        card["steps"] = step;
        card["schedule"] = o.schedule;
        card["lr"] = o.lr;
        card["weight_decay"] = o.weightDecay;
        card["dt_init"] = {o.dtInitMin, o.dtInitMax};
        card["a_init"] = {o.aInitMin, o.aInitMax};
        card["seed"] = o.seed;
        card["data"] = o.dataDescription.empty() ? o.data : o.dataDescription;
        card["tokenizer"] = o.tokenizer.empty() ? "bytes" : fs::path(o.tokenizer).filename().string();
        if (passkeys) {
            card["passkey_fraction"] = o.passkeyFraction;
            card["passkey_lengths"] = {passkeys->minLength(), passkeys->maxLength()};
            card["passkey_answer_weight"] = o.passkeyAnswerWeight;
        }
        card["final_loss"] = loss;
        if (heldOutLoss >= 0)
            card["held_out_loss"] = heldOutLoss;
        if (folder != o.out) // a snapshot: a point on the way, at the schedule's rate of that step
            card["snapshot"] = {{"planned_steps", o.steps}, {"lr", learningRate(o, step - 1)}};
        writeModelCard(folder + "/model_card.json", ModelCard{card});
    };
    const auto trainStart = std::chrono::steady_clock::now();
    auto save = [&](int64_t step, double loss, double heldOutLoss) {
        if (!rank0)
            return;
        writeModel(o.out, step, loss, heldOutLoss);
        // Aside and renamed, as every other file of the folder: a truncated optimizer.pt would make
        // every later resume fail.
        writeFileAtomically(optimPath, [&](std::ostream& out) { torch::save(optimizer, out); });
        std::ostringstream sampler;
        sampler << rng;
        writeJson(statePath,
                  {{"step", step},
                   {"loss", loss},
                   {"seconds",
                    priorSeconds +
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - trainStart).count()},
                   {"sampler", sampler.str()}});
    };

    auto start = std::chrono::steady_clock::now();
    auto budgetStart = start;
    int64_t tokensSinceLog = 0;
    double lastLoss = 0, lastHeldOut = -1;
    std::unique_ptr<Profiler> profiler;
    constexpr int64_t kProfiledFrom = 5, kProfiledSteps = 3;
    if (rank0 && !o.profile.empty()) {
        // An empty trace first: a LibTorch that cannot write one (Debian's, without Kineto) refuses
        // here, naming the file, rather than after the first steps of a run.
        Profiler probe(o.profile);
        probe.start();
        probe.stop();
    }
    for (int64_t step = startStep; step < o.steps; ++step) {
        if (rank0 && !o.profile.empty() && step == startStep + kProfiledFrom) {
            profiler = std::make_unique<Profiler>(o.profile);
            profiler->start();
        }
        if (profiler && step == startStep + kProfiledFrom + kProfiledSteps) {
            profiler->stop();
            profiler.reset();
        }
        const double lr = learningRate(o, step);
        for (auto& group : optimizer.param_groups())
            static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
        Batch batch =
            sampleMixedBatch(*corpus, passkeys.get(), o.passkeyFraction, o.batch, o.trainLength, rng);
        if (dp) {
            batch.ids = batch.ids.narrow(0, firstRow, rows);
            if (batch.answer.defined())
                batch.answer = batch.answer.narrow(0, firstRow, rows);
        }
        const torch::Tensor ids = batch.ids.to(device);
        auto state = model->initialState(rows);
        torch::Tensor hidden = model->forward(ids.narrow(1, 0, o.trainLength), *state, false, false).hidden;
        torch::Tensor tokenLoss = outputCrossEntropy(*model, hidden.reshape({-1, hidden.size(-1)}),
                                                     ids.narrow(1, 1, o.trainLength).reshape({-1}));
        const torch::Tensor loss = tokenLoss.mean(); // what the log and the model card report
        torch::Tensor objective = loss, answerLoss;
        if (batch.answerTokens > 0) {
            // Over the global batch's answers: the ranks' shares sum to it once gradients are averaged.
            answerLoss = (tokenLoss * batch.answer.to(device).reshape({-1})).sum() *
                         static_cast<double>(env.worldSize) / static_cast<double>(batch.answerTokens);
            if (o.passkeyAnswerWeight > 0)
                objective = objective + o.passkeyAnswerWeight * answerLoss;
        }
        optimizer.zero_grad();
        objective.backward();
        if (dp)
            dp->averageGradients(params);
        torch::nn::utils::clip_grad_norm_(params, o.clip);
        optimizer.step();
        tokensSinceLog += rows * o.trainLength;
        constexpr int64_t kTimedSteps = 20;
        if (o.timeBudget > 0 && step == startStep + 5)
            budgetStart = std::chrono::steady_clock::now();
        if (o.timeBudget > 0 && step == startStep + 5 + kTimedSteps) {
            if (device.is_cuda())
                loss.item<double>(); // wait for the device before reading the clock
            double perStep =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - budgetStart).count() /
                kTimedSteps;
            if (dp) // every rank must cut to the same step count
                perStep = dp->average(perStep);
            const int64_t fit = startStep + static_cast<int64_t>(o.timeBudget / perStep);
            o.steps = std::max(step + 2, std::min(o.steps, fit));
        }
        const bool last = step + 1 == o.steps;
        if ((step + 1) % o.logEvery == 0 || last) {
            lastLoss = dp ? dp->average(loss.item<double>()) : loss.item<double>();
            if (rank0 && heldOut && (last || (o.evalEvery > 0 && (step + 1) % o.evalEvery == 0))) {
                torch::NoGradGuard ng;
                std::mt19937_64 evalRng(1);
                lastHeldOut = lossOf(*model, sampleBatch(*heldOut, 16, o.trainLength, evalRng).to(device));
            }
            const double secs =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            double answer = -1; // every rank's share of the global answers' mean, summed
            if (answerLoss.defined())
                answer = dp ? dp->average(answerLoss.item<double>()) : answerLoss.item<double>();
            if (rank0)
                log({step + 1, o.steps, lastLoss, lastHeldOut, answer, lr,
                     tokensSinceLog * env.worldSize / std::max(1e-9, secs)});
            start = std::chrono::steady_clock::now();
            tokensSinceLog = 0;
        }
        if (rank0 && o.snapshotEvery > 0 && (step + 1) % o.snapshotEvery == 0) {
            const std::string folder = snapshotFolder(o.out, step + 1);
            fs::create_directories(folder);
            writeModel(folder, step + 1, loss.item<double>(), lastHeldOut);
        }
        if ((step + 1) % o.saveEvery == 0 || last)
            save(step + 1, lastLoss, lastHeldOut);
    }
    if (dp) // rank 0's last checkpoint is on disk before any rank returns
        dp->barrier();
}

} // namespace statescope
