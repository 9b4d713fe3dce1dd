#include "io/TorchCheckpoint.h"

#include "Error.h"
#include "io/MappedFile.h"
#include "io/PickleReader.h"
#include "io/ZipArchive.h"

#include <cstring>

namespace statescope {

namespace {

const char* const kLegacyMessage =
    "legacy (non-zip) PyTorch checkpoints are not supported; re-save with torch.save";

// The archive's files all live under one directory whose name torch derives from the file name
// (or "archive"), so find it from the location of data.pkl.
std::string findPrefix(const ZipArchive& zip)
{
    std::string prefix;
    int found = 0;
    for (const std::string& name : zip.names()) {
        const std::string suffix = "/data.pkl";
        if (name.size() > suffix.size() &&
            name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
            std::string dir = name.substr(0, name.size() - suffix.size());
            if (dir.find('/') != std::string::npos)
                continue;
            prefix = dir;
            ++found;
        }
    }
    if (found == 0)
        throw Error(zip.path(), "not a PyTorch checkpoint: the zip archive has no <dir>/data.pkl");
    if (found > 1)
        throw Error(zip.path(),
                    "not a PyTorch checkpoint: the zip archive has several <dir>/data.pkl entries");
    return prefix;
}

// The dict that maps names to tensors.
const PickleValue& findStateDict(const PickleValue& root, const std::string& path)
{
    if (root.kind != PickleValue::Kind::Dict)
        throw Error(path, std::string("checkpoint holds a ") + root.kindName() +
                              ", expected a dict of tensors (a state_dict)");
    for (const char* key : {"state_dict", "model"}) {
        const PickleValue* inner = root.get(key);
        if (inner && inner->kind == PickleValue::Kind::Dict)
            return *inner;
    }
    return root;
}

bool mulOverflows(uint64_t a, uint64_t b, uint64_t* out)
{
    return __builtin_mul_overflow(a, b, out);
}

RawTensor makeRawTensor(const std::string& name, const PickleTensor& t, const ZipArchive& zip,
                        const std::string& prefix)
{
    const std::string& path = zip.path();
    std::string entryName = prefix + "/data/" + t.storage.key;
    if (!zip.contains(entryName))
        throw Error(path,
                    "tensor '" + name + "': its storage '" + entryName + "' is missing from the archive");
    ZipArchive::Entry entry = zip.entry(entryName);

    const uint64_t elem = dtypeSize(t.storage.dtype);
    uint64_t storageBytes = 0;
    if (mulOverflows(static_cast<uint64_t>(t.storage.numel), elem, &storageBytes) ||
        storageBytes > entry.size)
        throw Error(path, "tensor '" + name + "' storage size",
                    std::to_string(t.storage.numel) + " elements of " + std::to_string(elem) + " bytes",
                    std::to_string(entry.size) + " bytes in '" + entryName + "'");
    const uint64_t storageNumel = static_cast<uint64_t>(t.storage.numel);
    const uint64_t offset = static_cast<uint64_t>(t.storageOffset);

    // The furthest element the view reaches: offset + sum((size - 1) * stride), computed without
    // overflow. Empty tensors reach nothing.
    bool empty = false;
    for (int64_t d : t.shape)
        empty = empty || d == 0;
    uint64_t last = offset;
    bool overflow = false;
    for (size_t i = 0; i < t.shape.size() && !empty; ++i) {
        uint64_t step = 0;
        overflow =
            overflow ||
            mulOverflows(static_cast<uint64_t>(t.shape[i] - 1), static_cast<uint64_t>(t.strides[i]), &step) ||
            __builtin_add_overflow(last, step, &last);
    }
    if (empty ? offset > storageNumel : (overflow || last >= storageNumel))
        throw Error(path, "tensor '" + name + "' with shape " + shapeToString(t.shape) + ", strides " +
                              shapeToString(t.strides) + " and storage offset " + std::to_string(offset) +
                              " reaches past the end of its storage of " + std::to_string(storageNumel) +
                              " elements");
    // Also ask for a numel that fits in int64 (RawTensor::numel() multiplies without checks).
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
        if (mulOverflows(numel, static_cast<uint64_t>(d), &numel) || numel > uint64_t(INT64_MAX))
            throw Error(path,
                        "tensor '" + name + "' shape " + shapeToString(t.shape) + " has too many elements");
    }

    RawTensor r;
    r.name = name;
    r.dtype = t.storage.dtype;
    r.shape = t.shape;
    r.strides = t.strides;
    r.data = entry.data + offset * elem;
    r.bytesAvailable = static_cast<size_t>((storageNumel - offset) * elem);
    r.keepAlive = zip.file();
    return r;
}

} // namespace

std::vector<RawTensor> readTorchCheckpoint(const std::string& path)
{
    auto file = MappedFile::open(path);
    if (file->size() == 0)
        throw Error(path, "file is empty, expected a PyTorch checkpoint");
    if (file->size() < 4 || std::memcmp(file->data(), "PK", 2) != 0) {
        // Legacy torch.save files are a bare pickle stream, starting with the PROTO opcode.
        if (file->data()[0] == 0x80)
            throw Error(path, kLegacyMessage);
        throw Error(path,
                    std::string("not a PyTorch checkpoint: not a zip archive (") + kLegacyMessage + ")");
    }

    ZipArchive zip = ZipArchive::open(std::move(file));
    const std::string prefix = findPrefix(zip);

    const std::string byteorderName = prefix + "/byteorder";
    if (zip.contains(byteorderName)) {
        ZipArchive::Entry e = zip.entry(byteorderName);
        std::string order(reinterpret_cast<const char*>(e.data), static_cast<size_t>(e.size));
        if (order != "little")
            throw Error(path, "byteorder", "\"little\"",
                        "\"" + order.substr(0, 16) + "\" (big-endian checkpoints are not supported)");
    }

    ZipArchive::Entry pkl = zip.entry(prefix + "/data.pkl");
    zip.checkCrc(pkl);
    PickleReader reader(pkl.data, static_cast<size_t>(pkl.size), path, pkl.name);
    const PickleValue& stateDict = findStateDict(reader.load(), path);

    std::vector<RawTensor> tensors;
    for (const auto& item : stateDict.dictItems) {
        if (item.second->kind != PickleValue::Kind::Tensor)
            continue;
        if (item.first->kind != PickleValue::Kind::String)
            throw Error(path, std::string("a tensor has a key of type ") + item.first->kindName() +
                                  ", expected a string name");
        tensors.push_back(makeRawTensor(item.first->text, *item.second->tensor, zip, prefix));
    }
    if (tensors.empty())
        throw Error(path, "the checkpoint holds no tensors");
    return tensors;
}

} // namespace statescope
