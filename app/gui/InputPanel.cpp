#include "InputPanel.h"

#include "Error.h"
#include "Resources.h"
#include "runtime/Prompts.h"
#include "tokenizers/Tokenizer.h"

#include <QComboBox>
#include <QCoreApplication>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLocale>
#include <QPlainTextEdit>
#include <QPointer>
#include <QPushButton>
#include <QRegularExpression>
#include <QSpinBox>
#include <QThreadPool>
#include <QTimer>
#include <QVBoxLayout>

namespace statescope {

namespace {

// The needle sentence ("The passkey is K. Remember it. K is the passkey.") in a passkey prompt: from
// its first words to the end of its last, found by the key (the question at the end repeats only the
// first words, without the key).
std::optional<InputPanel::Needle> findNeedle(const std::string& text, const std::string& passkey)
{
    const std::string opening = "The passkey is " + passkey + ".";
    const std::string closing = passkey + " is the passkey.";
    const size_t begin = text.find(opening);
    if (passkey.empty() || begin == std::string::npos)
        return std::nullopt;
    const size_t last = text.find(closing, begin + opening.size());
    if (last == std::string::npos)
        return std::nullopt;
    return InputPanel::Needle{qint64(begin), qint64(last + closing.size()), QString::fromStdString(passkey)};
}

} // namespace

InputPanel::InputPanel(QWidget* parent)
    : QWidget(parent), m_editor(new QPlainTextEdit(this)), m_generator(new QComboBox(this)),
      m_count(new QSpinBox(this)), m_depth(new QDoubleSpinBox(this)), m_seed(new QSpinBox(this)),
      m_countLabel(new QLabel(this)), m_depthLabel(new QLabel(tr("Depth"), this)),
      m_seedLabel(new QLabel(tr("Seed"), this)), m_previewLabel(new QLabel(this)),
      m_countTimer(new QTimer(this)), m_generation(std::make_shared<std::atomic<int>>(0))
{
    setObjectName("inputPanel");
    m_editor->setObjectName("inputEditor");
    m_editor->setPlaceholderText(
        tr("Type or paste the text the model reads, open a .txt file, or generate one"));
    m_editor->setLineWrapMode(QPlainTextEdit::WidgetWidth);
    // Files dropped here go to the window, which knows what they are.
    m_editor->setAcceptDrops(false);
    m_editor->viewport()->setAcceptDrops(false);

    m_generator->addItem(tr("Newlines × N"), int(Generator::Newlines));
    m_generator->addItem(tr("Capital-cities sentence × N"), int(Generator::Capitals));
    m_generator->addItem(tr("Passkey haystack (tokens)"), int(Generator::Passkey));
    m_generator->setToolTip(
        tr("The synthetic inputs of the state-collapse experiments of Chen et al. (2025)"));
    m_count->setRange(1, 10'000'000);
    m_count->setValue(4096);
    m_count->setGroupSeparatorShown(true);
    m_depth->setRange(0.0, 1.0);
    m_depth->setSingleStep(0.1);
    m_depth->setValue(0.5);
    m_depth->setToolTip(tr("Where the needle sits: 0 = start of the haystack, 1 = end"));
    m_seed->setRange(0, 1'000'000);
    m_seed->setToolTip(tr("Seed of the five-digit passkey"));

    auto* open = new QPushButton(tr("Open .txt…"), this);
    auto* clear = new QPushButton(tr("Clear"), this);
    connect(clear, &QPushButton::clicked, this, [this] { setText(QString(), tr("typed text")); });
    m_previewLabel->setWordWrap(true);
    m_previewLabel->setVisible(false);
    auto* gen = new QPushButton(tr("Generate"), this);
    gen->setObjectName("generateButton");
    connect(open, &QPushButton::clicked, this, &InputPanel::onOpenClicked);
    connect(gen, &QPushButton::clicked, this, &InputPanel::onGenerateClicked);
    connect(m_generator, qOverload<int>(&QComboBox::currentIndexChanged), this,
            &InputPanel::updateGeneratorControls);

    auto* genRow = new QHBoxLayout;
    genRow->addWidget(m_generator, 1);
    genRow->addWidget(m_count);
    auto* passRow = new QHBoxLayout;
    passRow->addWidget(m_depthLabel);
    passRow->addWidget(m_depth);
    passRow->addWidget(m_seedLabel);
    passRow->addWidget(m_seed);
    passRow->addStretch(1);
    passRow->addWidget(gen);
    auto* top = new QHBoxLayout;
    top->addWidget(open);
    top->addWidget(clear);
    top->addStretch(1);
    top->addWidget(m_countLabel);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addLayout(top);
    layout->addWidget(m_previewLabel);
    layout->addWidget(m_editor, 1);
    layout->addLayout(genRow);
    layout->addLayout(passRow);

    m_countTimer->setSingleShot(true);
    m_countTimer->setInterval(300);
    connect(m_countTimer, &QTimer::timeout, this, &InputPanel::startCount);
    connect(m_editor, &QPlainTextEdit::textChanged, this, [this] {
        if (!m_settingText) {
            // Edited: the run reads the editor's text, not the file or generator it came from.
            m_description = tr("typed text");
            m_sourcePath.clear();
            m_promptSpec.clear();
            m_needle.reset();
        }
        scheduleCount();
    });
    updateGeneratorControls();
    scheduleCount();
}

QString InputPanel::text() const
{
    return m_fullText.isNull() ? m_editor->toPlainText() : m_fullText;
}

void InputPanel::setText(const QString& text, const QString& description)
{
    int cut = -1;
    if (text.size() > kPreviewChars)
        cut = kPreviewChars;
    for (int i = 0, lines = 0; i < text.size() && (cut < 0 || i < cut); ++i)
        if (text[i] == QChar('\n') && ++lines == kPreviewLines) {
            cut = i + 1;
            break;
        }
    m_settingText = true;
    if (cut >= 0 && cut < text.size()) {
        m_fullText = text;
        m_editor->setPlainText(text.left(cut));
        m_editor->setReadOnly(true);
        m_previewLabel->setText(
            tr("Showing the first %1 of %2 characters, read-only. Clear to type a new text.")
                .arg(QLocale().toString(cut), QLocale().toString(text.size())));
        m_previewLabel->setVisible(true);
    } else {
        m_fullText = QString();
        m_editor->setPlainText(text);
        m_editor->setReadOnly(false);
        m_previewLabel->setVisible(false);
    }
    m_settingText = false;
    m_description = description;
    m_sourcePath.clear();
    m_promptSpec.clear();
    m_needle.reset();
    scheduleCount(); // also when the preview did not change
}

InputRequest InputPanel::request() const
{
    InputRequest r;
    if (!m_sourcePath.isEmpty()) {
        r.textFile = m_sourcePath.toStdString();
    } else if (!m_promptSpec.isEmpty()) {
        r.prompt = m_promptSpec.toStdString();
    } else {
        r.text = text().toStdString();
        r.textLabel = m_description.toStdString();
    }
    return r;
}

bool InputPanel::setPrompt(const QString& spec, QString* error)
{
    std::string text;
    try {
        text = promptFromSpec(spec.toStdString());
        setText(QString::fromStdString(text), tr("prompt: %1").arg(spec));
    } catch (const std::exception& e) {
        *error = QString::fromStdString(errorLine(e));
        return false;
    }
    m_promptSpec = spec;
    if (spec.startsWith(QLatin1String("passkey:"))) {
        // The spec's defaults live in the engine: the key is read back from the text it made.
        static const QRegularExpression key(QStringLiteral("The passkey is (\\d+)\\. Remember it\\."));
        const QRegularExpressionMatch m = key.match(QString::fromStdString(text));
        if (m.hasMatch())
            m_needle = findNeedle(text, m.captured(1).toStdString());
    }
    return true;
}

void InputPanel::setPasskeyText(const QString& text, const QString& passkey, const QString& description)
{
    setText(text, description);
    m_needle = findNeedle(text.toStdString(), passkey.toStdString());
}

bool InputPanel::loadFile(const QString& path, QString* error)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        *error = tr("%1: cannot open the file (%2)").arg(path, f.errorString());
        return false;
    }
    const QByteArray bytes = f.readAll();
    if (bytes.contains('\0')) {
        *error = tr("%1: not a text file (it holds NUL bytes)").arg(path);
        return false;
    }
    setText(QString::fromUtf8(bytes), tr("text: %1").arg(path));
    // The run reads the file itself, so that its trace records where the text is.
    m_sourcePath = QFileInfo(path).absoluteFilePath();
    return true;
}

