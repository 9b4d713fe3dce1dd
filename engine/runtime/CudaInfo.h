#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace statescope {

struct CudaDeviceInfo {
    std::string name;
    int64_t totalBytes = 0;
    int64_t freeBytes = -1; // -1 when not asked for
};

// The CUDA devices the driver sees, read through the driver library at run time (dlopen), so that
// this builds and runs on machines without CUDA: there it returns nothing. withMemory also reads the
// device's free memory (all processes) through its primary context, which it creates if nobody has:
// ask for it only while a CUDA run is active.
std::vector<CudaDeviceInfo> cudaDevices(bool withMemory = false);

} // namespace statescope
