#include "PasskeyDialog.h"

#include "Error.h"
#include "Resources.h"
#include "models/ModelFolder.h"
#include "runtime/Input.h"
#include "tokenizers/Tokenizer.h"

#include <QDateTime>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QMetaObject>
#include <QProgressBar>
#include <QPushButton>
#include <QRegularExpression>
#include <QSpinBox>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace statescope {

PasskeyDialog::PasskeyDialog(QWidget* parent) : QDialog(parent)
{
    setWindowTitle(tr("Passkey retrieval"));
    auto* layout = new QVBoxLayout(this);
    auto* form = new QFormLayout;
    layout->addLayout(form);
    m_lengths = new QLineEdit(QStringLiteral("1K:8K:1K"), this);
    m_lengths->setToolTip(tr("FROM:TO:STEP, or a list (1024,4096,8K); K = 1024 tokens"));
    m_samples = new QSpinBox(this);
    m_samples->setRange(1, 10000);
    m_samples->setValue(10);
    m_samples->setToolTip(tr("Samples per length, at depths (i + 0.5) / samples"));
    m_seed = new QSpinBox(this);
    m_seed->setRange(0, 1 << 30);
    m_batch = new QSpinBox(this);
    m_batch->setRange(1, 4096);
    m_batch->setToolTip(tr("Prompts decoded at once (those of one length and token count)"));
    auto* row = new QHBoxLayout;
    row->addWidget(new QLabel(tr("samples"), this));
    row->addWidget(m_samples);
    row->addWidget(new QLabel(tr("seed"), this));
    row->addWidget(m_seed);
    row->addWidget(new QLabel(tr("batch"), this));
    row->addWidget(m_batch);
    row->addStretch(1);
    m_path = new QLineEdit(this);
    m_path->setToolTip(tr("The results file: an interrupted sweep resumes from it"));
    auto* browse = new QPushButton(tr("…"), this);
    auto* pathRow = new QHBoxLayout;
    pathRow->addWidget(m_path, 1);
    pathRow->addWidget(browse);
    form->addRow(tr("Lengths"), m_lengths);
    form->addRow(tr("Per length"), row);
    form->addRow(tr("Results"), pathRow);

    auto* buttons = new QHBoxLayout;
    auto* open = new QPushButton(tr("Open…"), this);
    open->setToolTip(tr("Show a results file, such as a sweep run on another machine"));
    buttons->addWidget(open);
    m_start = new QPushButton(tr("Start"), this);
    m_cancel = new QPushButton(tr("Cancel"), this);
    m_cancel->setEnabled(false);
    m_progress = new QProgressBar(this);
    m_progress->setRange(0, 1000);
    m_progress->setValue(0);
    buttons->addWidget(m_start);
    buttons->addWidget(m_cancel);
    buttons->addWidget(m_progress, 1);
    layout->addLayout(buttons);
    m_status = new QLabel(this);
    m_status->setWordWrap(true);
    layout->addWidget(m_status);
    m_view = new PasskeyView(this);
    layout->addWidget(m_view, 1);
    resize(900, 640);

    connect(browse, &QPushButton::clicked, this, [this] {
        const QString f =
            QFileDialog::getSaveFileName(this, tr("Passkey results"), m_path->text(), tr("HDF5 (*.h5)"),
                                         nullptr, QFileDialog::DontConfirmOverwrite);
        if (!f.isEmpty())
            m_path->setText(f);
    });
    connect(open, &QPushButton::clicked, this, [this] {
        const QString f =
            QFileDialog::getOpenFileName(this, tr("Passkey results"), m_path->text(), tr("HDF5 (*.h5)"));
        if (!f.isEmpty())
            openResults(f);
    });
    connect(m_start, &QPushButton::clicked, this, [this] { start(); });
    connect(m_cancel, &QPushButton::clicked, this, &PasskeyDialog::cancel);
    connect(m_view, &PasskeyView::sampleRequested, this, &PasskeyDialog::onCell);
}

