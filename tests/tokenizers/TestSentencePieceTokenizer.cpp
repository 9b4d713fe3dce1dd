// The SentencePiece-style tokenizer.json of the Llama / Mistral family (issue 13): exact ids, byte
// offsets and decoded text against the Rust `tokenizers` library on five files that cover its
// pipelines (tools/make_spm_tokenizers.py made the files and goldens): Metaspace first / always / never,
// with and without split, the legacy Prepend + Replace normalizer, byte fallback, unk (fused), <s> from
// TemplateProcessing or from tokenizer_config.json, and the two decoder kinds. Then merges made from a
// tokenizer.model's scores, what a file may hold that is not supported, named by field, and the
// dispatch between the two tokenizer.json readers.
#include "Error.h"
#include "tokenizers/SentencePieceTokenizer.h"
#include "tokenizers/Tokenizer.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QtTest>

#include <map>

using namespace statescope;

namespace {

const QString kSpmDir = QStringLiteral(STATESCOPE_TEST_DATA_DIR "/tokenizer/spm");
const std::string kLlamaStyle = STATESCOPE_RESOURCES_DIR "/tokenizers/llama-style.json";

std::string pathOf(const QString& name)
{
    if (name == "llama-style")
        return kLlamaStyle;
    return (kSpmDir + "/" + name + "/tokenizer.json").toStdString();
}

QByteArray readAll(const std::string& path)
{
    QFile f(QString::fromStdString(path));
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll();
}

template <typename F> QString errorOf(F&& f)
{
    try {
        f();
    } catch (const Error& e) {
        return QString::fromStdString(e.what());
    }
    return QString();
}

// llama-style.json with one part of its pipeline replaced.
std::string withPart(const char* key, const char* json)
{
    QJsonObject root = QJsonDocument::fromJson(readAll(kLlamaStyle)).object();
    root[key] = QJsonDocument::fromJson(json).object();
    return QJsonDocument(root).toJson().toStdString();
}

} // namespace

class TestSentencePieceTokenizer : public QObject {
    Q_OBJECT

    std::map<QString, std::unique_ptr<SentencePieceTokenizer>> m_tokenizers;

    const SentencePieceTokenizer& tokenizer(const QString& name)
    {
        auto& t = m_tokenizers[name];
        if (!t)
            t = std::make_unique<SentencePieceTokenizer>(SentencePieceTokenizer::fromFile(pathOf(name)));
        return *t;
    }

private slots:
    void goldens_data()
    {
        QTest::addColumn<QString>("name");
        QTest::addColumn<QByteArray>("text");
        QTest::addColumn<QJsonArray>("ids");
        QTest::addColumn<QJsonArray>("offsets");
        QTest::addColumn<QString>("decoded");
        const QJsonObject g =
            QJsonDocument::fromJson(readAll((kSpmDir + "/goldens.json").toStdString())).object();
        const QJsonArray cases = g["cases"].toArray();
        QVERIFY2(cases.size() >= 100, "tests/data/tokenizer/spm/goldens.json (tools/make_spm_tokenizers.py)");
        for (const auto& v : cases) {
            const QJsonObject c = v.toObject();
            const QString name = c["tokenizer"].toString();
            QTest::newRow(qPrintable(name + "/" + c["text_name"].toString()))
                << name << c["text"].toString().toUtf8() << c["ids"].toArray() << c["offsets"].toArray()
                << c["decoded"].toString();
        }
    }

    // Ids, byte offsets (the template's <s> at (0, 0)) and decode(ids) as the Rust library gives them.
    void goldens()
    {
        QFETCH(QString, name);
        QFETCH(QByteArray, text);
        QFETCH(QJsonArray, ids);
        QFETCH(QJsonArray, offsets);
        QFETCH(QString, decoded);
        const SentencePieceTokenizer& t = tokenizer(name);
        const Encoding e = t.encode(std::string_view(text.constData(), size_t(text.size())));
        std::vector<int32_t> want;
        for (const auto& id : ids)
            want.push_back(id.toInt());
        QCOMPARE(e.ids, want);
        // The Rust spans overlap where several tokens stand for one character (its byte-fallback
        // tokens, a prepended ▁ beside the first letter); ours are those spans made monotone, each
        // starting where the one before ended, as the window's text view needs.
        std::vector<int64_t> wantOffsets;
        int64_t last = 0;
        for (const auto& o : offsets) {
            const int64_t b = std::max<int64_t>(o.toArray()[0].toInteger(), last);
            const int64_t e = std::max<int64_t>(o.toArray()[1].toInteger(), b);
            wantOffsets.push_back(b);
            wantOffsets.push_back(e);
            last = e;
        }
        QCOMPARE(e.offsets, wantOffsets);
        QCOMPARE(QString::fromStdString(t.decode(e.ids)), decoded);
    }

