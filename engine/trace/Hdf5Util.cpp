#include "trace/Hdf5Util.h"

#include "Error.h"
#include "util/Utf8.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace statescope {
namespace h5 {

namespace {

herr_t collectError(unsigned, const H5E_error2_t* err, void* data)
{
    if (err && err->desc && *err->desc)
        static_cast<std::vector<std::string>*>(data)->push_back(err->desc);
    return 0;
}

} // namespace

void quiet()
{
    thread_local bool done = false;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        done = true;
    }
}

std::string errorDetail()
{
    std::vector<std::string> descs;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collectError, &descs);
    H5Eclear2(H5E_DEFAULT);
    if (descs.empty())
        return "HDF5 error";
    std::string s = descs.front();
    if (descs.size() > 1 && descs.back() != descs.front())
        s += " (" + descs.back() + ")";
    std::replace(s.begin(), s.end(), '\n', ' ');
    return s;
}

Hid& Hid::operator=(Hid&& o) noexcept
{
    if (this != &o) {
        close();
        m_id = o.m_id;
        o.m_id = H5I_INVALID_HID;
    }
    return *this;
}

bool Hid::close()
{
    if (m_id < 0)
        return true;
    herr_t r = 0;
    switch (H5Iget_type(m_id)) {
    case H5I_FILE:
        r = H5Fclose(m_id);
        break;
    case H5I_GROUP:
        r = H5Gclose(m_id);
        break;
    case H5I_DATASET:
        r = H5Dclose(m_id);
        break;
    case H5I_ATTR:
        r = H5Aclose(m_id);
        break;
    case H5I_DATASPACE:
        r = H5Sclose(m_id);
        break;
    case H5I_DATATYPE:
        r = H5Tclose(m_id);
        break;
    case H5I_GENPROP_LST:
        r = H5Pclose(m_id);
        break;
    default:
        r = H5Idec_ref(m_id) < 0 ? -1 : 0;
        break;
    }
    m_id = H5I_INVALID_HID;
    return r >= 0;
}

bool mulOverflows(int64_t a, int64_t b, int64_t* out)
{
    if (a < 0 || b < 0 || (a != 0 && b > std::numeric_limits<int64_t>::max() / a))
        return true;
    *out = a * b;
    return false;
}

// ---- writing

bool writeStringAttribute(hid_t loc, const char* name, const std::string& value, std::string* error)
{
    const std::string utf8 = repairUtf8(value);
    const char* data = utf8.c_str();
    Hid type(H5Tcopy(H5T_C_S1));
    Hid space(H5Screate(H5S_SCALAR));
    Hid attr;
    if (type.valid() && space.valid() && H5Tset_size(type.get(), H5T_VARIABLE) >= 0 &&
        H5Tset_cset(type.get(), H5T_CSET_UTF8) >= 0 &&
        (attr = Hid(H5Acreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT))).valid() &&
        H5Awrite(attr.get(), type.get(), &data) >= 0 && attr.close())
        return true;
    *error = errorDetail();
    return false;
}

bool writeFixedStringAttribute(hid_t loc, const char* name, size_t size, const std::string& value,
                               bool create, std::string* error)
{
    const std::string utf8 = repairUtf8(value);
    std::vector<char> data(size, '\0');
    std::memcpy(data.data(), utf8.data(), std::min(size, utf8.size()));
    Hid type(H5Tcopy(H5T_C_S1));
    Hid space(H5Screate(H5S_SCALAR));
    Hid attr;
    if (type.valid() && space.valid() && H5Tset_size(type.get(), size) >= 0 &&
        H5Tset_strpad(type.get(), H5T_STR_NULLPAD) >= 0 && H5Tset_cset(type.get(), H5T_CSET_UTF8) >= 0 &&
        (attr = Hid(create ? H5Acreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT)
                           : H5Aopen(loc, name, H5P_DEFAULT)))
            .valid() &&
        H5Awrite(attr.get(), type.get(), data.data()) >= 0 && attr.close())
        return true;
    *error = errorDetail();
    return false;
}

bool writeFixedStringAttribute(hid_t loc, const char* name, const std::string& value, std::string* error)
{
    // Sized after repair: U+FFFD is three bytes where the bad byte was one.
    const std::string utf8 = repairUtf8(value);
    return writeFixedStringAttribute(loc, name, std::max<size_t>(1, utf8.size()), utf8, true, error);
}

bool writeIntAttribute(hid_t loc, const char* name, hid_t fileType, int64_t value, bool create,
                       std::string* error)
{
    Hid space(H5Screate(H5S_SCALAR));
    Hid attr(create ? H5Acreate2(loc, name, fileType, space.get(), H5P_DEFAULT, H5P_DEFAULT)
                    : H5Aopen(loc, name, H5P_DEFAULT));
    if (attr.valid() && H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) >= 0 && attr.close())
        return true;
    *error = errorDetail();
    return false;
}

