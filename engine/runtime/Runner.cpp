#include "runtime/Runner.h"

#include "kernels/FusedOps.h"

#ifdef STATESCOPE_CUDA_GRAPHS
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "Error.h"
#include "io/Json.h"
#include "models/ModelFolder.h"
#include "models/RecurrentModel.h"
#include "runtime/DecodeGraph.h"
#include "runtime/Input.h"
#include "trace/ProbeEncoding.h"
#include "util/Threads.h"
#include "util/Time.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace statescope {

namespace {

torch::ScalarType weightType(DType t, const torch::Device& device)
{
    switch (t) {
    case DType::Float32:
        return torch::kFloat32;
    case DType::Float64: // the identity tests' precision; slow, and CPU only
        if (!device.is_cpu())
            throw Error("dtype", "device", "cpu for float64 weights", device.str());
        return torch::kFloat64;
    case DType::BFloat16:
    case DType::Float16:
        if (!device.is_cuda())
            throw Error(
                "dtype", "device", "cuda for " + std::string(dtypeName(t)) + " weights",
                "cpu (the CPU runs float32 only: bfloat16 is ~100x slower there and float16 unsupported)");
        return t == DType::BFloat16 ? torch::kBFloat16 : torch::kFloat16;
    default:
        throw Error("dtype", "dtype", "float32, bfloat16, float16 or float64", dtypeName(t));
    }
}

torch::Device parseDevice(const std::string& name)
{
    if (name == "cpu")
        return torch::Device(torch::kCPU);
    if (name.rfind("cuda", 0) == 0) {
        if (!torch::cuda::is_available())
            throw Error("device", "device", "cpu (CUDA is not available on this machine or in this build)",
                        name);
        torch::Device d(name);
        if (d.has_index() && d.index() >= static_cast<int>(torch::cuda::device_count()))
            throw Error("device", "device",
                        "cuda:0 .. cuda:" + std::to_string(torch::cuda::device_count() - 1), name);
        return d;
    }
    throw Error("device", "device", "cpu or cuda[:N]", name);
}

// Debian's LibTorch defaults to one thread; 0 asks for the cores free at the start of the run.
void setThreads(int threads)
{
    torch::set_num_threads(threads > 0 ? threads : freeCores());
}

// What a model's shape and the run options tell, whatever the weights came from.
ModelInfo shapeInfo(const ModelShape& shape, const RunOptions& options)
{
    ModelInfo info;
    info.shape = shape;
    if (shape.forgetFitNote.empty())
        info.forgetThreshold = predictedForgetThreshold(shape.stateSize);
    info.device = options.device;
    info.dtype = dtypeName(options.dtype);
    return info;
}

TorchTarget targetFor(const RunOptions& options)
{
    TorchTarget t;
    t.device = parseDevice(options.device);
    t.dtype = weightType(options.dtype, t.device);
    t.probeDetail = options.probeDetail;
    return t;
}

// A registered architecture's named shape with overrides merged in.
nlohmann::json mergedShapeConfig(const Architecture& arch, const std::string& shape,
                                 const std::string& overrides)
{
    nlohmann::json o = nlohmann::json::object();
    if (!overrides.empty()) {
        o = parsePythonJson(overrides, "shape overrides");
        if (!o.is_object())
            throw Error("shape overrides", "top level", "a JSON object", o.type_name());
    }
    nlohmann::json config = arch.shapeConfig(shape, o);
    if (config.is_null()) {
        std::string names;
        for (const auto& n : arch.shapeNames())
            names += (names.empty() ? "" : ", ") + n;
        throw Error("shape", "shape", names + " (" + arch.displayName() + ")", "\"" + shape + "\"");
    }
    return config;
}

// "" names the first registered architecture.
const Architecture& architectureNamed(const std::string& name)
{
    const Architecture* arch = name.empty() ? architectures().front() : findArchitecture(name);
    if (!arch) {
        std::string names;
        for (const Architecture* a : architectures())
            names += (names.empty() ? "" : ", ") + a->name();
        throw Error("architecture", "architecture", names, "\"" + name + "\"");
    }
    return *arch;
}

// A probe's float32 values in a trace's half encoding, computed where they lie, as encodeHalves (its
// host reference) does: -ln of a gate, ln of a norm (a negative value gives NaN, 0 gives -inf), then
// float16 rounded to nearest even, with inf beyond its range.
torch::Tensor encodeForTrace(const torch::Tensor& values, ProbeEncoding e)
{
    switch (e) {
    case ProbeEncoding::LogFloat16:
        return values.log().to(torch::kFloat16);
    case ProbeEncoding::NegLogFloat16:
        return values.log().neg_().to(torch::kFloat16);
    default:
        return values.to(torch::kFloat16);
    }
}

// Asks the kernel for 2 MB pages under the reserved, not yet written storage of a large vector: one
// fault a 2 MB page instead of 512, where transparent huge pages are on "madvise" (the GPU machine's
// setting). Where they are off or the call fails, nothing changes.
void adviseHugePages(void* data, size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr uintptr_t kHuge = uintptr_t(2) << 20;
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
    if (end > begin)
        madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
    (void)data, (void)bytes;
#endif
}

// Copies each probe out of the page-locked buffer into its own vector, a thread a probe when there
// is much to copy: writing fresh memory runs at the speed of its page faults (a 2.7b chunk's 500 MB
// took 360 ms on one thread of the GPU machine), and threads fault their pages in parallel. Large
// vectors are reserved first and advised onto huge pages, then filled by the copy itself (no zeroing
// pass).
void copyProbes(const std::vector<std::pair<const float*, size_t>>& from, std::vector<std::vector<float>>* to)
{
    if (from.empty())
        return;
    size_t total = 0;
    for (const auto& [src, n] : from)
        total += n;
    auto copyOne = [&](size_t i) {
        if (!from[i].first)
            return;
        std::vector<float>& v = (*to)[i];
        constexpr size_t kHugeFrom = size_t(4) << 20; // bytes
        if (from[i].second * sizeof(float) >= kHugeFrom && v.capacity() < from[i].second) {
            v.clear();
            v.shrink_to_fit();
            v.reserve(from[i].second);
            adviseHugePages(v.data(), from[i].second * sizeof(float));
        }
        v.assign(from[i].first, from[i].first + from[i].second);
    };
    constexpr size_t kParallelFrom = size_t(4) << 20; // values
    std::vector<std::thread> threads;
    if (total >= kParallelFrom) {
        try {
            for (size_t i = 1; i < from.size(); ++i)
                threads.emplace_back(copyOne, i);
        } catch (const std::system_error&) {
            // No more threads: this one copies what none took.
        }
    }
    copyOne(0);
    for (size_t i = threads.size() + 1; i < from.size(); ++i)
        copyOne(i);
    for (std::thread& t : threads)
        t.join();
}

} // namespace

