#pragma once

// Engine-internal: includes torch. Public code uses runtime/Runner.h instead.
#include <torch/torch.h>

#include "models/Architecture.h"
#include "models/Mitigation.h"
#include "probes/Probes.h"

#include <memory>
#include <string>
#include <vector>

namespace statescope {

// Where and how a model is loaded: the device, the dtype of its matrices (norms, gates and the state
// stay float32), and how much probe detail it reports.
struct TorchTarget {
    torch::Device device = torch::Device(torch::kCPU);
    torch::ScalarType dtype = torch::kFloat32;
    ProbeDetail probeDetail = ProbeDetail::Summary;
};

// Everything a model carries from one chunk of the stream to the next (SSM state, conv left
// context, ...). Each architecture defines its own.
struct ModelState {
    virtual ~ModelState() = default;
    // forward() replaces the state's tensors rather than writing into them, so a shallow copy is
    // enough to keep the old state until a chunk has fully succeeded.
    virtual std::unique_ptr<ModelState> clone() const = 0;
    // Writes other's values into this state's own tensors (same shapes): a captured CUDA graph keeps
    // reading the addresses it was captured with.
    virtual void copyFrom(const ModelState& other) = 0;
    // Zeroes the recurrent state and keeps the convolution's left context: a fresh start of the
    // recurrence at this token, as the state-difference window identity compares against.
    virtual void forgetRecurrence() = 0;
    // Per layer, [batch, units]: the norm of each normalisation unit's state (a Mamba-2 head, a
    // Mamba-1 channel), as state normalisation calibrates and bounds it.
    virtual std::vector<torch::Tensor> unitNorms() const = 0;
};

struct ForwardResult {
    torch::Tensor hidden;              // [B, T, d_model] float32, after the final norm
    std::vector<torch::Tensor> probes; // one per probeDescs() entry, [B, T, ...] float32
};

// The interface every architecture under engine/models/ implements (one file each), so that the
// runner, the trace and the GUI never need to know which one they drive.
class RecurrentModel {
public:
    virtual ~RecurrentModel() = default;

    virtual std::string architecture() const = 0; // the registry name
    virtual std::vector<ProbeDesc> probeDescs() const = 0;
    virtual std::unique_ptr<ModelState> initialState(int64_t batch) const = 0;
    // ids: [B, T] int64 on the model's device. `recurrent` selects the one-token reference path
    // instead of the chunked fast path; both must give the same numbers. Probes are skipped (an
    // empty vector) when `withProbes` is false, e.g. in training.
    virtual ForwardResult forward(const torch::Tensor& ids, ModelState& state, bool recurrent,
                                  bool withProbes) = 0;
    // [.., d_model] float32 hidden states -> [.., padded vocab] float32 logits, in a tensor of their
    // own (the runner overwrites it while taking the log-softmax).
    virtual torch::Tensor logits(const torch::Tensor& hidden) const = 0;
    // The same logits in the dtype the output layer computes in (bfloat16 for a bfloat16 model), not
    // widened: the fused NLL kernel reads them once.
    virtual torch::Tensor nativeLogits(const torch::Tensor& hidden) const { return logits(hidden); }
    // Whether a trace may store `probe` as scale * (-ln from) (ProbeDesc::derivedFrom) under the
    // current mitigation: the source probe's name and one scale per value of a token.
    virtual bool probeDerivation(const std::string& probe, std::string* from, std::vector<float>* scale) const
    {
        (void)probe, (void)from, (void)scale;
        return false;
    }

    virtual int64_t parameterCount() const = 0;
    virtual int64_t vocabSize() const = 0; // padded: rows of the output layer
    virtual torch::Device device() const = 0;

    // Training-free mitigations (models/Mitigation.h): each architecture applies them in forward(),
    // the same in both paths, and at their defaults gives the original numbers bit for bit.
    // State normalisation reads m_tau, the calibrated norms on the model's device.
    void setMitigation(const Mitigation& m)
    {
        m_mitigation = m;
        m_tau.clear();
        for (const std::vector<float>& layer : m.tau)
            m_tau.push_back(torch::tensor(layer).to(device()));
    }
    const Mitigation& mitigation() const { return m_mitigation; }
    // The old-context probes (stuffed-mamba.md §3.4; ModelCommon.h oldContextProbeDescs): with a window
    // r > 0, probes() also has each unit's retention of the token r back, its old-context share, read-out
    // share and insertion strength. They cost snapshots of the state (as the window mitigation).
    void setOldContext(int64_t window) { m_context = SnapshotWindow::of(window); }
    int64_t oldContext() const { return m_context.window; }

    // Writes config.json (the architecture's transformers dialect) and model.safetensors (float32)
    // into dir, which load() reads back; the tokenizer and the model card are the caller's.
    virtual void saveFolder(const std::string& dir) const = 0;

protected:
    Mitigation m_mitigation;
    std::vector<torch::Tensor> m_tau; // per layer [units] float32
    SnapshotWindow m_context;
};

} // namespace statescope
