#include "util/Resources.h"

#include "Error.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace fs = std::filesystem;

namespace statescope {

namespace {

std::vector<fs::path> resourceRoots()
{
    std::vector<fs::path> roots;
    if (const char* env = std::getenv("STATESCOPE_RESOURCES"))
        roots.emplace_back(env);
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec)
        roots.push_back(exe.parent_path().parent_path() / "share" / "statescope");
    roots.emplace_back(STATESCOPE_INSTALLED_RESOURCES_DIR);
    roots.emplace_back(STATESCOPE_RESOURCES_DIR);
    return roots;
}

} // namespace

std::string findResource(const std::string& relative)
{
    const std::vector<fs::path> roots = resourceRoots();
    std::error_code ec;
    for (const auto& r : roots)
        if (fs::exists(r / relative, ec))
            return fs::path(r / relative).lexically_normal().string();
    throw Error(relative,
                "built-in resource not found (looked in $STATESCOPE_RESOURCES, ../share/statescope, " +
                    std::string(STATESCOPE_INSTALLED_RESOURCES_DIR) + ", " +
                    std::string(STATESCOPE_RESOURCES_DIR) + ")");
}

bool isBuiltinResource(const std::string& path)
{
    std::error_code ec;
    const fs::path file = fs::canonical(path, ec);
    if (ec || !fs::is_regular_file(file, ec))
        return false;
    for (const auto& r : resourceRoots()) {
        const fs::path root = fs::canonical(r, ec);
        if (ec)
            continue;
        const auto [rootEnd, fileIt] = std::mismatch(root.begin(), root.end(), file.begin(), file.end());
        if (rootEnd == root.end())
            return true;
    }
    return false;
}

std::string builtinTokenizerPath()
{
    return findResource("tokenizers/gpt-neox-20b.json");
}

std::string worldTokenizerPath()
{
    return findResource("tokenizers/rwkv-world-vocab-v20230424.txt");
}

std::string byteLevelTokenizerPath()
{
    return findResource("tokenizers/byte-level.json");
}

std::string llamaStyleTokenizerPath()
{
    return findResource("tokenizers/llama-style.json");
}

} // namespace statescope