class RunnerImpl {
public:
    RunnerImpl(std::unique_ptr<RecurrentModel> model, ModelInfo info, RunOptions options)
        : m_model(std::move(model)), m_info(std::move(info)), m_options(std::move(options))
    {
        m_model->setMitigation(m_options.mitigation);
        m_model->setOldContext(m_options.oldContext);
        m_info.parameters = m_model->parameterCount();
        m_info.vocabSize = m_model->vocabSize();
        reset();
    }

    void reset()
    {
        m_state = m_model->initialState(1);
        m_prevHidden = torch::Tensor();
        m_position = 0;
    }

    // A chunk whose work is queued on the device and whose values are on their way to the host.
    struct PendingChunk {
        ChunkProbes out;
        torch::Tensor host;         // nll, then each plain probe, float32 (page-locked on CUDA)
        torch::Tensor halves;       // each encoded probe, float16 (page-locked on CUDA), or undefined
        std::vector<int64_t> sizes; // values of each probe
        std::vector<bool> encoded;  // whether a probe is in halves instead of host
#ifdef STATESCOPE_CUDA_GRAPHS
        std::shared_ptr<at::cuda::CUDAEvent> copied; // recorded after the copy to host
#endif
    };

    ChunkProbes feed(const std::vector<int32_t>& ids)
    {
        return collect(launch(ids));
    }

    // Validates the ids and queues the chunk: model, NLL and the copy of its values to the host. The
    // state moves on at once; collect() waits for the values. On the CPU everything is done here.
    PendingChunk launch(const std::vector<int32_t>& ids)
    {
        PendingChunk p;
        p.out.start = m_position;
        p.out.ids = ids;
        if (ids.empty())
            return p;
        const int64_t vocab = m_model->vocabSize();
        for (size_t i = 0; i < ids.size(); ++i)
            if (ids[i] < 0 || ids[i] >= vocab)
                throw Error("input", "token " + std::to_string(m_position + static_cast<int64_t>(i)),
                            "an id in [0, " + std::to_string(vocab) + ")", std::to_string(ids[i]));
        c10::InferenceMode guard;
        try {
            launchChecked(ids, p);
        } catch (const c10::Error& e) {
            throw modelError(e, ids.size());
        }
        return p;
    }

