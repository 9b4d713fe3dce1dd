// statescope-fuzz-replay: runs fuzz harnesses over saved inputs without libFuzzer, so that every build
// (gcc, no sanitizer needed) re-checks the seed corpora and the inputs that once crashed.
//   statescope-fuzz-replay HARNESS PATH...      every file under each PATH (folders recursively)
//   statescope-fuzz-replay --list               the harness names
// Inputs run in sorted order, each named on stdout before it runs, so that a crash (which this
// driver does not catch: that is the point) is pinned to the input that caused it. An input that
// takes longer than --max-seconds (default 10, libFuzzer's -timeout in tools/fuzz.sh) fails the run.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

// One per harness: tests/fuzz/CMakeLists.txt compiles Fuzz<Name>.cpp with
// -DLLVMFuzzerTestOneInput=statescopeFuzz_<name>.
#define STATESCOPE_HARNESSES(X)                                                                              \
    X(config)                                                                                                \
    X(json)                                                                                                  \
    X(safetensors)                                                                                           \
    X(pickle)                                                                                                \
    X(zip)                                                                                                   \
    X(tokenizer_load)                                                                                        \
    X(tokenizer_encode)                                                                                      \
    X(trace)

#define STATESCOPE_DECLARE(name) extern "C" int statescopeFuzz_##name(const uint8_t* data, size_t size);
STATESCOPE_HARNESSES(STATESCOPE_DECLARE)
#undef STATESCOPE_DECLARE

namespace {

namespace fs = std::filesystem;

struct Harness {
    const char* name;
    int (*run)(const uint8_t*, size_t);
};

#define STATESCOPE_ENTRY(name) {#name, statescopeFuzz_##name},
const Harness kHarnesses[] = {STATESCOPE_HARNESSES(STATESCOPE_ENTRY)};
#undef STATESCOPE_ENTRY

int usage()
{
    std::fprintf(stderr, "usage: statescope-fuzz-replay [--max-seconds S] HARNESS PATH...\n"
                         "       statescope-fuzz-replay --list\nharnesses:");
    for (const Harness& h : kHarnesses)
        std::fprintf(stderr, " %s", h.name);
    std::fprintf(stderr, "\n");
    return 2;
}

// Dot files (.gitkeep) and READMEs live beside inputs without being inputs.
bool isInput(const fs::path& p)
{
    const std::string name = p.filename().string();
    return !name.empty() && name[0] != '.' && name.rfind("README", 0) != 0;
}

bool collect(const fs::path& p, std::vector<fs::path>& out)
{
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
        std::vector<fs::path> found;
        for (fs::recursive_directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec))
            if (it->is_regular_file(ec) && isInput(it->path()))
                found.push_back(it->path());
        if (ec) {
            std::fprintf(stderr, "%s: %s\n", p.string().c_str(), ec.message().c_str());
            return false;
        }
        std::sort(found.begin(), found.end());
        out.insert(out.end(), found.begin(), found.end());
        return true;
    }
    if (fs::is_regular_file(p, ec)) {
        out.push_back(p);
        return true;
    }
    std::fprintf(stderr, "%s: no such file or folder\n", p.string().c_str());
    return false;
}

} // namespace

int main(int argc, char** argv)
{
    double maxSeconds = 10;
    int arg = 1;
    if (arg < argc && std::strcmp(argv[arg], "--list") == 0) {
        for (const Harness& h : kHarnesses)
            std::printf("%s\n", h.name);
        return 0;
    }
    if (arg + 1 < argc && std::strcmp(argv[arg], "--max-seconds") == 0) {
        maxSeconds = std::atof(argv[arg + 1]);
        arg += 2;
    }
    if (argc - arg < 2)
        return usage();
    const Harness* harness = nullptr;
    for (const Harness& h : kHarnesses)
        if (std::strcmp(h.name, argv[arg]) == 0)
            harness = &h;
    if (!harness)
        return usage();

    std::vector<fs::path> inputs;
    bool ok = true;
    for (int i = arg + 1; i < argc; ++i)
        ok = collect(argv[i], inputs) && ok;
    if (inputs.empty()) {
        std::fprintf(stderr, "no inputs found\n");
        return 1;
    }

    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    int slow = 0;
    for (const fs::path& p : inputs) {
        std::ifstream in(p, std::ios::binary);
        const std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        if (!in.good() && !in.eof()) {
            std::fprintf(stderr, "%s: cannot read\n", p.string().c_str());
            ok = false;
            continue;
        }
        std::printf("%s (%zu bytes) ... ", p.string().c_str(), bytes.size());
        std::fflush(stdout);
        const auto t0 = Clock::now();
        // libFuzzer never passes a null pointer, even for an empty input; neither does this.
        static const uint8_t kEmpty = 0;
        harness->run(bytes.empty() ? &kEmpty : reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
        const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        const bool tooSlow = seconds > maxSeconds;
        std::printf("%s %.3f s\n", tooSlow ? "TOO SLOW" : "ok", seconds);
        std::fflush(stdout);
        slow += tooSlow;
    }
    const double total = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("%s: %zu inputs in %.2f s", harness->name, inputs.size(), total);
    if (slow)
        std::printf(", %d slower than %g s each (a hang to libFuzzer)", slow, maxSeconds);
    std::printf("\n");
    return ok && slow == 0 ? 0 : 1;
}
