#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace statescope {

// A whole file mapped read-only. Checkpoints are many gigabytes; mapping lets the readers hand out
// pointers into the file without copying, and the shared_ptr keeps the mapping alive for as long as
// any RawTensor points into it.
class MappedFile {
public:
    static std::shared_ptr<MappedFile> open(const std::string& path);
    ~MappedFile();

    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return m_data; }
    size_t size() const { return m_size; }
    const std::string& path() const { return m_path; }

private:
    MappedFile() = default;

    std::string m_path;
    const uint8_t* m_data = nullptr;
    size_t m_size = 0;
};

} // namespace statescope