    ChunkProbes collect(PendingChunk p, bool valuesInPlace = false)
    {
        if (!p.host.defined())
            return std::move(p.out);
        const auto waited = std::chrono::steady_clock::now();
        try {
#ifdef STATESCOPE_CUDA_GRAPHS
            if (p.copied)
                p.copied->synchronize();
#endif
        } catch (const c10::Error& e) {
            throw modelError(e, p.out.ids.size());
        }
        const auto copying = std::chrono::steady_clock::now();
        m_timings.waitDevice += std::chrono::duration<double>(copying - waited).count();
        const float* h = p.host.data_ptr<float>();
        const auto T = static_cast<int64_t>(p.out.ids.size());
        p.out.nll.assign(h, h + T);
        h += T;
        p.out.values.resize(p.sizes.size());
        std::vector<std::pair<const float*, size_t>> copies; // the probes' place in host
        const uint16_t* e = p.halves.defined() ? static_cast<const uint16_t*>(p.halves.data_ptr()) : nullptr;
        for (size_t i = 0; i < p.sizes.size(); ++i) {
            const auto n = static_cast<size_t>(p.sizes[i]);
            if (p.encoded[i]) { // handed on where it lies: the chunk keeps the buffer alive
                p.out.encoded.resize(p.sizes.size());
                p.out.encoded[i] = {e, n};
                e += n;
                copies.emplace_back(nullptr, 0);
            } else {
                copies.emplace_back(h, n);
                h += n;
            }
        }
        if (e) {
            auto owner = std::make_shared<torch::Tensor>(std::move(p.halves));
            p.out.encodedOwner = std::shared_ptr<const void>(owner, owner->data_ptr());
        }
        if (valuesInPlace) {
            p.out.inPlace.resize(copies.size());
            for (size_t i = 0; i < copies.size(); ++i)
                if (copies[i].first)
                    p.out.inPlace[i] = {copies[i].first, copies[i].second};
            auto owner = std::make_shared<torch::Tensor>(std::move(p.host));
            p.out.inPlaceOwner = std::shared_ptr<const void>(owner, owner->data_ptr());
        } else {
            copyProbes(copies, &p.out.values);
        }
        m_timings.copyOut +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - copying).count();
        return std::move(p.out);
    }

    Error modelError(const c10::Error& e, size_t tokens) const
    {
        const std::string msg = e.what_without_backtrace();
        if (msg.find("out of memory") != std::string::npos)
            return Error(m_info.device, "out of memory running " + std::to_string(tokens) +
                                            " tokens: use a smaller chunk size or dtype");
        return Error(m_info.device, "model failed: " + msg.substr(0, msg.find('\n')));
    }

    Generation generate(const std::vector<std::vector<int32_t>>& prompts, int64_t maxNewTokens,
                        int64_t vocabLimit)
    {
        if (prompts.empty())
            return {};
        const auto batch = static_cast<int64_t>(prompts.size());
        const auto T = static_cast<int64_t>(prompts.front().size());
        const int64_t vocab = m_model->vocabSize();
        if (T == 0)
            throw Error("prompt", "length", "at least one token", "0");
        if (maxNewTokens < 0)
            throw Error("generate", "max new tokens", "0 or more", std::to_string(maxNewTokens));
        if (vocabLimit <= 0 || vocabLimit > vocab)
            vocabLimit = vocab;
        std::vector<int64_t> flat;
        flat.reserve(static_cast<size_t>(batch * T));
        for (size_t b = 0; b < prompts.size(); ++b) {
            if (static_cast<int64_t>(prompts[b].size()) != T)
                throw Error("prompt " + std::to_string(b), "length",
                            std::to_string(T) + " tokens, as the batch's first prompt",
                            std::to_string(prompts[b].size()));
            for (size_t i = 0; i < prompts[b].size(); ++i) {
                const int32_t id = prompts[b][i];
                if (id < 0 || id >= vocab)
                    throw Error("prompt " + std::to_string(b), "token " + std::to_string(i),
                                "an id in [0, " + std::to_string(vocab) + ")", std::to_string(id));
                flat.push_back(id);
            }
        }
        c10::InferenceMode guard;
        try {
            return generateChecked(flat, batch, T, maxNewTokens, vocabLimit);
        } catch (const c10::Error& e) {
            const std::string msg = e.what_without_backtrace();
            if (msg.find("out of memory") != std::string::npos)
                throw Error(m_info.device, "out of memory generating from " + std::to_string(batch) + " x " +
                                               std::to_string(T) +
                                               " tokens: use a smaller chunk size or batch");
            throw Error(m_info.device, "model failed: " + errorLine(msg));
        }
    }

    void calibrate(const std::vector<int32_t>& ids, const std::string& source)
    {
        if (ids.empty())
            throw Error(source, "calibration", "at least one token", "none");
        const int64_t vocab = m_model->vocabSize();
        for (size_t i = 0; i < ids.size(); ++i)
            if (ids[i] < 0 || ids[i] >= vocab)
                throw Error(source, "token " + std::to_string(i),
                            "an id in [0, " + std::to_string(vocab) + ")", std::to_string(ids[i]));
        c10::InferenceMode guard;
        Mitigation m = m_options.mitigation;
        m_model->setMitigation(Mitigation{}); // tau is the original model's norm
        try {
            std::unique_ptr<ModelState> state = m_model->initialState(1);
            const auto T = static_cast<int64_t>(ids.size());
            const torch::Tensor all =
                torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kLong)
                    .reshape({1, T})
                    .to(m_model->device());
            const int64_t chunk = std::max<int64_t>(1, m_options.chunkSize);
            for (int64_t b = 0; b < T; b += chunk)
                m_model->forward(all.narrow(1, b, std::min(chunk, T - b)), *state, m_options.reference,
                                 false);
            m.tau.clear();
            for (const torch::Tensor& n : state->unitNorms()) {
                const torch::Tensor host = n[0].to(torch::kCPU, torch::kFloat32).contiguous();
                m.tau.emplace_back(host.data_ptr<float>(), host.data_ptr<float>() + host.numel());
            }
        } catch (const c10::Error& e) {
            m_model->setMitigation(m_options.mitigation);
            throw Error(m_info.device, "calibration failed: " + errorLine(e.what_without_backtrace()));
        }
        m.calibration = source + " (" + std::to_string(ids.size()) + " tokens)";
        m_options.mitigation = m;
        m_model->setMitigation(m);
        reset();
    }

    ModelInfo m_info;
    std::unique_ptr<RecurrentModel> m_model;
    RunOptions m_options;
    std::unique_ptr<ModelState> m_state;
    std::set<std::string> m_omitted; // derived probes left out of the chunks (chunksForTraceOnly)
    // Per probe handed on: the half encoding the chunks carry it in (chunksForTraceOnly), Float32 for
    // plain values; empty: all plain.
    std::vector<ProbeEncoding> m_encodings;
    RunTimings m_timings;
