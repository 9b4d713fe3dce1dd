#include "trace/TraceCheck.h"

#include "Error.h"
#include "trace/TraceFile.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

extern char** environ;

namespace statescope {

namespace {

namespace fs = std::filesystem;

// A file as it is now: a trace that grows or is replaced is checked again.
struct FileIdentity {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    int64_t mtimeNs = 0;
    bool operator<(const FileIdentity& o) const
    {
        return std::tie(device, inode, size, mtimeNs) < std::tie(o.device, o.inode, o.size, o.mtimeNs);
    }
};

struct Verdict {
    TraceCheckDepth depth = TraceCheckDepth::Header;
    std::string failure; // empty: passed
};

std::mutex& cacheMutex()
{
    static std::mutex m;
    return m;
}
std::map<FileIdentity, Verdict>& verdicts()
{
    static std::map<FileIdentity, Verdict> v;
    return v;
}
std::set<FileIdentity>& trusted()
{
    static std::set<FileIdentity> t;
    return t;
}

bool identify(const std::string& path, FileIdentity* id)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return false;
    id->device = st.st_dev;
    id->inode = st.st_ino;
    id->size = st.st_size;
    id->mtimeNs = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    return true;
}

bool executable(const std::string& p)
{
    return !p.empty() && ::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p);
}

const char* signalName(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV, a memory fault";
    case SIGBUS:
        return "SIGBUS";
    case SIGABRT:
        return "SIGABRT";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGKILL:
        return "SIGKILL";
    case SIGXCPU:
        return "SIGXCPU, its CPU time limit";
    default:
        return "a signal";
    }
}

// Runs the checker on path; "" if it passed, else the one line to show.
std::string runChecker(const std::string& checker, const std::string& path, TraceCheckDepth depth, off_t size)
{
    int pipeFds[2];
    if (::pipe2(pipeFds, O_CLOEXEC) != 0)
        throw Error(path, std::string("cannot start the trace check: ") + std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipeFds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, pipeFds[1], STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    const std::string depthArg = depth == TraceCheckDepth::Full ? "--full" : "--header";
    std::vector<char*> argv{const_cast<char*>(checker.c_str()), const_cast<char*>(depthArg.c_str()),
                            const_cast<char*>("--"), const_cast<char*>(path.c_str()), nullptr};
    pid_t pid = 0;
    const int spawned = ::posix_spawn(&pid, checker.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipeFds[1]);
    if (spawned != 0) {
        ::close(pipeFds[0]);
        throw Error(path, "cannot start the trace check " + checker + ": " + std::strerror(spawned));
    }

    // Generous for a real trace on a slow disk (the check reads little of the data), short enough
    // that a file made to hang the reader is called damaged rather than hanging the window.
    const auto limit = std::chrono::seconds(8 + int64_t(size >> 30) * 10);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::string output;
    bool timedOut = false;
    char buf[4096];
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timedOut = true;
            break;
        }
        pollfd pfd{pipeFds[0], POLLIN, 0};
        const int ready = ::poll(&pfd, 1, int(std::min<int64_t>(left.count(), 1000)));
        if (ready < 0 && errno != EINTR)
            break;
        if (ready <= 0)
            continue;
        const ssize_t n = ::read(pipeFds[0], buf, sizeof buf);
        if (n <= 0)
            break; // EOF: the child is done (or closed its output)
        if (output.size() < (64u << 10))
            output.append(buf, size_t(n));
    }
    ::close(pipeFds[0]);
    if (timedOut)
        ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timedOut)
        return "the trace is damaged: reading it did not finish within " + std::to_string(limit.count()) +
               " s (checked in a separate process, which was stopped)";
    if (WIFSIGNALED(status))
        return std::string("the trace is damaged: reading it crashed the HDF5 library (") +
               signalName(WTERMSIG(status)) +
               "; checked in a separate process, so nothing else was affected)";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return {};
    // The checker answers 0 or 1 (and 2 for its usage). Anything else is a crash that something
    // caught on its way out: in a sanitizer build, AddressSanitizer's report and its exit code.
    if (WIFEXITED(status) && WEXITSTATUS(status) > 2)
        return "the trace is damaged: reading it crashed the HDF5 library (exit code " +
               std::to_string(WEXITSTATUS(status)) +
               ", a sanitizer's report; checked in a separate process, so nothing else was affected)";
    // The checker printed one line: "<path>: <problem>". The caller prefixes the path itself.
    while (!output.empty() && (output.back() == '\n' || output.back() == '\r'))
        output.pop_back();
    const size_t lastBreak = output.find_last_of('\n');
    std::string line = output.substr(lastBreak == std::string::npos ? 0 : lastBreak + 1);
    if (line.compare(0, path.size() + 2, path + ": ") == 0)
        line.erase(0, path.size() + 2);
    if (line.empty())
        line = "the trace check failed (exit code " +
               std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")";
    return line;
}

} // namespace