bool InputPanel::generate(Generator kind, qint64 count, double depth, quint64 seed, QString* error)
{
    try {
        switch (kind) {
        case Generator::Newlines:
            setText(QString::fromStdString(newlinesPrompt(count)), tr("newlines × %1").arg(count));
            m_promptSpec = QStringLiteral("newlines:%1").arg(count);
            return true;
        case Generator::Capitals:
            setText(QString::fromStdString(capitalsPrompt(count)),
                    tr("capital-cities sentence × %1").arg(count));
            m_promptSpec = QStringLiteral("capitals:%1").arg(count);
            return true;
        case Generator::Passkey: {
            // The haystack grows by the same number of tokens per block, so two sizes give the
            // blocks for a length in tokens.
            int64_t blocks = std::max<int64_t>(1, count / 25);
            if (!m_tokenizerPath.isEmpty()) {
                const auto tok = cachedTokenizer(m_tokenizerPath);
                const auto t1 =
                    static_cast<int64_t>(tok->encode(passkeyPrompt(1, depth, seed).text).ids.size());
                const auto t2 =
                    static_cast<int64_t>(tok->encode(passkeyPrompt(2, depth, seed).text).ids.size());
                const int64_t perBlock = std::max<int64_t>(1, t2 - t1);
                blocks = std::max<int64_t>(1, 1 + (count - t1 + perBlock / 2) / perBlock);
            }
            const PasskeyPrompt p = passkeyPrompt(blocks, depth, seed);
            setText(QString::fromStdString(p.text),
                    tr("passkey haystack: %1 blocks, depth %2, seed %3, passkey %4, needle in block %5")
                        .arg(blocks)
                        .arg(depth)
                        .arg(seed)
                        .arg(QString::fromStdString(p.passkey))
                        .arg(p.needleBlock));
            // 15 digits give back the spin box's two-decimal depth exactly.
            m_promptSpec = QStringLiteral("passkey:%1:%2:%3").arg(blocks).arg(depth, 0, 'g', 15).arg(seed);
            m_needle = findNeedle(p.text, p.passkey);
            return true;
        }
        }
    } catch (const std::exception& e) {
        *error = QString::fromStdString(errorLine(e));
    }
    return false;
}