#ifdef STATESCOPE_CUDA_GRAPHS
    std::optional<c10::cuda::CUDAStream> m_copyStream; // the probes' copies to the host
#endif
    torch::Tensor m_prevHidden; // [1, d] the last token's hidden state: it predicts the next chunk's first
    int64_t m_position = 0;

private:
    Generation generateChecked(const std::vector<int64_t>& flat, int64_t batch, int64_t T,
                               int64_t maxNewTokens, int64_t vocabLimit)
    {
        using Clock = std::chrono::steady_clock;
        const torch::Device device = m_model->device();
        const bool cuda = device.is_cuda();
        Generation g;
        g.promptTokens = T;
        const auto t0 = Clock::now();
        torch::Tensor ids = torch::tensor(flat, torch::kLong).reshape({batch, T}).to(device);
        std::unique_ptr<ModelState> state = m_model->initialState(batch);
        const int64_t chunk = std::max<int64_t>(1, m_options.chunkSize);
        torch::Tensor last; // [B, d] the prompt's last hidden state
        for (int64_t b = 0; b < T; b += chunk) {
            const int64_t n = std::min(chunk, T - b);
            ForwardResult r = m_model->forward(ids.narrow(1, b, n), *state, m_options.reference, false);
            last = r.hidden.select(1, n - 1);
        }
        auto pick = [&](const torch::Tensor& hidden) {
            return m_model->logits(hidden).narrow(-1, 0, vocabLimit).argmax(-1); // [B] int64
        };
        torch::Tensor out =
            torch::empty({batch, maxNewTokens}, torch::TensorOptions(torch::kLong).device(device));
        torch::Tensor next;
        if (maxNewTokens > 0)
            next = pick(last);
        if (cuda)
            torch::cuda::synchronize();
        const auto t1 = Clock::now();
        if (maxNewTokens > 0)
            out.select(1, 0).copy_(next);
        std::unique_ptr<DecodeGraph> graph;
        int64_t k = 1;
        if (cuda && m_options.cudaGraph && maxNewTokens > 2 && !m_model->mitigation().positional() &&
            DecodeGraph::built()) {
            // The captured step writes its token into `next` and its state into `state`'s own
            // tensors, so that every replay reads and writes the addresses it was captured with.
            auto step = [&] {
                std::unique_ptr<ModelState> work = state->clone();
                ForwardResult r = m_model->forward(next.unsqueeze(1), *work, true, false);
                const torch::Tensor picked = pick(r.hidden.select(1, 0));
                state->copyFrom(*work);
                next.copy_(picked);
            };
            graph = DecodeGraph::capture(step, device); // runs the step once, then captures it
            out.select(1, k++).copy_(next);
            g.cudaGraph = graph != nullptr;
        }
        for (; k < maxNewTokens; ++k) {
            if (graph) {
                graph->replay();
            } else {
                ForwardResult r = m_model->forward(next.unsqueeze(1), *state, true, false);
                next = pick(r.hidden.select(1, 0));
            }
            out.select(1, k).copy_(next);
        }
        // The one copy to the host (it waits for the device).
        const torch::Tensor host = out.to(torch::kCPU).to(torch::kInt).contiguous();
        const auto t2 = Clock::now();
        g.prefillSeconds = std::chrono::duration<double>(t1 - t0).count();
        g.decodeSeconds = std::chrono::duration<double>(t2 - t1).count();
        const int32_t* h = host.data_ptr<int32_t>();
        for (int64_t b = 0; b < batch; ++b)
            g.tokens.emplace_back(h + b * maxNewTokens, h + (b + 1) * maxNewTokens);
        return g;
    }

    // The run's probe selection, where the probes were computed: what it leaves out is never copied
    // to the host, and a layer's summary is reduced there, in float64 as selectChunk (its host
    // reference) does. On the host the summaries of the 130m shape's 8192-token chunks held the GPU
    // back: one value per layer traced slower than every head (issue 15).
    std::vector<torch::Tensor> selectedProbes(const std::vector<torch::Tensor>& all) const
    {
        const ProbeSelection& selection = m_options.probeSelection;
        if (selection.selectsAll() && m_omitted.empty())
            return all;
        const std::vector<ProbeDesc> descs = m_model->probeDescs();
        std::vector<torch::Tensor> out;
        for (size_t i = 0; i < descs.size() && i < all.size(); ++i) {
            const ProbeDesc& p = descs[i];
            if (!probeKept(p, selection))
                continue;
            if (m_omitted.count(p.name)) { // its place kept, its values left on the device
                out.push_back(torch::empty({0}, all[i].options()));
                continue;
            }
            if (!selection.layerSummaries || !probeHasLayerUnits(p)) {
                out.push_back(all[i]);
                continue;
            }
            const torch::Tensor x = all[i].reshape({-1, p.shape[0], p.shape[1]}).to(torch::kFloat64);
            torch::Tensor s;
            switch (p.summary) {
            case ProbeSummary::Mean:
                s = x.sum(-1) / static_cast<double>(p.shape[1]);
                break;
            case ProbeSummary::GeoMean:
                s = (x.log().sum(-1) / static_cast<double>(p.shape[1])).exp();
                break;
            case ProbeSummary::RootSumSquare:
                s = x.square().sum(-1).sqrt();
                break;
            }
            out.push_back(s.to(torch::kFloat32));
        }
        return out;
    }

    void launchChecked(const std::vector<int32_t>& ids, PendingChunk& out)
    {
        const torch::Device device = m_model->device();
        const int64_t T = static_cast<int64_t>(ids.size());
        torch::Tensor idsCpu =
            torch::from_blob(const_cast<int32_t*>(ids.data()), {1, T}, torch::kInt32).to(torch::kLong);
        // A blocking upload waits for everything queued before it: the previous chunk's whole model
        // run, which left the GPU idle while this thread queued the next one (issue 15).
        if (device.is_cuda())
            idsCpu = idsCpu.pin_memory();
        torch::Tensor idsDev = idsCpu.to(device, /*non_blocking=*/device.is_cuda());
        // Work on a copy of the state so that a failure leaves the stream where it was.
        std::unique_ptr<ModelState> next = m_state->clone();
        ForwardResult r = m_model->forward(idsDev, *next, m_options.reference, true);
        torch::Tensor hidden = r.hidden[0]; // [T, d]

        // nll[t] = -log p(id_t | ids before t) from the previous token's full logits.
        torch::Tensor rows = hidden.narrow(0, 0, T - 1);
        torch::Tensor targets = idsDev[0].narrow(0, 1, T - 1);
        const bool hasPrev = m_prevHidden.defined();
        if (hasPrev) {
            rows = torch::cat({m_prevHidden, rows}, 0);
            targets = idsDev[0];
        }
        torch::Tensor nll = torch::empty({rows.size(0)}, hidden.options());
        // Bounded logits: a block of rows at a time (a 64K chunk of a 50K vocabulary would be 13 GB).
        const int64_t block =
            std::max<int64_t>(16, (int64_t(1) << 26) / std::max<int64_t>(1, m_model->vocabSize()));
        const bool fusedNll = fused::enabled(nll);
        for (int64_t b = 0; b < rows.size(0); b += block) {
            const int64_t n = std::min(block, rows.size(0) - b);
            if (fusedNll) { // one read of the block's logits, in the output layer's own dtype
                fused::logitsNll(m_model->nativeLogits(rows.narrow(0, b, n)), targets.narrow(0, b, n),
                                 nll.narrow(0, b, n));
                continue;
            }
            torch::Tensor logits = m_model->logits(rows.narrow(0, b, n));
            const torch::Tensor hit = logits.gather(1, targets.narrow(0, b, n).unsqueeze(1)).squeeze(1);
            // logsumexp over the logits' own memory: torch::logsumexp allocates and writes a second
            // block as large (51 MB for 256 rows of a 50K vocabulary), which made it 2.5x slower than
            // these four passes. An infinite maximum is shifted by 0, as torch::logsumexp does.
            torch::Tensor top = logits.amax(-1, true);
            top.masked_fill_(top.isinf(), 0);
            const torch::Tensor lse = logits.sub_(top).exp_().sum(-1).log_().add_(top.squeeze(-1));
            nll.narrow(0, b, n).copy_(lse - hit);
        }
        if (!hasPrev)
            nll = torch::cat({torch::full({1}, std::numeric_limits<float>::quiet_NaN(), nll.options()), nll});

        // One device-to-host copy for everything: no per-token synchronisation.
        const auto packing = std::chrono::steady_clock::now();
        const std::vector<torch::Tensor> probes = selectedProbes(r.probes);
        std::vector<torch::Tensor> flat{nll.reshape({-1}).to(torch::kFloat32)};
        std::vector<torch::Tensor> halves;
        for (size_t i = 0; i < probes.size(); ++i) {
            const ProbeEncoding e = i < m_encodings.size() ? m_encodings[i] : ProbeEncoding::Float32;
            const torch::Tensor p = probes[i].reshape({-1}).to(torch::kFloat32);
            out.sizes.push_back(p.numel());
            out.encoded.push_back(e != ProbeEncoding::Float32);
            if (e == ProbeEncoding::Float32)
                flat.push_back(p);
            else
                halves.push_back(encodeForTrace(p, e));
        }
#ifdef STATESCOPE_CUDA_GRAPHS
        if (device.is_cuda()) {
            // Into page-locked memory (PyTorch caches those blocks), without waiting: a pageable copy
            // of the 1.3b shape's 300 MB of probes a chunk ran at 1.6 GB/s and took 30 % of the GPU's
            // time, and Runner::run hands on one chunk while the device computes the next. The copy
            // runs on a stream of its own: on the model's stream the next chunk's kernels waited for it
            // (5.6 % of the 1.3b shape's GPU time, 11 ms of 197 for 16K tokens).
            const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(device.index());
            if (!m_copyStream || m_copyStream->device_index() != device.index())
                m_copyStream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
            std::vector<torch::Tensor> packed{torch::cat(flat)};
            if (!halves.empty())
                packed.push_back(torch::cat(halves));
            at::cuda::CUDAEvent ready;
            ready.record(compute);
            ready.block(*m_copyStream);
            {
                const c10::cuda::CUDAStreamGuard onCopyStream(*m_copyStream);
                std::vector<torch::Tensor> host;
                for (const torch::Tensor& p : packed) {
                    host.push_back(
                        torch::empty(p.sizes(), p.options().device(torch::kCPU).pinned_memory(true)));
                    host.back().copy_(p, /*non_blocking=*/true);
                }
                out.host = host[0];
                if (host.size() > 1)
                    out.halves = host[1];
                out.copied = std::make_shared<at::cuda::CUDAEvent>();
                out.copied->record(*m_copyStream);
            }
            // Freed below, the packed values' memory must not go to the model's next kernels before
            // the copy stream has read it.
            for (const torch::Tensor& p : packed)
                c10::cuda::CUDACachingAllocator::recordStream(p.storage().data_ptr(), *m_copyStream);
        } else
#endif
        {
            out.host = torch::cat(flat).to(torch::kCPU).contiguous();
            if (!halves.empty())
                out.halves = torch::cat(halves).to(torch::kCPU).contiguous();
        }
        m_timings.probes += std::chrono::duration<double>(std::chrono::steady_clock::now() - packing).count();
        m_state = std::move(next);
        m_prevHidden = hidden.narrow(0, T - 1, 1).clone();
        m_position += T;
    }
};

