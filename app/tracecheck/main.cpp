// statescope-trace-check: opens a trace the way the window will, in a process of its own, so that a
// crafted file that crashes or hangs libhdf5 costs this process and not the window
// (engine/trace/TraceCheck.h). Exit 0: readable; 1: one line naming the problem; killed: damaged.
#include "Error.h"
#include "trace/TraceCheck.h"

#include <sys/resource.h>

#include <cstring>
#include <iostream>

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

int main(int argc, char** argv)
{
    using namespace statescope;
    // No trace needs more: a file that makes HDF5 allocate or compute past this is damaged. Under
    // AddressSanitizer (a -DSTATESCOPE_SANITIZE build) the shadow memory alone maps terabytes, so the
    // limit is left to ASan's allocator, which aborts on such allocations itself.
    if (!kAddressSanitizer) {
        const rlimit memory{rlim_t(2) << 30, rlim_t(2) << 30};
        setrlimit(RLIMIT_AS, &memory);
    }
    const rlimit cpu{60, 60};
    setrlimit(RLIMIT_CPU, &cpu);
    const rlimit noCore{0, 0}; // a crash here is an answer, not something to debug
    setrlimit(RLIMIT_CORE, &noCore);

    TraceCheckDepth depth = TraceCheckDepth::Header;
    const char* path = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--full") == 0)
            depth = TraceCheckDepth::Full;
        else if (std::strcmp(argv[i], "--header") == 0)
            depth = TraceCheckDepth::Header;
        else if (std::strcmp(argv[i], "--") == 0 && i + 1 < argc)
            path = argv[++i];
        else
            path = argv[i];
    }
    if (!path) {
        std::cerr << "usage: statescope-trace-check [--header|--full] [--] TRACE.h5\n";
        return 2;
    }
    try {
        readTraceForCheck(path, depth);
    } catch (const std::bad_alloc&) {
        std::cerr << path << ": the trace is damaged: reading it needed more than 2 GiB of memory\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << errorLine(e) << "\n";
        return 1;
    }
    return 0;
}
