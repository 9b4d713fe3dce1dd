#pragma once

#include <memory>
#include <string>

namespace statescope {

// PyTorch's own profiler (Kineto) around a stretch of engine work: every operator on the host and
// every CUDA kernel with its duration, written as a Chrome trace (chrome://tracing, Perfetto, or
// tools/profile_summary.py for a table of where the GPU time went). It measures the real run, not a
// model of it, which is how issue 15's costs are ranked before anything is fused. LibTorch builds
// without Kineto (Debian's) refuse at start() with an Error naming the output file.
class Profiler {
public:
    explicit Profiler(std::string path);
    ~Profiler(); // stops without writing if stop() was not called
    Profiler(const Profiler&) = delete;
    Profiler& operator=(const Profiler&) = delete;

    void start();
    // Waits for the device, stops and writes the trace.
    void stop();

private:
    std::string m_path;
    bool m_running = false;
};

} // namespace statescope
