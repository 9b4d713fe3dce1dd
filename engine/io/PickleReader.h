#pragma once

#include "io/DType.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace statescope {

struct PickleValue;
using PickleValuePtr = std::shared_ptr<PickleValue>;

// A storage reference from BINPERSID: ('storage', torch.<Type>Storage, key, location, numel).
struct PickleStorage {
    DType dtype = DType::Float32;
    std::string key;      // the zip entry is <prefix>/data/<key>
    std::string location; // "cpu", "cuda:0", ...
    int64_t numel = 0;    // in elements of dtype
};

// A tensor as _rebuild_tensor_v2 describes it; the bytes stay in the archive.
struct PickleTensor {
    PickleStorage storage;
    int64_t storageOffset = 0; // in elements
    std::vector<int64_t> shape;
    std::vector<int64_t> strides; // in elements
    bool requiresGrad = false;
};

// The few Python values a state-dict pickle contains. Containers are shared (as in Python) so that
// memo references see later SETITEMS/APPENDS.
struct PickleValue {
    enum class Kind { None, Bool, Int, Float, String, Bytes, Tuple, List, Dict, Global, Storage, Tensor };

    Kind kind = Kind::None;
    bool boolValue = false;
    int64_t intValue = 0;
    double floatValue = 0;
    std::string text;                                                 // String, Bytes; Global: "module.name"
    std::vector<PickleValuePtr> items;                                // Tuple, List
    std::vector<std::pair<PickleValuePtr, PickleValuePtr>> dictItems; // Dict, in insertion order
    std::unordered_map<std::string, size_t> dictIndex;                // hashable key -> index in dictItems
    std::shared_ptr<PickleStorage> storage;                           // Storage
    std::shared_ptr<PickleTensor> tensor;                             // Tensor

    const char* kindName() const;
    // Value of a String-keyed dict entry, or nullptr.
    const PickleValue* get(const std::string& key) const;
};

// A restricted unpickler for PyTorch's data.pkl. It never imports or calls anything: GLOBAL only
// resolves a fixed allow-list (OrderedDict, torch tensor rebuild functions, typed storage classes), and
// REDUCE only evaluates those. Anything else is an Error, not a crash, whatever the bytes are.
class PickleReader {
public:
    // `file` names the checkpoint in errors, `entry` the pickle inside it. The data must outlive
    // load().
    PickleReader(const uint8_t* data, size_t size, std::string file, std::string entry);
    ~PickleReader();

    PickleReader(const PickleReader&) = delete;
    PickleReader& operator=(const PickleReader&) = delete;

    // The unpickled object; it stays valid while this reader lives.
    const PickleValue& load();

    static constexpr size_t kMaxStack = 1u << 22;
    static constexpr size_t kMaxMemo = 1u << 22;
    static constexpr size_t kMaxMarks = 1u << 16;

private:
    class Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace statescope
