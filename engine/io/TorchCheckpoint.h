#pragma once

#include "io/RawTensor.h"

#include <string>
#include <vector>

namespace statescope {

// Tensors of a checkpoint written by torch.save (the zip format, PyTorch >= 1.6): a dict, usually a
// module's state_dict() OrderedDict, of name -> tensor; or a dict whose "state_dict" or "model"
// entry is one. Non-tensor values are skipped. No Python code runs: the pickle is read by a
// restricted unpickler that refuses every global except the tensor-rebuilding ones. Tensors that
// share a storage (tied weights, views) point into the same bytes. Data pointers point into the
// mapped file and need not be aligned to the element size.
std::vector<RawTensor> readTorchCheckpoint(const std::string& path);

} // namespace statescope
