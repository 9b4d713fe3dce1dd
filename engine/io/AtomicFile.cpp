#include "io/AtomicFile.h"

#include "Error.h"

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace statescope {

namespace {

void writeThenRename(const std::string& path, const std::string& tmp,
                     const std::function<void(std::ostream&)>& write)
{
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out)
            throw Error(path, "cannot write (missing folder or no permission)");
        write(out);
        if (!out.flush())
            throw Error(path, "write failed (disk full?)");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec)
        throw Error(path, "cannot move the finished file into place: " + ec.message());
}

} // namespace

void writeFileAtomically(const std::string& path, const std::function<void(std::ostream&)>& write)
{
    writeThenRename(path, path + ".tmp", write);
}

void writeSharedFileAtomically(const std::string& path, const std::function<void(std::ostream&)>& write)
{
    const std::string tmp = path + ".tmp" + std::to_string(::getpid());
    try {
        writeThenRename(path, tmp, write);
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove(tmp, ec);
        throw;
    }
}

void writeFileAtomically(const std::string& path, const std::string& text)
{
    writeFileAtomically(path,
                        [&](std::ostream& out) { out.write(text.data(), std::streamsize(text.size())); });
}

} // namespace statescope
