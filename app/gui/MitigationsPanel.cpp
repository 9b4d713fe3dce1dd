#include "MitigationsPanel.h"

#include "Error.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

#include <algorithm>

namespace statescope {

namespace {

QDoubleSpinBox* scaleBox(double min, double max, int decimals, const QString& tip, QWidget* parent)
{
    auto* b = new QDoubleSpinBox(parent);
    b->setRange(min, max);
    b->setDecimals(decimals);
    b->setValue(1.0);
    b->setSingleStep(max <= 1.0 ? 0.0001 : 0.05);
    b->setToolTip(tip);
    return b;
}

} // namespace

MitigationsPanel::MitigationsPanel(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    auto* form = new QFormLayout;
    form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    layout->addLayout(form);

    // lambda_alpha is read to 6 decimals: 0.9999 and 0.99999 are the paper's settings.
    m_alpha =
        scaleBox(1e-6, 1.0, 6, tr("α′ = λ_α·α: a constant extra forgetting every token (1 = off)"), this);
    m_B = scaleBox(0.01, 10.0, 3, tr("λ_B: the input B (the key) scaled (1 = off)"), this);
    m_dt =
        scaleBox(0.01, 10.0, 3, tr("λ_Δ: the step Δ scaled, forgetting and insertion both (1 = off)"), this);
    m_A = scaleBox(0.01, 10.0, 3, tr("λ_A: A scaled, so α′ = α^λ_A (1 = off)"), this);
    form->addRow(tr("Forget gate λ_α"), m_alpha);
    form->addRow(tr("Input λ_B"), m_B);
    form->addRow(tr("Step λ_Δ"), m_dt);
    form->addRow(tr("Decay rate λ_A"), m_A);

    m_norm = new QComboBox(this);
    m_norm->addItem(tr("off"));
    m_norm->addItem(tr("clip to c·τ"));
    m_norm->addItem(tr("renormalise to τ"));
    m_norm->setToolTip(
        tr("Each unit's state (a Mamba-2 head, a Mamba-1 channel) after the token's read-out; τ "
           "is its norm at T_train on the calibration text"));
    m_clip = new QDoubleSpinBox(this);
    m_clip->setRange(0.01, 1000);
    m_clip->setDecimals(2);
    m_clip->setValue(1.0);
    m_clip->setToolTip(tr("The state norm is held at or below c·τ"));
    m_every = new QSpinBox(this);
    m_every->setRange(1, 1 << 20);
    m_every->setValue(1);
    m_every->setSuffix(tr(" tokens"));
    m_every->setToolTip(tr("1 is exact per token; larger values let the chunked path scan longer segments"));
    form->addRow(tr("Normalise"), m_norm);
    form->addRow(tr("Clip at c·τ, c"), m_clip);
    form->addRow(tr("Acts every"), m_every);
    m_calibration = new QLineEdit(this);
    m_calibration->setPlaceholderText(tr("the input"));
    m_calibration->setToolTip(tr("A text file whose first T_train tokens calibrate τ"));
    m_browse = new QPushButton(tr("…"), this);
    m_browse->setToolTip(tr("Choose the calibration text"));
    auto* calRow = new QHBoxLayout;
    calRow->addWidget(m_calibration, 1);
    calRow->addWidget(m_browse);
    form->addRow(tr("Calibrate on"), calRow);

    m_windowOn = new QCheckBox(tr("last"), this);
    m_window = new QSpinBox(this);
    m_window->setRange(1, 1 << 24);
    m_window->setValue(4096);
    m_window->setSuffix(tr(" tokens"));
    m_snapshot = new QSpinBox(this);
    m_snapshot->setRange(0, 1 << 24);
    m_snapshot->setValue(0);
    m_snapshot->setSuffix(tr(" tokens"));
    m_snapshot->setSpecialValueText(tr("window / 16"));
    m_snapshot->setToolTip(
        tr("The read-out spans window − snapshot + 1 … window tokens; 1 is exact and stores "
           "one state per token of the window"));
    auto* winRow = new QHBoxLayout;
    winRow->addWidget(m_windowOn);
    winRow->addWidget(m_window, 1);
    m_windowOn->setToolTip(tr("Read out only what the last tokens put in the state (h_t − α·h_b)"));
    form->addRow(tr("Window"), winRow);
    form->addRow(tr("Snapshot every"), m_snapshot);

    m_oldContext = new QSpinBox(this);
    m_oldContext->setRange(0, 1 << 24);
    m_oldContext->setSingleStep(256);
    m_oldContext->setSpecialValueText(tr("off"));
    m_oldContext->setSuffix(tr(" tokens"));
    m_oldContext->setToolTip(
        tr("Probes of the next run: how much of each unit's state is older than this many "
           "tokens (old share ρ, read-out share, retention) and the insertion strength"));
    form->addRow(tr("Old-context probes"), m_oldContext);

    m_summary = new QLabel(this);
    m_summary->setWordWrap(true);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_summary);
    auto* buttons = new QHBoxLayout;
    m_reset = new QPushButton(tr("Reset"), this);
    m_reset->setToolTip(tr("Every mitigation off"));
    m_compare = new QPushButton(tr("Compare"), this);
    m_compare->setToolTip(tr("Run the input without and with these mitigations, and overlay the two"));
    buttons->addWidget(m_reset);
    buttons->addStretch(1);
    buttons->addWidget(m_compare);
    layout->addLayout(buttons);
    layout->addStretch(1);

