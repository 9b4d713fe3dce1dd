#include "io/SafeTensorsWriter.h"

#include "Error.h"
#include "io/AtomicFile.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace statescope {

namespace {
const char* safetensorsDType(DType t)
{
    switch (t) {
    case DType::Float32:
        return "F32";
    case DType::Float64:
        return "F64";
    case DType::BFloat16:
        return "BF16";
    case DType::Float16:
        return "F16";
    case DType::Int64:
        return "I64";
    case DType::Int32:
        return "I32";
    case DType::Int16:
        return "I16";
    case DType::Int8:
        return "I8";
    case DType::UInt8:
        return "U8";
    case DType::Bool:
        return "BOOL";
    }
    return "?";
}
} // namespace

void SafeTensorsWriter::add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                            const void* data)
{
    int64_t n = 1;
    for (int64_t d : shape)
        n *= d;
    Entry e{name, dtype, shape, {}};
    e.bytes.resize(static_cast<size_t>(n) * dtypeSize(dtype));
    if (!e.bytes.empty())
        std::memcpy(e.bytes.data(), data, e.bytes.size());
    m_entries.push_back(std::move(e));
}

void SafeTensorsWriter::write(const std::string& path) const
{
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!m_metadata.empty())
        header["__metadata__"] = m_metadata;
    uint64_t offset = 0;
    for (const auto& e : m_entries) {
        header[e.name] = {{"dtype", safetensorsDType(e.dtype)},
                          {"shape", e.shape},
                          {"data_offsets", {offset, offset + e.bytes.size()}}};
        offset += e.bytes.size();
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    writeFileAtomically(path, [&](std::ostream& out) {
        uint8_t size[8];
        for (int i = 0; i < 8; ++i)
            size[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
        out.write(reinterpret_cast<const char*>(size), 8);
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        for (const auto& e : m_entries)
            out.write(reinterpret_cast<const char*>(e.bytes.data()),
                      static_cast<std::streamsize>(e.bytes.size()));
    });
}

} // namespace statescope
