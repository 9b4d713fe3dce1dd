#pragma once

#include <string>

namespace statescope {

// s with each byte that does not begin a valid UTF-8 sequence (overlong forms, surrogates, code
// points above U+10FFFF, truncated sequences) replaced by U+FFFD. Valid input comes back unchanged.
std::string repairUtf8(const std::string& s);

} // namespace statescope
