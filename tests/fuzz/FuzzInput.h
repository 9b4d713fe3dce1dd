#pragma once

// What the fuzz harnesses share. Each harness is one Fuzz<Parser>.cpp defining LLVMFuzzerTestOneInput:
// a libFuzzer executable in a clang STATESCOPE_FUZZ build, and one entry of statescope-fuzz-replay in
// every other build (tests/fuzz/CMakeLists.txt renames the function per harness).
#include "io/RawTensor.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace statescope::fuzz {

namespace detail {

inline std::string& inputDirectory()
{
    // /dev/shm keeps a million rewrites per fuzzing run off the disk; TMPDIR wins when set.
    static std::string dir = [] {
        const char* tmp = std::getenv("TMPDIR");
        if (tmp && *tmp)
            return std::string(tmp);
        struct stat st {};
        if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0)
            return std::string("/dev/shm");
        return std::string("/tmp");
    }();
    return dir;
}

} // namespace detail

// Writes the input to a file of this process and returns its path, for parsers that only take a path
// (they map the file, as they do with real checkpoints). Each call rewrites the same file; `name`
// tells harnesses apart and ends the file name ("model.safetensors", "trace.h5").
inline const std::string& writeInputFile(const uint8_t* data, size_t size, const std::string& name)
{
    static std::string path;
    static std::string lastName;
    if (path.empty() || lastName != name) {
        if (!path.empty())
            ::unlink(path.c_str());
        path = detail::inputDirectory() + "/statescope-fuzz-" + std::to_string(::getpid()) + "-" + name;
        lastName = name;
        static const bool registered = [] {
            std::atexit([] {
                if (!path.empty())
                    ::unlink(path.c_str());
            });
            return true;
        }();
        (void)registered;
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        std::perror(path.c_str());
        std::abort(); // the machine, not the input: stop rather than report every input as fine
    }
    size_t done = 0;
    while (done < size) {
        const ssize_t n = ::write(fd, data + done, size - done);
        if (n <= 0) {
            std::perror(path.c_str());
            std::abort();
        }
        done += static_cast<size_t>(n);
    }
    ::close(fd);
    return path;
}

[[noreturn]] inline void fail(const char* what, const RawTensor& t)
{
    std::fprintf(stderr, "fuzz harness: tensor '%s': %s\n", t.name.c_str(), what);
    std::abort();
}

// Reads every byte of [p, p + n) so that a pointer or size the parser got wrong faults here, inside
// the harness, rather than later in code the fuzzer does not run.
inline uint8_t touchBytes(const uint8_t* p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; ++i)
        x ^= p[i];
    return x;
}

// The promise RawTensor makes to the code that copies it into torch: every element the shape and the
// strides reach lies inside bytesAvailable, and numel() fits in int64. A reader that breaks it has a
// bug even if nothing faults yet, so this aborts (and the fuzzer saves the input).
inline void checkRawTensor(const RawTensor& t)
{
    if (t.shape.size() != t.strides.size())
        fail("shape and strides of different lengths", t);
    uint64_t numel = 1;
    uint64_t last = 0; // furthest element offset reached
    for (size_t i = 0; i < t.shape.size(); ++i) {
        if (t.shape[i] < 0 || t.strides[i] < 0)
            fail("negative size or stride", t);
        if (__builtin_mul_overflow(numel, uint64_t(t.shape[i]), &numel) || numel > uint64_t(INT64_MAX))
            fail("element count overflows int64", t);
        uint64_t step = 0;
        if (t.shape[i] > 0 &&
            (__builtin_mul_overflow(uint64_t(t.shape[i] - 1), uint64_t(t.strides[i]), &step) ||
             __builtin_add_overflow(last, step, &last)))
            fail("furthest element overflows", t);
    }
    if (numel == 0)
        return;
    uint64_t end = 0;
    if (__builtin_add_overflow(last, uint64_t(1), &end) ||
        __builtin_mul_overflow(end, uint64_t(dtypeSize(t.dtype)), &end) || end > t.bytesAvailable)
        fail("elements reach past bytesAvailable", t);
}

// Keeps a computed value alive so the compiler cannot drop the work that produced it.
template <typename T> inline void keep(const T& value)
{
    asm volatile("" : : "r"(&value) : "memory");
}

} // namespace statescope::fuzz
