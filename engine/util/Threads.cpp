#include "util/Threads.h"

#include <cstdlib>
#include <unistd.h>

namespace statescope {

void preferPassiveOpenMp(char** argv)
{
    if (std::getenv("OMP_WAIT_POLICY") || std::getenv("STATESCOPE_NO_REEXEC"))
        return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0)
        return;
    // Once only, even if the policy is dropped again on the way.
    setenv("STATESCOPE_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
}

} // namespace statescope
