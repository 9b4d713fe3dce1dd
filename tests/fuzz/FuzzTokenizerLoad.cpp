// Fuzz harness: loading a tokenizer.json (tokenizers/BpeTokenizer.h fromJson), then using what was
// loaded: a fixed text through encode and decode, and every id's bytes. A file the loader accepts
// must give a tokenizer that works, so an Error from encode or decode of its own ids is a finding.
#include "Error.h"
#include "FuzzInput.h"
#include "tokenizers/BpeTokenizer.h"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

using statescope::fuzz::keep;

namespace {

// Bits of what tokenizers meet: words, contractions, digits, whitespace runs, an added-token
// look-alike, a combining sequence NFC composes (e + U+0301), and a four-byte character.
const char kSample[] = "Hello world, it's 2024!\n\n  \t<|endoftext|> cafe\xCC\x81 \xF0\x9F\x99\x82 x";

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    std::optional<statescope::BpeTokenizer> tokenizer;
    try {
        tokenizer = statescope::BpeTokenizer::fromJson(std::string(reinterpret_cast<const char*>(data), size),
                                                       "tokenizer.json");
    } catch (const statescope::Error&) {
        return 0;
    }
    try {
        const statescope::Encoding enc = tokenizer->encode(kSample);
        if (enc.offsets.size() != 2 * enc.ids.size()) {
            std::fprintf(stderr, "fuzz harness: %zu offsets for %zu ids\n", enc.offsets.size(),
                         enc.ids.size());
            std::abort();
        }
        keep(tokenizer->decode(enc.ids));
        // Ids are table indices; every one up to vocabSize() must be answerable (bytes or an Error).
        const int32_t n = tokenizer->vocabSize();
        for (int32_t id = 0; id < n && id < 4096; ++id) {
            try {
                keep(tokenizer->tokenBytes(id));
            } catch (const statescope::Error&) {
                // Ids missing from a sparse vocabulary are refused; that is fine.
            }
        }
        keep(tokenizer->tokenToId("<|endoftext|>"));
    } catch (const statescope::Error& e) {
        std::fprintf(stderr, "fuzz harness: a tokenizer that loaded fails on its own output: %s\n", e.what());
        std::abort();
    }
    return 0;
}
