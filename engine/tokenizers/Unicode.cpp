#include "tokenizers/Unicode.h"

#include "Error.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace statescope {
namespace unicode {

namespace {

// Length of the well-formed sequence starting at s[i], or 0 if it is ill-formed. `maximalSubpart`
// receives how many bytes from i form the longest prefix of a valid sequence (at least 1), which is
// what from_utf8_lossy replaces by one U+FFFD.
size_t sequenceLength(std::string_view s, size_t i, size_t* maximalSubpart)
{
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c < 0x80) {
        len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F; // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; // nothing above U+10FFFF
    }
    if (len == 0) {
        if (maximalSubpart)
            *maximalSubpart = 1;
        return 0;
    }
    size_t k = 1;
    for (; k < len; ++k) {
        if (i + k >= s.size())
            break;
        const auto b = static_cast<unsigned char>(s[i + k]);
        const unsigned char kLo = k == 1 ? lo : 0x80;
        const unsigned char kHi = k == 1 ? hi : 0xBF;
        if (b < kLo || b > kHi)
            break;
    }
    if (maximalSubpart)
        *maximalSubpart = k;
    return k == len ? len : 0;
}

bool isAsciiOnly(std::string_view s)
{
    for (char ch : s) {
        if (static_cast<unsigned char>(ch) >= 0x80)
            return false;
    }
    return true;
}

// NFC as utf8proc_map computes it, but with the canonical reordering done here first: utf8proc
// orders combining marks by exchanging neighbours, quadratic in a run's length (80 KB of marks took
// half a minute), while a stable sort per run is n log n and leaves utf8proc a run it passes once.
std::string nfcLinear(std::string_view s)
{
    const auto options = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    std::vector<utf8proc_int32_t> cps;
    cps.reserve(s.size() + 8);
    utf8proc_int32_t buf[32];
    size_t pos = 0;
    while (pos < s.size()) {
        const char32_t cp = nextCodePoint(s, pos);
        int lastBoundClass = 0;
        const utf8proc_ssize_t n =
            utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), buf, 32, options, &lastBoundClass);
        if (n < 0 || n > 32)
            throw Error("input text", std::string("Unicode normalization failed: ") +
                                          (n < 0 ? utf8proc_errmsg(n) : "decomposition too long"));
        cps.insert(cps.end(), buf, buf + n);
    }
    auto ccc = [](utf8proc_int32_t c) { return utf8proc_get_property(c)->combining_class; };
    for (size_t i = 0; i < cps.size();) {
        if (ccc(cps[i]) == 0) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < cps.size() && ccc(cps[j]) != 0)
            ++j;
        std::stable_sort(cps.begin() + i, cps.begin() + j,
                         [&](utf8proc_int32_t a, utf8proc_int32_t b) { return ccc(a) < ccc(b); });
        i = j;
    }
    const utf8proc_ssize_t n =
        utf8proc_normalize_utf32(cps.data(), static_cast<utf8proc_ssize_t>(cps.size()), options);
    if (n < 0)
        throw Error("input text", std::string("Unicode normalization failed: ") + utf8proc_errmsg(n));
    std::string out;
    out.reserve(static_cast<size_t>(n) * 2);
    for (utf8proc_ssize_t k = 0; k < n; ++k)
        appendUtf8(out, static_cast<char32_t>(cps[static_cast<size_t>(k)]));
    return out;
}

// Whether NFC can be computed for the text from this character on without looking at what came
// before it: a starter that never composes with a preceding character. Marks and the Hangul vowel and
// trailing jamo are excluded; anything this misses is caught by comparing with the NFC of the whole.
bool startsIndependentSegment(char32_t cp)
{
    if (cp < 0x80)
        return true;
    if ((cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11A8 && cp <= 0x11C2))
        return false;
    const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
    if (p->combining_class != 0)
        return false;
    return p->category != UTF8PROC_CATEGORY_MN && p->category != UTF8PROC_CATEGORY_MC &&
           p->category != UTF8PROC_CATEGORY_ME;
}

void appendInterpolated(std::vector<size_t>& map, size_t origBegin, size_t origLen, size_t normLen)
{
    for (size_t k = 0; k < normLen; ++k)
        map.push_back(origBegin + (k * origLen) / normLen);
}

} // namespace

size_t findInvalidUtf8(std::string_view bytes)
{
    size_t i = 0;
    const size_t n = bytes.size();
    while (i < n) {
        if (static_cast<unsigned char>(bytes[i]) < 0x80) {
            ++i;
            continue;
        }
        const size_t len = sequenceLength(bytes, i, nullptr);
        if (len == 0)
            return i;
        i += len;
    }
    return kNoError;
}

std::string toValidUtf8Lossy(std::string_view bytes)
{
    std::string out;
    out.reserve(bytes.size());
    size_t i = 0;
    while (i < bytes.size()) {
        size_t subpart = 0;
        const size_t len = sequenceLength(bytes, i, &subpart);
        if (len) {
            out.append(bytes.data() + i, len);
            i += len;
        } else {
            out += "\xEF\xBF\xBD";
            i += subpart;
        }
    }
    return out;
}

