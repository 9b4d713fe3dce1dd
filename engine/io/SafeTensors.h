#pragma once

#include "io/RawTensor.h"

#include <map>
#include <string>
#include <vector>

namespace statescope {

// Tensors of a .safetensors file, validated as strictly as the reference implementation: header
// size limit, JSON object header, known dtypes, byte sizes matching shapes, tensors packed without
// holes or overlaps, and nothing after the last tensor. Returned in file order; data points into the
// mapped file. `metadata`, if given, receives the "__metadata__" map.
std::vector<RawTensor> readSafeTensors(const std::string& path,
                                       std::map<std::string, std::string>* metadata = nullptr);

} // namespace statescope