Runner::Runner(std::unique_ptr<RunnerImpl> impl) : m_impl(std::move(impl)) {}
Runner::~Runner() = default;

std::unique_ptr<Runner> Runner::open(const std::string& modelDir, const RunOptions& options)
{
    setThreads(options.threads);
    const ModelFolder folder = inspectModelFolder(modelDir, options.probeDetail);
    const TorchTarget target = targetFor(options);
    std::unique_ptr<RecurrentModel> model;
    try {
        c10::InferenceMode guard;
        model = folder.architecture->load(folder, target);
    } catch (const c10::Error& e) {
        const std::string msg = e.what_without_backtrace();
        throw Error(modelDir, "loading failed: " + msg.substr(0, msg.find('\n')));
    }
    ModelInfo info = shapeInfo(folder.shape, options);
    info.path = folder.path;
    info.configJson = folder.configJson;
    info.tokenizerPath = folder.tokenizerPath;
    info.trainingLength = folder.trainingLength;
    return std::unique_ptr<Runner>(new Runner(std::make_unique<RunnerImpl>(std::move(model), info, options)));
}

std::string Runner::shapeConfig(const std::string& architecture, const std::string& shape,
                                const std::string& overrides)
{
    return mergedShapeConfig(architectureNamed(architecture), shape, overrides).dump();
}