    for (QDoubleSpinBox* b : {m_alpha, m_B, m_dt, m_A, m_clip})
        connect(b, &QDoubleSpinBox::valueChanged, this, &MitigationsPanel::update);
    for (QSpinBox* b : {m_every, m_window, m_snapshot})
        connect(b, &QSpinBox::valueChanged, this, &MitigationsPanel::update);
    connect(m_norm, &QComboBox::currentIndexChanged, this, &MitigationsPanel::update);
    connect(m_windowOn, &QCheckBox::toggled, this, &MitigationsPanel::update);
    connect(m_calibration, &QLineEdit::textChanged, this, &MitigationsPanel::update);
    connect(m_browse, &QPushButton::clicked, this, [this] {
        const QString f = QFileDialog::getOpenFileName(this, tr("Calibration text"), QString(),
                                                       tr("Text (*.txt);;All files (*)"));
        if (!f.isEmpty())
            m_calibration->setText(f);
    });
    connect(m_reset, &QPushButton::clicked, this, [this] { setSpec("none"); });
    connect(m_compare, &QPushButton::clicked, this, &MitigationsPanel::compareRequested);
    update();
}

Mitigation MitigationsPanel::mitigation() const
{
    Mitigation m;
    m.alpha = m_alpha->value();
    m.B = m_B->value();
    m.dt = m_dt->value();
    m.A = m_A->value();
    if (m_norm->currentIndex() == 1)
        m.clip = m_clip->value();
    m.renorm = m_norm->currentIndex() == 2;
    if (m.normalises())
        m.every = m_every->value();
    if (m_windowOn->isChecked()) {
        m.window = m_window->value();
        m.snapshot = m_snapshot->value();
    }
    return m;
}

qint64 MitigationsPanel::oldContext() const
{
    return m_oldContext->value();
}

void MitigationsPanel::setOldContext(qint64 tokens)
{
    m_oldContext->setValue(static_cast<int>(std::clamp<qint64>(tokens, 0, m_oldContext->maximum())));
}

QString MitigationsPanel::calibrationFile() const
{
    return m_calibration->text().trimmed();
}

void MitigationsPanel::setCalibrationFile(const QString& path)
{
    m_calibration->setText(path);
}

bool MitigationsPanel::setSpec(const QString& spec, QString* error)
{
    Mitigation m;
    try {
        m = parseMitigation(spec.toStdString());
    } catch (const Error& e) {
        if (error)
            *error = QString::fromStdString(e.what());
        return false;
    }
    m_updating = true;
    m_alpha->setValue(m.alpha);
    m_B->setValue(m.B);
    m_dt->setValue(m.dt);
    m_A->setValue(m.A);
    m_norm->setCurrentIndex(m.clip > 0 ? 1 : m.renorm ? 2 : 0);
    if (m.clip > 0)
        m_clip->setValue(m.clip);
    m_every->setValue(static_cast<int>(m.every));
    m_windowOn->setChecked(m.window > 0);
    if (m.window > 0) {
        m_window->setValue(static_cast<int>(m.window));
        m_snapshot->setValue(static_cast<int>(m.snapshot));
    }
    m_updating = false;
    update();
    return true;
}

void MitigationsPanel::setRunning(bool running)
{
    m_compare->setEnabled(!running);
}

void MitigationsPanel::update()
{
    if (m_updating)
        return;
    m_clip->setEnabled(m_norm->currentIndex() == 1);
    m_every->setEnabled(m_norm->currentIndex() != 0);
    m_calibration->setEnabled(m_norm->currentIndex() != 0);
    m_browse->setEnabled(m_norm->currentIndex() != 0);
    m_window->setEnabled(m_windowOn->isChecked());
    m_snapshot->setEnabled(m_windowOn->isChecked());
    const Mitigation m = mitigation();
    QString problem;
    if (m.window > 0 && m.snapshot > 0 && m.window % m.snapshot != 0)
        problem = tr("The snapshot interval must divide the window.");
    if (!problem.isEmpty()) {
        m_summary->setText(
            QStringLiteral("<span style='color:#c0392b'>%1</span>").arg(problem.toHtmlEscaped()));
    } else {
        const QString spec = QString::fromStdString(m.describe());
        m_summary->setText(m.isIdentity() ? tr("The next run is the original model.")
                                          : tr("Next run: <tt>--mitigate %1</tt>").arg(spec.toHtmlEscaped()));
    }
    m_compare->setToolTip(m.isIdentity() ? tr("Set a mitigation to compare with the original")
                                         : tr("Run the input without and with these mitigations, and overlay "
                                              "the two"));
    emit changed();
}

} // namespace statescope
