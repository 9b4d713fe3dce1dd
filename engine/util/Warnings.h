#pragma once

// Warnings: what the engine finds suspicious but can run with (NaN weights, say). The CLI prints
// them on stderr; the window shows them in its status bar. Torch-free, no Qt.
#include <functional>
#include <string>

namespace statescope {

using WarningHandler = std::function<void(const std::string& message)>;

// Replaces the handler (the default writes "statescope: warning: MESSAGE" to stderr). The handler
// may be called from any thread.
void setWarningHandler(WarningHandler handler);

// Passes message (control characters escaped) to the handler, the first time only for a given key.
void warnOnce(const std::string& key, const std::string& message);

} // namespace statescope
