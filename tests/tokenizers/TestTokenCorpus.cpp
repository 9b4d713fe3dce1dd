// A corpus tokenised in pieces on several threads holds the ids of the whole text tokenised at once,
// is kept in a cache that the next run reads instead of tokenising, and is rebuilt when the text
// changes.
#include "Error.h"
#include "io/FileLock.h"
#include "runtime/TokenCorpus.h"
#include "tokenizers/Tokenizer.h"

#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace statescope;
namespace fs = std::filesystem;

class TestTokenCorpus : public QObject {
    Q_OBJECT

    static std::string readAll(const std::string& path)
    {
        std::ifstream in(path, std::ios::binary);
        std::ostringstream s;
        s << in.rdbuf();
        return s.str();
    }
    static void writeAll(const std::string& path, const std::string& text)
    {
        std::ofstream(path, std::ios::binary) << text;
    }
    static std::vector<int64_t> ids(const TokenCorpus& c)
    {
        std::vector<int64_t> v(static_cast<size_t>(c.size()));
        c.copy(0, c.size(), v.data());
        return v;
    }
    static std::vector<int64_t> wholeText(const Tokenizer& t, const std::string& text)
    {
        const auto e = t.encode(text);
        return {e.ids.begin(), e.ids.end()};
    }

    const std::string m_tokenizerPath = STATESCOPE_RESOURCES_DIR "/tokenizers/gpt-neox-20b.json";
    const Tokenizer m_tok = Tokenizer::fromFile(m_tokenizerPath);
    const std::string m_tokText = readAll(m_tokenizerPath);

    // The awkward text in a fresh folder, tokenised once: its cache file.
    std::string builtCache(const QTemporaryDir& dir, std::string* path)
    {
        *path = dir.path().toStdString() + "/corpus.txt";
        writeAll(*path, awkwardText());
        return TokenCorpus::tokenised(*path, m_tok, m_tokText, "", 2)->cachePath();
    }

    // Lines that end in spaces, blank lines, indents, digits, non-ASCII letters and a word split by a
    // newline: every place where cutting at the wrong byte would change a token.
    static std::string awkwardText()
    {
        std::string text;
        for (int i = 0; i < 200; ++i) {
            text += "Verse " + std::to_string(i) + ": In the beginning  \n";
            text += "was the Word, café naïve — Ωμέγα; 'tis   \n\n";
            text += "  indented\tline\n" + std::to_string(i * 7919) + " apples\n";
            text += "x\n\ny\r\nz \nQ";
        }
        return text;
    }

private slots:
    void piecesGiveTheWholeTextsIds()
    {
        QTemporaryDir dir;
        const std::string path = dir.path().toStdString() + "/corpus.txt";
        const std::string text = awkwardText();
        writeAll(path, text);
        const Tokenizer tok = Tokenizer::fromFile(m_tokenizerPath);
        const std::string tokText = readAll(m_tokenizerPath);
        const std::vector<int64_t> expected = wholeText(tok, text);
        QVERIFY(expected.size() > 4000);

        // Pieces of at least 97 bytes on 3 threads: about 200 cuts.
        auto c = TokenCorpus::tokenised(path, tok, tokText, "", 3, 97);
        QVERIFY(c->built());
        QCOMPARE(ids(*c), expected);
        QVERIFY(fs::path(c->cachePath()).parent_path() == fs::path(path).parent_path());
        QVERIFY(fs::file_size(c->cachePath()) == 32 + 4 * expected.size());

        // The next run reads the cache.
        auto again = TokenCorpus::tokenised(path, tok, tokText, "", 1);
        QVERIFY(!again->built());
        QCOMPARE(again->cachePath(), c->cachePath());
        QCOMPARE(ids(*again), expected);
        std::vector<int64_t> window(5);
        again->copy(100, 5, window.data());
        QVERIFY(std::equal(window.begin(), window.end(), expected.begin() + 100));

        // Another text, another cache: the key holds the text's size and time.
        writeAll(path, text + "Amen.\n");
        auto changed = TokenCorpus::tokenised(path, tok, tokText, "", 2, 97);
        QVERIFY(changed->built());
        QCOMPARE(ids(*changed), wholeText(tok, text + "Amen.\n"));
    }

    void damagedCacheIsRebuilt()
    {
        QTemporaryDir dir;
        std::string path;
        const std::string cache = builtCache(dir, &path);
        fs::resize_file(cache, fs::file_size(cache) - 4); // a copy cut short
        auto c = TokenCorpus::tokenised(path, m_tok, m_tokText, "", 2);
        QVERIFY(c->built());
        QCOMPARE(ids(*c), wholeText(m_tok, awkwardText()));
    }

