#include "io/MappedFile.h"

#include "Error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace statescope {

namespace {
struct FdCloser {
    int fd;
    ~FdCloser()
    {
        if (fd >= 0)
            ::close(fd);
    }
};
} // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path)
{
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever (the check
    // below then refuses it); on a regular file it changes nothing.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        throw Error(path, std::string("cannot open file: ") + std::strerror(errno));
    FdCloser closer{fd};

    struct stat st {};
    if (::fstat(fd, &st) != 0)
        throw Error(path, std::string("cannot stat file: ") + std::strerror(errno));
    if (S_ISDIR(st.st_mode))
        throw Error(path, "is a directory, expected a file");
    if (!S_ISREG(st.st_mode)) {
        const char* kind = S_ISFIFO(st.st_mode)   ? "a FIFO"
                           : S_ISCHR(st.st_mode)  ? "a character device"
                           : S_ISBLK(st.st_mode)  ? "a block device"
                           : S_ISSOCK(st.st_mode) ? "a socket"
                                                  : "not a regular file";
        throw Error(path, "file type", "a regular file (only those are read)", kind);
    }
    if (st.st_size < 0 || static_cast<unsigned long long>(st.st_size) > SIZE_MAX)
        throw Error(path, "file is too large to map");

    std::shared_ptr<MappedFile> file(new MappedFile());
    file->m_path = path;
    file->m_size = static_cast<size_t>(st.st_size);
    // mmap of length 0 fails with EINVAL, and an empty file has nothing to map anyway.
    if (file->m_size == 0)
        return file;

    void* p = ::mmap(nullptr, file->m_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        throw Error(path, std::string("cannot map file: ") + std::strerror(errno));
    file->m_data = static_cast<const uint8_t*>(p);
    return file;
}

MappedFile::~MappedFile()
{
    if (m_data)
        ::munmap(const_cast<uint8_t*>(m_data), m_size);
}

} // namespace statescope
