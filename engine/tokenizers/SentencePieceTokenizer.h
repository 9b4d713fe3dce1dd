#pragma once

#include "tokenizers/BpeTokenizer.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace statescope {

// A Hugging Face `tokenizer.json` in the SentencePiece style of the Llama / Mistral family (what
// fla-hub's HGRN-2 and GLA checkpoints ship), giving the same ids, offsets and decoded text as the Rust
// `tokenizers` library: BPE over characters with byte_fallback (<0x0A> tokens) and unk, the legacy
// normalizer Sequence[Prepend("▁"), Replace(" ", "▁")] or the Metaspace pre-tokenizer (prepend_scheme
// first / always / never, split), added tokens, a TemplateProcessing <s> (or what tokenizer_config.json's
// add_bos_token / add_eos_token say), and the decoders Replace / ByteFallback / Fuse / Strip / Metaspace.
// Copies share the loaded tables; everything is const and may be called from several threads.
class SentencePieceTokenizer {
public:
    // tokenizer.json; a tokenizer_config.json beside it is read for add_bos_token / add_eos_token.
    // Throws Error naming the file and the field it cannot use.
    static SentencePieceTokenizer fromFile(const std::string& path);
    // configJson: the text of tokenizer_config.json, or empty.
    static SentencePieceTokenizer fromJson(const std::string& jsonText, const std::string& sourceName,
                                           const std::string& configJson = "");
    // A SentencePiece BPE model (tokenizer.model: pieces and scores, no merges), read as transformers'
    // Llama converter turns it into a tokenizer.json: merges from the scores, Metaspace (first, no
    // split), byte fallback, the decoder chain, <s> unless a tokenizer_config.json beside it says
    // add_bos_token false. Throws Error naming the file for a Unigram model or a damaged one.
    static SentencePieceTokenizer fromSentencePieceModel(const std::string& path);
    // The tokenizer.json that fromSentencePieceModel reads (for tests and for saving beside a model).
    static std::string jsonFromSentencePieceModel(const std::string& path);
    // Whether a tokenizer.json is this kind rather than byte-level BPE: a BPE model whose pipeline has
    // no ByteLevel pre-tokenizer. Never throws.
    static bool recognises(const std::string& jsonText);

    // Offsets are the Rust library's byte spans made monotone: where its spans overlap (the byte-fallback
    // tokens of one character all span it; a prepended ▁ spans the first character with it) each starts
    // where the previous one ended, so the first covers the character and the rest are empty at its end.
    // A template's <s> is (0, 0), a </s> (size, size). Throws Error if the input is not valid UTF-8.
    Encoding encode(std::string_view utf8) const;
    void encode(std::string_view utf8, const TokenSink& sink) const;
    // The decoder chain's text; throws Error for an id outside the vocabulary.
    std::string decode(const std::vector<int32_t>& ids) const;
    // The text a token stands for on its own: "▁the" as " the", <0x0A> as the byte 0x0A.
    std::string tokenBytes(int32_t id) const;
    int32_t vocabSize() const;
    std::optional<int32_t> tokenToId(std::string_view token) const;
    const std::string& sourceName() const;

    struct Impl;

private:
    explicit SentencePieceTokenizer(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> m_impl;
};

} // namespace statescope
