// The RWKV World tokenizer (issue 12): the shipped vocabulary loads; greedy longest match, checked on
// cases looked up by hand in the vocabulary file; multi-byte characters, bytes that are not UTF-8 and
// end-of-text; exact round trips with tiling offsets on 1 MB of mixed text; the Python literals of
// the file; a broken vocabulary refused with its line.
#include "Error.h"
#include "tokenizers/WorldTokenizer.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

#include <random>

using namespace statescope;

namespace {

const std::string kVocab = STATESCOPE_RESOURCES_DIR "/tokenizers/rwkv-world-vocab-v20230424.txt";

std::vector<int32_t> ids(const WorldTokenizer& t, std::string_view s)
{
    return t.encode(s).ids;
}

} // namespace

class TestWorldTokenizer : public QObject {
    Q_OBJECT

    std::unique_ptr<WorldTokenizer> m_tok;

private slots:
    void initTestCase()
    {
        m_tok = std::make_unique<WorldTokenizer>(WorldTokenizer::fromFile(kVocab));
        QCOMPARE(m_tok->vocabSize(), 65530); // ids 1..65529, and 0 for end-of-text
    }

    // Ids from the vocabulary file: 73 'H', 1095 'He', 6003 'Hel', 33155 'Hello', 40213 ' world',
    // 261 '\n\n', 10464 '你', 11685 '好', 28335 '😂', 3319 b'\xf0\x9f', 129 b'\x80', 153 b'\x98',
    // 255 b'\xfe', 256 b'\xff', 1 '\x00', 2503 'é'.
    void longestMatchByHand()
    {
        QCOMPARE(ids(*m_tok, "Hello world"), std::vector<int32_t>({33155, 40213}));
        QCOMPARE(ids(*m_tok, "Hel"), std::vector<int32_t>({6003}));
        QCOMPARE(ids(*m_tok, "He"), std::vector<int32_t>({1095}));
        QCOMPARE(ids(*m_tok, "H"), std::vector<int32_t>({73}));
        QCOMPARE(ids(*m_tok, "\n\n"), std::vector<int32_t>({261}));
        QCOMPARE(ids(*m_tok, "é"), std::vector<int32_t>({2503}));
        // Two characters with no token together; an emoji with one; one without, in byte pieces.
        const Encoding chinese = m_tok->encode("你好");
        QCOMPARE(chinese.ids, std::vector<int32_t>({10464, 11685}));
        QCOMPARE(chinese.offsets, std::vector<int64_t>({0, 3, 3, 6}));
        QCOMPARE(ids(*m_tok, "😂"), std::vector<int32_t>({28335}));
        QCOMPARE(ids(*m_tok, "😀"), std::vector<int32_t>({3319, 153, 129}));
        // Not UTF-8 at all, and a NUL byte: still tokens, one byte each.
        QCOMPARE(ids(*m_tok, std::string_view("\xff\xfe\0", 3)), std::vector<int32_t>({256, 255, 1}));
        QCOMPARE(ids(*m_tok, ""), std::vector<int32_t>());
    }

    // Against tools/make_world_tokenizer_goldens.py: Python's ast reads the vocabulary there and a
    // plain longest-prefix search encodes; 8 texts, 10,132 ids.
    void matchesIndependentGoldens()
    {
        QFile f(STATESCOPE_TEST_DATA_DIR "/tokenizer/world-goldens.json");
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QJsonArray cases = QJsonDocument::fromJson(f.readAll()).object()["cases"].toArray();
        QCOMPARE(cases.size(), 8);
        int total = 0;
        for (const QJsonValue& c : cases) {
            const QByteArray text = QByteArray::fromBase64(c["text_b64"].toString().toLatin1());
            std::vector<int32_t> want;
            for (const QJsonValue& id : c["ids"].toArray())
                want.push_back(id.toInt());
            QCOMPARE(ids(*m_tok, std::string_view(text.constData(), static_cast<size_t>(text.size()))), want);
            total += static_cast<int>(want.size());
        }
        QCOMPARE(total, 10132);
    }

    void decodeAndEndOfText()
    {
        QCOMPARE(m_tok->decode({33155, 40213}), std::string("Hello world"));
        QCOMPARE(m_tok->decode({WorldTokenizer::kEndOfText, 73}), std::string("H"));
        QCOMPARE(m_tok->tokenBytes(3319), std::string("\xf0\x9f"));
        QVERIFY_THROWS_EXCEPTION(Error, m_tok->decode({70000}));
        QVERIFY_THROWS_EXCEPTION(Error, m_tok->decode({-1}));
    }

