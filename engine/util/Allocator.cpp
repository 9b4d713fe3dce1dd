#include "util/Allocator.h"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace statescope {

bool keepFreedMemoryForReuse()
{
#if defined(__GLIBC__)
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_"))
        return false;
    // 32 MB is glibc's largest mmap threshold on 64-bit; setting it also stops the dynamic threshold
    // from lowering the trim threshold again.
    return mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1 &&
           mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024) == 1;
#else
    return false;
#endif
}

} // namespace statescope
