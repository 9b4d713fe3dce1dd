// Both config.json dialects, mamba_ssm's defaults for absent keys, Python's non-standard floats,
// and the synthetic prompts of the paper.
#include "Error.h"
#include "models/ModelConfig.h"
#include "runtime/Prompts.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <fstream>

using namespace statescope;

namespace {
QString folderWith(const QTemporaryDir& tmp, const char* name, const std::string& config,
                   const char* weights = "model.safetensors")
{
    const QString dir = tmp.filePath(name);
    QDir().mkpath(dir);
    std::ofstream(dir.toStdString() + "/config.json") << config;
    std::ofstream(dir.toStdString() + "/" + weights) << "";
    return dir;
}
} // namespace

class TestModelConfig : public QObject {
    Q_OBJECT

private slots:
    // state-spaces' mamba2-370m config.json: ssm_cfg names only the layer, the rest are defaults.
    void mambaSsmDefaults()
    {
        QTemporaryDir tmp;
        const QString dir = folderWith(tmp, "m370",
                                       R"({"d_model": 1024, "d_intermediate": 0, "n_layer": 48, "vocab_size": 50277,
            "ssm_cfg": {"layer": "Mamba2"}, "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": true,
            "residual_in_fp32": true, "fused_add_norm": true, "pad_vocab_size_multiple": 16, "tie_embeddings": true})",
                                       "pytorch_model.bin");
        const ModelFolder m = inspectModelFolder(dir.toStdString());
        QCOMPARE(m.layout, std::string("mamba_ssm"));
        QCOMPARE(m.weightsFormat, std::string("pytorch"));
        const Mamba2Config& c = m.mamba2;
        QCOMPARE(c.dState, int64_t(128));
        QCOMPARE(c.headdim, int64_t(64));
        QCOMPARE(c.nHeads(), int64_t(32));
        QCOMPARE(c.inProjRows(), int64_t(4384)); // stuffed-mamba.md §6.1
        QCOMPARE(c.convDim(), int64_t(2304));
        // N_S of the 370M model: 12.91 M, T_forget fit 62.3K (stuffed-mamba.md §5.3)
        QCOMPARE(c.stateSize(), int64_t(48) * (32 * 64 * 128 + 2304 * 3));
        QVERIFY(std::abs(predictedForgetThreshold(c.stateSize()) - 62300) < 100);
    }

    void transformersDialect()
    {
        QTemporaryDir tmp;
        const QString dir = folderWith(tmp, "hf", R"({"model_type": "mamba2", "hidden_size": 768,
            "num_hidden_layers": 24, "vocab_size": 50288, "state_size": 128, "head_dim": 64, "num_heads": 24,
            "n_groups": 1, "time_step_limit": [0.0, Infinity], "layer_norm_epsilon": 1e-5})");
        const ModelFolder m = inspectModelFolder(dir.toStdString());
        QCOMPARE(m.layout, std::string("transformers"));
        QVERIFY(std::isinf(m.mamba2.dtLimitMax));
        QCOMPARE(m.mamba2.inProjRows(), int64_t(3352)); // 130M
    }

    void rejectsWhatItCannotRun_data()
    {
        QTest::addColumn<QString>("config");
        QTest::addColumn<QString>("message");
        QTest::newRow("mamba1") << R"({"d_model": 8, "n_layer": 1, "vocab_size": 8, "ssm_cfg": {}})" << "Mamba1";
        QTest::newRow("rwkv") << R"({"model_type": "rwkv6"})" << "rwkv6";
        QTest::newRow("heads") << R"({"model_type": "mamba2", "hidden_size": 64, "num_heads": 3, "head_dim": 16})"
                               << "num_heads * head_dim";
        QTest::newRow("hybrid") << R"({"d_model": 8, "n_layer": 1, "ssm_cfg": {"layer": "Mamba2"}, "attn_layer_idx": [0]})"
                                << "attn_layer_idx";
        QTest::newRow("not json") << "{\"model_type\": " << "config.json";
        QTest::newRow("bad int") << R"({"model_type": "mamba2", "hidden_size": "big"})" << "hidden_size";
    }
    void rejectsWhatItCannotRun()
    {
        QFETCH(QString, config);
        QFETCH(QString, message);
        QTemporaryDir tmp;
        const QString dir = folderWith(tmp, "m", config.toStdString());
        try {
            inspectModelFolder(dir.toStdString());
            QFAIL("no error");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains(message) && QString(e.what()).contains("config.json"), e.what());
        }
    }

    void prompts()
    {
        QCOMPARE(promptFromSpec("newlines:5"), std::string(5, '\n'));
        QCOMPARE(promptFromSpec("capitals:2"), std::string(kCapitalsSentence) + kCapitalsSentence);
        const PasskeyPrompt p = passkeyPrompt(10, 0.5, 7);
        QCOMPARE(p.passkey.size(), size_t(5));
        QCOMPARE(p.needleBlock, int64_t(4)); // int(0.5 * 9)
        QVERIFY(p.text.find("The passkey is " + p.passkey + ". Remember it. " + p.passkey + " is the passkey.\n") !=
                std::string::npos);
        QVERIFY(p.text.rfind("\nWhat is the pass key? The passkey is") == p.text.size() - 37);
        QVERIFY_THROWS_EXCEPTION(Error, promptFromSpec("newlines:0"));
        QVERIFY_THROWS_EXCEPTION(Error, promptFromSpec("sonnets:3"));
    }
};

QTEST_GUILESS_MAIN(TestModelConfig)
#include "TestModelConfig.moc"