    // 1 MB of English, the GPT-NeoX vocabulary's JSON, the World vocabulary's own lines (many scripts)
    // and random bytes:
    // decoding gives the bytes back, and the offsets tile the input and hold each token's bytes.
    void roundTrips()
    {
        std::string text;
        for (const char* name : {"/texts/kjv-heldout.txt", "/tokenizers/gpt-neox-20b.json",
                                 "/tokenizers/rwkv-world-vocab-v20230424.txt"}) {
            QFile f(QString(STATESCOPE_RESOURCES_DIR) + name);
            QVERIFY(f.open(QIODevice::ReadOnly));
            text += f.read(450000).toStdString();
        }
        std::mt19937 rng(5);
        for (int i = 0; i < 100000; ++i)
            text += static_cast<char>(rng() & 0xFF);
        QVERIFY(text.size() > 1000000);
        const Encoding e = m_tok->encode(text);
        QCOMPARE(m_tok->decode(e.ids), text);
        QCOMPARE(e.offsets.size(), 2 * e.ids.size());
        int64_t at = 0;
        for (size_t i = 0; i < e.ids.size(); ++i) {
            QCOMPARE(e.offsets[2 * i], at);
            at = e.offsets[2 * i + 1];
            QCOMPARE(text.substr(static_cast<size_t>(e.offsets[2 * i]),
                                 static_cast<size_t>(at - e.offsets[2 * i])),
                     m_tok->tokenBytes(e.ids[i]));
        }
        QCOMPARE(at, static_cast<int64_t>(text.size()));
        QVERIFY(e.ids.size() < text.size() / 2); // words, not bytes
    }

    void pythonLiterals()
    {
        QCOMPARE(parsePythonLiteral("'\\x85'", "t"), std::string("\xc2\x85")); // str: U+0085
        QCOMPARE(parsePythonLiteral("b'\\x85'", "t"), std::string("\x85"));    // bytes: the byte
        QCOMPARE(parsePythonLiteral("'\\u2002'", "t"), std::string("\xe2\x80\x82"));
        QCOMPARE(parsePythonLiteral("'\\U0001f602'", "t"), std::string("😂"));
        QCOMPARE(parsePythonLiteral("\"'\"", "t"), std::string("'"));
        QCOMPARE(parsePythonLiteral("'\\'\\\\\\t\\n'", "t"), std::string("'\\\t\n"));
        QCOMPARE(parsePythonLiteral("'你'", "t"), std::string("你"));
        for (const char* bad : {"'abc", "abc", "'a'b'", "'\\q'", "'\\x4'", "b'\\u1234'", "'\\ud800'", "'\\'"})
            QVERIFY_THROWS_EXCEPTION(Error, parsePythonLiteral(bad, "t"));
    }

    void brokenVocabulary()
    {
        std::string vocab;
        for (int b = 0; b < 256; ++b) {
            char line[32];
            std::snprintf(line, sizeof line, "%d b'\\x%02x' 1\n", b + 1, b);
            vocab += line;
        }
        const WorldTokenizer bytes = WorldTokenizer::fromText(vocab, "bytes.txt");
        QCOMPARE(ids(bytes, "ab"), std::vector<int32_t>({98, 99}));
        auto refused = [&](const std::string& extra, const char* expect) {
            try {
                WorldTokenizer::fromText(vocab + extra, "v.txt");
                QFAIL(qPrintable(QString("accepted: ") + QString::fromStdString(extra)));
            } catch (const Error& e) {
                QVERIFY2(QString(e.what()).contains(expect), e.what());
            }
        };
        refused("300 'ab' 3\n", "v.txt:257");    // the length disagrees
        refused("5 'ab' 2\n", "5 again");        // an id twice
        refused("300 'ab'\n", "v.txt:257");      // no length
        refused("x 'ab' 2\n", "ID REPR LENGTH"); // no id
        refused("300 \"ab' 2\n", "matching quotes");
        try {
            WorldTokenizer::fromText("1 'a' 1\n", "short.txt");
            QFAIL("a vocabulary without every byte was accepted");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("each of the 256 bytes"), e.what());
        }
    }
};

QTEST_GUILESS_MAIN(TestWorldTokenizer)
#include "TestWorldTokenizer.moc"
