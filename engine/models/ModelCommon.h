#pragma once

// Engine-internal (torch): pieces several architectures share, so that none lives in one
// architecture's anonymous namespace.
#include "io/DType.h"
#include "io/RawTensor.h"
#include "models/Mitigation.h"
#include "models/ModelFolder.h"
#include "models/RecurrentModel.h"

#include <torch/torch.h>

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace statescope {

torch::ScalarType torchType(DType t);

// A float64 model (the identity tests' precision) widens its float32 tensors too: conv1d and the
// scans do not promote mixed types. Undefined tensors are skipped.
void widenToFloat64(std::initializer_list<torch::Tensor*> tensors);

// x / rms(x) * weight over the last axis.
torch::Tensor rmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// exp(segsum(a)) for a [..., Q]: out[..., l, s] = exp(a[s+1] + ... + a[l]) for l >= s, else 0.
// The cumulative sums are subtracted in float64, which keeps it exact for long chunks (a float32
// difference of two large sums would lose the small ones).
torch::Tensor segsumExp(const torch::Tensor& a);

// The state-spaces (mamba_ssm) name of a weight stored by either mamba_ssm or transformers:
// "model." prefixes dropped, transformers' "backbone.embeddings." as mamba_ssm's "backbone.embedding.".
std::string stateSpacesName(const std::string& name);

// Every tensor of a folder's weight files under its canonical name, memory-mapped until taken.
struct WeightSet {
    std::map<std::string, RawTensor> tensors;
    std::map<std::string, std::string> fileOf;
    std::string files; // "a.safetensors, b.safetensors" for messages
};
// canonical maps a name as stored to the one the model asks for ("" drops the tensor).
WeightSet readWeights(const ModelFolder& folder,
                      const std::function<std::string(const std::string&)>& canonical);

// Hands out a folder's tensors with their shapes checked, converted to a dtype on a device.
class WeightLoader {
public:
    WeightLoader(WeightSet set, torch::Device device) : m_set(std::move(set)), m_device(device) {}

    bool has(const std::string& name) const { return m_set.tensors.count(name) != 0; }
    // The stored shape of a tensor, or Error naming the files if it is missing.
    std::vector<int64_t> shapeOf(const std::string& name) const;
    const std::string& fileOf(const std::string& name) const;
    const std::string& files() const { return m_set.files; }
    // The rows of an embedding [rows, width]: the padded vocabulary, of which the config's vocab_size
    // is only a lower bound. Throws Error naming the file and tensor otherwise.
    int64_t embeddingRows(const std::string& name, int64_t width, int64_t minRows) const;
    // Throws Error naming the file and tensor for a missing one, a wrong shape or a non-float dtype.
    torch::Tensor take(const std::string& name, const std::vector<int64_t>& shape, torch::ScalarType dtype);

private:
    WeightSet m_set;
    torch::Device m_device;
};

// Writes tensors (as float32) into a safetensors file; undefined tensors are skipped.
class FolderWriter {
public:
    void put(const std::string& name, const torch::Tensor& t);
    void write(const std::string& path);

private:
    std::vector<std::pair<std::string, torch::Tensor>> m_tensors;
};

// Creates dir and writes config.json there. Throws Error naming the file.
void writeConfigJson(const std::string& dir, const std::string& json);

// The chunked scan of a state with one scalar decay per head and token (Mamba-2's SSD,
// stuffed-mamba.md §7.3; GLA-style models with scalar gates fit it too): S_t = exp(a_t) S_{t-1} +
// dt_t x_t B_t^T, y_t = S_t C_t, computed with matmuls in chunks of chunkSize tokens. x [B,T,H,P], dt
// and logDecay [B,T,H], B and C [B,T,G,N] shared by the H/G heads of a group. Updates ssmState
// [B,H,P,N] and returns y [B,T,H,P]; with stateNorm, also ||S_t|| [B,T,H] without materialising S_t.
torch::Tensor chunkedScalarDecayScan(const torch::Tensor& x, const torch::Tensor& dt,
                                     const torch::Tensor& logDecay, const torch::Tensor& B,
                                     const torch::Tensor& C, int64_t chunkSize, torch::Tensor& ssmState,
                                     torch::Tensor* stateNorm);

// The same scan as training needs it: the state starts at zero and is not returned, so states pass
// only between the chunks (not at all when T fits one chunk), and no norm is read. The GEMMs take
// their operands in `operand` (bfloat16 puts them on tensor cores, as mamba_ssm's kernels do); the log
// decays, their running sums and the decay matrices are float32. Returns y [B,T,H,P] without the D
// skip; differentiable.
torch::Tensor trainingScalarDecayScan(const torch::Tensor& x, const torch::Tensor& dt,
                                      const torch::Tensor& logDecay, const torch::Tensor& B,
                                      const torch::Tensor& C, int64_t chunkSize, torch::ScalarType operand);

// max |S_t| over each head's state, per token, for the scalar-decay scan of chunkedScalarDecayScan's
// arguments from the state sIn: the states are rebuilt in blocks of 32 tokens and dropped (the scan
// itself never materialises them). [B, T, H].
torch::Tensor scalarDecayStateMaxAbs(const torch::Tensor& x, const torch::Tensor& dt,
                                     const torch::Tensor& logDecay, const torch::Tensor& B,
                                     const torch::Tensor& sIn);

// Every state of h_t = decay_t * h_{t-1} + input_t along dim 1 (decay and input [B, T, ...], hIn
// [B, ...]), for decays that differ per state element (Mamba-1; RWKV-6 and GLA once broadcast over
// the value axis). On the CPU one fused multiply-add per token is cheapest (memory-bound, few
// passes); on CUDA, where each token would be a kernel launch, a doubling scan takes log2(T) steps.
torch::Tensor elementwiseDecayScan(const torch::Tensor& decay, const torch::Tensor& input,
                                   const torch::Tensor& hIn);

// Tokens per sub-block of chunkedKeyDecayScan: the points its in-block decays are measured from.
constexpr int64_t kKeyDecaySubBlock = 16;

// The chunked scan of a state with a decay per key channel (GLA's chunked form, matmuls only):
// S_t = diag(w_t) S_{t-1} + k_t^T v_t for q, k, logw [B, T, H, K], v [B, T, H, V] and the state
// [B, H, K, V], which it replaces by the one after the last token. The read-out is RWKV's,
// o_t = q_t . (S_{t-1} + diag(u) k_t^T v_t), for a bonus u [H, K], or GLA's, o_t = q_t . S_t, when u is
// undefined. Returns o [B, T, H, V]. chunkSize is a multiple of kKeyDecaySubBlock. Every decay product
// is exp of a difference of running log sums that is <= 0, taken from the start of the sub-block the
// later token is in, so nothing overflows whatever the decays. With stateNorm, ||S_t||_F [B, T, H]
// too, and with stateMaxAbs max |S_t| (both need stateNorm).
torch::Tensor chunkedKeyDecayScan(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& logw, const torch::Tensor& u, torch::Tensor& state,
                                  int64_t chunkSize, torch::Tensor* stateNorm,
                                  torch::Tensor* stateMaxAbs = nullptr);

// Group g of a per-channel [.., C] tensor summarised over groups of C / G channels: [.., G].
torch::Tensor groupMean(const torch::Tensor& x, int64_t groups);
torch::Tensor groupMax(const torch::Tensor& x, int64_t groups);
torch::Tensor groupRootSumSquare(const torch::Tensor& squares,
                                 int64_t groups); // takes x^2 already summed per channel

// The state of a layer at a window snapshot: what it was after `count` tokens, and the running decay
// sum then (float64, per unit, the architecture's own kind).
struct StateSnapshot {
    int64_t count = 0;
    torch::Tensor state, decaySum;
};

// What the scan architectures carry between chunks: per layer a conv left context and a recurrent
// state [B, units, ...], plus what the positional mitigations keep (models/Mitigation.h).
struct ScanState : ModelState {
    std::vector<torch::Tensor> conv;
    std::vector<torch::Tensor> ssm;
    int64_t tokens = 0; // since the stream's start: positions of normalisation and window snapshots
    // The state-difference window: per layer the running decay sum and the snapshots still needed.
    std::vector<torch::Tensor> decaySum;
    std::vector<std::deque<StateSnapshot>> snapshots;
    std::vector<std::deque<StateSnapshot>>
        contextSnapshots; // the old-context probes' (RecurrentModel::setOldContext)

    std::unique_ptr<ModelState> clone() const override { return std::make_unique<ScanState>(*this); }
    void copyFrom(const ModelState& other) override;
    void forgetRecurrence() override;
    std::vector<torch::Tensor> unitNorms() const override;
};

// Where a chunk of T tokens that follows `count0` tokens is cut so that every position that is a
// multiple of one of the intervals (0: none) ends a segment: the ends, in (0, T], ascending, T last.
std::vector<int64_t> segmentEnds(int64_t count0, int64_t T, const std::vector<int64_t>& intervals);

// State normalisation of one layer: state [B, U, ...] scaled per unit to min(1, clip tau / |h|)
// (clip) or tau / |h| (renorm), a zero state left as it is. Returns the scale [B, U].
torch::Tensor normaliseState(torch::Tensor& state, const torch::Tensor& tau, const Mitigation& m);

// The window snapshot a token at position n (counted from 1) reads against: the state after
// ceil(n / s) * s - window tokens, or null when that is at or before the stream's start (a zero state).
const StateSnapshot* windowSnapshot(const std::deque<StateSnapshot>& snapshots, int64_t n,
                                    const SnapshotWindow& w);

// What follows the read-out of the token at position n in layer l, the same in every path of every
// architecture: state normalisation where it acts (tau: the calibrated norms per layer), then the
// window's snapshot and, when `context` is set, the old-context probes' one. Returns the
// normalisation's scale [B, U], undefined where it did not act.
torch::Tensor settleState(ScanState& s, size_t l, int64_t n, const Mitigation& m,
                          const std::vector<torch::Tensor>& tau, const SnapshotWindow* context);

// The old-context probes' descriptions, [layers, units] each: retention, old_share,
// old_readout_share, insertion (docs/probes in docs/mitigations.md).
std::vector<ProbeDesc> oldContextProbeDescs(const std::vector<int64_t>& shape,
                                            const std::vector<std::string>& axes,
                                            const std::string& unitMeaning, const SnapshotWindow& w);

// After the token at position n: a snapshot when n is a multiple of the snapshot interval, and those
// no later token reads dropped.
void recordSnapshot(std::deque<StateSnapshot>& snapshots, int64_t n, const torch::Tensor& state,
                    const torch::Tensor& decaySum, const SnapshotWindow& w);

// One layer's probes from a KeyDecayRecurrence.
struct KeyDecayProbes {
    torch::Tensor stateNorm; // [B, T, H]
    // The old-context probes (RecurrentModel::setOldContext), [B, n, H] pieces along T.
    std::vector<torch::Tensor> retention, oldShare, readoutShare, insertion, keyNorm, maxAbs;
};

// The recurrence of a state with a decay per key channel, S_t = diag(w_t) S_{t-1} + k_t^T v_t, in
// both paths and with the mitigations and old-context probes acting the same in each: RWKV's wkv
// (read-out q_t . (S_{t-1} + diag(u) k_t^T v_t)) and GLA / HGRN-2 (q_t . S_t, u undefined).
class KeyDecayRecurrence {
public:
    KeyDecayRecurrence(const Mitigation& m, const std::vector<torch::Tensor>& tau,
                       const SnapshotWindow& context, torch::ScalarType accumulation, int64_t chunkSize)
        : m_mitigation(m), m_tau(tau), m_context(context), m_accumulation(accumulation),
          m_chunkSize(chunkSize)
    {
    }

    // Layer l over T tokens from s.ssm[l] [B, H, K, V], which it replaces, starting after s.tokens:
    // q, k [B, T, H, K], logw broadcastable to them (<= 0), v [B, T, H, V]; returns o [B, T, H, V].
    torch::Tensor run(size_t l, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                      const torch::Tensor& logw, const torch::Tensor& u, ScanState& s, bool recurrent,
                      KeyDecayProbes* probes) const;

private:
    torch::Tensor step(size_t l, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& logw, const torch::Tensor& u, ScanState& s,
                       KeyDecayProbes* probes) const;
    torch::Tensor chunked(size_t l, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const torch::Tensor& logw, const torch::Tensor& u, ScanState& s,
                          KeyDecayProbes* probes) const;
    // The chunked scan cut where the positional mitigations act, and with context also at the
    // old-context probes' snapshots (which it then fills).
    torch::Tensor segments(size_t l, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           const torch::Tensor& logw, const torch::Tensor& u, ScanState& s,
                           KeyDecayProbes* probes, bool context) const;
    // The old-context probes of n tokens against the context snapshot (null: none yet). sumBefore: the
    // log-decay sums before the first of them [B, H, K]; lw, q, k [B, n, H, K], v and out [B, n, H, V];
    // norm ||S_t|| [B, n, H].
    void contextProbes(const StateSnapshot* snap, const torch::Tensor& sumBefore, const torch::Tensor& lw,
                       const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& out, const torch::Tensor& norm, bool inclusive,
                       KeyDecayProbes& p) const;

    const Mitigation& m_mitigation;
    const std::vector<torch::Tensor>& m_tau;
    const SnapshotWindow& m_context;
    torch::ScalarType m_accumulation;
    int64_t m_chunkSize;
};

// forward()'s two ways through the layers: the whole chunk at once, or (oneAtATime, the step path)
// each token through every layer in turn, the hidden states concatenated. run: [B, T] ids -> [B, T, C].
torch::Tensor overTokens(const torch::Tensor& ids, bool oneAtATime,
                         const std::function<torch::Tensor(const torch::Tensor&)>& run);

// One layer's probes in a key-decay model (RWKV, HGRN-2, GLA) for one piece of a forward().
struct KeyDecayLayerProbes {
    torch::Tensor decay;    // [B, T, H]: exp(mean log w) over each head's keys
    torch::Tensor keyDecay; // [B, T, H x K], with ProbeDetail::Full
    KeyDecayProbes scan;    // state_norm and the old-context probes
};

// Gathers the layers' probes over the pieces of a forward() (the whole chunk, or one token at a time on
// the step path) and stacks them as the model's probes: decay, state_norm, key_decay with full detail,
// then the six old-context probes with a context window; each [B, T, L, ...], token-major like the trace.
class KeyDecayProbeStack {
public:
    KeyDecayProbeStack(size_t layers, bool full, bool context);
    void add(size_t l, const KeyDecayLayerProbes& p);
    std::vector<torch::Tensor> stacked() const;

private:
    bool m_full, m_context;
    // decay, state_norm, key_decay, then retention, old share, read-out share, insertion, key norm,
    // max |S|: per probe, per layer, the pieces along T.
    std::vector<std::vector<std::vector<torch::Tensor>>> m_pieces;
};

} // namespace statescope