std::unique_ptr<Runner> Runner::openRandom(const std::string& architecture, const std::string& configJson,
                                           uint64_t seed, const RunOptions& options)
{
    setThreads(options.threads);
    const Architecture& arch = architectureNamed(architecture);
    const nlohmann::json config = parsePythonJson(configJson, "random model config");
    ModelShape shape = arch.describe(config, "transformers", "random model config", options.probeDetail);
    shape.layout = "random";
    if (options.device.rfind("cuda", 0) != 0)
        checkMemoryFor(shape, 4, "random model config");
    const TorchTarget target = targetFor(options);
    std::unique_ptr<RecurrentModel> model;
    try {
        c10::InferenceMode guard;
        model = arch.random(config, seed, target);
    } catch (const c10::Error& e) {
        const std::string msg = e.what_without_backtrace();
        throw Error(options.device, "making random weights failed: " + msg.substr(0, msg.find('\n')));
    }
    ModelInfo info = shapeInfo(shape, options);
    info.path = "(random weights, seed " + std::to_string(seed) + ")";
    info.configJson = configJson;
    return std::unique_ptr<Runner>(new Runner(std::make_unique<RunnerImpl>(std::move(model), info, options)));
}

void Runner::writeRandomModel(const std::string& architecture, const std::string& configJson, uint64_t seed,
                              const std::string& dir)
{
    const Architecture& arch = architectureNamed(architecture);
    const nlohmann::json config = parsePythonJson(configJson, "random model config");
    const ModelShape shape =
        arch.describe(config, "transformers", "random model config", ProbeDetail::Summary);
    checkMemoryFor(shape, 4, "random model config");
    try {
        c10::InferenceMode guard;
        arch.random(config, seed, TorchTarget{})->saveFolder(dir);
    } catch (const c10::Error& e) {
        throw Error(dir, "making random weights failed: " + errorLine(e.what_without_backtrace()));
    }
}

