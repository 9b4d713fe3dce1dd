#include "ModelPanel.h"

#include "Error.h"
#include "Resources.h"
#include "TraceData.h"
#include "runtime/Input.h"

#include <QComboBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLocale>
#include <QPushButton>
#include <QSpinBox>
#include <QThread>
#include <QVBoxLayout>

namespace statescope {

namespace {
constexpr int kMaxRecent = 8;
}

ModelPanel::ModelPanel(QWidget* parent)
    : QWidget(parent), m_list(new QComboBox(this)), m_open(new QPushButton(tr("Open folder…"), this)),
      m_architecture(new QLabel(this)), m_parameters(new QLabel(this)), m_stateSize(new QLabel(this)),
      m_forget(new QLabel(this)), m_tokenizer(new QLabel(this)), m_trainingLength(new QSpinBox(this)),
      m_device(new QComboBox(this)), m_dtype(new QComboBox(this)), m_chunk(new QSpinBox(this))
{
    setObjectName("modelPanel");
    m_list->setObjectName("modelList");
    m_list->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    m_list->setMinimumContentsLength(16);
    connect(m_open, &QPushButton::clicked, this, &ModelPanel::onOpenClicked);
    connect(m_list, qOverload<int>(&QComboBox::activated), this, &ModelPanel::onListActivated);

    for (QLabel* l : {m_architecture, m_parameters, m_stateSize, m_forget, m_tokenizer})
        l->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_tokenizer->setWordWrap(true);
    m_stateSize->setWordWrap(true);
    m_stateSize->setTextFormat(Qt::RichText);
    m_forget->setToolTip(tr("The fit of Chen et al. (2025): T_forget[K] = 5.172 · N_S[M] − 4.469"));
    m_trainingLength->setRange(0, 100'000'000);
    m_trainingLength->setSpecialValueText(tr("not set"));
    m_trainingLength->setGroupSeparatorShown(true);
    m_trainingLength->setSuffix(tr(" tokens"));
    m_trainingLength->setToolTip(tr("Marked on the loss plot; taken from the model card when it states one"));
    connect(m_trainingLength, qOverload<int>(&QSpinBox::valueChanged), this,
            [this](int v) { emit trainingLengthChanged(v); });

    m_device->addItem("cpu");
    if (Runner::cudaAvailable())
        m_device->addItem("cuda");
    connect(m_device, qOverload<int>(&QComboBox::currentIndexChanged), this, &ModelPanel::updateDtypes);
    updateDtypes();

    m_chunk->setRange(0, 65536);
    m_chunk->setSingleStep(64);
    m_chunk->setSpecialValueText(tr("auto"));
    m_chunk->setSuffix(tr(" tokens"));
    m_chunk->setToolTip(tr("Tokens per engine call. Auto sizes chunks to about 50 ms so that the plots "
                           "update many times a second; results do not depend on it."));

    auto* row = new QHBoxLayout;
    row->addWidget(m_list, 1);
    row->addWidget(m_open);
    auto* form = new QFormLayout;
    form->addRow(tr("Architecture"), m_architecture);
    form->addRow(tr("Parameters"), m_parameters);
    form->addRow(tr("State size N_S"), m_stateSize);
    form->addRow(tr("Predicted T_forget"), m_forget);
    form->addRow(tr("Training length"), m_trainingLength);
    form->addRow(tr("Tokenizer"), m_tokenizer);
    form->addRow(tr("Device"), m_device);
    form->addRow(tr("Dtype"), m_dtype);
    form->addRow(tr("Chunk size"), m_chunk);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addLayout(row);
    layout->addLayout(form);
    layout->addStretch(1);
    refreshModelList();
}

QString ModelPanel::modelName() const
{
    if (m_modelDir.isEmpty())
        return {};
    // A Hugging Face snapshot folder is a hash: name it after its repository instead.
    const QDir dir(m_modelDir);
    QDir up = dir;
    if (up.cdUp() && up.dirName() == "snapshots" && up.cdUp() && up.dirName().startsWith("models--"))
        return up.dirName().mid(8).replace("--", "_");
    return dir.dirName();
}

QString ModelPanel::tokenizerPath() const
{
    return m_tokenizerPath;
}

RunOptions ModelPanel::runOptions() const
{
    RunOptions o;
    o.device = m_device->currentText().toStdString();
    parseDType(m_dtype->currentText().toStdString(), &o.dtype);
    o.chunkSize = m_chunk->value();
    // One core stays with the window so that it redraws while the model runs.
    o.threads = std::max(1, QThread::idealThreadCount() - 1);
    return o;
}

QString ModelPanel::device() const
{
    return m_device->currentText();
}
QString ModelPanel::dtype() const
{
    return m_dtype->currentText();
}

void ModelPanel::setDevice(const QString& device)
{
    const int i = m_device->findText(device);
    if (i >= 0)
        m_device->setCurrentIndex(i);
}

void ModelPanel::setDtype(const QString& dtype)
{
    const int i = m_dtype->findText(dtype);
    if (i >= 0)
        m_dtype->setCurrentIndex(i);
}

void ModelPanel::setChunkSize(int tokens)
{
    m_chunk->setValue(tokens);
}
int ModelPanel::chunkSize() const
{
    return m_chunk->value();
}

qint64 ModelPanel::trainingLength() const
{
    return m_trainingLength->value();
}

bool ModelPanel::setModel(const QString& dir, QString* error)
{
    ModelFolder folder;
    try {
        folder = inspectModelFolder(dir.toStdString());
    } catch (const std::exception& e) {
        *error = QString::fromStdString(errorLine(e));
        return false;
    }
    m_modelDir = QFileInfo(dir).absoluteFilePath();
    const ModelShape& shape = folder.shape;
    const std::optional<double> forget = shape.forgetFitNote.empty()
                                             ? statescope::predictedForgetThreshold(shape.stateSize)
                                             : std::nullopt;
    m_forgetThreshold = forget.value_or(0.0);
    const QString unitName = QString::fromStdString(shape.unitName);
    m_architecture->setText(
        tr("%1 (%2, %3 layers, %4 %5)")
            .arg(QString::fromStdString(shape.displayName), QString::fromStdString(shape.layout))
            .arg(shape.layers)
            .arg(shape.units)
            .arg(shape.units == 1 ? unitName : pluralUnitName(unitName)));
    m_architecture->setToolTip(QString::fromStdString(shape.architecture));
    m_parameters->setText(tr("shown once loaded"));
    // How N_S is counted differs between architectures: the registry says, under the number.
    const QString definition = QString::fromStdString(shape.stateSizeDefinition);
    m_stateSize->setText(
        QStringLiteral("%1 (%2)").arg(QLocale().toString(static_cast<qint64>(shape.stateSize)),
                                      formatCount(shape.stateSize)) +
        (definition.isEmpty() ? QString()
                              : QStringLiteral("<br><small>%1</small>").arg(definition.toHtmlEscaped())));
    m_stateSize->setToolTip(tr("N_S: %1").arg(definition));
    if (!shape.forgetFitNote.empty())
        m_forget->setText(tr("not applicable"));
    else
        m_forget->setText(forget ? tr("%1 tokens").arg(QLocale().toString(qRound64(*forget)))
                                 : tr("none (the fit does not apply to so small a state)"));
    m_forget->setToolTip(shape.forgetFitNote.empty()
                             ? tr("The fit of Chen et al. (2025): T_forget[K] = 5.172 · N_S[M] − 4.469")
                             : QString::fromStdString(shape.forgetFitNote));
    // The engine's tokenizer policy: the model's own, else the built-in one.
    try {
        m_tokenizerPath = QString::fromStdString(chooseTokenizerPath("", folder.tokenizerPath));
    } catch (const std::exception& e) {
        m_tokenizerPath.clear();
        m_tokenizer->setText(tr("none found"));
        m_tokenizer->setToolTip(QString::fromStdString(errorLine(e)));
    }
    if (!m_tokenizerPath.isEmpty()) {
        m_tokenizer->setText(QFileInfo(m_tokenizerPath).fileName() +
                             (folder.tokenizerPath ? tr(" (the model's)") : tr(" (built in)")));
        m_tokenizer->setToolTip(m_tokenizerPath);
    }
    m_trainingLength->setValue(folder.trainingLength ? static_cast<int>(*folder.trainingLength) : 0);

    m_recent.removeAll(m_modelDir);
    m_recent.prepend(m_modelDir);
    while (m_recent.size() > kMaxRecent)
        m_recent.removeLast();
    refreshModelList();
    emit modelChanged(m_modelDir);
    return true;
}

QString ModelPanel::shapeText() const
{
    return m_architecture->text();
}

QString ModelPanel::stateSizeText() const
{
    return m_stateSize->text();
}

void ModelPanel::setLoadedInfo(const ModelInfo& info)
{
    m_parameters->setText(QLocale().toString(static_cast<qint64>(info.parameters)) + " (" +
                          formatCount(info.parameters) + ")");
}

void ModelPanel::setRunning(bool running)
{
    for (QWidget* w : std::initializer_list<QWidget*>{m_list, m_open, m_device, m_dtype, m_chunk})
        w->setEnabled(!running);
}

QStringList ModelPanel::recentModels() const
{
    return m_recent;
}

void ModelPanel::setRecentModels(const QStringList& dirs)
{
    m_recent.clear();
    for (const QString& d : dirs)
        if (QFileInfo(d).isDir() && !m_recent.contains(d) && m_recent.size() < kMaxRecent)
            m_recent.append(d);
    refreshModelList();
}

void ModelPanel::refreshModelList()
{
    m_filling = true;
    m_list->clear();
    m_list->addItem(m_modelDir.isEmpty() ? tr("(choose a model)") : modelName(), m_modelDir);
    m_list->setItemData(0, m_modelDir, Qt::ToolTipRole);
    auto addSection = [this](const QString& title, const QList<ModelEntry>& entries) {
        if (entries.isEmpty())
            return;
        m_list->insertSeparator(m_list->count());
        m_list->addItem(title);
        const int header = m_list->count() - 1;
        m_list->setItemData(header, 0, Qt::UserRole - 1); // disabled: a heading, not a choice
        for (const ModelEntry& e : entries) {
            m_list->addItem("   " + e.name, e.path);
            m_list->setItemData(m_list->count() - 1, e.path, Qt::ToolTipRole);
        }
    };
    QList<ModelEntry> recent;
    for (const QString& d : m_recent)
        recent.append({QDir(d).dirName(), d, QStringLiteral("recent")});
    addSection(tr("Recent"), recent);
    addSection(tr("Built in"), builtInModels());
    addSection(tr("Hugging Face cache"), huggingFaceCacheModels());
    m_list->setCurrentIndex(0);
    m_filling = false;
}

void ModelPanel::onListActivated(int index)
{
    if (m_filling)
        return;
    const QString dir = m_list->itemData(index).toString();
    if (dir.isEmpty() || dir == m_modelDir) {
        m_list->setCurrentIndex(0);
        return;
    }
    QString error;
    if (!setModel(dir, &error)) {
        m_list->setCurrentIndex(0);
        emit errorOccurred(error);
    }
}

void ModelPanel::onOpenClicked()
{
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Open model folder"), m_modelDir);
    if (dir.isEmpty())
        return;
    QString error;
    if (!setModel(dir, &error))
        emit errorOccurred(error);
}

void ModelPanel::updateDtypes()
{
    const QString keep = m_dtype->currentText();
    m_dtype->clear();
    m_dtype->addItems({"float32", "bfloat16"});
    // LibTorch has no float16 matmul on CPU.
    if (m_device->currentText() != "cpu")
        m_dtype->addItem("float16");
    const int i = m_dtype->findText(keep);
    m_dtype->setCurrentIndex(i >= 0 ? i : 0);
}

} // namespace statescope
