// Fuzz harness: the restricted unpickler (io/PickleReader.h) on the bytes of a data.pkl. Whatever
// the opcodes do, the result is a value graph (possibly cyclic, through the memo) that the reader
// owns; it is walked once here, as the checkpoint reader would look through it.
#include "Error.h"
#include "FuzzInput.h"
#include "io/PickleReader.h"

#include <unordered_set>
#include <vector>

using statescope::PickleValue;
using statescope::fuzz::keep;

namespace {

// Visits each value once, iteratively: a hostile pickle nests deeper than any stack.
size_t walk(const PickleValue& root)
{
    std::unordered_set<const PickleValue*> seen;
    std::vector<const PickleValue*> todo{&root};
    size_t bytes = 0;
    while (!todo.empty()) {
        const PickleValue* v = todo.back();
        todo.pop_back();
        if (!v || !seen.insert(v).second)
            continue;
        bytes += v->text.size() + std::char_traits<char>::length(v->kindName());
        for (const auto& item : v->items)
            todo.push_back(item.get());
        for (const auto& [key, value] : v->dictItems) {
            todo.push_back(key.get());
            todo.push_back(value.get());
        }
        if (v->tensor)
            bytes += v->tensor->shape.size() + v->tensor->storage.key.size();
    }
    return bytes;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    try {
        statescope::PickleReader reader(data, size, "pytorch_model.bin", "archive/data.pkl");
        const PickleValue& root = reader.load();
        keep(walk(root));
        for (const char* key : {"state_dict", "model"})
            keep(root.get(key));
    } catch (const statescope::Error&) {
    }
    return 0;
}
