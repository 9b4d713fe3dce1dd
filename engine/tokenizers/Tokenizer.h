#pragma once

// The tokenizer of a run, whichever kind the model needs: a Hugging Face tokenizer.json (byte-level
// BPE, or the SentencePiece style of the Llama family) or the RWKV World vocabulary (a .txt of byte
// strings). Copies share the tables;
// everything is const and may be called from several threads.
#include "tokenizers/BpeTokenizer.h"
#include "tokenizers/SentencePieceTokenizer.h"
#include "tokenizers/WorldTokenizer.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace statescope {

class Tokenizer {
public:
    Tokenizer(BpeTokenizer bpe);
    Tokenizer(WorldTokenizer world);
    Tokenizer(SentencePieceTokenizer sentencePiece);
    // A .txt is a World vocabulary, a .model a SentencePiece BPE model, anything else a tokenizer.json
    // (byte-level when its pre-tokenizer is ByteLevel, else SentencePiece-style). Throws Error naming the
    // file.
    static Tokenizer fromFile(const std::string& path);

    Encoding encode(std::string_view text) const;
    void encode(std::string_view text, const TokenSink& sink) const;
    std::string decode(const std::vector<int32_t>& ids) const;
    std::string tokenBytes(int32_t id) const;
    int32_t vocabSize() const;
    const std::string& sourceName() const;
    // "byte-level BPE", "SentencePiece-style BPE" or "RWKV World, greedy longest match"
    std::string kind() const;

private:
    std::shared_ptr<const BpeTokenizer> m_bpe;
    std::shared_ptr<const WorldTokenizer> m_world;
    std::shared_ptr<const SentencePieceTokenizer> m_spm;
};

} // namespace statescope
