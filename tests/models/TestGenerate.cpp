// Greedy generation (Runner::generate, issue 11): the chunked prefill and the one-token reference path
// choose the same tokens, a batch decodes as its prompts do alone, the vocabulary limit keeps padding
// rows out, and generating leaves the stream of feed() where it was. On the built-in tiny-forget
// model and its byte-level tokenizer.
#include "Error.h"
#include "runtime/Runner.h"
#include "tokenizers/Tokenizer.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

#include <set>
#include <string>
#include <vector>

using namespace statescope;

namespace {

const std::string kModel = STATESCOPE_RESOURCES_DIR "/models/tiny-forget";

std::vector<int32_t> idsOf(const std::string& text)
{
    return Tokenizer::fromFile(kModel + "/tokenizer.json").encode(text).ids;
}

std::string heldOut(size_t begin, size_t size)
{
    QFile f(QStringLiteral(STATESCOPE_RESOURCES_DIR "/texts/kjv-heldout.txt"));
    if (!f.open(QIODevice::ReadOnly))
        return {};
    const QByteArray b = f.readAll();
    return std::string(b.constData() + begin, std::min<size_t>(size, static_cast<size_t>(b.size()) - begin));
}

std::unique_ptr<Runner> open(int64_t chunkSize, bool reference)
{
    RunOptions o;
    o.chunkSize = chunkSize;
    o.reference = reference;
    o.threads = 2;
    return Runner::open(kModel, o);
}

} // namespace

class TestGenerate : public QObject {
    Q_OBJECT

private slots:
    void chunkedMatchesReference()
    {
        const std::vector<int32_t> prompt = idsOf(heldOut(1000, 300));
        QCOMPARE(prompt.size(), size_t(300)); // byte-level: one token a byte
        const Generation chunked = open(2048, false)->generate({prompt}, 48);
        const Generation small = open(7, false)->generate({prompt}, 48);
        const Generation reference = open(2048, true)->generate({prompt}, 48);
        QCOMPARE(chunked.promptTokens, int64_t(300));
        QCOMPARE(chunked.tokens.size(), size_t(1));
        QCOMPARE(chunked.tokens[0].size(), size_t(48));
        QCOMPARE(small.tokens, chunked.tokens);
        QCOMPARE(reference.tokens, chunked.tokens);
        // A model trained on the KJV continues KJV text with letters, spaces and punctuation, not
        // with a control byte or one token over and over.
        std::set<int32_t> distinct(chunked.tokens[0].begin(), chunked.tokens[0].end());
        QVERIFY2(distinct.size() >= 5, "greedy decoding repeats one or two tokens");
        for (int32_t id : chunked.tokens[0])
            QVERIFY2(id == '\n' || (id >= 32 && id < 127), qPrintable(QString::number(id)));
    }

    // Against an implementation that shares no code: transformers' Mamba2ForCausalLM.generate, greedy
    // in float32, on the g1 fixture (tools/make_generate_fixture.py on the GPU machine; its smallest
    // top-2 logit gap, 0.16, is far above float rounding). Both paths, and chunks that cut the prompt.
    void matchesTransformersGenerate()
    {
        const QString dir = QStringLiteral(STATESCOPE_TEST_DATA_DIR "/mamba2/hf-g1-tied");
        QFile f(dir + "/generate.json");
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QJsonObject j = QJsonDocument::fromJson(f.readAll()).object();
        std::vector<int32_t> prompt, want;
        for (const QJsonValue v : j["prompt_ids"].toArray())
            prompt.push_back(v.toInt());
        for (const QJsonValue v : j["new_ids"].toArray())
            want.push_back(v.toInt());
        QCOMPARE(prompt.size(), size_t(48));
        QCOMPARE(want.size(), size_t(24));
        QVERIFY(j["min_top2_gap"].toDouble() > 1e-2);
        for (const auto& [chunk, reference] : {std::pair<int64_t, bool>{2048, false}, {5, false}, {2048, true}}) {
            RunOptions o;
            o.chunkSize = chunk;
            o.reference = reference;
            o.threads = 2;
            const Generation g = Runner::open(dir.toStdString(), o)->generate({prompt}, 24);
            QCOMPARE(g.tokens.size(), size_t(1));
            QCOMPARE(g.tokens[0], want);
        }
    }

    void batchMatchesSingles()
    {
        auto runner = open(64, false);
        std::vector<std::vector<int32_t>> prompts;
        for (size_t start : {0, 5000, 20000})
            prompts.push_back(idsOf(heldOut(start, 200)));
        const Generation together = runner->generate(prompts, 24);
        QCOMPARE(together.tokens.size(), size_t(3));
        for (size_t i = 0; i < prompts.size(); ++i)
            QCOMPARE(together.tokens[i], runner->generate({prompts[i]}, 24).tokens[0]);
        QVERIFY(together.tokens[0] != together.tokens[1]);
    }

    void vocabularyLimit()
    {
        // Only ids below the limit are chosen: a tokenizer smaller than the padded output layer.
        const Generation g = open(2048, false)->generate({idsOf("And God said")}, 6, 1);
        QCOMPARE(g.tokens[0], std::vector<int32_t>(6, 0));
    }

    void streamUntouched()
    {
        auto runner = open(2048, false);
        const std::vector<int32_t> text = idsOf(heldOut(300, 400));
        const std::vector<int32_t> first(text.begin(), text.begin() + 200),
            rest(text.begin() + 200, text.end());
        runner->feed(first);
        runner->generate({idsOf("In the beginning")}, 8);
        QCOMPARE(runner->position(), int64_t(200));
        const ChunkProbes continued = runner->feed(rest);

        auto fresh = open(2048, false);
        fresh->feed(first);
        const ChunkProbes expected = fresh->feed(rest);
        QCOMPARE(continued.nll, expected.nll);
    }

    void refusesBadPrompts()
    {
        auto runner = open(2048, false);
        QVERIFY_THROWS_EXCEPTION(Error, runner->generate({{1, 2, 3}, {1, 2}}, 4));
        QVERIFY_THROWS_EXCEPTION(Error, runner->generate({{1, 100000}}, 4));
        QVERIFY_THROWS_EXCEPTION(Error, runner->generate({{}}, 4));
        QVERIFY_THROWS_EXCEPTION(Error, runner->generate({{1}}, -1));
        QCOMPARE(runner->generate({{65, 66}}, 0).tokens[0].size(), size_t(0));
    }
};

QTEST_GUILESS_MAIN(TestGenerate)
#include "TestGenerate.moc"
