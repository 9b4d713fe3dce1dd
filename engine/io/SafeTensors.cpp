#include "io/SafeTensors.h"

#include "Error.h"
#include "io/Json.h"
#include "io/MappedFile.h"

#include <algorithm>
#include <cstring>

namespace statescope {

namespace {

constexpr uint64_t kMaxHeaderSize = 100000000; // the reference reader's MAX_HEADER_SIZE

struct DTypeName {
    const char* name;
    DType dtype;
};
const DTypeName kDTypes[] = {
    {"F32", DType::Float32}, {"F64", DType::Float64}, {"BF16", DType::BFloat16}, {"F16", DType::Float16},
    {"I64", DType::Int64},   {"I32", DType::Int32},   {"I16", DType::Int16},     {"I8", DType::Int8},
    {"U8", DType::UInt8},    {"BOOL", DType::Bool},
};
// Valid in the format but not something the engine computes with.
const char* const kKnownUnsupported[] = {"F4",      "F6_E2M3", "F6_E3M2",     "F8_E5M2",
                                         "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
                                         "U16",     "U32",     "U64",         "C64"};

struct Info {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin;
    uint64_t end;
};

std::string quoted(const std::string& name)
{
    return "'" + name + "'";
}

uint64_t nonNegativeInt(const nlohmann::json& v, const std::string& path, const std::string& what)
{
    if (v.is_number_unsigned())
        return v.get<uint64_t>();
    if (v.is_number_integer())
        throw Error(path, what + " is negative (" + v.dump() + ")");
    throw Error(path, what, "a non-negative integer", v.dump().substr(0, 60));
}

Info parseInfo(const std::string& name, const nlohmann::json& v, const std::string& path)
{
    const std::string t = "tensor " + quoted(name);
    if (!v.is_object())
        throw Error(path, t, "an object with dtype, shape and data_offsets", v.type_name());
    for (const char* key : {"dtype", "shape", "data_offsets"}) {
        if (!v.contains(key))
            throw Error(path, t + " has no \"" + key + "\"");
    }
    Info info;
    info.name = name;

    const nlohmann::json& dt = v["dtype"];
    if (!dt.is_string())
        throw Error(path, t + " dtype", "a string", dt.dump().substr(0, 60));
    const std::string& dtName = dt.get_ref<const std::string&>();
    bool found = false;
    for (const DTypeName& d : kDTypes) {
        if (dtName == d.name) {
            info.dtype = d.dtype;
            found = true;
        }
    }
    if (!found) {
        bool known = false;
        for (const char* k : kKnownUnsupported)
            known = known || dtName == k;
        throw Error(path, t + ": unsupported dtype " + dtName.substr(0, 40) +
                              (known ? "" : " (not a safetensors dtype)") +
                              "; supported: F32, F64, BF16, F16, I64, I32, I16, I8, U8, BOOL");
    }

    const nlohmann::json& shape = v["shape"];
    if (!shape.is_array())
        throw Error(path, t + " shape", "an array of integers", shape.dump().substr(0, 60));
    for (const nlohmann::json& d : shape) {
        uint64_t dim = nonNegativeInt(d, path, t + " shape dimension");
        if (dim > uint64_t(INT64_MAX))
            throw Error(path, t + " shape dimension " + std::to_string(dim) + " is too large");
        info.shape.push_back(static_cast<int64_t>(dim));
    }

    const nlohmann::json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2)
        throw Error(path, t + " data_offsets", "[BEGIN, END]", off.dump().substr(0, 60));
    info.begin = nonNegativeInt(off[0], path, t + " data_offsets begin");
    info.end = nonNegativeInt(off[1], path, t + " data_offsets end");
    if (info.end < info.begin)
        throw Error(path, t + " data_offsets [" + std::to_string(info.begin) + ", " +
                              std::to_string(info.end) + "] end before they begin");