PasskeyDialog::~PasskeyDialog()
{
    m_cancelFlag = true;
    join();
}

void PasskeyDialog::join()
{
    if (m_worker.joinable())
        m_worker.join();
}

void PasskeyDialog::setRequest(const PasskeySweepRequest& request)
{
    const bool otherModel = request.modelDir != m_request.modelDir;
    m_request = request;
    if (otherModel)
        m_batch->setValue(request.options.device.rfind("cuda", 0) == 0 ? 16 : 1);
    // A file of the model's own, unless the user named one for it.
    if (m_path->text().isEmpty() || otherModel) {
        QString safe = request.modelName;
        safe.replace(QRegularExpression("[^A-Za-z0-9._-]+"), "_");
        m_path->setText(
            QDir(tracesFolder())
                .filePath(QStringLiteral("passkey-%1-%2.h5")
                              .arg(safe, QDateTime::currentDateTime().toString("yyyyMMdd-HHmmss"))));
    }
}

void PasskeyDialog::setLengths(const QString& spec)
{
    m_lengths->setText(spec);
}
void PasskeyDialog::setSamples(int samples)
{
    m_samples->setValue(samples);
}
void PasskeyDialog::setSeed(int seed)
{
    m_seed->setValue(seed);
}
void PasskeyDialog::setBatch(int batch)
{
    m_batch->setValue(batch);
}
void PasskeyDialog::setResultsPath(const QString& path)
{
    m_path->setText(path);
}
QString PasskeyDialog::resultsPath() const
{
    return m_path->text();
}
QString PasskeyDialog::statusText() const
{
    return m_status->text();
}

bool PasskeyDialog::start()
{
    if (m_running)
        return false;
    join();
    auto fail = [this](const QString& message) {
        m_status->setText(message);
        emit errorOccurred(message);
        return false;
    };
    if (m_request.modelDir.isEmpty())
        return fail(tr("Choose a model first."));
    PasskeySettings settings;
    std::optional<int64_t> cardLength;
    try {
        settings.lengths = parseLengths(m_lengths->text().trimmed().toStdString());
        const ModelFolder folder = inspectModelFolder(m_request.modelDir.toStdString());
        settings.tokenizer = chooseTokenizerPath("", folder.tokenizerPath);
        settings.maxNewTokens =
            passkeyAnswerTokens(*cachedTokenizer(QString::fromStdString(settings.tokenizer)));
        cardLength = folder.trainingLength;
    } catch (const std::exception& e) {
        return fail(QString::fromStdString(errorLine(e)));
    }
    if (m_path->text().trimmed().isEmpty())
        return fail(tr("Name the results file."));
    settings.model = m_request.modelDir.toStdString();
    settings.samples = m_samples->value();
    settings.seed = static_cast<uint64_t>(m_seed->value());
    settings.batch = m_batch->value();
    settings.mitigation = m_request.options.mitigation.describe();
    m_settings = settings;
    m_trainingLength = m_request.trainingLength > 0 ? m_request.trainingLength : cardLength.value_or(0);
    m_results.clear();
    m_running = true;
    m_cancelFlag = false;
    m_start->setEnabled(false);
    m_cancel->setEnabled(true);
    m_progress->setValue(0);
    m_status->setText(tr("Loading the model…"));
    updateView();

    const PasskeySweepRequest request = m_request;
    const std::string path = m_path->text().trimmed().toStdString();
    const int64_t trainingLength = m_trainingLength;
    m_worker = std::thread([this, request, settings, path, trainingLength] {
        auto post = [this](std::vector<PasskeyResult> all) {
            QMetaObject::invokeMethod(
                this, [this, all] { onResults(all); }, Qt::QueuedConnection);
        };
        bool completed = false;
        QString error;
        try {
            const PasskeyFileLock lock(path);
            std::vector<PasskeyResult> results = readPasskeyFile(path, settings);
            post(results);
            const Tokenizer tokenizer = Tokenizer::fromFile(settings.tokenizer);
            auto runner = Runner::open(request.modelDir.toStdString(), request.options);
            if (runner->mitigation().normalises()) {
                const int64_t length = trainingLength > 0 ? trainingLength : settings.lengths.front();
                calibrateForRun(*runner, request.calibrationFile.toStdString(), settings.tokenizer,
                                makePasskeySample(tokenizer, length, 0, 1, settings.seed).ids,
                                "a passkey prompt of " + std::to_string(length) + " tokens", trainingLength);
            }
            runPasskeySweep(
                *runner, tokenizer, settings, &results,
                [&](const std::vector<PasskeyResult>& all) {
                    writePasskeyFile(path, settings, all);
                    post(all);
                },
                &m_cancelFlag);
            writePasskeyFile(path, settings, results);
            post(results);
            completed = true;
        } catch (const Cancelled&) {
        } catch (const std::exception& e) {
            error = QString::fromStdString(errorLine(e));
        }
        QMetaObject::invokeMethod(
            this, [this, completed, error] { onEnded(completed, error); }, Qt::QueuedConnection);
    });
    return true;
}

