// Passkey retrieval (issue 11): the seed's template measured in tokens, checked against a prompt
// written out by hand; the scoring, through a scripted model whose every answer is known (a 1-token
// loop); the results file and its resume.
#include "Error.h"
#include "io/SafeTensors.h"
#include "io/SafeTensorsWriter.h"
#include "runtime/Passkey.h"
#include "runtime/Runner.h"
#include "tokenizers/Tokenizer.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

using namespace statescope;

namespace {

const std::string kByteTokenizer = STATESCOPE_RESOURCES_DIR "/models/tiny-forget/tokenizer.json";

// A Mamba-2 whose greedy answer is always `token`: every mixer writes nothing, so the last hidden
// state is the final norm of the input's embedding; every embedding row points one way, so that
// norm is one constant vector h; and the tied output layer's row `token` is twice as long as the
// others along it, so its logit h.E[token] is the largest.
std::string writeOneTokenModel(const std::string& dir, int32_t token)
{
    const std::string config = Runner::shapeConfig(
        "mamba2", "tiny", R"({"vocab_size": 256, "hidden_size": 32, "num_hidden_layers": 2})");
    Runner::writeRandomModel("mamba2", config, 3, dir);
    const std::string weights = dir + "/model.safetensors";
    SafeTensorsWriter out;
    std::vector<std::vector<float>> keep;
    keep.reserve(64);
    for (const RawTensor& t : readSafeTensors(weights)) {
        std::vector<float> v(static_cast<size_t>(t.numel()));
        std::memcpy(v.data(), t.data, v.size() * sizeof(float));
        if (t.name == "backbone.embeddings.weight") {
            const int64_t width = t.shape[1];
            std::fill(v.begin(), v.end(), 1.0f);
            std::fill(v.begin() + token * width, v.begin() + (token + 1) * width, 2.0f);
        } else if (t.name.find("out_proj") != std::string::npos) {
            std::fill(v.begin(), v.end(), 0.0f);
        } else if (t.name.find("norm") != std::string::npos) {
            std::fill(v.begin(), v.end(), 1.0f);
        }
        keep.push_back(std::move(v));
        out.add(t.name, DType::Float32, t.shape, keep.back().data());
    }
    out.write(weights);
    std::filesystem::copy_file(kByteTokenizer, dir + "/tokenizer.json");
    return dir;
}

} // namespace

class TestPasskey : public QObject {
    Q_OBJECT

private slots:
    // Written out by hand from stuffed-mamba.md §3.7 for the byte-level tokenizer (one token a
    // byte): prefix 93 tokens, suffix 37, a block 90. Length 500: (500 - 130) // 90 = 4 blocks.
    // Sample 2 of 4: depth 0.625, needle at int(0.625 * 3) = 1.
    void templateByHand()
    {
        const Tokenizer tok = Tokenizer::fromFile(kByteTokenizer);
        const PasskeySample s = makePasskeySample(tok, 500, 2, 4, 11);
        QCOMPARE(s.depth, 0.625);
        QCOMPARE(s.blocks, int64_t(4));
        QCOMPARE(s.needleBlock, int64_t(1));
        QCOMPARE(s.passkey.size(), size_t(5));
        const std::string block =
            "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n";
        const std::string expected = "There is an important info hidden inside a lot of irrelevant text. "
                                     "Find it and memorize it.\n\n" +
                                     block + "The passkey is " + s.passkey + ". Remember it. " + s.passkey +
                                     " is the passkey.\n" + block + block +
                                     "\nWhat is the pass key? The passkey is";
        QCOMPARE(s.text, expected);
        QCOMPARE(s.ids.size(), expected.size());
        for (size_t i = 0; i < expected.size(); ++i)
            QCOMPARE(s.ids[i], int32_t(static_cast<unsigned char>(expected[i])));
        // The needle sentence: bytes 93 + 90 = 183 to 183 + 56 (its newline left out).
        QCOMPARE(s.needleFirst, int64_t(183));
        QCOMPARE(s.needleLast, int64_t(183 + 56 - 1));
        // Depths (idx + 0.5) / n, and keys fixed by (seed, length, index).
        QCOMPARE(makePasskeySample(tok, 500, 0, 4, 11).needleBlock, int64_t(0));
        QCOMPARE(makePasskeySample(tok, 500, 3, 4, 11).needleBlock, int64_t(2));
        QCOMPARE(passkeyFor(11, 500, 2), s.passkey);
        QVERIFY(passkeyFor(11, 500, 2) != passkeyFor(12, 500, 2));
        QVERIFY_THROWS_EXCEPTION(Error, makePasskeySample(tok, 200, 0, 4, 11)); // no room for a block
    }

