#include "runtime/DataParallel.h"

#include "Error.h"

#include <cstdlib>

// STATESCOPE_GLOO: Gloo's headers were found (Debian: libgloo-dev; PyTorch's wheel has none).
// STATESCOPE_NCCL: NCCL's were (LibTorch with CUDA). Either makes a c10d build.
#ifndef STATESCOPE_GLOO
#define STATESCOPE_GLOO 0
#endif
#ifndef STATESCOPE_NCCL
#define STATESCOPE_NCCL 0
#endif
#define STATESCOPE_C10D (STATESCOPE_GLOO || STATESCOPE_NCCL)
#if STATESCOPE_C10D
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#endif
#if STATESCOPE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if STATESCOPE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace statescope {

namespace {

int envInt(const char* name, int fallback, int minValue, int maxValue)
{
    const char* v = std::getenv(name);
    if (!v || !*v)
        return fallback;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    if (*end || x < minValue || x > maxValue)
        throw Error(std::string("environment variable ") + name, name,
                    "an integer in [" + std::to_string(minValue) + ", " + std::to_string(maxValue) + "]",
                    std::string("\"") + v + "\"");
    return static_cast<int>(x);
}

} // namespace

DistributedEnv distributedEnvironment()
{
    DistributedEnv e;
    e.worldSize = envInt("WORLD_SIZE", 1, 1, 1 << 16);
    e.rank = envInt("RANK", 0, 0, e.worldSize - 1);
    e.localRank = envInt("LOCAL_RANK", 0, 0, 1 << 16);
    e.masterPort = envInt("MASTER_PORT", e.masterPort, 1, 65535);
    if (const char* a = std::getenv("MASTER_ADDR"); a && *a)
        e.masterAddr = a;
    return e;
}

bool dataParallelAvailable()
{
    return STATESCOPE_C10D != 0;
}

#if STATESCOPE_C10D

// LibTorch 2 split the backends (Gloo, NCCL) from the ProcessGroup front; 1.13 (Debian) has only the latter.
#if TORCH_VERSION_MAJOR >= 2
using GroupBase = c10d::Backend;
#else
using GroupBase = c10d::ProcessGroup;
#endif

// ProcessGroupNCCL::shutdown() exists from LibTorch 2.4 on; before it the destructor was silent.
#if STATESCOPE_NCCL && (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
#define STATESCOPE_NCCL_SHUTDOWN 1
#else
#define STATESCOPE_NCCL_SHUTDOWN 0
#endif

struct DataParallel::Impl {
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<GroupBase> group;
#if STATESCOPE_NCCL_SHUTDOWN
    c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
    std::string backend;
    torch::Device device{torch::kCPU};
};

DataParallel::DataParallel(const DistributedEnv& env, const torch::Device& device)
    : m_env(env), m(std::make_unique<Impl>())
{
    m->device = device;
    const std::string where = "process group " + env.masterAddr + ":" + std::to_string(env.masterPort);
    try {
        c10d::TCPStoreOptions so;
        so.port = static_cast<uint16_t>(env.masterPort);
        so.isServer = env.rank == 0;
        so.numWorkers = static_cast<size_t>(env.worldSize);
        so.timeout = std::chrono::minutes(5);
        m->store = c10::make_intrusive<c10d::TCPStore>(env.masterAddr, so);
#if STATESCOPE_NCCL
        if (device.is_cuda()) {
            auto options = c10d::ProcessGroupNCCL::Options::create();
            auto nccl =
                c10::make_intrusive<c10d::ProcessGroupNCCL>(m->store, env.rank, env.worldSize, options);
#if STATESCOPE_NCCL_SHUTDOWN
            m->nccl = nccl;
#endif
            m->group = nccl;
            m->backend = "nccl";
        }
#endif
#if STATESCOPE_GLOO
        if (!m->group) {
            auto options = c10d::ProcessGroupGloo::Options::create();
            // Peers on this host reach each other through loopback, whatever the host's name resolves to.
            const bool loopback = env.masterAddr == "localhost" || env.masterAddr.rfind("127.", 0) == 0;
            if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
                options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
            else if (loopback)
                options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
            else
                options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
            m->group =
                c10::make_intrusive<c10d::ProcessGroupGloo>(m->store, env.rank, env.worldSize, options);
            m->backend = "gloo";
        }
#endif
        if (!m->group)
            throw Error("WORLD_SIZE", "device",
                        std::string(STATESCOPE_NCCL ? "cuda" : "cpu") + " (this build has c10d with " +
                            (STATESCOPE_NCCL ? "NCCL only" : "Gloo only") + ")",
                        device.str());
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(where, "rank " + std::to_string(env.rank) + " of " + std::to_string(env.worldSize) +
                               " could not join: " + errorLine(e));
    }
}

DataParallel::~DataParallel()
{
#if STATESCOPE_NCCL_SHUTDOWN
    // What Python's destroy_process_group() does: without it ProcessGroupNCCL's destructor warns that
    // resources may leak and aborts the communicators instead of destroying them.
    if (m && m->nccl) {
        try {
            m->nccl->shutdown();
        } catch (...) {
            // A destructor cannot report; the communicators are aborted by the group's own destructor.
        }
    }
#endif
}

std::string DataParallel::backend() const
{
    return m->backend;
}

void DataParallel::averageGradients(const std::vector<torch::Tensor>& params)
{
    std::vector<torch::Tensor> grads;
    for (const auto& p : params)
        grads.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
    std::vector<torch::Tensor> flat{torch::cat(grads)};
    m->group->allreduce(flat)->wait();
    flat[0].div_(m_env.worldSize);
    int64_t at = 0;
    for (const auto& p : params) {
        if (p.grad().defined())
            p.grad().copy_(flat[0].narrow(0, at, p.numel()).view_as(p));
        at += p.numel();
    }
}

void DataParallel::broadcast(const std::vector<torch::Tensor>& tensors)
{
    torch::NoGradGuard ng;
    for (const auto& t : tensors) {
        std::vector<torch::Tensor> one{t.detach()};
        m->group->broadcast(one)->wait();
    }
}

double DataParallel::average(double value)
{
    std::vector<torch::Tensor> one{torch::full(
        {1}, value,
        torch::TensorOptions(torch::kFloat64).device(m->backend == "nccl" ? m->device : torch::kCPU))};
    m->group->allreduce(one)->wait();
    return one[0].item<double>() / m_env.worldSize;
}

void DataParallel::barrier()
{
    m->group->barrier()->wait();
}

#else // built without c10d

struct DataParallel::Impl {};

DataParallel::DataParallel(const DistributedEnv& env, const torch::Device&) : m_env(env)
{
    throw Error(
        "WORLD_SIZE", "world size",
        "1 (this build has no c10d: install libgloo-dev, or build against LibTorch with CUDA and NCCL)",
        std::to_string(env.worldSize));
}
DataParallel::~DataParallel() = default;
std::string DataParallel::backend() const
{
    return "";
}
void DataParallel::averageGradients(const std::vector<torch::Tensor>&) {}
void DataParallel::broadcast(const std::vector<torch::Tensor>&) {}
double DataParallel::average(double value)
{
    return value;
}
void DataParallel::barrier() {}

#endif

} // namespace statescope
