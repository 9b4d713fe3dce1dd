#include "tokenizers/Tokenizer.h"

#include <filesystem>

namespace statescope {

Tokenizer::Tokenizer(BpeTokenizer bpe) : m_bpe(std::make_shared<const BpeTokenizer>(std::move(bpe))) {}

Tokenizer::Tokenizer(WorldTokenizer world) : m_world(std::make_shared<const WorldTokenizer>(std::move(world)))
{
}

Tokenizer Tokenizer::fromFile(const std::string& path)
{
    if (std::filesystem::path(path).extension() == ".txt")
        return Tokenizer(WorldTokenizer::fromFile(path));
    return Tokenizer(BpeTokenizer::fromFile(path));
}

Encoding Tokenizer::encode(std::string_view text) const
{
    return m_bpe ? m_bpe->encode(text) : m_world->encode(text);
}

void Tokenizer::encode(std::string_view text, const TokenSink& sink) const
{
    if (m_bpe)
        m_bpe->encode(text, sink);
    else
        m_world->encode(text, sink);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const
{
    return m_bpe ? m_bpe->decode(ids) : m_world->decode(ids);
}

std::string Tokenizer::tokenBytes(int32_t id) const
{
    return m_bpe ? m_bpe->tokenBytes(id) : m_world->tokenBytes(id);
}

int32_t Tokenizer::vocabSize() const
{
    return m_bpe ? m_bpe->vocabSize() : m_world->vocabSize();
}

const std::string& Tokenizer::sourceName() const
{
    return m_bpe ? m_bpe->sourceName() : m_world->sourceName();
}

std::string Tokenizer::kind() const
{
    return m_bpe ? "byte-level BPE" : "RWKV World, greedy longest match";
}

} // namespace statescope