bool PasskeyDialog::openResults(const QString& path)
{
    if (m_running)
        return false;
    join();
    PasskeySweep sweep;
    try {
        sweep = readPasskeySweep(path.toStdString());
    } catch (const std::exception& e) {
        const QString message = QString::fromStdString(errorLine(e));
        m_status->setText(message);
        emit errorOccurred(message);
        return false;
    }
    m_settings = sweep.settings;
    QStringList lengths;
    for (int64_t l : m_settings.lengths)
        lengths << QString::number(l);
    m_lengths->setText(lengths.join(','));
    m_samples->setValue(static_cast<int>(std::min<int64_t>(m_samples->maximum(), m_settings.samples)));
    m_seed->setValue(static_cast<int>(std::min<uint64_t>(m_seed->maximum(), m_settings.seed)));
    m_path->setText(path);
    // T_train: the window's model if it is the file's, else the card of the file's model if it is here.
    m_trainingLength = 0;
    try {
        m_trainingLength = inspectModelFolder(m_settings.model).trainingLength.value_or(0);
    } catch (const std::exception&) {
    }
    if (m_request.trainingLength > 0 &&
        QFileInfo(m_request.modelDir).canonicalFilePath() ==
            QFileInfo(QString::fromStdString(m_settings.model)).canonicalFilePath())
        m_trainingLength = m_request.trainingLength;
    onResults(sweep.results);
    const int64_t recall = passkeyRecallLength(m_results, m_settings.lengths);
    m_status->setText(tr("%1: %2 samples of %3 (seed %4, %5 answer tokens, mitigation %6); %7.")
                          .arg(QDir::toNativeSeparators(path))
                          .arg(m_results.size())
                          .arg(QString::fromStdString(m_settings.model))
                          .arg(m_settings.seed)
                          .arg(m_settings.maxNewTokens)
                          .arg(QString::fromStdString(m_settings.mitigation),
                               recall > 0 ? tr("T_recall (≥ 95% mean accuracy) %1 tokens").arg(recall)
                                          : tr("no length reaches 95% mean accuracy")));
    return true;
}

void PasskeyDialog::cancel()
{
    if (!m_running)
        return;
    m_cancelFlag = true;
    m_cancel->setEnabled(false);
    m_status->setText(tr("Cancelling after the current batch…"));
}

void PasskeyDialog::onResults(const std::vector<PasskeyResult>& results)
{
    m_results = results;
    const double total = double(m_settings.lengths.size()) * double(m_settings.samples);
    m_progress->setValue(total > 0 ? static_cast<int>(1000.0 * results.size() / total) : 0);
    int64_t correct = 0;
    for (const PasskeyResult& r : results)
        correct += r.correct ? 1 : 0;
    m_status->setText(
        tr("%1 of %2 samples, %3 correct").arg(results.size()).arg(static_cast<qint64>(total)).arg(correct));
    updateView();
}

