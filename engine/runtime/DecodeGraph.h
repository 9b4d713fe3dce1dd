#pragma once

// Engine-internal (torch): one greedy decode step captured as a CUDA graph. A step of a small model is
// hundreds of kernels of a few microseconds each; launched one by one, the GPU waits on the host, and
// one graph launch per token removes that.
#include <torch/torch.h>

#include <functional>
#include <memory>

namespace statescope {

class DecodeGraph {
public:
    virtual ~DecodeGraph() = default;
    // Whether this build can capture graphs (LibTorch with CUDA); Debian's CPU LibTorch cannot.
    static bool built();
    // Runs step once on a side stream (a real step, which also warms up what the capture needs), then
    // captures it. step must read and write only tensors that outlive the graph, in place. Returns
    // null (after warning once) if CUDA refuses the capture: the one step has run all the same. A
    // failing eager step throws its c10::Error.
    static std::unique_ptr<DecodeGraph> capture(const std::function<void()>& step, torch::Device device);
    // One step, on the current stream.
    virtual void replay() = 0;
};

} // namespace statescope
