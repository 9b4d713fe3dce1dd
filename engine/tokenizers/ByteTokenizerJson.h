#pragma once

#include <string>

namespace statescope {

// A Hugging Face tokenizer.json whose vocabulary is the 256 bytes (id = byte value) with the
// ByteLevel pre-tokenizer and decoder and no merges: what StateScope's own small models use. It goes
// through the same BPE code path as real tokenizers.
std::string byteLevelTokenizerJson();

} // namespace statescope
