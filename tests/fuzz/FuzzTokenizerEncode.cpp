// Fuzz harness: text through the GPT-NeoX-20B tokenizer (resources/tokenizers), the one every Mamba
// checkpoint uses: added tokens, NFC, the ByteLevel regex split and BPE merges. Text that is not
// UTF-8 is refused with an Error; any other text must encode, with offsets that tile the input and
// ids that decode back to the text's NFC form.
#include "Error.h"
#include "FuzzInput.h"
#include "tokenizers/BpeTokenizer.h"
#include "tokenizers/Unicode.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#ifndef STATESCOPE_RESOURCES_DIR
#error "STATESCOPE_RESOURCES_DIR must name the resources folder"
#endif

namespace {

[[noreturn]] void fail(const char* what, std::string_view text)
{
    std::fprintf(stderr, "fuzz harness: %s (input of %zu bytes)\n", what, text.size());
    std::abort();
}

// What decode(encode(text)) must give: the tokenizer's two special tokens are matched on the raw text
// first (they are not normalized), and NFC applies to the text between them, piece by piece, as in
// the Rust library: NFC of the whole text could compose across a token's edge ("<|endoftext|>" and a
// combining U+0338 make U+226F).
std::string expectedDecode(std::string_view text)
{
    static const std::string_view kSpecials[] = {"<|endoftext|>", "<|padding|>"};
    std::string out;
    size_t pieceBegin = 0;
    for (size_t i = 0; i < text.size();) {
        bool matched = false;
        for (std::string_view special : kSpecials) {
            if (text.compare(i, special.size(), special) == 0) {
                out += statescope::unicode::nfc(text.substr(pieceBegin, i - pieceBegin));
                out += special;
                i += special.size();
                pieceBegin = i;
                matched = true;
                break;
            }
        }
        if (!matched)
            ++i;
    }
    out += statescope::unicode::nfc(text.substr(pieceBegin));
    return out;
}

const statescope::BpeTokenizer& gptNeox()
{
    static const statescope::BpeTokenizer tokenizer =
        statescope::BpeTokenizer::fromFile(STATESCOPE_RESOURCES_DIR "/tokenizers/gpt-neox-20b.json");
    return tokenizer;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const statescope::BpeTokenizer& tokenizer = gptNeox();
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    statescope::Encoding enc;
    try {
        enc = tokenizer.encode(text);
    } catch (const statescope::Error&) {
        if (statescope::unicode::findInvalidUtf8(text) == statescope::unicode::kNoError)
            fail("valid UTF-8 was refused", text);
        return 0;
    }
    if (enc.offsets.size() != 2 * enc.ids.size())
        fail("not two offsets per token", text);
    int64_t previousEnd = 0;
    for (size_t i = 0; i < enc.ids.size(); ++i) {
        const int64_t begin = enc.offsets[2 * i], end = enc.offsets[2 * i + 1];
        if (begin != previousEnd || end < begin || end > static_cast<int64_t>(size))
            fail("offsets do not tile the input", text);
        previousEnd = end;
    }
    if (!enc.ids.empty() && previousEnd != static_cast<int64_t>(size))
        fail("offsets stop before the end of the input", text);
    try {
        // Byte-level BPE loses nothing but what the normalizer changed.
        if (tokenizer.decode(enc.ids) != expectedDecode(text))
            fail("decode(encode(text)) differs from the NFC of the text", text);
    } catch (const statescope::Error&) {
        fail("decode refused ids that encode produced", text);
    }
    return 0;
}
