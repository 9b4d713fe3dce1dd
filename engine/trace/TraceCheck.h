#pragma once

// Reading a trace that someone else wrote, in a process of its own first (torch-free, no Qt).
//
// libhdf5 1.10 trusts sizes it reads from a file in places no caller can check (a global-heap
// object's length in H5HG_read is one): a crafted trace crashed the window, and with it in the traces
// folder, crashed it at every start. So before the window opens a trace it did not write itself, a
// child process (statescope-trace-check) opens it the same way and reads what the window will read.
// If that child crashes, runs out of time or memory, the window says the file is damaged and lives.
#include <string>

namespace statescope {

enum class TraceCheckDepth {
    Header, // open, every attribute, every dataset's shape and chunk index (the Runs panel)
    Full,   // and the first and last tokens of every dataset (before the window draws a trace)
};

// Throws Error(path, ...) naming what went wrong if the isolated check fails; returns when it passed,
// when this process wrote the file (trustTrace), or when it already passed for the file as it is now
// (same inode, size and modification time). Where no checker executable can be found (a broken
// install), the check runs in this process instead.
void checkTraceIsolated(const std::string& path, TraceCheckDepth depth);

// A trace as this process closed it needs no check (TraceWriter calls this when it closes one): the
// trust holds for that inode, size and modification time, so a later edit by anyone is checked.
void trustTrace(const std::string& path);

// The checker executable: $STATESCOPE_TRACE_CHECKER, else statescope-trace-check beside this
// process's executable, else the installed one, else the build tree's; "" if none exists.
std::string traceCheckerPath();

// The check itself, as the child runs it: opens the trace and reads it to the given depth. Throws
// Error for a trace that is merely invalid.
void readTraceForCheck(const std::string& path, TraceCheckDepth depth);

} // namespace statescope
