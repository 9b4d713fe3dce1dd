#pragma once

#include <string>

namespace statescope {

// Where a built-in resource (relative to resources/, e.g. "tokenizers/gpt-neox-20b.json") is: under
// $STATESCOPE_RESOURCES, next to the running binary (../share/statescope), where `make install`
// puts it, or in the source tree this binary was built from; the first that exists. Throws Error
// naming the resource and the places looked in if none does.
std::string findResource(const std::string& relative);

// Whether path is a regular file inside one of the places built-in resources are found: files a
// trace names are opened on their own only there.
bool isBuiltinResource(const std::string& path);
// The tokenizer a model gets when it brings none: GPT-NeoX-20B's, what state-spaces' checkpoints use.
std::string builtinTokenizerPath();
// The RWKV World vocabulary (tokenizers/WorldTokenizer.h), for models whose shape asks for it.
std::string worldTokenizerPath();
// A tokenizer.json whose 256 ids are the bytes (tokenizers/ByteTokenizerJson.h writes the same).
std::string byteLevelTokenizerPath();
// A SentencePiece-style tokenizer.json (Metaspace, byte fallback, <s>), for HGRN-2 and GLA models made
// here: fla-hub's checkpoints ship their own (tools/make_spm_tokenizers.py trains it).
std::string llamaStyleTokenizerPath();

} // namespace statescope