void InputPanel::setTokenizer(const QString& path)
{
    if (path == m_tokenizerPath)
        return;
    m_tokenizerPath = path;
    scheduleCount();
}

void InputPanel::onGenerateClicked()
{
    QString error;
    if (!generate(Generator(m_generator->currentData().toInt()), m_count->value(), m_depth->value(),
                  static_cast<quint64>(m_seed->value()), &error))
        emit errorOccurred(error);
}

void InputPanel::onOpenClicked()
{
    const QString path = QFileDialog::getOpenFileName(this, tr("Open text"), QString(),
                                                      tr("Text files (*.txt);;All files (*)"));
    if (path.isEmpty())
        return;
    QString error;
    if (!loadFile(path, &error))
        emit errorOccurred(error);
}

void InputPanel::updateGeneratorControls()
{
    const bool passkey = Generator(m_generator->currentData().toInt()) == Generator::Passkey;
    m_depth->setVisible(passkey);
    m_seed->setVisible(passkey);
    m_depthLabel->setVisible(passkey);
    m_seedLabel->setVisible(passkey);
    m_count->setToolTip(passkey ? tr("Length of the haystack in tokens") : tr("Repetitions"));
}

void InputPanel::scheduleCount()
{
    ++*m_generation; // a count still running for older text is ignored
    m_tokenCount = -1;
    m_countLabel->setText(m_tokenizerPath.isEmpty() ? QString() : tr("counting…"));
    m_countTimer->start();
}

void InputPanel::startCount()
{
    if (m_tokenizerPath.isEmpty())
        return;
    const int generation = *m_generation;
    auto generationRef = m_generation;
    const QString tokenizer = m_tokenizerPath;
    const std::string input = text().toStdString();
    if (input.empty()) { // no need to load a tokenizer for that
        m_tokenCount = 0;
        m_countLabel->setText(tr("0 tokens"));
        emit tokenCountChanged(0);
        return;
    }
    QPointer<InputPanel> self(this);
    QThreadPool::globalInstance()->start([self, generation, generationRef, tokenizer, input] {
        qint64 n = -1;
        QString error;
        try {
            n = static_cast<qint64>(cachedTokenizer(tokenizer)->encode(input).ids.size());
        } catch (const std::exception& e) {
            error = QString::fromStdString(errorLine(e));
        }
        if (*generationRef != generation)
            return;
        QCoreApplication* app = QCoreApplication::instance();
        if (!app) // quitting
            return;
        QMetaObject::invokeMethod(
            app,
            [self, generation, generationRef, n, error, tokenizer] {
                if (!self || *generationRef != generation)
                    return;
                self->m_tokenCount = n;
                if (n >= 0)
                    self->m_countLabel->setText(tr("%1 tokens").arg(QLocale().toString(n)));
                else
                    self->m_countLabel->setText(tr("cannot tokenize"));
                self->m_countLabel->setToolTip(error.isEmpty() ? tr("Tokenizer: %1").arg(tokenizer) : error);
                emit self->tokenCountChanged(n);
            },
            Qt::QueuedConnection);
    });
}

} // namespace statescope