const ModelInfo& Runner::info() const
{
    return m_impl->m_info;
}
const Mitigation& Runner::mitigation() const
{
    return m_impl->m_options.mitigation;
}
std::vector<ProbeDesc> Runner::probes() const
{
    return selectProbes(m_impl->m_model->probeDescs(), m_impl->m_options.probeSelection, "probe selection");
}
TraceHeader Runner::traceHeader(const TraceInput& input, const std::string& inputDescription, bool hasOffsets)
{
    const ModelInfo& info = m_impl->m_info;
    const RunOptions& o = m_impl->m_options;
    TraceHeader h;
    h.architecture = info.shape.architecture;
    h.architectureName = info.shape.displayName;
    h.modelConfigJson = info.configJson;
    h.modelPath = info.path;
    h.dtype = info.dtype;
    h.device = info.device;
    h.input = inputDescription;
    h.inputSource = input;
    h.startTime = isoTimeUtcNow();
    h.softwareVersion = std::string("statescope ") + STATESCOPE_VERSION + ", libtorch " + torchVersion();
    h.hasOffsets = hasOffsets;
    h.probes = probes();
    h.layers = info.shape.layers;
    h.units = info.shape.units;
    h.unitName = info.shape.unitName;
    h.stateSize = info.shape.stateSize;
    h.stateSizeDefinition = info.shape.stateSizeDefinition;
    h.forgetThreshold = info.forgetThreshold.value_or(-1.0);
    h.trainingLength = info.trainingLength.value_or(0);
    h.vocabSize = info.vocabSize;
    nlohmann::ordered_json settings;
    settings["chunk_size"] = o.chunkSize;
    settings["threads"] = torch::get_num_threads();
    settings["reference"] = o.reference;
    settings["probe_detail"] = probeDetailName(o.probeDetail);
    h.probePrecision = resolveProbePrecision(o.probePrecision, h.probes, m_impl->m_model->device().is_cuda());
    settings["probe_precision"] = probePrecisionName(h.probePrecision);
    if (o.probePrecision == ProbePrecision::Auto)
        settings["probe_precision_chosen_by"] = "auto";
    // Half-precision traces are the compact ones: there a probe the model can derive from another is
    // not stored twice. The derived values are as precise as the half-precision ones would be
    // (docs/trace-format.md). A layer summary of a gate is not the gate of a summary, so not there.
    m_impl->m_omitted.clear();
    if (h.probePrecision == ProbePrecision::Float16 && !o.probeSelection.layerSummaries) {
        for (ProbeDesc& p : h.probes) {
            std::string from;
            std::vector<float> scale;
            if (!m_impl->m_model->probeDerivation(p.name, &from, &scale) ||
                static_cast<int64_t>(scale.size()) != p.valuesPerToken())
                continue;
            const bool present = std::any_of(h.probes.begin(), h.probes.end(), [&](const ProbeDesc& q) {
                return q.name == from && q.derivedFrom.empty();
            });
            if (present) {
                p.derivedFrom = from;
                p.derivedScale = std::move(scale);
                if (o.chunksForTraceOnly)
                    m_impl->m_omitted.insert(p.name);
            }
        }
    }
    m_impl->m_encodings.clear();
    if (o.chunksForTraceOnly && h.probePrecision != ProbePrecision::Float32)
        for (const ProbeDesc& p : h.probes)
            m_impl->m_encodings.push_back(p.derivedFrom.empty() ? probeEncodingFor(p, h.probePrecision)
                                                                : ProbeEncoding::Float32);
    if (!o.probeSelection.names.empty())
        settings["probes"] = o.probeSelection.names;
    if (o.probeSelection.layerSummaries) {
        // Every [layer, unit] probe now has one unit a layer: its layer's summary.
        settings["layer_summaries"] = true;
        h.units = 1;
        h.unitName = "summary"; // legends read "summary 0"; each probe's description says of what
    }
    settings["mitigation"] = o.mitigation.describe();
    if (o.mitigation.normalises())
        settings["mitigation_calibration"] = o.mitigation.calibration;
    if (o.oldContext > 0)
        settings["old_context"] = o.oldContext;
    h.runSettings = settings.dump();
    return h;
}

void Runner::checkIds(const std::vector<int32_t>& ids, const std::string& source,
                      const std::string& hint) const
{
    const int64_t vocab = m_impl->m_info.vocabSize;
    for (size_t i = 0; i < ids.size(); ++i)
        if (ids[i] < 0 || ids[i] >= vocab)
            throw Error(source, "token " + std::to_string(i),
                        "an id below the model's vocabulary size " + std::to_string(vocab) + hint,
                        std::to_string(ids[i]));
}

int64_t Runner::position() const
{
    return m_impl->m_position;
}
void Runner::reset()
{
    m_impl->reset();
}
ChunkProbes Runner::feed(const std::vector<int32_t>& ids)
{
    return m_impl->feed(ids); // the probe selection was applied where the probes were computed
}