char32_t nextCodePoint(std::string_view s, size_t& pos)
{
    const auto c = static_cast<unsigned char>(s[pos]);
    if (c < 0x80) {
        ++pos;
        return c;
    }
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (pos + len > s.size())
        len = s.size() - pos; // only reachable with invalid input; stay in bounds
    char32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (size_t k = 1; k < len; ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
    pos += len;
    return cp;
}

void appendUtf8(std::string& out, char32_t cp)
{
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

bool isWhiteSpace(char32_t cp)
{
    switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

bool isWordChar(char32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    if (cp == 0x200C || cp == 0x200D)
        return true;
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
        return true;
    default:
        return false;
    }
}

std::string nfc(std::string_view validUtf8)
{
    if (isAsciiOnly(validUtf8))
        return std::string(validUtf8);
    return nfcLinear(validUtf8);
}

AlignedText nfcAligned(std::string_view s)
{
    AlignedText result;
    if (isAsciiOnly(s)) {
        result.text.assign(s);
        return result;
    }
    std::string whole = nfc(s);
    if (whole == s) {
        result.text = std::move(whole);
        return result;
    }

    // NFC changed something. Normalize run by run so that each changed run maps onto exactly the
    // original characters it came from.
    std::string built;
    built.reserve(whole.size());
    std::vector<size_t>& map = result.toOriginal;
    map.reserve(whole.size() + 1);
    size_t segBegin = 0;
    size_t pos = 0;
    auto flush = [&](size_t segEnd) {
        if (segEnd == segBegin)
            return;
        const std::string_view seg = s.substr(segBegin, segEnd - segBegin);
        bool unchanged = false;
        size_t p = 0;
        const char32_t first = nextCodePoint(seg, p);
        if (p == seg.size()) {
            // A lone character without a decomposition cannot change under NFC.
            const utf8proc_property_t* prop = utf8proc_get_property(static_cast<utf8proc_int32_t>(first));
            unchanged = first < 0x80 || prop->decomp_seqindex == UINT16_MAX;
        }
        if (unchanged) {
            built.append(seg);
            for (size_t k = 0; k < seg.size(); ++k)
                map.push_back(segBegin + k);
        } else {
            const std::string n = nfc(seg);
            if (n == seg) {
                for (size_t k = 0; k < seg.size(); ++k)
                    map.push_back(segBegin + k);
            } else {
                appendInterpolated(map, segBegin, seg.size(), n.size());
            }
            built += n;
        }
        segBegin = segEnd;
    };
    while (pos < s.size()) {
        const size_t here = pos;
        const char32_t cp = nextCodePoint(s, pos);
        if (here > segBegin && startsIndependentSegment(cp))
            flush(here);
    }
    flush(s.size());
    map.push_back(s.size());

    if (built != whole) {
        // The run boundaries were wrong for this text; map the whole piece as one run instead.
        map.clear();
        appendInterpolated(map, 0, s.size(), whole.size());
        map.push_back(s.size());
    }
    result.text = std::move(whole);
    return result;
}

} // namespace unicode

struct UnicodeRegex::Impl {
    pcre2_code* code = nullptr;
    bool jit = false;
    ~Impl()
    {
        if (code)
            pcre2_code_free(code);
    }
};

UnicodeRegex::UnicodeRegex(const std::string& pattern, const std::string& sourceName)
    : m_impl(std::make_unique<Impl>())
{
    int errorCode = 0;
    PCRE2_SIZE errorOffset = 0;
    m_impl->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                 PCRE2_UTF | PCRE2_UCP, &errorCode, &errorOffset, nullptr);
    if (!m_impl->code) {
        PCRE2_UCHAR buffer[256];
        pcre2_get_error_message(errorCode, buffer, sizeof(buffer));
        throw Error(sourceName, "regular expression does not compile at offset " +
                                    std::to_string(errorOffset) + ": " +
                                    reinterpret_cast<const char*>(buffer));
    }
    // Without JIT support (some platforms) pcre2_match falls back to the interpreter by itself.
    m_impl->jit = pcre2_jit_compile(m_impl->code, PCRE2_JIT_COMPLETE) == 0;
}

UnicodeRegex::~UnicodeRegex() = default;
UnicodeRegex::UnicodeRegex(UnicodeRegex&&) noexcept = default;
UnicodeRegex& UnicodeRegex::operator=(UnicodeRegex&&) noexcept = default;

bool UnicodeRegex::usesJit() const
{
    return m_impl->jit;
}

void UnicodeRegex::forEachMatch(std::string_view text,
                                const std::function<void(size_t, size_t)>& onMatch) const
{
    if (text.empty())
        return;
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
        pcre2_match_data_create_from_pattern(m_impl->code, nullptr), &pcre2_match_data_free);
    if (!md)
        throw Error("input text", "out of memory while matching the pre-tokenizer regex");
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t start = 0;
    while (start < text.size()) {
        const int rc =
            pcre2_match(m_impl->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR buffer[256];
            pcre2_get_error_message(rc, buffer, sizeof(buffer));
            throw Error("input text",
                        std::string("pre-tokenizer regex failed: ") + reinterpret_cast<const char*>(buffer));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
        size_t b = ov[0], e = ov[1];
        if (e <= b) {
            // An empty match; step over one character so the loop always advances.
            size_t p = b;
            if (p >= text.size())
                break;
            unicode::nextCodePoint(text, p);
            start = p;
            continue;
        }
        onMatch(b, e);
        start = e;
    }
}

} // namespace statescope
