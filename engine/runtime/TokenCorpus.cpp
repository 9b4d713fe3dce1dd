#include "runtime/TokenCorpus.h"

#include "Error.h"
#include "io/AtomicFile.h"
#include "io/FileLock.h"
#include "io/MappedFile.h"
#include "tokenizers/Tokenizer.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <ostream>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace statescope {

namespace {

constexpr char kMagic[8] = {'S', 'S', 'T', 'O', 'K', 'v', '1', '\n'};
constexpr size_t kHeaderBytes = 32; // magic, key, count, text size: keeps the ids 4-byte aligned

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 14695981039346656037ull)
{
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

bool isAsciiAlnum(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Where the text may be cut without changing its tokens: at p with "X\nW" before and at it, X a
// printable ASCII character and W an ASCII letter or digit. The GPT-2 / NeoX split then ends a
// pre-token after X and after the newline, whichever side of the cut it is read from (a space before
// the newline would join it at the end of a piece), and no NFC composition crosses a newline.
std::vector<int64_t> cutPoints(const uint8_t* text, int64_t size, int64_t pieceBytes)
{
    std::vector<int64_t> cuts{0};
    for (int64_t p = pieceBytes; p < size;) {
        while (p < size && !(p >= 2 && text[p - 1] == '\n' && isAsciiAlnum(text[p]) && text[p - 2] < 0x80 &&
                             text[p - 2] > 0x20 && text[p - 2] != 0x7f))
            ++p;
        if (p >= size)
            break;
        cuts.push_back(p);
        p += pieceBytes;
    }
    cuts.push_back(size);
    return cuts;
}

} // namespace

std::shared_ptr<TokenCorpus> TokenCorpus::bytes(const std::string& path)
{
    auto c = std::shared_ptr<TokenCorpus>(new TokenCorpus);
    c->m_textPath = path;
    c->m_file = MappedFile::open(path);
    c->m_bytes = c->m_file->data();
    c->m_count = static_cast<int64_t>(c->m_file->size());
    return c;
}

std::string TokenCorpus::fingerprint(const std::string& path)
{
    const auto file = MappedFile::open(path);
    char line[64];
    std::snprintf(line, sizeof line, ", %llu bytes, fnv1a64 %016llx",
                  static_cast<unsigned long long>(file->size()),
                  static_cast<unsigned long long>(fnv1a(file->data(), file->size())));
    return fs::path(path).filename().string() + line;
}

std::shared_ptr<TokenCorpus> TokenCorpus::tokenised(const std::string& path, const Tokenizer& tokenizer,
                                                    const std::string& tokenizerText,
                                                    const std::string& fallbackDir, int threads,
                                                    int64_t pieceBytes)
{
    std::error_code ec;
    const uint64_t textSize = fs::file_size(path, ec);
    if (ec)
        throw Error(path, "cannot read the corpus: " + ec.message());
    const auto mtime = fs::last_write_time(path, ec).time_since_epoch().count();
    uint64_t key = fnv1a(tokenizerText.data(), tokenizerText.size());
    key = fnv1a(&textSize, sizeof textSize, key);
    key = fnv1a(&mtime, sizeof mtime, key);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(key));
    const std::string name = fs::path(path).filename().string() + ".tokens-" + hex;
    const std::string besideText = (fs::path(path).parent_path() / name).string();
    const std::string inFallback = (fs::path(fallbackDir) / name).string();

    auto c = std::shared_ptr<TokenCorpus>(new TokenCorpus);
    c->m_textPath = path;
    // A cache is used when its header matches; anything else (another version, a truncated copy) is
    // rebuilt rather than trusted.
    auto tryOpen = [&](const std::string& cache) {
        if (!fs::is_regular_file(cache, ec))
            return false;
        auto file = MappedFile::open(cache);
        if (file->size() < kHeaderBytes || std::memcmp(file->data(), kMagic, 8) != 0)
            return false;
        uint64_t header[3];
        std::memcpy(header, file->data() + 8, sizeof header);
        if (header[0] != key || header[2] != textSize || file->size() != kHeaderBytes + 4 * header[1])
            return false;
        c->m_file = file;
        c->m_cachePath = cache;
        c->m_ids = reinterpret_cast<const uint32_t*>(file->data() + kHeaderBytes);
        c->m_count = static_cast<int64_t>(header[1]);
        return true;
    };
    auto cached = [&] { return tryOpen(besideText) || (!fallbackDir.empty() && tryOpen(inFallback)); };
    if (cached())
        return c;
    // The shards of a sweep start together: one builds the cache while the others wait for it, rather
    // than each tokenising the whole text on the same cores.
    if (!fallbackDir.empty())
        fs::create_directories(fallbackDir, ec);
    std::vector<std::string> places{besideText};
    if (!fallbackDir.empty())
        places.push_back(inFallback);
    std::unique_ptr<FileLock> lock;
    for (size_t i = 0; i < places.size() && !lock; ++i) {
        try {
            lock = std::make_unique<FileLock>(places[i] + ".lock", FileLock::Mode::Wait);
        } catch (const Error&) { // a read-only folder: try the next, or build unlocked (a safe race)
        }
    }
    if (cached())
        return c;

    const auto text = MappedFile::open(path);
    const auto* bytes = text->data();
    const int64_t size = static_cast<int64_t>(text->size());
    const std::vector<int64_t> cuts = cutPoints(bytes, size, std::max<int64_t>(1, pieceBytes));
    const size_t pieces = cuts.size() - 1;
    std::vector<std::vector<uint32_t>> ids(pieces);
    std::atomic<size_t> next{0};
    std::mutex failureMutex;
    std::string failure;
    auto work = [&] {
        for (size_t i = next++; i < pieces; i = next++) {
            try {
                const std::string_view piece(reinterpret_cast<const char*>(bytes) + cuts[i],
                                             static_cast<size_t>(cuts[i + 1] - cuts[i]));
                std::vector<uint32_t>& out = ids[i];
                out.reserve(piece.size() / 3);
                tokenizer.encode(piece, [&](int32_t id, int64_t, int64_t) { out.push_back(uint32_t(id)); });
            } catch (const std::exception& e) {
                std::lock_guard<std::mutex> lock(failureMutex);
                if (failure.empty())
                    failure = "cannot tokenise the text from byte " + std::to_string(cuts[i]) + " on (" +
                              errorLine(e) + ")";
                next = pieces; // the others stop at their next piece
            }
        }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < std::max(1, threads) && size_t(t) < pieces; ++t)
        pool.emplace_back(work);
    work();
    for (auto& t : pool)
        t.join();
    if (!failure.empty())
        throw Error(path, failure);

    uint64_t count = 0;
    for (const auto& v : ids)
        count += v.size();
    auto write = [&](std::ostream& out) {
        const uint64_t header[3] = {key, count, textSize};
        out.write(kMagic, 8);
        out.write(reinterpret_cast<const char*>(header), sizeof header);
        for (const auto& v : ids)
            out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(4 * v.size()));
    };
    std::string cache = besideText;
    try {
        writeSharedFileAtomically(cache, write);
    } catch (const Error&) {
        if (fallbackDir.empty())
            throw;
        cache = inFallback;
        writeSharedFileAtomically(cache, write);
    }
    if (!tryOpen(cache))
        throw Error(cache, "the token cache just written does not read back");
    c->m_built = true;
    return c;
}

void TokenCorpus::copy(int64_t start, int64_t n, int64_t* out) const
{
    if (m_bytes) {
        for (int64_t t = 0; t < n; ++t)
            out[t] = m_bytes[start + t];
    } else {
        for (int64_t t = 0; t < n; ++t)
            out[t] = m_ids[start + t];
    }
}

} // namespace statescope
