#include "ExportDialog.h"

#include <QCheckBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLineEdit>
#include <QPushButton>
#include <QRadioButton>
#include <QSpinBox>
#include <QVBoxLayout>

namespace statescope {

namespace {
QDoubleSpinBox* spin(QWidget* parent, double lo, double hi, double value, double step, const QString& suffix)
{
    auto* s = new QDoubleSpinBox(parent);
    s->setRange(lo, hi);
    s->setValue(value);
    s->setSingleStep(step);
    s->setSuffix(suffix);
    return s;
}
} // namespace

ExportDialog::ExportDialog(const QString& folder, const QString& baseName, bool dark, QWidget* parent)
    : QDialog(parent), m_folder(new QLineEdit(folder, this)), m_base(new QLineEdit(baseName, this)),
      m_png(new QCheckBox("PNG", this)), m_svg(new QCheckBox("SVG", this)), m_pdf(new QCheckBox("PDF", this)),
      m_csv(new QCheckBox(tr("CSV (visible range)"), this)),
      m_screen(new QRadioButton(tr("As on screen"), this)), m_paper(new QRadioButton(tr("Paper"), this)),
      m_width(nullptr), m_height(nullptr), m_font(nullptr), m_line(nullptr), m_dpi(new QSpinBox(this)),
      m_darkBox(new QCheckBox(tr("Dark background"), this))
{
    setWindowTitle(tr("Export plots"));
    const ExportStyle paper = ExportStyle::paperPreset();
    m_width = spin(this, 20, 500, paper.widthMm, 1, " mm");
    m_height = spin(this, 20, 500, paper.heightMm, 1, " mm");
    m_font = spin(this, 4, 24, paper.fontPt, 0.5, " pt");
    m_line = spin(this, 0.1, 5, paper.lineWidth, 0.1, " pt");
    m_dpi->setRange(72, 1200);
    m_dpi->setValue(paper.dpi);
    m_dpi->setSuffix(" dpi");
    m_png->setChecked(true);
    m_svg->setChecked(true);
    m_pdf->setChecked(true);
    m_csv->setChecked(true);
    m_paper->setChecked(true);
    m_darkBox->setChecked(dark);

    auto* browse = new QPushButton(tr("Browse…"), this);
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString d = QFileDialog::getExistingDirectory(this, tr("Export to"), m_folder->text());
        if (!d.isEmpty())
            m_folder->setText(d);
    });
    auto* where = new QHBoxLayout;
    where->addWidget(m_folder, 1);
    where->addWidget(browse);

    auto* formats = new QHBoxLayout;
    for (QCheckBox* c : {m_png, m_svg, m_pdf, m_csv})
        formats->addWidget(c);

    auto* look = new QGroupBox(tr("Look"), this);
    auto* lookForm = new QFormLayout(look);
    auto* which = new QHBoxLayout;
    which->addWidget(m_paper);
    which->addWidget(m_screen);
    lookForm->addRow(which);
    lookForm->addRow(tr("Width"), m_width);
    lookForm->addRow(tr("Height"), m_height);
    lookForm->addRow(tr("Font size"), m_font);
    lookForm->addRow(tr("Line width"), m_line);
    lookForm->addRow(tr("PNG resolution"), m_dpi);
    lookForm->addRow(m_darkBox);
    connect(m_paper, &QRadioButton::toggled, this, &ExportDialog::updateEnabled);

    auto* form = new QFormLayout;
    form->addRow(tr("Folder"), where);
    form->addRow(tr("File name prefix"), m_base);
    form->addRow(tr("Formats"), formats);

    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    buttons->button(QDialogButtonBox::Ok)->setText(tr("Export"));
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(look);
    layout->addWidget(buttons);
    updateEnabled();
}

QString ExportDialog::folder() const
{
    return m_folder->text();
}
QString ExportDialog::baseName() const
{
    return m_base->text();
}

QList<ExportFormat> ExportDialog::formats() const
{
    QList<ExportFormat> f;
    if (m_png->isChecked())
        f << ExportFormat::Png;
    if (m_svg->isChecked())
        f << ExportFormat::Svg;
    if (m_pdf->isChecked())
        f << ExportFormat::Pdf;
    if (m_csv->isChecked())
        f << ExportFormat::Csv;
    return f;
}

ExportStyle ExportDialog::style() const
{
    ExportStyle s = m_paper->isChecked() ? ExportStyle::paperPreset() : ExportStyle::screen();
    if (m_paper->isChecked()) {
        s.widthMm = m_width->value();
        s.heightMm = m_height->value();
        s.fontPt = m_font->value();
        s.lineWidth = m_line->value();
        s.dpi = m_dpi->value();
    }
    s.dark = m_darkBox->isChecked();
    return s;
}

void ExportDialog::updateEnabled()
{
    const bool paper = m_paper->isChecked();
    for (QWidget* w : std::initializer_list<QWidget*>{m_width, m_height, m_font, m_line, m_dpi})
        w->setEnabled(paper);
}

} // namespace statescope
