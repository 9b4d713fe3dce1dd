#include "trace/ReferenceFile.h"

#include "Error.h"

#include <H5Cpp.h>

#include <cmath>
#include <limits>

namespace statescope {

namespace {

template <typename T>
std::vector<T> readAll(H5::H5File& file, const std::string& name, const H5::PredType& type,
                       std::vector<hsize_t>* dims)
{
    H5::DataSet ds = file.openDataSet(name);
    H5::DataSpace space = ds.getSpace();
    dims->assign(space.getSimpleExtentNdims(), 0);
    space.getSimpleExtentDims(dims->data());
    hsize_t n = 1;
    for (hsize_t d : *dims)
        n *= d;
    std::vector<T> v(n);
    if (n)
        ds.read(v.data(), type);
    return v;
}

} // namespace

ReferenceData readReferenceFile(const std::string& path)
{
    H5::Exception::dontPrint();
    try {
        H5::H5File file(path, H5F_ACC_RDONLY);
        ReferenceData r;
        std::vector<hsize_t> dims;
        r.ids = readAll<int32_t>(file, "ids", H5::PredType::NATIVE_INT32, &dims);
        r.nll = readAll<double>(file, "nll", H5::PredType::NATIVE_DOUBLE, &dims);
        if (r.nll.size() != r.ids.size())
            throw Error(path, "nll", std::to_string(r.ids.size()) + " values", std::to_string(r.nll.size()));
        for (const char* name : {"dt", "decay", "state_norm"}) {
            r.probeNames.push_back(name);
            r.probes.push_back(readAll<double>(file, name, H5::PredType::NATIVE_DOUBLE, &dims));
            if (dims.empty() || dims[0] != r.ids.size())
                throw Error(path, name, "first dimension " + std::to_string(r.ids.size()), "another");
            r.probeShape.assign(dims.begin() + 1, dims.end());
        }
        return r;
    } catch (const H5::Exception& e) {
        throw Error(path, "cannot read reference: " + e.getDetailMsg());
    }
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
