#pragma once

#include "io/DType.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace statescope {

// Writes a safetensors file the reference reader accepts: header padded with spaces to a multiple
// of 8, tensors contiguous in the order given, written to PATH.tmp and renamed so that a failed
// write never leaves a file that looks complete.
class SafeTensorsWriter {
public:
    void add(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* data);
    void setMetadata(const std::string& key, const std::string& value) { m_metadata[key] = value; }
    void write(const std::string& path) const; // throws Error naming the path

private:
    struct Entry {
        std::string name;
        DType dtype;
        std::vector<int64_t> shape;
        std::vector<uint8_t> bytes;
    };
    std::vector<Entry> m_entries;
    std::map<std::string, std::string> m_metadata;
};

} // namespace statescope
