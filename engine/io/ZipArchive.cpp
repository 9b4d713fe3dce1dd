#include "io/ZipArchive.h"

#include "Error.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>

namespace statescope {

namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22;
constexpr size_t kZip64EndSize = 56;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kLocalHeaderSize = 30;
constexpr uint16_t kZip64ExtraId = 0x0001;

uint16_t rd16(const uint8_t* p)
{
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t rd32(const uint8_t* p)
{
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
           (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t rd64(const uint8_t* p)
{
    return static_cast<uint64_t>(rd32(p)) | (static_cast<uint64_t>(rd32(p + 4)) << 32);
}

// True when [offset, offset + length) lies inside a buffer of `size` bytes, without overflowing.
bool inside(uint64_t offset, uint64_t length, uint64_t size)
{
    return offset <= size && length <= size - offset;
}

std::string hex(uint64_t v)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

} // namespace

ZipArchive ZipArchive::open(const std::string& path)
{
    return open(MappedFile::open(path));
}

ZipArchive ZipArchive::open(std::shared_ptr<MappedFile> file)
{
    ZipArchive zip(std::move(file));
    zip.readCentralDirectory();
    return zip;
}

void ZipArchive::readCentralDirectory()
{
    const std::string& path = m_file->path();
    const uint8_t* base = m_file->data();
    const uint64_t size = m_file->size();
    if (size < kEndSize)
        throw Error(path, "not a zip archive (" + std::to_string(size) + " bytes, too short)");

    // The end record sits at the very end, followed only by a comment of at most 65535 bytes.
    uint64_t endPos = 0;
    bool found = false;
    uint64_t lowest = size - kEndSize > 0xFFFF ? size - kEndSize - 0xFFFF : 0;
    for (uint64_t pos = size - kEndSize + 1; pos-- > lowest;) {
        if (rd32(base + pos) == kEndSig && pos + kEndSize + rd16(base + pos + 20) <= size) {
            endPos = pos;
            found = true;
            break;
        }
    }
    if (!found)
        throw Error(path, "not a zip archive (no end-of-central-directory record; truncated?)");

    const uint8_t* end = base + endPos;
    uint64_t entryCount = rd16(end + 10);
    uint64_t cdSize = rd32(end + 12);
    uint64_t cdOffset = rd32(end + 16);
    if (rd16(end + 4) != 0 || rd16(end + 6) != 0)
        throw Error(path, "multi-disk zip archives are not supported");

    if (endPos >= kZip64LocatorSize && rd32(base + endPos - kZip64LocatorSize) == kZip64LocatorSig) {
        const uint8_t* loc = base + endPos - kZip64LocatorSize;
        uint64_t z64Pos = rd64(loc + 8);
        if (!inside(z64Pos, kZip64EndSize, endPos - kZip64LocatorSize) || rd32(base + z64Pos) != kZip64EndSig)
            throw Error(path, "corrupt zip archive: ZIP64 end record offset " + std::to_string(z64Pos) +
                                  " does not point to a ZIP64 end record");
        const uint8_t* z = base + z64Pos;
        entryCount = rd64(z + 32);
        cdSize = rd64(z + 40);
        cdOffset = rd64(z + 48);
    } else if (entryCount == 0xFFFF || cdSize == 0xFFFFFFFF || cdOffset == 0xFFFFFFFF) {
        throw Error(path, "corrupt zip archive: ZIP64 values are used but the ZIP64 locator is missing");
    }
    if (!inside(cdOffset, cdSize, endPos))
        throw Error(path, "corrupt zip archive: central directory (offset " + std::to_string(cdOffset) +
                              ", " + std::to_string(cdSize) + " bytes) lies outside the file");

    // Each central header is at least 46 bytes, so the count cannot honestly exceed this.
    if (entryCount > cdSize / kCentralHeaderSize)
        throw Error(path, "corrupt zip archive: " + std::to_string(entryCount) +
                              " entries cannot fit in a central directory of " + std::to_string(cdSize) +
                              " bytes");
    m_records.reserve(static_cast<size_t>(entryCount));

    const uint8_t* cd = base + cdOffset;
    uint64_t pos = 0;
    for (uint64_t i = 0; i < entryCount; ++i) {
        if (!inside(pos, kCentralHeaderSize, cdSize) || rd32(cd + pos) != kCentralHeaderSig)
            throw Error(path, "corrupt zip archive: central directory entry " + std::to_string(i) +
                                  " is truncated or has a bad signature");
        const uint8_t* h = cd + pos;
        Record r;
        r.flags = rd16(h + 8);
        r.method = rd16(h + 10);
        r.crc32 = rd32(h + 16);
        r.compressedSize = rd32(h + 20);
        r.size = rd32(h + 24);
        uint16_t nameLen = rd16(h + 28);
        uint16_t extraLen = rd16(h + 30);
        uint16_t commentLen = rd16(h + 32);
        uint16_t disk = rd16(h + 34);
        r.localHeaderOffset = rd32(h + 42);
        uint64_t varLen = uint64_t(nameLen) + extraLen + commentLen;
        if (!inside(pos + kCentralHeaderSize, varLen, cdSize))
            throw Error(path, "corrupt zip archive: central directory entry " + std::to_string(i) +
                                  " runs past the end of the directory");
        r.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), nameLen);

        // ZIP64 extra field: 8-byte replacements, in this order, for each 32-bit field that is 0xFFFFFFFF.
        const uint8_t* extra = h + kCentralHeaderSize + nameLen;
        for (uint32_t e = 0; e + 4 <= extraLen;) {
            uint16_t id = rd16(extra + e);
            uint16_t len = rd16(extra + e + 2);
            if (uint32_t(e) + 4 + len > extraLen)
                throw Error(path, "corrupt zip archive: extra field of entry '" + r.name + "' is truncated");
            if (id == kZip64ExtraId) {
                const uint8_t* f = extra + e + 4;
                uint32_t used = 0;
                auto take64 = [&](uint64_t* v) {
                    if (used + 8 > len)
                        throw Error(path, "corrupt zip archive: ZIP64 extra field of entry '" + r.name +
                                              "' is too short");
                    *v = rd64(f + used);
                    used += 8;
                };
                if (r.size == 0xFFFFFFFF)
                    take64(&r.size);
                if (r.compressedSize == 0xFFFFFFFF)
                    take64(&r.compressedSize);
                if (r.localHeaderOffset == 0xFFFFFFFF)
                    take64(&r.localHeaderOffset);
            }
            e += 4u + len;
        }
        if (disk != 0 && disk != 0xFFFF)
            throw Error(path, "multi-disk zip archives are not supported (entry '" + r.name + "')");
        if (!m_index.emplace(r.name, m_records.size()).second)
            throw Error(path, "corrupt zip archive: duplicate entry '" + r.name + "'");
        m_records.push_back(std::move(r));
        pos += kCentralHeaderSize + varLen;
    }
}

std::vector<std::string> ZipArchive::names() const
{
    std::vector<std::string> out;
    out.reserve(m_records.size());
    for (const Record& r : m_records)
        out.push_back(r.name);
    return out;
}

bool ZipArchive::contains(const std::string& name) const
{
    return m_index.count(name) != 0;
}

ZipArchive::Entry ZipArchive::entry(const std::string& name) const
{
    const std::string& path = m_file->path();
    auto it = m_index.find(name);
    if (it == m_index.end())
        throw Error(path, "zip entry '" + name + "' is missing");
    const Record& r = m_records[it->second];
    if (r.flags & 0x1)
        throw Error(path, "zip entry '" + name + "' is encrypted");
    if (r.method != 0)
        throw Error(path, "zip entry '" + name + "': compressed entries are not supported (method " +
                              std::to_string(r.method) + "); torch.save writes them uncompressed");
    if (r.compressedSize != r.size)
        throw Error(path, "corrupt zip archive: stored entry '" + name + "' has compressed size " +
                              std::to_string(r.compressedSize) + " but size " + std::to_string(r.size));

    const uint8_t* base = m_file->data();
    const uint64_t fileSize = m_file->size();
    if (!inside(r.localHeaderOffset, kLocalHeaderSize, fileSize) ||
        rd32(base + r.localHeaderOffset) != kLocalHeaderSig)
        throw Error(path, "corrupt zip archive: local header of entry '" + name + "' at offset " +
                              hex(r.localHeaderOffset) + " is missing or truncated");
    const uint8_t* lh = base + r.localHeaderOffset;
    uint16_t nameLen = rd16(lh + 26);
    uint16_t extraLen = rd16(lh + 28);
    // The local extra field often differs from the central one (torch pads it to align the data).
    uint64_t dataOffset = r.localHeaderOffset + kLocalHeaderSize + nameLen + extraLen;
    if (!inside(r.localHeaderOffset + kLocalHeaderSize, uint64_t(nameLen) + extraLen, fileSize))
        throw Error(path, "corrupt zip archive: local header of entry '" + name + "' is truncated");
    if (nameLen != name.size() ||
        name.compare(0, name.size(), reinterpret_cast<const char*>(lh + kLocalHeaderSize), nameLen) != 0)
        throw Error(path, "corrupt zip archive: local header name of entry '" + name +
                              "' does not match the central directory");
    if (!inside(dataOffset, r.size, fileSize))
        throw Error(path, "corrupt zip archive: data of entry '" + name + "' (" + std::to_string(r.size) +
                              " bytes at offset " + std::to_string(dataOffset) +
                              ") runs past the end of the file (" + std::to_string(fileSize) +
                              " bytes); truncated?");
    Entry e;
    e.name = name;
    e.data = base + dataOffset;
    e.size = r.size;
    e.crc32 = r.crc32;
    return e;
}

void ZipArchive::checkCrc(const Entry& e) const
{
    // zlib's crc32 takes a uInt length: feed large entries in pieces.
    uLong crc = ::crc32(0L, Z_NULL, 0);
    for (uint64_t done = 0; done < e.size;) {
        const uInt n = static_cast<uInt>(std::min<uint64_t>(e.size - done, uint64_t(1) << 30));
        crc = ::crc32(crc, e.data + done, n);
        done += n;
    }
    if (static_cast<uint32_t>(crc) != e.crc32)
        throw Error(m_file->path(), "zip entry '" + e.name + "' CRC-32",
                    hex(e.crc32) + " (the archive's record)",
                    hex(static_cast<uint32_t>(crc)) + " (the bytes): the file is damaged");
}

} // namespace statescope
