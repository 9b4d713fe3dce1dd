#pragma once

// A training or held-out corpus as token ids. Byte-level models read the text's bytes as their ids; a
// model with a tokenizer reads the text tokenised once and kept beside it in a cache file, mapped
// like the text, so that every job of a sweep (and every resume) starts without tokenising again.
// Torch-free.

#include <cstdint>
#include <memory>
#include <string>

namespace statescope {

class MappedFile;
class Tokenizer;

class TokenCorpus {
public:
    // The text's bytes as ids 0..255.
    static std::shared_ptr<TokenCorpus> bytes(const std::string& path);
    // The text tokenised by `tokenizer`, whose tokenizer.json holds `tokenizerText` (what the cache is
    // keyed on, with the text's size and modification time). The cache is `path.tokens-HASH` when the
    // text's folder is writable, else the same name in `fallbackDir`. The text is cut into pieces at
    // line starts that begin a word (a pre-tokenizer boundary, so the ids are those of the whole text)
    // and the pieces are tokenised on `threads` threads. Processes that start together wait on
    // `<cache>.lock` for the one that builds it. Throws Error naming
    // the text and the byte offset of invalid UTF-8, or the cache file when it cannot be written. pieceBytes:
    // the pieces' least size (small in tests, to show the cuts change no id).
    static std::shared_ptr<TokenCorpus> tokenised(const std::string& path, const Tokenizer& tokenizer,
                                                  const std::string& tokenizerText,
                                                  const std::string& fallbackDir, int threads,
                                                  int64_t pieceBytes = int64_t(4) << 20);

    // What identifies a training text across machines and sessions: its file name, size and the
    // 64-bit FNV-1a of its contents, "NAME, N bytes, fnv1a64 HEX". A corpus rebuilt from updated
    // packages keeps its name and nearly its size, so only the contents tell two of them apart.
    // Throws Error naming the file when it cannot be read.
    static std::string fingerprint(const std::string& path);

    int64_t size() const { return m_count; }
    // ids [start, start + n) as int64 (the trainer's index type).
    void copy(int64_t start, int64_t n, int64_t* out) const;
    const std::string& textPath() const { return m_textPath; }
    // The cache file read, empty for a byte-level corpus.
    const std::string& cachePath() const { return m_cachePath; }
    // True when this call tokenised the text (false when it read the cache or the bytes).
    bool built() const { return m_built; }

private:
    std::string m_textPath, m_cachePath;
    std::shared_ptr<MappedFile> m_file;
    const uint8_t* m_bytes = nullptr; // byte-level
    const uint32_t* m_ids = nullptr;  // tokenised (little-endian, 4-byte aligned in the mapping)
    int64_t m_count = 0;
    bool m_built = false;
};

} // namespace statescope
