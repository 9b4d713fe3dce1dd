#pragma once

#include <string>

namespace statescope {

// Now in ISO 8601 UTC, "2025-01-02T03:04:05Z" (reentrant).
std::string isoTimeUtcNow();

} // namespace statescope
