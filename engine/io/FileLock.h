#pragma once

#include <string>

namespace statescope {

// An exclusive open-file-description lock (fcntl F_OFD_SETLK) on a lock file, held while this object
// lives; the file is removed when the lock is released. Try refuses at once when another process (or
// another FileLock of this one) holds it; Wait blocks until it is free. Throws Error naming the file
// if it cannot be created.
class FileLock {
public:
    enum class Mode { Try, Wait };
    FileLock(std::string path, Mode mode);
    ~FileLock();
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

    bool locked() const { return m_fd >= 0; }
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
    int m_fd = -1;
};

} // namespace statescope
