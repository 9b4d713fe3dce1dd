#pragma once

#include <functional>
#include <iosfwd>
#include <string>

namespace statescope {

// Writes a file to `path + ".tmp"` and renames it over `path`, so that a crash or a SIGTERM at any
// moment (Slurm preempting a training in the middle of a checkpoint) leaves either the old file or
// the new one, never half of one. Throws Error naming the path.
void writeFileAtomically(const std::string& path, const std::function<void(std::ostream&)>& write);
void writeFileAtomically(const std::string& path, const std::string& text);

} // namespace statescope