    void unwritableFolderUsesTheFallback()
    {
        QTemporaryDir dir;
        std::string path;
        const std::string cache = builtCache(dir, &path);
        // A folder where the cache would go: no rename can replace it (not even root's).
        fs::remove(cache);
        fs::create_directories(cache + "/occupied");
        const std::string fallback = dir.path().toStdString() + "/model";
        QVERIFY_THROWS_EXCEPTION(Error, TokenCorpus::tokenised(path, m_tok, m_tokText, "", 2));
        auto c = TokenCorpus::tokenised(path, m_tok, m_tokText, fallback, 2);
        QVERIFY(c->built());
        QCOMPARE(fs::path(c->cachePath()).parent_path().string(), fallback);
        QCOMPARE(ids(*c), wholeText(m_tok, awkwardText()));
        QVERIFY(!TokenCorpus::tokenised(path, m_tok, m_tokText, fallback, 2)->built());
    }

    // A process that finds another building the cache waits for it and then reads that cache, rather
    // than tokenising the text again.
    void waitsForTheProcessThatBuilds()
    {
        QTemporaryDir dir;
        std::string path;
        const std::string cache = builtCache(dir, &path);
        fs::rename(cache, cache + ".aside");
        auto builder = std::make_unique<FileLock>(cache + ".lock", FileLock::Mode::Wait);
        std::shared_ptr<TokenCorpus> read;
        std::thread waiter([&] { read = TokenCorpus::tokenised(path, m_tok, m_tokText, "", 1); });
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        QVERIFY(!read);                      // waiting for the lock
        fs::rename(cache + ".aside", cache); // the builder's cache appears, then its lock goes
        builder.reset();
        waiter.join();
        QVERIFY(read && !read->built());
        QCOMPARE(ids(*read), wholeText(m_tok, awkwardText()));
    }

    void invalidUtf8NamesTheTextAndOffset()
    {
        QTemporaryDir dir;
        const std::string path = dir.path().toStdString() + "/corpus.txt";
        std::string text = awkwardText();
        text[text.size() / 2] = '\xff';
        writeAll(path, text);
        const Tokenizer tok = Tokenizer::fromFile(m_tokenizerPath);
        try {
            TokenCorpus::tokenised(path, tok, readAll(m_tokenizerPath), "", 2, 97);
            QFAIL("invalid UTF-8 was tokenised");
        } catch (const Error& e) {
            QCOMPARE(e.file(), path);
            QVERIFY2(QString(e.what()).contains("from byte"), e.what());
        }
        try {
            TokenCorpus::tokenised(dir.path().toStdString() + "/missing.txt", tok, "", "", 1);
            QFAIL("a missing corpus was read");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("missing.txt"), e.what());
        }
    }

    void bytesAreTheirOwnIds()
    {
        QTemporaryDir dir;
        const std::string path = dir.path().toStdString() + "/corpus.txt";
        writeAll(path, "Ab\xc3\xa9");
        auto c = TokenCorpus::bytes(path);
        QCOMPARE(ids(*c), (std::vector<int64_t>{65, 98, 0xc3, 0xa9}));
        QVERIFY(c->cachePath().empty());
    }

    // The published FNV-1a 64 test vectors (the empty string's hash is the offset basis), so that a
    // fingerprint recorded by one build is the one another build computes for the same text.
    void fingerprintIsFnv1aOfTheContents()
    {
        QTemporaryDir dir;
        const std::string path = dir.path().toStdString() + "/train.txt";
        const std::pair<const char*, const char*> vectors[] = {
            {"", "cbf29ce484222325"}, {"a", "af63dc4c8601ec8c"}, {"foobar", "85944171f73967e8"}};
        for (const auto& [text, hash] : vectors) {
            writeAll(path, text);
            QCOMPARE(QString::fromStdString(TokenCorpus::fingerprint(path)),
                     QString("train.txt, %1 bytes, fnv1a64 %2").arg(std::strlen(text)).arg(hash));
        }
        try {
            TokenCorpus::fingerprint(dir.path().toStdString() + "/missing.txt");
            QFAIL("no error for a missing text");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("missing.txt"), e.what());
        }
    }
};

QTEST_GUILESS_MAIN(TestTokenCorpus)
#include "TestTokenCorpus.moc"
