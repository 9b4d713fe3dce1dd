#include "util/Resources.h"

#include "Error.h"

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace fs = std::filesystem;

namespace statescope {

std::string findResource(const std::string& relative)
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
    for (const auto& r : roots)
        if (fs::exists(r / relative, ec))
            return fs::path(r / relative).lexically_normal().string();
    throw Error(relative,
                "built-in resource not found (looked in $STATESCOPE_RESOURCES, ../share/statescope, " +
                    std::string(STATESCOPE_INSTALLED_RESOURCES_DIR) + ", " +
                    std::string(STATESCOPE_RESOURCES_DIR) + ")");
}

std::string builtinTokenizerPath()
{
    return findResource("tokenizers/gpt-neox-20b.json");
}

} // namespace statescope
