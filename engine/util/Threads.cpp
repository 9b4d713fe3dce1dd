#include "util/Threads.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <unistd.h>

namespace statescope {

namespace {

struct CpuTimes {
    unsigned long long busy = 0, total = 0;
};

bool readCpuTimes(CpuTimes* t)
{
    std::ifstream in("/proc/stat");
    std::string cpu;
    unsigned long long v[8] = {};
    if (!(in >> cpu) || cpu != "cpu")
        return false;
    for (auto& x : v)
        in >> x;
    if (!in)
        return false;
    // user nice system idle iowait irq softirq steal: idle and iowait are free time.
    t->total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    t->busy = t->total - v[3] - v[4];
    return true;
}

} // namespace

int freeCores()
{
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    CpuTimes a, b;
    if (!readCpuTimes(&a))
        return cores;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!readCpuTimes(&b) || b.total <= a.total)
        return cores;
    const double busyShare = double(b.busy - a.busy) / double(b.total - a.total);
    const int busy = static_cast<int>(std::lround(busyShare * cores));
    return std::clamp(cores - busy, 1, cores);
}

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
