#include "tokenizers/Tokenizer.h"

#include "Error.h"
#include "io/MappedFile.h"

#include <filesystem>

namespace statescope {

Tokenizer::Tokenizer(BpeTokenizer bpe) : m_bpe(std::make_shared<const BpeTokenizer>(std::move(bpe))) {}

Tokenizer::Tokenizer(WorldTokenizer world) : m_world(std::make_shared<const WorldTokenizer>(std::move(world)))
{
}

Tokenizer::Tokenizer(SentencePieceTokenizer sentencePiece)
    : m_spm(std::make_shared<const SentencePieceTokenizer>(std::move(sentencePiece)))
{
}

Tokenizer Tokenizer::fromFile(const std::string& path)
{
    if (std::filesystem::path(path).extension() == ".txt")
        return Tokenizer(WorldTokenizer::fromFile(path));
    if (std::filesystem::path(path).extension() == ".model")
        return Tokenizer(SentencePieceTokenizer::fromSentencePieceModel(path));
    {
        // Which reader: the pre-tokenizer decides (the byte-level reader names what it cannot use).
        const auto file = MappedFile::open(path);
        if (file->size() <= (uint64_t(1) << 30) &&
            SentencePieceTokenizer::recognises(
                std::string(reinterpret_cast<const char*>(file->data()), file->size())))
            return Tokenizer(SentencePieceTokenizer::fromFile(path));
    }
    return Tokenizer(BpeTokenizer::fromFile(path));
}

Encoding Tokenizer::encode(std::string_view text) const
{
    return m_bpe ? m_bpe->encode(text) : m_spm ? m_spm->encode(text) : m_world->encode(text);
}

void Tokenizer::encode(std::string_view text, const TokenSink& sink) const
{
    if (m_bpe)
        m_bpe->encode(text, sink);
    else if (m_spm)
        m_spm->encode(text, sink);
    else
        m_world->encode(text, sink);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const
{
    return m_bpe ? m_bpe->decode(ids) : m_spm ? m_spm->decode(ids) : m_world->decode(ids);
}

std::string Tokenizer::tokenBytes(int32_t id) const
{
    return m_bpe ? m_bpe->tokenBytes(id) : m_spm ? m_spm->tokenBytes(id) : m_world->tokenBytes(id);
}

int32_t Tokenizer::vocabSize() const
{
    return m_bpe ? m_bpe->vocabSize() : m_spm ? m_spm->vocabSize() : m_world->vocabSize();
}

const std::string& Tokenizer::sourceName() const
{
    return m_bpe ? m_bpe->sourceName() : m_spm ? m_spm->sourceName() : m_world->sourceName();
}

std::string Tokenizer::kind() const
{
    return m_bpe ? "byte-level BPE" : m_spm ? "SentencePiece-style BPE" : "RWKV World, greedy longest match";
}

} // namespace statescope
