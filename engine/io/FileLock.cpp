#include "io/FileLock.h"

#include "Error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace statescope {

FileLock::FileLock(std::string path, Mode mode) : m_path(std::move(path))
{
    const int fd = ::open(m_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        throw Error(m_path, std::string("cannot create the lock file: ") + std::strerror(errno));
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    int rc;
    while ((rc = ::fcntl(fd, mode == Mode::Wait ? F_OFD_SETLKW : F_OFD_SETLK, &lock)) != 0 &&
           errno == EINTR) {
    }
    if (rc != 0 && (errno == EAGAIN || errno == EACCES)) {
        ::close(fd);
        return; // held elsewhere (Try)
    }
    m_fd = fd; // locked, or a file system without locks: go on as if alone
}

FileLock::~FileLock()
{
    if (m_fd >= 0) {
        ::unlink(m_path.c_str());
        ::close(m_fd);
    }
}

} // namespace statescope
