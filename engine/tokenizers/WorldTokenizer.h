#pragma once

// The RWKV World tokenizer (resources/tokenizers/rwkv-world-vocab-v20230424.txt): a vocabulary of
// byte strings and a greedy longest match over the input's bytes. Every byte is a token of its own,
// so any input encodes (invalid UTF-8 included) and decoding gives the bytes back exactly.
#include "tokenizers/BpeTokenizer.h" // Encoding, TokenSink

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace statescope {

class WorldTokenizer {
public:
    static constexpr int32_t kEndOfText = 0;

    // The vocabulary file: lines "ID REPR LENGTH" with REPR a Python str or bytes literal. Throws Error
    // naming the file and the line for anything else, a duplicate id or a length that disagrees.
    static WorldTokenizer fromFile(const std::string& path);
    static WorldTokenizer fromText(std::string_view text, const std::string& sourceName);

    Encoding encode(std::string_view bytes) const;
    void encode(std::string_view bytes, const TokenSink& sink) const;
    // The tokens' bytes, concatenated (end-of-text adds none). Throws Error for an unknown id.
    std::string decode(const std::vector<int32_t>& ids) const;
    std::string tokenBytes(int32_t id) const;
    int32_t vocabSize() const; // 1 + the largest id
    const std::string& sourceName() const;

private:
    struct Impl;
    explicit WorldTokenizer(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> m_impl;
};

// The bytes a Python str or bytes literal stands for (str as UTF-8): the escapes repr() writes.
// Throws Error naming `where` for anything else.
std::string parsePythonLiteral(std::string_view literal, const std::string& where);

} // namespace statescope