std::string traceCheckerPath()
{
    if (const char* env = std::getenv("STATESCOPE_TRACE_CHECKER"); env && *env)
        return executable(env) ? std::string(env) : std::string();
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const std::string beside = (self.parent_path() / "statescope-trace-check").string();
        if (executable(beside))
            return beside;
    }
#ifdef STATESCOPE_INSTALLED_TRACE_CHECKER
    if (executable(STATESCOPE_INSTALLED_TRACE_CHECKER))
        return STATESCOPE_INSTALLED_TRACE_CHECKER;
#endif
#ifdef STATESCOPE_BUILD_TRACE_CHECKER
    if (executable(STATESCOPE_BUILD_TRACE_CHECKER))
        return STATESCOPE_BUILD_TRACE_CHECKER;
#endif
    return {};
}

void trustTrace(const std::string& path)
{
    FileIdentity id;
    if (!identify(path, &id))
        return;
    std::lock_guard<std::mutex> lock(cacheMutex());
    trusted().insert(id);
}

void checkTraceIsolated(const std::string& path, TraceCheckDepth depth)
{
    FileIdentity id;
    if (!identify(path, &id))
        return; // the reader says what is missing
    {
        std::lock_guard<std::mutex> lock(cacheMutex());
        if (trusted().count(id))
            return;
        auto it = verdicts().find(id);
        if (it != verdicts().end()) {
            if (!it->second.failure.empty())
                throw Error(path, it->second.failure);
            if (it->second.depth == TraceCheckDepth::Full || depth == TraceCheckDepth::Header)
                return;
        }
    }
    const std::string checker = traceCheckerPath();
    std::string failure;
    if (checker.empty()) {
        try {
            readTraceForCheck(path, depth);
        } catch (const Error& e) {
            failure = e.what();
            if (failure.compare(0, path.size() + 2, path + ": ") == 0)
                failure.erase(0, path.size() + 2);
        }
    } else {
        failure = runChecker(checker, path, depth, id.size);
    }
    {
        std::lock_guard<std::mutex> lock(cacheMutex());
        verdicts()[id] = Verdict{depth, failure};
    }
    if (!failure.empty())
        throw Error(path, failure);
}

void readTraceForCheck(const std::string& path, TraceCheckDepth depth)
{
    const TraceReader reader(path);
    reader.readAllAttributes();
    if (depth != TraceCheckDepth::Full)
        return;
    constexpr int64_t kEdge = 4096;
    const int64_t total = reader.tokens();
    for (const auto& [begin, end] : {std::make_pair(int64_t(0), std::min(total, kEdge)),
                                     std::make_pair(std::max(int64_t(0), total - kEdge), total)}) {
        reader.ids(begin, end);
        reader.nll(begin, end);
        reader.offsets(begin, end);
        for (const ProbeDesc& p : reader.header().probes)
            reader.probe(p.name, begin, end);
    }
}

} // namespace statescope
