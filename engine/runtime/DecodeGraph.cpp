#include "runtime/DecodeGraph.h"

#include "util/Warnings.h"

#ifdef STATESCOPE_CUDA_GRAPHS
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace statescope {

#ifdef STATESCOPE_CUDA_GRAPHS

namespace {

class CudaDecodeGraph : public DecodeGraph {
public:
    void replay() override { m_graph.replay(); }
    at::cuda::CUDAGraph m_graph;
};

} // namespace

bool DecodeGraph::built()
{
    return true;
}

std::unique_ptr<DecodeGraph> DecodeGraph::capture(const std::function<void()>& step, torch::Device device)
{
    auto g = std::make_unique<CudaDecodeGraph>();
    c10::cuda::CUDAGuard onDevice(device.index() < 0 ? 0 : device.index());
    const c10::cuda::CUDAStream origin = c10::cuda::getCurrentCUDAStream();
    const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
    // The side stream starts after what the caller queued, and the caller's stream continues after it.
    at::cuda::CUDAEvent ready;
    ready.record(origin);
    ready.block(side);
    {
        c10::cuda::CUDAStreamGuard onSide(side);
        step();
        try {
            g->m_graph.capture_begin();
            step();
            g->m_graph.capture_end();
        } catch (const c10::Error& e) {
            // A step that throws mid-capture leaves the stream capturing: end it before anything else
            // runs on it. The eager step above has run; the caller goes on without the graph.
            cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
            if (cudaStreamIsCapturing(side.stream(), &status) == cudaSuccess &&
                status != cudaStreamCaptureStatusNone) {
                cudaGraph_t dropped = nullptr;
                cudaStreamEndCapture(side.stream(), &dropped);
                if (dropped)
                    cudaGraphDestroy(dropped);
            }
            const std::string what = e.what_without_backtrace();
            warnOnce("cuda-graph", "decoding without a CUDA graph: the capture failed (" +
                                       what.substr(0, what.find('\n')) + ")");
            g.reset();
        }
    }
    at::cuda::CUDAEvent done;
    done.record(side);
    done.block(origin);
    return g;
}

#else

bool DecodeGraph::built()
{
    return false;
}

std::unique_ptr<DecodeGraph> DecodeGraph::capture(const std::function<void()>&, torch::Device)
{
    return nullptr;
}

#endif

} // namespace statescope
