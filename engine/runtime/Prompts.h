#pragma once

#include <cstdint>
#include <string>

namespace statescope {

// The synthetic inputs of the Stuffed Mamba experiments (stuffed-mamba.md §3.6, §3.7).

// n newline characters: content-free, isolates length effects from content effects.
std::string newlinesPrompt(int64_t n);

// The capital-cities sentence of the paper, repeated n times.
std::string capitalsPrompt(int64_t n);
extern const char* const kCapitalsSentence;

// The passkey template of the seed (stuffed-mamba.md §3.7): prefix, haystack block, needle, suffix.
extern const char* const kPasskeyPrefix;
extern const char* const kPasskeyFiller;
extern const char* const kPasskeySuffix;
std::string passkeyNeedle(const std::string& key);

// A passkey hidden in a haystack (InfiniteBench template). `blocks` filler sentences, the needle
// replacing the block at int(depth * (blocks - 1)); the five-digit key comes from seed.
struct PasskeyPrompt {
    std::string text;
    std::string passkey;
    int64_t needleBlock = 0;
};
PasskeyPrompt passkeyPrompt(int64_t blocks, double depth, uint64_t seed);

// Parses the CLI's --prompt spec: "newlines:N", "capitals:N", "passkey:BLOCKS[:DEPTH[:SEED]]".
// Throws Error naming the spec.
std::string promptFromSpec(const std::string& spec);

} // namespace statescope
