#include "runtime/CudaInfo.h"

#include <dlfcn.h>

namespace statescope {

namespace {
using CUresult = int;
using CUdevice = int;
using CUcontext = void*;

struct Driver {
    CUresult (*init)(unsigned) = nullptr;
    CUresult (*deviceGetCount)(int*) = nullptr;
    CUresult (*deviceGet)(CUdevice*, int) = nullptr;
    CUresult (*deviceGetName)(char*, int, CUdevice) = nullptr;
    CUresult (*deviceTotalMem)(size_t*, CUdevice) = nullptr;
    CUresult (*primaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
    CUresult (*primaryCtxRelease)(CUdevice) = nullptr;
    CUresult (*ctxPush)(CUcontext) = nullptr;
    CUresult (*ctxPop)(CUcontext*) = nullptr;
    CUresult (*memGetInfo)(size_t*, size_t*) = nullptr;
    bool ok = false;
};

template <typename F>
void bind(void* lib, F& f, const char* name)
{
    f = reinterpret_cast<F>(dlsym(lib, name));
}

const Driver& driver()
{
    static const Driver d = [] {
        Driver r;
        void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!lib)
            return r;
        bind(lib, r.init, "cuInit");
        bind(lib, r.deviceGetCount, "cuDeviceGetCount");
        bind(lib, r.deviceGet, "cuDeviceGet");
        bind(lib, r.deviceGetName, "cuDeviceGetName");
        bind(lib, r.deviceTotalMem, "cuDeviceTotalMem_v2");
        bind(lib, r.primaryCtxRetain, "cuDevicePrimaryCtxRetain");
        bind(lib, r.primaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
        bind(lib, r.ctxPush, "cuCtxPushCurrent_v2");
        bind(lib, r.ctxPop, "cuCtxPopCurrent_v2");
        bind(lib, r.memGetInfo, "cuMemGetInfo_v2");
        r.ok = r.init && r.deviceGetCount && r.deviceGet && r.deviceGetName && r.deviceTotalMem && r.init(0) == 0;
        return r;
    }();
    return d;
}
} // namespace

std::vector<CudaDeviceInfo> cudaDevices(bool withMemory)
{
    std::vector<CudaDeviceInfo> out;
    const Driver& d = driver();
    int n = 0;
    if (!d.ok || d.deviceGetCount(&n) != 0)
        return out;
    for (int i = 0; i < n; ++i) {
        CUdevice dev = 0;
        if (d.deviceGet(&dev, i) != 0)
            continue;
        CudaDeviceInfo info;
        char name[256] = {};
        if (d.deviceGetName(name, sizeof name - 1, dev) == 0)
            info.name = name;
        size_t total = 0;
        if (d.deviceTotalMem(&total, dev) == 0)
            info.totalBytes = static_cast<int64_t>(total);
        CUcontext ctx = nullptr;
        if (withMemory && d.primaryCtxRetain && d.ctxPush && d.ctxPop && d.memGetInfo && d.primaryCtxRelease &&
            d.primaryCtxRetain(&ctx, dev) == 0) {
            size_t freeBytes = 0, totalBytes = 0;
            if (d.ctxPush(ctx) == 0) {
                if (d.memGetInfo(&freeBytes, &totalBytes) == 0)
                    info.freeBytes = static_cast<int64_t>(freeBytes);
                CUcontext popped = nullptr;
                d.ctxPop(&popped);
            }
            d.primaryCtxRelease(dev);
        }
        out.push_back(info);
    }
    return out;
}

} // namespace statescope