    // tokenizer.model has scores and no merges: the merges made from them are transformers' conversion
    // of the same file (metaspace-first/tokenizer.json), in the same order, and so are the ids of every
    // golden text.
    void mergesFromScores()
    {
        const std::string model = (kSpmDir + "/tokenizer.model").toStdString();
        const QJsonObject made =
            QJsonDocument::fromJson(
                QByteArray::fromStdString(SentencePieceTokenizer::jsonFromSentencePieceModel(model)))
                .object();
        const QJsonObject converted = QJsonDocument::fromJson(readAll(pathOf("metaspace-first"))).object();
        const QJsonArray a = made["model"].toObject()["merges"].toArray();
        const QJsonArray b = converted["model"].toObject()["merges"].toArray();
        QVERIFY(a.size() > 500);
        QCOMPARE(a, b);
        QCOMPARE(made["model"].toObject()["vocab"], converted["model"].toObject()["vocab"]);

        const Tokenizer fromModel = Tokenizer::fromFile(model); // <s> as a Llama tokenizer adds it
        const SentencePieceTokenizer& viaJson = tokenizer("metaspace-first");
        const QJsonObject g =
            QJsonDocument::fromJson(readAll((kSpmDir + "/goldens.json").toStdString())).object();
        int checked = 0;
        for (const auto& v : g["cases"].toArray()) {
            const QJsonObject c = v.toObject();
            if (c["tokenizer"].toString() != "metaspace-first")
                continue;
            const std::string text = c["text"].toString().toStdString();
            QCOMPARE(fromModel.encode(text).ids, viaJson.encode(text).ids);
            ++checked;
        }
        QVERIFY(checked >= 25);

        // A damaged file or a Unigram model is refused naming the file.
        QTemporaryDir tmp;
        const QByteArray bytes = readAll(model);
        QFile cut(tmp.filePath("tokenizer.model"));
        QVERIFY(cut.open(QIODevice::WriteOnly));
        cut.write(bytes.left(bytes.size() / 2));
        cut.close();
        QVERIFY(
            errorOf([&] { Tokenizer::fromFile(cut.fileName().toStdString()); }).contains("tokenizer.model"));
        QFile unigram(tmp.filePath("unigram.model"));
        QVERIFY(unigram.open(QIODevice::WriteOnly));
        unigram.write(
            QByteArray::fromHex("0a070a03e2968110011200")); // one piece, a trainer_spec without model_type
        unigram.close();
        QVERIFY(errorOf([&] { Tokenizer::fromFile(unigram.fileName().toStdString()); }).contains("Unigram"));
    }

    // Where the Rust library gives the text back, so do we, through Tokenizer (which picks this reader).
    void roundTripThroughTokenizer()
    {
        const Tokenizer t = Tokenizer::fromFile(kLlamaStyle);
        QCOMPARE(t.kind(), std::string("SentencePiece-style BPE"));
        const std::string text =
            "In the beginning God created the heaven and the earth.\n\nAnd the earth was without form";
        std::vector<int32_t> ids = t.encode(text).ids;
        QCOMPARE(ids.front(), 1); // <s>
        ids.erase(ids.begin());
        QCOMPARE(t.decode(ids), text);
        // Per token, the text each stands for tiles the input.
        std::string joined;
        for (int32_t id : ids)
            joined += t.tokenBytes(id);
        QCOMPARE(joined, " " + text); // the prepended ▁
        QCOMPARE(Tokenizer::fromFile(STATESCOPE_RESOURCES_DIR "/tokenizers/gpt-neox-20b.json").kind(),
                 std::string("byte-level BPE"));
    }