// On CUDA one chunk is handed on while the device computes the next; a cancel or a failure still
// hands on the chunk already launched, so that nothing the user waited for is lost. On the CPU, where
// launch() does all the work, each chunk is handed on at once.
void Runner::run(const std::vector<int32_t>& ids, const std::vector<int64_t>* offsets, const RunLoop& loop)
{
    using Clock = std::chrono::steady_clock;
    const int64_t total = static_cast<int64_t>(ids.size());
    const bool adaptive = loop.targetChunkSeconds > 0;
    int64_t step = adaptive ? 256 : std::max<int64_t>(1, m_impl->m_options.chunkSize);
    const bool overlap = m_impl->m_model->device().is_cuda();
    std::optional<RunnerImpl::PendingChunk> pending;
    int64_t pendingBegin = 0, pendingEnd = 0, pendingStep = step;
    auto last = Clock::now();
    auto deliver = [&] {
        ChunkProbes chunk = m_impl->collect(std::move(*pending), loop.valuesInPlace);
        pending.reset();
        if (offsets && static_cast<int64_t>(offsets->size()) >= 2 * pendingEnd)
            chunk.offsets.assign(offsets->begin() + 2 * pendingBegin, offsets->begin() + 2 * pendingEnd);
        // The time between two chunks handed on: each one's compute, once the pipeline is full.
        const auto now = Clock::now();
        const double secs = std::chrono::duration<double>(now - last).count();
        last = now;
        if (adaptive && secs > 0) {
            const double want = static_cast<double>(pendingStep) * loop.targetChunkSeconds / secs;
            const double next = std::clamp(want, 0.5 * pendingStep, 2.0 * pendingStep); // no wild swings
            step = std::clamp<int64_t>(static_cast<int64_t>(next) / 64 * 64, 64, 16384);
        }
        ++m_impl->m_timings.chunks;
        if (loop.onChunk) {
            loop.onChunk(chunk);
            m_impl->m_timings.handOn += std::chrono::duration<double>(Clock::now() - now).count();
        }
    };
    for (int64_t begin = 0; begin < total;) {
        if (loop.beforeChunk && !loop.beforeChunk()) {
            if (pending)
                deliver();
            throw Cancelled();
        }
        const int64_t end = std::min(total, begin + step);
        RunnerImpl::PendingChunk next;
        const auto launched = Clock::now();
        try {
            next = m_impl->launch(std::vector<int32_t>(ids.begin() + begin, ids.begin() + end));
            m_impl->m_timings.launch += std::chrono::duration<double>(Clock::now() - launched).count();
        } catch (...) {
            if (pending)
                deliver();
            throw;
        }
        if (pending)
            deliver();
        pending = std::move(next);
        pendingBegin = begin, pendingEnd = end, pendingStep = end - begin;
        begin = end;
        if (!overlap) // the CPU has nothing to overlap: each chunk is handed on at once, as cancel expects
            deliver();
    }
    if (pending)
        deliver();
}

void Runner::run(const std::vector<int32_t>& ids, const std::vector<int64_t>* offsets,
                 const std::function<void(ChunkProbes&)>& onChunk, const std::atomic<bool>* cancel)
{
    RunLoop loop;
    loop.onChunk = onChunk;
    if (cancel)
        loop.beforeChunk = [cancel] { return !cancel->load(); };
    run(ids, offsets, loop);
}

Generation Runner::generate(const std::vector<std::vector<int32_t>>& prompts, int64_t maxNewTokens,
                            int64_t vocabLimit)
{
    return m_impl->generate(prompts, maxNewTokens, vocabLimit);
}

void Runner::calibrate(const std::vector<int32_t>& ids, const std::string& source)
{
    m_impl->calibrate(ids, source);
}

void Runner::forgetRecurrentState()
{
    m_impl->m_state->forgetRecurrence();
}

void Runner::setMitigation(const Mitigation& m)
{
    m_impl->m_options.mitigation = m;
    m_impl->m_model->setMitigation(m);
    m_impl->reset();
}

void Runner::setOldContext(int64_t window)
{
    m_impl->m_options.oldContext = std::max<int64_t>(0, window);
    m_impl->m_model->setOldContext(m_impl->m_options.oldContext);
    m_impl->reset();
}

void calibrateForRun(Runner& runner, const std::string& calibrateFile, const std::string& tokenizerPath,
                     const std::vector<int32_t>& input, const std::string& inputName, int64_t trainingLength)
{
    if (!runner.mitigation().normalises())
        return;
    const std::optional<int64_t> trainLength =
        trainingLength > 0 ? std::optional<int64_t>(trainingLength) : runner.info().trainingLength;
    std::vector<int32_t> ids;
    std::string source;
    if (!calibrateFile.empty()) {
        InputRequest request;
        request.textFile = calibrateFile;
        request.tokenizer = tokenizerPath;
        ids = prepareInput(request, std::nullopt).ids;
        source = calibrateFile;
    } else {
        if (!trainLength)
            throw Error(
                "state normalisation", "calibration",
                "a calibration text (--calibrate FILE, or the Mitigations panel), or a training length "
                "(the model card's training_length, or the Model panel): tau is the state norm at T_train",
                "neither");
        ids = input;
        source = inputName;
    }
    if (trainLength && static_cast<int64_t>(ids.size()) > *trainLength)
        ids.resize(static_cast<size_t>(*trainLength));
    runner.checkIds(ids, source);
    runner.calibrate(ids, source + (trainLength ? ", first T_train" : ""));
}

void Runner::synchronize()
{
    if (m_impl->m_model->device().is_cuda())
        torch::cuda::synchronize();
}

RunTimings Runner::timings() const
{
    return m_impl->m_timings;
}

void Runner::resetTimings()
{
    m_impl->m_timings = RunTimings{};
}

bool Runner::cudaAvailable()
{
    return torch::cuda::is_available();
}

void Runner::releaseCachedDeviceMemory()
{
#ifdef STATESCOPE_CUDA_GRAPHS
    if (torch::cuda::is_available())
        c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

std::string Runner::torchVersion()
{
    return TORCH_VERSION;
}

} // namespace statescope