void PasskeyDialog::onEnded(bool completed, const QString& error)
{
    join();
    m_running = false;
    m_start->setEnabled(true);
    m_cancel->setEnabled(false);
    const int64_t recall = passkeyRecallLength(m_results, m_settings.lengths);
    const QString recallText = recall > 0 ? tr("T_recall (≥ 95% mean accuracy): %1 tokens").arg(recall)
                                          : tr("no length reaches 95% mean accuracy");
    if (!error.isEmpty()) {
        m_status->setText(error);
        emit errorOccurred(error);
    } else if (completed) {
        m_progress->setValue(1000);
        m_status->setText(tr("Done: %1 samples in %2; %3.")
                              .arg(m_results.size())
                              .arg(QDir::toNativeSeparators(m_path->text()), recallText));
    } else {
        m_status->setText(tr("Cancelled: %1 keeps the %2 samples of the lengths finished; Start resumes.")
                              .arg(QDir::toNativeSeparators(m_path->text()))
                              .arg(m_results.size()));
    }
    emit sweepEnded(completed && error.isEmpty());
}

void PasskeyDialog::updateView()
{
    PasskeyViewData d;
    const std::vector<int64_t>& lengths = m_settings.lengths;
    const int bins = static_cast<int>(std::min<int64_t>(10, std::max<int64_t>(1, m_settings.samples)));
    for (int64_t l : lengths)
        d.lengths << l;
    d.bins = bins;
    for (double v : passkeyGrid(m_results, lengths, bins))
        d.accuracy << v;
    // A click opens a wrong sample of the cell if it has one: that is the one worth looking at.
    d.cellSamples.resize(static_cast<int>(lengths.size()) * bins);
    std::vector<const PasskeyResult*> sorted;
    for (const PasskeyResult& r : m_results)
        sorted.push_back(&r);
    std::stable_sort(sorted.begin(), sorted.end(), [](const PasskeyResult* a, const PasskeyResult* b) {
        return a->correct != b->correct ? !a->correct : a->index < b->index;
    });
    for (const PasskeyResult* r : sorted) {
        const auto it = std::find(lengths.begin(), lengths.end(), r->length);
        if (it == lengths.end())
            continue;
        const int bin = std::clamp(static_cast<int>(std::floor(r->depth * bins)), 0, bins - 1);
        d.cellSamples[static_cast<int>(it - lengths.begin()) * bins + bin] << r->index;
    }
    // k: the powers of two in [max length / 16, max length / 2], as the seed's plot.
    if (!lengths.empty()) {
        const int64_t maxLen = *std::max_element(lengths.begin(), lengths.end());
        for (int64_t k = 1; k <= maxLen / 2; k *= 2)
            if (k >= maxLen / 16) {
                d.lastK << k;
                QVector<double> acc;
                for (double v : passkeyLastK(m_results, lengths, k))
                    acc << v;
                d.lastKAccuracy << acc;
            }
    }
    d.trainingLength = m_trainingLength;
    m_view->setData(d);
}

void PasskeyDialog::onCell(qint64 length, qint64 index)
{
    const auto it = std::find_if(m_results.begin(), m_results.end(), [&](const PasskeyResult& r) {
        return r.length == length && r.index == index;
    });
    if (it == m_results.end())
        return;
    try {
        const auto tokenizer = cachedTokenizer(QString::fromStdString(m_settings.tokenizer));
        const PasskeySample s =
            makePasskeySample(*tokenizer, length, index, m_settings.samples, m_settings.seed);
        const QString description =
            tr("passkey sample %1 at %2 tokens, depth %3: truth %4, predicted \"%5\" (%6)")
                .arg(index)
                .arg(length)
                .arg(s.depth, 0, 'f', 3)
                .arg(QString::fromStdString(s.passkey), QString::fromStdString(it->prediction).trimmed(),
                     it->correct ? tr("correct") : tr("wrong"));
        emit sampleRequested(QString::fromStdString(s.text), QString::fromStdString(s.passkey), description);
    } catch (const std::exception& e) {
        emit errorOccurred(QString::fromStdString(errorLine(e)));
    }
}

} // namespace statescope
