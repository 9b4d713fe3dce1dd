#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace statescope {

// UTF-8 and Unicode helpers for the tokenizers. utf8proc and PCRE2 stay inside Unicode.cpp so that
// headers including this one do not need either library.
namespace unicode {

constexpr size_t kNoError = static_cast<size_t>(-1);

// Byte offset of the first byte of the first ill-formed sequence, or kNoError. The rules are
// Rust's `str` ones (and RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
size_t findInvalidUtf8(std::string_view bytes);

// Like Rust's String::from_utf8_lossy: every maximal ill-formed subpart becomes one U+FFFD.
std::string toValidUtf8Lossy(std::string_view bytes);

// Decodes the code point starting at `pos` of valid UTF-8 and advances `pos` past it.
char32_t nextCodePoint(std::string_view validUtf8, size_t& pos);
void appendUtf8(std::string& out, char32_t cp);

// Unicode White_Space (what Rust's char::is_whitespace and Oniguruma's \s accept).
bool isWhiteSpace(char32_t cp);
// An approximation of the Unicode \w class (letters, marks, decimal digits, connector punctuation).
bool isWordChar(char32_t cp);

// NFC of valid UTF-8.
std::string nfc(std::string_view validUtf8);

// NFC text plus the way back to the input: toOriginal[k] is the input byte offset that normalized
// byte offset k (0 <= k <= text.size()) corresponds to. It is empty when NFC left the input unchanged
// (the common case), meaning offsets map to themselves. Where NFC changed a run of characters, the
// whole normalized run maps onto the whole original run; offsets inside it are interpolated so that
// the map stays monotone and in range.
struct AlignedText {
    std::string text;
    std::vector<size_t> toOriginal;

    size_t originalOffset(size_t normalizedOffset) const
    {
        return toOriginal.empty() ? normalizedOffset : toOriginal[normalizedOffset];
    }
};
AlignedText nfcAligned(std::string_view validUtf8);

} // namespace unicode

// A PCRE2 pattern compiled once (UTF + UCP, JIT when the platform has it) and used to cut valid UTF-8
// into the spans it matches. Matching is const and thread-safe.
class UnicodeRegex {
public:
    // Throws Error(sourceName, ...) if the pattern does not compile.
    UnicodeRegex(const std::string& pattern, const std::string& sourceName);
    ~UnicodeRegex();
    UnicodeRegex(UnicodeRegex&&) noexcept;
    UnicodeRegex& operator=(UnicodeRegex&&) noexcept;
    UnicodeRegex(const UnicodeRegex&) = delete;
    UnicodeRegex& operator=(const UnicodeRegex&) = delete;

    // Calls onMatch(begin, end) with the byte spans of successive non-overlapping matches, left to
    // right, searching from the end of the previous match. `validUtf8` must be valid UTF-8; it is the
    // whole subject, so lookaheads see its end as the end of the text. Nothing is collected: a 50 MB
    // line is ten million matches.
    void forEachMatch(std::string_view validUtf8, const std::function<void(size_t, size_t)>& onMatch) const;

    bool usesJit() const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace statescope
