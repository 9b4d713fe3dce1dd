#pragma once

// The HDF5 C API as the trace writer, the trace reader and the reference reader use it: an owner
// for identifiers, attribute reads and writes, and HDF5's error stack made into one line. Nothing
// here lets an HDF5 failure out as anything but statescope::Error (or a false return).
#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace statescope {
namespace h5 {

// Sizes read from a file are bounded before anything is allocated for them, so that a crafted file
// gets an Error instead of an allocation of its choosing.
constexpr size_t kMaxStringBytes = 64 << 20; // one string attribute
constexpr size_t kMaxNameBytes = 64 << 10;   // one link name

// HDF5 prints its error stack to stderr unless told not to, and the setting is per thread in a
// thread-safe build, so every entry point calls this.
void quiet();

// The outermost and innermost messages of HDF5's error stack: "unable to open file (file signature
// not found)". Clears the stack.
std::string errorDetail();

// Owns one HDF5 identifier of any kind.
class Hid {
public:
    Hid() = default;
    explicit Hid(hid_t id) : m_id(id) {}
    ~Hid() { close(); }
    Hid(Hid&& o) noexcept : m_id(o.m_id) { o.m_id = H5I_INVALID_HID; }
    Hid& operator=(Hid&& o) noexcept;
    Hid(const Hid&) = delete;
    Hid& operator=(const Hid&) = delete;

    hid_t get() const { return m_id; }
    bool valid() const { return m_id >= 0; }
    // Returns false if HDF5 reported an error (for a file: the last flush failed).
    bool close();

private:
    hid_t m_id = H5I_INVALID_HID;
};

// a * b into *out, or true if that overflows (or either is negative).
bool mulOverflows(int64_t a, int64_t b, int64_t* out);

// ---- writing. On failure these return false with HDF5's message in *error, taken before the
// cleanup calls (each of which clears HDF5's error stack) run. Strings are declared UTF-8; bytes
// that are not (a Latin-1 file name) become U+FFFD so that readers such as h5py decode every one.

// A scalar variable-length string.
bool writeStringAttribute(hid_t loc, const char* name, const std::string& value, std::string* error);
// A scalar fixed-length string of `size` bytes, NUL-padded (value cut to size): under SWMR its value
// may be rewritten in place (create = false), a variable-length one's not, and a reader needs no
// global heap to read it.
bool writeFixedStringAttribute(hid_t loc, const char* name, size_t size, const std::string& value,
                               bool create, std::string* error);
// A fixed-length string exactly as long as the value (at least one byte: HDF5 has no empty type).
bool writeFixedStringAttribute(hid_t loc, const char* name, const std::string& value, std::string* error);
// Creates the attribute with fileType, or (create = false) overwrites an existing one.
bool writeIntAttribute(hid_t loc, const char* name, hid_t fileType, int64_t value, bool create,
                       std::string* error);
// A scalar IEEE float64.
bool writeDoubleAttribute(hid_t loc, const char* name, double value, std::string* error);

// ---- reading. These throw Error(path, ...); `where` prefixes names in messages ("/probes/dt:").

struct AttributeValue {
    enum Kind { Absent, Text, Integer, Float, Other } kind = Absent;
    std::string text;
    int64_t integer = 0;
    double real = 0;
};

// A scalar attribute of loc; Absent if there is none, Other if it is not a scalar string or number.
AttributeValue readAttribute(const std::string& path, hid_t loc, const std::string& where,
                             const std::string& name);
// "" if absent; Error if it is not a string.
std::string readStringAttribute(const std::string& path, hid_t loc, const std::string& where,
                                const std::string& name);

// The dimensions of a simple dataspace (a scalar one has none).
std::vector<hsize_t> spaceDims(const std::string& path, hid_t space, const std::string& what);

// The names of a group's links, at most maxLinks of them (Error if there are more): in creation
// order where the group tracks it, else by name.
std::vector<std::string> linkNames(const std::string& path, hid_t group, const std::string& what,
                                   size_t maxLinks);

} // namespace h5
} // namespace statescope