bool writeDoubleAttribute(hid_t loc, const char* name, double value, std::string* error)
{
    Hid space(H5Screate(H5S_SCALAR));
    Hid attr(H5Acreate2(loc, name, H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (attr.valid() && H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, &value) >= 0 && attr.close())
        return true;
    *error = errorDetail();
    return false;
}

// ---- reading

AttributeValue readAttribute(const std::string& path, hid_t loc, const std::string& where,
                             const std::string& name)
{
    AttributeValue v;
    const htri_t exists = H5Aexists(loc, name.c_str());
    if (exists < 0)
        throw Error(path, "cannot read attribute " + where + name + ": " + errorDetail());
    if (exists == 0)
        return v;
    Hid attr(H5Aopen(loc, name.c_str(), H5P_DEFAULT));
    Hid type(attr.valid() ? H5Aget_type(attr.get()) : H5I_INVALID_HID);
    Hid space(attr.valid() ? H5Aget_space(attr.get()) : H5I_INVALID_HID);
    if (!type.valid() || !space.valid())
        throw Error(path, "cannot read attribute " + where + name + ": " + errorDetail());
    if (H5Sget_simple_extent_npoints(space.get()) != 1) {
        H5Eclear2(H5E_DEFAULT);
        v.kind = AttributeValue::Other;
        return v;
    }
    const H5T_class_t cls = H5Tget_class(type.get());
    herr_t r = 0;
    if (cls == H5T_STRING) {
        v.kind = AttributeValue::Text;
        const htri_t variable = H5Tis_variable_str(type.get());
        if (variable > 0) {
            // The library allocates a variable-length string itself, from a length stored in the
            // file that nothing here can check first; writers of schema 2 use fixed-length strings.
            Hid mem(H5Tcopy(H5T_C_S1));
            H5Tset_size(mem.get(), H5T_VARIABLE);
            H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
            char* s = nullptr;
            r = H5Aread(attr.get(), mem.get(), &s);
            if (r >= 0 && s)
                v.text.assign(s, strnlen(s, kMaxStringBytes));
            if (s)
                H5free_memory(s);
        } else if (variable == 0) {
            const size_t size = H5Tget_size(type.get());
            if (size == 0 || size > kMaxStringBytes)
                throw Error(path, "attribute " + where + name, "a string of at most 64 MiB",
                            std::to_string(size) + " bytes");
            Hid mem(H5Tcopy(type.get()));
            std::vector<char> buf(size + 1, '\0');
            r = H5Aread(attr.get(), mem.get(), buf.data());
            v.text.assign(buf.data(), strnlen(buf.data(), size));
            if (H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD)
                v.text.erase(v.text.find_last_not_of(' ') + 1);
        } else {
            r = -1;
        }
    } else if (cls == H5T_INTEGER) {
        v.kind = AttributeValue::Integer;
        r = H5Aread(attr.get(), H5T_NATIVE_INT64, &v.integer);
    } else if (cls == H5T_FLOAT) {
        v.kind = AttributeValue::Float;
        r = H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v.real);
    } else {
        v.kind = AttributeValue::Other;
    }
    if (r < 0)
        throw Error(path, "cannot read attribute " + where + name + ": " + errorDetail());
    return v;
}

std::string readStringAttribute(const std::string& path, hid_t loc, const std::string& where,
                                const std::string& name)
{
    const AttributeValue v = readAttribute(path, loc, where, name);
    if (v.kind == AttributeValue::Absent)
        return {};
    if (v.kind != AttributeValue::Text)
        throw Error(path, "attribute " + where + name, "a string", "another type");
    return v.text;
}

std::vector<hsize_t> spaceDims(const std::string& path, hid_t space, const std::string& what)
{
    const int ndims = H5Sget_simple_extent_ndims(space);
    if (ndims < 0 || ndims > H5S_MAX_RANK)
        throw Error(path, "cannot read the shape of " + what + ": " + errorDetail());
    std::vector<hsize_t> dims(static_cast<size_t>(ndims));
    if (ndims > 0 && H5Sget_simple_extent_dims(space, dims.data(), nullptr) < 0)
        throw Error(path, "cannot read the shape of " + what + ": " + errorDetail());
    return dims;
}

std::vector<std::string> linkNames(const std::string& path, hid_t group, const std::string& what,
                                   size_t maxLinks)
{
    H5G_info_t info{};
    if (H5Gget_info(group, &info) < 0)
        throw Error(path, "cannot list " + what + ": " + errorDetail());
    if (info.nlinks > maxLinks)
        throw Error(path, what, "at most " + std::to_string(maxLinks) + " entries",
                    std::to_string(info.nlinks));
    H5_index_t index = H5_INDEX_CRT_ORDER;
    if (info.nlinks > 0 &&
        H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, 0, nullptr, 0, H5P_DEFAULT) < 0) {
        H5Eclear2(H5E_DEFAULT);
        index = H5_INDEX_NAME;
    }
    std::vector<std::string> names;
    for (hsize_t i = 0; i < info.nlinks; ++i) {
        const ssize_t len = H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
        if (len < 0)
            throw Error(path, "cannot list " + what + ": " + errorDetail());
        if (static_cast<size_t>(len) > kMaxNameBytes)
            throw Error(path, what + " entry name", "at most " + std::to_string(kMaxNameBytes) + " bytes",
                        std::to_string(len) + " bytes");
        std::vector<char> buf(static_cast<size_t>(len) + 1, '\0');
        if (H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, i, buf.data(), buf.size(), H5P_DEFAULT) < 0)
            throw Error(path, "cannot list " + what + ": " + errorDetail());
        names.emplace_back(buf.data(), static_cast<size_t>(len));
    }
    return names;
}

} // namespace h5
} // namespace statescope
