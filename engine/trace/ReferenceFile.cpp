#include "trace/ReferenceFile.h"

#include "Error.h"
#include "trace/Hdf5Util.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <new>

namespace statescope {

using h5::Hid;

namespace {

// Fixtures are a few thousand tokens; this bounds what a crafted shape can make the reader allocate
// (2 GiB of doubles).
constexpr int64_t kMaxValues = int64_t(1) << 28;
constexpr size_t kMaxDatasets = 1024;

struct Dataset {
    Hid id;
    std::string name; // "/dt", for messages
    H5T_class_t cls = H5T_NO_CLASS;
    std::vector<hsize_t> dims;
    haddr_t order = 0; // where the object lies in the file: creation order for a file written in one go
};

Dataset openDataset(const std::string& path, hid_t file, const std::string& link)
{
    Dataset d;
    d.name = "/" + link;
    d.id = Hid(H5Dopen2(file, link.c_str(), H5P_DEFAULT));
    if (!d.id.valid())
        throw Error(path, "cannot read reference dataset " + d.name + ": " + h5::errorDetail());
    Hid type(H5Dget_type(d.id.get()));
    Hid space(H5Dget_space(d.id.get()));
    if (!type.valid() || !space.valid())
        throw Error(path, "cannot read reference dataset " + d.name + ": " + h5::errorDetail());
    d.cls = H5Tget_class(type.get());
    d.dims = h5::spaceDims(path, space.get(), d.name);
    return d;
}

bool numeric(const Dataset& d)
{
    return d.cls == H5T_INTEGER || d.cls == H5T_FLOAT;
}

// Every value of d, converted by HDF5 to memType.
template <typename T> std::vector<T> readAll(const std::string& path, const Dataset& d, hid_t memType)
{
    int64_t n = 1;
    for (hsize_t s : d.dims)
        if (s > static_cast<hsize_t>(kMaxValues) || h5::mulOverflows(n, static_cast<int64_t>(s), &n) ||
            n > kMaxValues)
            throw Error(path, d.name + " size", "at most " + std::to_string(kMaxValues) + " values",
                        shapeToString(std::vector<int64_t>(d.dims.begin(), d.dims.end())));
    std::vector<T> v;
    try {
        v.resize(static_cast<size_t>(n));
    } catch (const std::bad_alloc&) {
        throw Error(path, "cannot read " + d.name + ": out of memory");
    }
    if (n > 0 && H5Dread(d.id.get(), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
        throw Error(path, "cannot read " + d.name + ": " + h5::errorDetail());
    return v;
}

std::string dimsText(const std::vector<hsize_t>& dims)
{
    return shapeToString(std::vector<int64_t>(dims.begin(), dims.end()));
}

std::string perTokenText(const std::vector<hsize_t>& dims)
{
    std::string s = "[T";
    for (size_t i = 1; i < dims.size(); ++i)
        s += ", " + std::to_string(dims[i]);
    return s + "]";
}

// Where the object's header lies in the file.
haddr_t objectAddress(hid_t id)
{
#if H5_VERSION_GE(1, 12, 0)
    // A token of the native file format is the address, little-endian.
    H5O_info2_t info{};
    if (H5Oget_info3(id, &info, H5O_INFO_BASIC) < 0)
        return HADDR_UNDEF;
    haddr_t addr = 0;
    for (size_t i = 0; i < sizeof addr && i < H5O_MAX_TOKEN_SIZE; ++i)
        addr |= static_cast<haddr_t>(info.token.__data[i]) << (8 * i);
    return addr;
#else
    H5O_info_t info{};
    if (H5Oget_info2(id, &info, H5O_INFO_BASIC) < 0)
        return HADDR_UNDEF;
    return info.addr;
#endif
}

bool tracksCreationOrder(hid_t group)
{
    Hid gcpl(H5Gget_create_plist(group));
    unsigned flags = 0;
    const bool tracked = gcpl.valid() && H5Pget_link_creation_order(gcpl.get(), &flags) >= 0 &&
                         (flags & H5P_CRT_ORDER_TRACKED);
    H5Eclear2(H5E_DEFAULT);
    return tracked;
}

} // namespace

ReferenceData readReferenceFile(const std::string& path)
{
    h5::quiet();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw Error(path, "cannot read reference: file not found");
    if (!std::filesystem::is_regular_file(path, ec))
        throw Error(path, "cannot read reference: not a file");
    Hid file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!file.valid())
        throw Error(path, "cannot read reference: " + h5::errorDetail());
    Hid root(H5Gopen2(file.get(), "/", H5P_DEFAULT));
    if (!root.valid())
        throw Error(path, "cannot read reference: " + h5::errorDetail());
    const std::vector<std::string> links = h5::linkNames(path, root.get(), "/", kMaxDatasets);

    ReferenceData r;
    for (const char* name : {"ids", "nll"})
        if (std::find(links.begin(), links.end(), name) == links.end())
            throw Error(path, std::string("/") + name, "a dataset", "nothing (missing)");
    const Dataset ids = openDataset(path, file.get(), "ids");
    if (ids.cls != H5T_INTEGER || ids.dims.size() != 1)
        throw Error(path, "/ids", "int32 [T]",
                    dimsText(ids.dims) + (ids.cls == H5T_INTEGER ? "" : " non-integer"));
    r.ids = readAll<int32_t>(path, ids, H5T_NATIVE_INT32);
    const hsize_t T = ids.dims[0];
    const Dataset nll = openDataset(path, file.get(), "nll");
    if (!numeric(nll) || nll.dims != std::vector<hsize_t>{T})
        throw Error(path, "/nll", "float64 [" + std::to_string(T) + "] (as /ids)",
                    dimsText(nll.dims) + (numeric(nll) ? "" : " non-numeric"));
    r.nll = readAll<double>(path, nll, H5T_NATIVE_DOUBLE);

    // Every other numeric dataset at the top is a probe [T, ...]; groups, strings and other objects
    // (room for metadata) are not.
    std::vector<Dataset> probes;
    for (const std::string& link : links) {
        if (link == "ids" || link == "nll")
            continue;
        {
            // Groups, named types and dangling links are no probes.
            Hid object(H5Oopen(file.get(), link.c_str(), H5P_DEFAULT));
            const bool dataset = object.valid() && H5Iget_type(object.get()) == H5I_DATASET;
            H5Eclear2(H5E_DEFAULT);
            if (!dataset)
                continue;
        }
        Dataset d = openDataset(path, file.get(), link);
        if (!numeric(d))
            continue;
        if (d.dims.empty() || d.dims[0] != T)
            throw Error(path, d.name + " shape", "[" + std::to_string(T) + ", ...] (T as /ids)",
                        dimsText(d.dims));
        if (!probes.empty() && d.dims != probes.front().dims)
            throw Error(path, d.name + " shape",
                        perTokenText(probes.front().dims) + " like " + probes.front().name,
                        perTokenText(d.dims));
        probes.push_back(std::move(d));
    }
    // Creation order where the file tracks it (linkNames gave that); h5py does not by default, but
    // writes objects one after another, so their place in the file is the order they were written in.
    if (!tracksCreationOrder(root.get())) {
        for (Dataset& d : probes)
            d.order = objectAddress(d.id.get());
        std::stable_sort(probes.begin(), probes.end(),
                         [](const Dataset& a, const Dataset& b) { return a.order < b.order; });
    }
    for (const Dataset& d : probes) {
        r.probeNames.push_back(d.name.substr(1));
        r.probes.push_back(readAll<double>(path, d, H5T_NATIVE_DOUBLE));
        r.probeShape.assign(d.dims.begin() + 1, d.dims.end());
    }
    return r;
}

double maxRelativeError(const float* a, const double* b, size_t n, double atol)
{
    double worst = 0;
    for (size_t i = 0; i < n; ++i) {
        if (std::isnan(b[i])) {
            if (!std::isnan(a[i]))
                return std::numeric_limits<double>::infinity();
            continue;
        }
        const double e = std::abs(double(a[i]) - b[i]) / (std::abs(b[i]) + atol);
        if (!(e <= worst)) // NaN in a counts as infinitely wrong
            worst = std::isnan(e) ? std::numeric_limits<double>::infinity() : e;
    }
    return worst;
}

} // namespace statescope