    void tokenBytes()
    {
        const SentencePieceTokenizer& t = tokenizer("llama-style");
        QCOMPARE(t.tokenBytes(*t.tokenToId("<0x0A>")), std::string("\n"));
        QCOMPARE(t.tokenBytes(*t.tokenToId("\xE2\x96\x81the")), std::string(" the"));
        QCOMPARE(t.tokenBytes(*t.tokenToId("<s>")), std::string("<s>"));
        QVERIFY(errorOf([&] { t.tokenBytes(t.vocabSize()); }).contains("token id"));
    }

    // 200,000 newlines: one word of 200,000 symbols, merged with a heap (not quadratic).
    void manyNewlines()
    {
        const SentencePieceTokenizer& t = tokenizer("llama-style");
        const std::string text(200000, '\n');
        const Encoding e = t.encode(text);
        // <s>, "▁\n" (the prepended ▁ and the first newline), then "\n" per newline (this vocabulary
        // learned "\n" as a character, so it needs no byte fallback).
        QCOMPARE(e.ids.size(), size_t(200001));
        QCOMPARE(t.tokenBytes(e.ids[1]), std::string(" \n"));
        QCOMPARE(e.ids.back(), *t.tokenToId("\n"));
        QCOMPARE(e.offsets[2 * 200000], int64_t(199999));
        QCOMPARE(t.decode(e.ids), "<s> " + text); // Strip sees "<" first, as in the Rust library
    }

    // tokenizer_config.json decides <s> where it says: the metaspace-first file has no template.
    void bosFromTokenizerConfig()
    {
        const std::string json = readAll(pathOf("metaspace-first")).toStdString();
        const SentencePieceTokenizer plain = SentencePieceTokenizer::fromJson(json, "t.json");
        const SentencePieceTokenizer withBos = SentencePieceTokenizer::fromJson(
            json, "t.json", R"({"add_bos_token": true, "bos_token": "<s>"})");
        const SentencePieceTokenizer noBos = SentencePieceTokenizer::fromJson(
            readAll(pathOf("legacy")).toStdString(), "t.json", R"({"add_bos_token": false})");
        QCOMPARE(plain.encode("the").ids.size() + 1, withBos.encode("the").ids.size());
        QCOMPARE(withBos.encode("the").ids.front(), 1);
        QVERIFY(noBos.encode("the").ids.front() != 1);
        QVERIFY(errorOf([&] {
                    SentencePieceTokenizer::fromJson(json, "dir/t.json",
                                                     R"({"add_bos_token": true, "bos_token": "<bos>"})");
                }).contains("bos_token"));
    }

    // What is not supported is refused naming the field, never silently tokenized otherwise.
    void unsupported()
    {
        auto refuse = [](const std::string& json, const char* field) {
            const QString e = errorOf([&] { SentencePieceTokenizer::fromJson(json, "tok.json"); });
            QVERIFY2(e.contains("tok.json") && e.contains(field), qPrintable(e));
        };
        refuse(withPart("normalizer", R"({"type": "NFKC"})"), "normalizer.type");
        refuse(
            withPart("normalizer", R"({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "▁"})"),
            "normalizer.pattern");
        refuse(withPart("pre_tokenizer", R"({"type": "Whitespace"})"), "pre_tokenizer.type");
        refuse(withPart("decoder", R"({"type": "WordPiece"})"), "decoder.type");
        refuse(withPart("pre_tokenizer", R"({"type": "Metaspace", "prepend_scheme": "sometimes"})"),
               "prepend_scheme");
        refuse(withPart("post_processor", R"({"type": "BertProcessing"})"), "post_processor.type");
        refuse("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", "model.merges");
        refuse("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}",
               "model.merges[0]");
        refuse("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": "
               "\"<unk>\"}}",
               "model.unk_token");
        refuse("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "model.type");
        refuse("{\"model\": [", "malformed JSON");
        const SentencePieceTokenizer& t = tokenizer("llama-style");
        QVERIFY(errorOf([&] { t.encode(std::string_view("a\xff", 2)); }).contains("not valid UTF-8"));
    }
};

QTEST_GUILESS_MAIN(TestSentencePieceTokenizer)
#include "TestSentencePieceTokenizer.moc"
