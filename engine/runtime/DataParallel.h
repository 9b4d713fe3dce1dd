#pragma once

// Data-parallel training across processes through LibTorch's c10d: the process group torchrun
// describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), NCCL between GPUs where the
// build has it, Gloo otherwise. Engine-internal: only the trainer includes it (torch types).

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace statescope {

struct DistributedEnv {
    int rank = 0;
    int worldSize = 1;
    int localRank = 0;
    std::string masterAddr = "127.0.0.1";
    int masterPort = 29500;
};

// The torchrun variables of this process; a single process (world size 1) when WORLD_SIZE is unset.
// Throws Error naming the variable for a value that is not a number in range.
DistributedEnv distributedEnvironment();

// Whether this build can join a process group (c10d with Gloo; NCCL for CUDA tensors).
bool dataParallelAvailable();

class DataParallel {
public:
    // Joins the group: rank 0 serves the TCP store at MASTER_ADDR:MASTER_PORT. Throws Error.
    DataParallel(const DistributedEnv& env, const torch::Device& device);
    ~DataParallel();

    const DistributedEnv& env() const { return m_env; }
    std::string backend() const;
    // Every rank's gradients replaced by their mean over the ranks (one flat all-reduce).
    void averageGradients(const std::vector<torch::Tensor>& params);
    // Rank 0's values to every rank.
    void broadcast(const std::vector<torch::Tensor>& tensors);
    // The mean of value over the ranks.
    double average(double value);
    void barrier();

private:
    struct Impl;
    DistributedEnv m_env;
    std::unique_ptr<Impl> m;
};

} // namespace statescope
