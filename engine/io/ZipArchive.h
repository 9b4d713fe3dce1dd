#pragma once

#include "io/MappedFile.h"

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace statescope {

// Read-only view of a zip archive as torch.save writes it: entries stored uncompressed, often with
// ZIP64 records because checkpoints exceed 4 GB. Entry data points into the mapped file; compressed
// (deflated) entries are refused rather than inflated, since torch never writes them and inflating
// would need memory the size of the checkpoint.
class ZipArchive {
public:
    struct Entry {
        std::string name;
        const uint8_t* data = nullptr;
        uint64_t size = 0;
        uint32_t crc32 = 0; // as the central directory records it
    };

    static ZipArchive open(const std::string& path);
    static ZipArchive open(std::shared_ptr<MappedFile> file);

    std::vector<std::string> names() const; // in central-directory order
    bool contains(const std::string& name) const;
    Entry entry(const std::string& name) const;
    // Throws Error if the entry's bytes do not match its recorded CRC-32. Used for the pickle and the
    // small records, not for tensor data: a checksum pass over gigabytes would double a load, and a
    // damaged tensor does not run code or corrupt memory (its size and shape are checked).
    void checkCrc(const Entry& e) const;

    const std::string& path() const { return m_file->path(); }
    const std::shared_ptr<MappedFile>& file() const { return m_file; }

private:
    struct Record {
        std::string name;
        uint16_t method = 0;
        uint16_t flags = 0;
        uint64_t compressedSize = 0;
        uint64_t size = 0;
        uint64_t localHeaderOffset = 0;
        uint32_t crc32 = 0;
    };

    explicit ZipArchive(std::shared_ptr<MappedFile> file) : m_file(std::move(file)) {}
    void readCentralDirectory();

    std::shared_ptr<MappedFile> m_file;
    std::vector<Record> m_records;
    std::unordered_map<std::string, size_t> m_index;
};

} // namespace statescope