    uint64_t numel = 1;
    for (int64_t d : info.shape) {
        if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel))
            throw Error(path, t + " shape " + shapeToString(info.shape) + " overflows the element count");
    }
    uint64_t bytes = 0;
    if (numel > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, uint64_t(dtypeSize(info.dtype)), &bytes))
        throw Error(path, t + " shape " + shapeToString(info.shape) + " overflows the byte count");
    if (bytes != info.end - info.begin)
        throw Error(path, t + " byte size (" + dtName + " " + shapeToString(info.shape) + ")",
                    std::to_string(bytes) + " bytes",
                    std::to_string(info.end - info.begin) + " bytes in data_offsets");
    return info;
}

} // namespace

std::vector<RawTensor> readSafeTensors(const std::string& path, std::map<std::string, std::string>* metadata)
{
    auto file = MappedFile::open(path);
    const uint8_t* base = file->data();
    const uint64_t fileSize = file->size();
    if (fileSize < 8)
        throw Error(path,
                    "file of " + std::to_string(fileSize) + " bytes is too short for a safetensors header");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
        n = (n << 8) | base[i];
    if (n > kMaxHeaderSize)
        throw Error(path, "safetensors header size " + std::to_string(n) + " exceeds the limit of " +
                              std::to_string(kMaxHeaderSize) + " bytes");
    if (8 + n > fileSize)
        throw Error(path, "safetensors header size " + std::to_string(n) +
                              " runs past the end of the file (" + std::to_string(fileSize) +
                              " bytes); truncated?");
    if (n == 0 || base[8] != '{')
        throw Error(path, "safetensors header does not start with '{'");

    std::vector<Info> infos;
    forEachStrictJsonMember(reinterpret_cast<const char*>(base + 8), n, path + " (header)", 64,
                            [&](const std::string& key, nlohmann::json& value) {
                                if (key == "__metadata__") {
                                    const nlohmann::json& m = value;
                                    if (m.is_null())
                                        return;
                                    if (!m.is_object())
                                        throw Error(path, "__metadata__", "a map of strings to strings",
                                                    m.type_name());
                                    for (auto mi = m.begin(); mi != m.end(); ++mi) {
                                        if (!mi.value().is_string())
                                            throw Error(path, "__metadata__ entry " + quoted(mi.key()),
                                                        "a string", mi.value().dump().substr(0, 60));
                                        if (metadata)
                                            (*metadata)[mi.key()] = mi.value().get<std::string>();
                                    }
                                    return;
                                }
                                infos.push_back(parseInfo(key, value, path));
                            });

    std::sort(infos.begin(), infos.end(), [](const Info& a, const Info& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t expectedBegin = 0;
    const Info* previous = nullptr;
    for (const Info& info : infos) {
        if (info.begin != expectedBegin) {
            std::string previousName =
                previous ? "tensor " + quoted(previous->name) : "the start of the data";
            if (info.begin > expectedBegin)
                throw Error(path, "hole in the data: tensor " + quoted(info.name) + " begins at byte " +
                                      std::to_string(info.begin) + " but " + previousName + " ends at byte " +
                                      std::to_string(expectedBegin));
            throw Error(path, "overlapping data: tensor " + quoted(info.name) + " begins at byte " +
                                  std::to_string(info.begin) + ", inside " + previousName +
                                  " which ends at byte " + std::to_string(expectedBegin));
        }
        expectedBegin = info.end;
        previous = &info;
    }
    const uint64_t dataSize = fileSize - 8 - n;
    if (expectedBegin != dataSize)
        throw Error(path, "safetensors data size",
                    std::to_string(expectedBegin) + " bytes (end of the last tensor)",
                    std::to_string(dataSize) + " bytes after the header" +
                        (dataSize > expectedBegin ? " (trailing bytes)" : " (truncated?)"));

    std::vector<RawTensor> tensors;
    tensors.reserve(infos.size());
    const uint8_t* data = base + 8 + n;
    for (const Info& info : infos) {
        RawTensor t;
        t.name = info.name;
        t.dtype = info.dtype;
        t.shape = info.shape;
        t.strides.assign(info.shape.size(), 1);
        for (size_t i = info.shape.size(); i-- > 1;)
            t.strides[i - 1] = t.strides[i] * std::max<int64_t>(info.shape[i], 1);
        t.data = data + info.begin;
        t.bytesAvailable = static_cast<size_t>(info.end - info.begin);
        t.keepAlive = file;
        tensors.push_back(std::move(t));
    }
    return tensors;
}

} // namespace statescope
