#include "util/Warnings.h"

#include "Error.h"

#include <iostream>
#include <mutex>
#include <set>

namespace statescope {

namespace {

std::mutex& warningMutex()
{
    static std::mutex m;
    return m;
}

WarningHandler& handler()
{
    static WarningHandler h = [](const std::string& message) {
        std::cerr << "statescope: warning: " << message << "\n";
    };
    return h;
}

} // namespace

void setWarningHandler(WarningHandler h)
{
    std::lock_guard<std::mutex> lock(warningMutex());
    handler() = std::move(h);
}

void warnOnce(const std::string& key, const std::string& message)
{
    static std::set<std::string> given;
    WarningHandler h;
    {
        std::lock_guard<std::mutex> lock(warningMutex());
        if (!given.insert(key).second)
            return;
        h = handler();
    }
    if (h)
        h(escapeControls(message));
}

} // namespace statescope
