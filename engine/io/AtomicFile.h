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
// The same for a file that several processes may build at once with the same content (a corpus's token
// cache, when the jobs of a sweep start together): each writes a temporary file of its own, so that
// none renames another's half-written one; the last rename wins.
void writeSharedFileAtomically(const std::string& path, const std::function<void(std::ostream&)>& write);

} // namespace statescope
