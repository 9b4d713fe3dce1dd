#pragma once

#include "runtime/Input.h"

#include <QWidget>

#include <atomic>
#include <memory>
#include <optional>

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QPlainTextEdit;
class QSpinBox;
class QTimer;

namespace statescope {

// The text a run reads: typed, opened from a .txt file, or made by one of the paper's generators.
// Its token count is computed off the GUI thread with the current tokenizer.
class InputPanel : public QWidget {
    Q_OBJECT
public:
    enum class Generator { Newlines, Capitals, Passkey };

    // Longer texts are kept whole but shown as a read-only preview of this many characters or
    // lines: a text editor with a million lines takes seconds and hundreds of MB to lay out.
    static constexpr int kPreviewChars = 200'000;
    static constexpr int kPreviewLines = 5'000;

    explicit InputPanel(QWidget* parent = nullptr);

    QString text() const;
    bool isPreview() const { return !m_fullText.isNull(); }
    QString description() const { return m_description; } // for people: the file, generator or "typed text"
    // Typed text, labelled with description.
    void setText(const QString& text, const QString& description);
    // The input as the engine's prepareInput() reads it: the file the text came from, or the
    // generator that made it, while the editor holds it unchanged; else the editor's text.
    InputRequest request() const;
    // Fills the editor from a generator spec ("newlines:N", "capitals:N", "passkey:B:D:S").
    bool setPrompt(const QString& spec, QString* error);
    // Reads a UTF-8 text file; false with *error set if it cannot.
    bool loadFile(const QString& path, QString* error);
    // Fills the editor from a generator; for Passkey `count` is the length in tokens.
    bool generate(Generator kind, qint64 count, double depth, quint64 seed, QString* error);

    // Where the needle sentence of a passkey prompt lies in the UTF-8 text: bytes [begin, end), and
    // the passkey; only while the editor holds a passkey generator's text unchanged.
    struct Needle {
        qint64 begin = 0;
        qint64 end = 0;
        QString passkey;
    };
    std::optional<Needle> needle() const { return m_needle; }
    // A passkey prompt made elsewhere (a sweep's sample): the text, with its needle found by key.
    void setPasskeyText(const QString& text, const QString& passkey, const QString& description);

    void setTokenizer(const QString& path); // "" = none: no count shown
    QString tokenizerPath() const { return m_tokenizerPath; }
    qint64 tokenCount() const { return m_tokenCount; } // -1 while counting or unknown

signals:
    void tokenCountChanged(qint64 count);
    void errorOccurred(const QString& message);

private:
    void onGenerateClicked();
    void onOpenClicked();
    void updateGeneratorControls();
    void scheduleCount();
    void startCount();

    QPlainTextEdit* m_editor;
    QComboBox* m_generator;
    QSpinBox* m_count;
    QDoubleSpinBox* m_depth;
    QSpinBox* m_seed;
    QLabel* m_countLabel;
    QLabel* m_depthLabel;
    QLabel* m_seedLabel;
    QLabel* m_previewLabel;
    QTimer* m_countTimer;
    QString m_description;
    QString m_fullText;   // null unless the editor shows a preview
    QString m_sourcePath; // the file the text was read from, absolute; empty once edited
    QString m_promptSpec; // the generator spec the text was made from; empty once edited
    std::optional<Needle> m_needle;
    QString m_tokenizerPath;
    qint64 m_tokenCount = -1;
    bool m_settingText = false;
    std::shared_ptr<std::atomic<int>> m_generation;
};

} // namespace statescope
