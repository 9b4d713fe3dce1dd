#pragma once

#include "io/DType.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace statescope {

// A tensor as a checkpoint stores it: typed bytes inside a memory-mapped file, not yet a torch
// tensor. Readers produce these without torch so they can be tested and fuzzed cheaply.
struct RawTensor {
    std::string name;
    DType dtype = DType::Float32;
    std::vector<int64_t> shape;
    std::vector<int64_t> strides; // in elements, C order unless the checkpoint says otherwise
    const uint8_t* data = nullptr; // first element (storage offset applied)
    // Bytes readable from `data` on: every element the shape and strides reach lies inside.
    size_t bytesAvailable = 0;
    std::shared_ptr<const void> keepAlive; // the mapping that owns `data`

    int64_t numel() const
    {
        int64_t n = 1;
        for (int64_t d : shape)
            n *= d;
        return n;
    }
};

} // namespace statescope