    void lengthsAndScoring()
    {
        QCOMPARE(parseLengths("1K:4K:1K"), (std::vector<int64_t>{1024, 2048, 3072, 4096}));
        QCOMPARE(parseLengths("512,1K,512"), (std::vector<int64_t>{512, 1024}));
        QCOMPARE(parseLengths("2K"), (std::vector<int64_t>{2048}));
        QVERIFY_THROWS_EXCEPTION(Error, parseLengths("4K:1K"));
        QVERIFY_THROWS_EXCEPTION(Error, parseLengths("ten"));
        QVERIFY(passkeyCorrect(" 04217.", "04217"));
        QVERIFY(!passkeyCorrect(" 0421", "04217"));
        QVERIFY(!passkeyCorrect("4217", "04217"));
    }

    // A model that answers '7' whatever it reads: "77777" is right exactly when the key is 77777.
    void scriptedModelScores()
    {
        QTemporaryDir tmp;
        const std::string model = writeOneTokenModel(tmp.path().toStdString() + "/seven", '7');
        const int64_t length = 400;
        uint64_t seed = 0;
        while (passkeyFor(seed, length, 0) != "77777")
            ++seed;
        PasskeySettings settings;
        settings.model = model;
        settings.tokenizer = kByteTokenizer;
        settings.lengths = {length, 600};
        settings.samples = 2;
        settings.seed = seed;
        settings.batch = 2;
        RunOptions o;
        o.threads = 2;
        auto runner = Runner::open(model, o);
        const Tokenizer tok = Tokenizer::fromFile(kByteTokenizer);
        std::vector<PasskeyResult> results;
        int calls = 0;
        runPasskeySweep(*runner, tok, settings, &results,
                        [&](const std::vector<PasskeyResult>&) { ++calls; });
        QCOMPARE(calls, 2);
        QCOMPARE(results.size(), size_t(4));
        for (const PasskeyResult& r : results) {
            QCOMPARE(QString::fromStdString(r.prediction), QStringLiteral("77777"));
            QCOMPARE(r.correct, r.passkey == "77777");
        }
        QVERIFY(results[0].correct);
        QCOMPARE(results[0].length, length);
        QCOMPARE(results[0].index, int64_t(0));
        const std::vector<double> grid = passkeyGrid(results, settings.lengths, 2);
        QCOMPARE(grid[0], 1.0);
        QCOMPARE(grid[1], results[1].correct ? 1.0 : 0.0);

        // The file keeps every prediction; a sweep with more lengths resumes from it.
        const std::string file = tmp.path().toStdString() + "/passkey.h5";
        writePasskeyFile(file, settings, results);
        std::vector<PasskeyResult> back = readPasskeyFile(file, settings);
        QCOMPARE(back.size(), results.size());
        for (size_t i = 0; i < back.size(); ++i) {
            QCOMPARE(back[i].prediction, results[i].prediction);
            QCOMPARE(back[i].passkey, results[i].passkey);
            QCOMPARE(back[i].correct, results[i].correct);
            QCOMPARE(back[i].needleFirst, results[i].needleFirst);
        }
        settings.lengths.push_back(800);
        calls = 0;
        runPasskeySweep(*runner, tok, settings, &back, [&](const std::vector<PasskeyResult>&) { ++calls; });
        QCOMPARE(calls, 1); // only the new length ran
        QCOMPARE(back.size(), size_t(6));
        QCOMPARE(back[4].length, int64_t(800));

        // Another seed is another sweep: refused, naming the setting.
        PasskeySettings other = settings;
        other.seed = seed + 1;
        try {
            readPasskeyFile(file, other);
            QFAIL("a file of another seed was resumed");
        } catch (const Error& e) {
            QVERIFY2(std::string(e.what()).find("seed") != std::string::npos, e.what());
        }
        // Read as it is, the file gives its own settings back, the lengths of the sweep included.
        const PasskeySweep sweep = readPasskeySweep(file);
        QCOMPARE(sweep.settings.model, settings.model);
        QCOMPARE(sweep.settings.tokenizer, settings.tokenizer);
        QCOMPARE(sweep.settings.seed, seed);
        QCOMPARE(sweep.settings.samples, settings.samples);
        QCOMPARE(sweep.settings.maxNewTokens, settings.maxNewTokens);
        QCOMPARE(sweep.settings.mitigation, settings.mitigation);
        QCOMPARE(sweep.settings.lengths, std::vector<int64_t>({length, 600}));
        QCOMPARE(sweep.results.size(), size_t(4));
        QCOMPARE(sweep.results[3].prediction, results[3].prediction);
        // Anything else is refused, naming the file.
        const std::string text = tmp.path().toStdString() + "/text.h5";
        std::ofstream(text) << "not HDF5";
        try {
            readPasskeySweep(text);
            QFAIL("a text file was read as a passkey sweep");
        } catch (const Error& e) {
            QVERIFY2(std::string(e.what()).find("text.h5") != std::string::npos, e.what());
        }
        QVERIFY_THROWS_EXCEPTION(Error, readPasskeySweep(tmp.path().toStdString() + "/none.h5"));

        // One sweep at a time per file.
        const PasskeyFileLock lock(file);
        QVERIFY_THROWS_EXCEPTION(Error, [&] { const PasskeyFileLock second(file); }());
    }
};

QTEST_GUILESS_MAIN(TestPasskey)
#include "TestPasskey.moc"
