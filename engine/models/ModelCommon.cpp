#include "models/ModelCommon.h"

#include "Error.h"
#include "io/SafeTensors.h"
#include "io/SafeTensorsWriter.h"
#include "io/TorchCheckpoint.h"

#include <filesystem>
#include <fstream>
#include <limits>

namespace statescope {

torch::ScalarType torchType(DType t)
{
    switch (t) {
    case DType::Float32: return torch::kFloat32;
    case DType::Float64: return torch::kFloat64;
    case DType::BFloat16: return torch::kBFloat16;
    case DType::Float16: return torch::kFloat16;
    case DType::Int64: return torch::kInt64;
    case DType::Int32: return torch::kInt32;
    case DType::Int16: return torch::kInt16;
    case DType::Int8: return torch::kInt8;
    case DType::UInt8: return torch::kUInt8;
    case DType::Bool: return torch::kBool;
    }
    return torch::kFloat32;
}

torch::Tensor rmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps)
{
    return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * weight;
}

torch::Tensor segsumExp(const torch::Tensor& a)
{
    const int64_t q = a.size(-1);
    auto opts = torch::TensorOptions().dtype(torch::kBool).device(a.device());
    const torch::Tensor strict = torch::tril(torch::ones({q, q}, opts), -1);
    const torch::Tensor lower = torch::tril(torch::ones({q, q}, opts), 0);
    std::vector<int64_t> sizes = a.sizes().vec();
    sizes.push_back(q);
    torch::Tensor x = a.unsqueeze(-1).expand(sizes).masked_fill(strict.logical_not(), 0.0);
    return x.cumsum(-2).masked_fill(lower.logical_not(), -std::numeric_limits<float>::infinity()).exp();
}

std::string stateSpacesName(const std::string& name)
{
    std::string n = name;
    if (n.rfind("model.", 0) == 0)
        n = n.substr(6);
    const std::string hfEmbedding = "backbone.embeddings.";
    if (n.rfind(hfEmbedding, 0) == 0)
        n = "backbone.embedding." + n.substr(hfEmbedding.size());
    return n;
}

WeightSet readWeights(const ModelFolder& folder, const std::function<std::string(const std::string&)>& canonical)
{
    WeightSet set;
    for (const auto& file : folder.weightFiles) {
        std::vector<RawTensor> raw =
            folder.weightsFormat == "pytorch" ? readTorchCheckpoint(file) : readSafeTensors(file);
        for (auto& t : raw) {
            const std::string name = canonical(t.name);
            if (name.empty())
                continue;
            set.fileOf[name] = file;
            set.tensors[name] = std::move(t);
        }
        set.files += (set.files.empty() ? "" : ", ") + file;
    }
    return set;
}

std::vector<int64_t> WeightLoader::shapeOf(const std::string& name) const
{
    auto it = m_set.tensors.find(name);
    if (it == m_set.tensors.end())
        throw Error(m_set.files, "tensor " + name, "present", "missing");
    return it->second.shape;
}

const std::string& WeightLoader::fileOf(const std::string& name) const
{
    auto it = m_set.fileOf.find(name);
    return it == m_set.fileOf.end() ? m_set.files : it->second;
}

torch::Tensor WeightLoader::take(const std::string& name, const std::vector<int64_t>& shape, torch::ScalarType dtype)
{
    auto it = m_set.tensors.find(name);
    if (it == m_set.tensors.end())
        throw Error(m_set.files, "tensor " + name, "present with shape " + shapeToString(shape), "missing");
    const RawTensor& raw = it->second;
    if (raw.shape != shape)
        throw Error(fileOf(name), "tensor " + name, "shape " + shapeToString(shape), "shape " + shapeToString(raw.shape));
    const auto src = torchType(raw.dtype);
    if (!torch::isFloatingType(src))
        throw Error(fileOf(name), "tensor " + name, "a floating-point dtype", dtypeName(raw.dtype));
    // from_blob only views the mapped file; the copy below owns its memory.
    torch::Tensor view = torch::from_blob(const_cast<uint8_t*>(raw.data), raw.shape, raw.strides,
                                          torch::TensorOptions().dtype(src));
    // Widen on the CPU first: Half/BFloat16 kernels on the CPU are slow or missing.
    torch::Tensor t = view.to(torch::kFloat32, false, true);
    return t.to(m_device, dtype).contiguous();
}

void FolderWriter::put(const std::string& name, const torch::Tensor& t)
{
    if (t.defined())
        m_tensors.emplace_back(name, t.detach().to(torch::kCPU, torch::kFloat32).contiguous());
}

void FolderWriter::write(const std::string& path)
{
    SafeTensorsWriter w;
    for (const auto& [name, t] : m_tensors)
        w.add(name, DType::Float32, t.sizes().vec(), t.data_ptr<float>());
    w.write(path);
}

void writeConfigJson(const std::string& dir, const std::string& json)
{
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        throw Error(dir, "cannot create the model folder: " + ec.message());
    const std::string path = dir + "/config.json";
    std::ofstream out(path);
    out << json << "\n";
    out.close();
    if (!out)
        throw Error(path, "cannot write");
}

torch::Tensor groupMean(const torch::Tensor& x, int64_t groups)
{
    std::vector<int64_t> shape = x.sizes().vec();
    const int64_t c = shape.back();
    shape.back() = groups;
    shape.push_back(c / groups);
    return x.reshape(shape).mean(-1);
}

torch::Tensor groupRootSumSquare(const torch::Tensor& squares, int64_t groups)
{
    std::vector<int64_t> shape = squares.sizes().vec();
    const int64_t c = shape.back();
    shape.back() = groups;
    shape.push_back(c / groups);
    return squares.reshape(shape).sum(-1).clamp_min(0).sqrt();
}

} // namespace statescope
