#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace statescope {

struct Encoding {
    std::vector<int32_t> ids;
    // 2 per token: byte [begin, end) in the ORIGINAL (un-normalized) UTF-8 input. The spans tile the
    // input: they are untrimmed ("Ġworld" includes its space), a token made of part of a multi-byte
    // character spans the bytes it stands for, and where NFC changed the text a composed character
    // spans the whole original sequence it came from.
    std::vector<int64_t> offsets;
};

// Receives the tokens of a text in order: the id and the byte span [begin, end) of the original input,
// as Encoding::offsets holds them.
using TokenSink = std::function<void(int32_t id, int64_t begin, int64_t end)>;

// A Hugging Face `tokenizer.json` byte-level BPE tokenizer (GPT-2 / GPT-NeoX style) that gives the same
// ids as the Rust `tokenizers` library: added tokens, NFC, the ByteLevel regex split, and BPE merges.
// Copies share the loaded tables; encode and decode are const and may be called from several threads.
class BpeTokenizer {
public:
    static BpeTokenizer fromFile(const std::string& path); // throws Error naming the file
    static BpeTokenizer fromJson(const std::string& jsonText, const std::string& sourceName);

    Encoding encode(std::string_view utf8) const; // throws Error if the input is not valid UTF-8
    // The same tokens, handed over one by one and kept nowhere: what a reader of a 50 MB text needs
    // beside the text is then independent of its length.
    void encode(std::string_view utf8, const TokenSink& sink) const;
    // Lossy UTF-8 like Rust's from_utf8_lossy; throws Error for an id outside the vocabulary.
    std::string decode(const std::vector<int32_t>& ids) const;
    std::string tokenBytes(int32_t id) const; // the raw bytes a token stands for (added tokens: content)
    int32_t vocabSize() const;                // 1 + largest id (model vocab and added tokens)
    std::optional<int32_t> tokenToId(std::string_view token) const;
    const std::string& sourceName() const;

private:
    struct Impl;
    explicit BpeTokenizer(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> m_impl;
};

} // namespace statescope
