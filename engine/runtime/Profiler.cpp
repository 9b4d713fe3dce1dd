#include "runtime/Profiler.h"

#include "Error.h"

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

#include <set>

namespace statescope {

namespace {

namespace prof = torch::profiler::impl;

prof::ProfilerConfig kinetoConfig()
{
    return prof::ProfilerConfig(prof::ProfilerState::KINETO, /*report_input_shapes=*/true);
}

std::set<prof::ActivityType> activities()
{
    std::set<prof::ActivityType> a{prof::ActivityType::CPU};
    if (torch::cuda::is_available())
        a.insert(prof::ActivityType::CUDA);
    return a;
}

} // namespace

Profiler::Profiler(std::string path) : m_path(std::move(path)) {}

Profiler::~Profiler()
{
    if (m_running) {
        try {
            torch::autograd::profiler::disableProfiler();
        } catch (...) {
        }
    }
}

void Profiler::start()
{
    try {
        torch::autograd::profiler::prepareProfiler(kinetoConfig(), activities());
        torch::autograd::profiler::enableProfiler(kinetoConfig(), activities());
    } catch (const std::exception& e) {
        throw Error(m_path, "cannot start PyTorch's profiler (this LibTorch may be built without Kineto): " +
                                errorLine(e));
    }
    m_running = true;
}

void Profiler::stop()
{
    if (!m_running)
        return;
    if (torch::cuda::is_available())
        torch::cuda::synchronize();
    m_running = false;
    std::unique_ptr<torch::autograd::profiler::ProfilerResult> result;
    try {
        result = torch::autograd::profiler::disableProfiler();
    } catch (const std::exception& e) {
        throw Error(m_path, "PyTorch's profiler failed: " + errorLine(e));
    }
    if (!result)
        throw Error(m_path, "PyTorch's profiler returned no result");
    try {
        result->save(m_path);
    } catch (const std::exception& e) {
        throw Error(m_path, "cannot write the profile: " + errorLine(e));
    }
}

} // namespace statescope
