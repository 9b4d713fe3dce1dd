#include "ExportDialog.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLineEdit>
#include <QPushButton>
#include <QRadioButton>
#include <QSignalBlocker>
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

// The width box's entries: a preset each, then the user's own size.
enum WidthChoice { kSingleColumn, kDoubleColumn, kCustom };

} // namespace

ExportDialog::ExportDialog(const QString& folder, const QString& baseName, bool dark, QWidget* parent)
    : QDialog(parent), m_folder(new QLineEdit(folder, this)), m_base(new QLineEdit(baseName, this)),
      m_png(new QCheckBox("PNG", this)), m_svg(new QCheckBox("SVG", this)), m_pdf(new QCheckBox("PDF", this)),
      m_csv(new QCheckBox(tr("CSV (visible range)"), this)),
      m_screen(new QRadioButton(tr("As on screen"), this)), m_paper(new QRadioButton(tr("Paper"), this)),
      m_widthChoice(new QComboBox(this)), m_width(nullptr), m_height(nullptr), m_font(nullptr),
      m_line(nullptr), m_dpi(new QSpinBox(this)), m_legend(new QComboBox(this)),
      m_tokenAxis(new QComboBox(this)),
      m_tokenNll(new QCheckBox(tr("Each token's NLL in the loss plot"), this)),
      m_traceLabel(new QLineEdit(this)), m_overlayLabel(new QLineEdit(this)),
      m_darkBox(new QCheckBox(tr("Dark background"), this))
{
    setWindowTitle(tr("Export plots"));
    const ExportStyle paper = ExportStyle::paperPreset();
    const ExportStyle wide = ExportStyle::paperWidePreset();
    m_widthChoice->addItem(tr("One column (%1 mm)").arg(paper.widthMm), kSingleColumn);
    m_widthChoice->addItem(tr("Two columns (%1 mm)").arg(wide.widthMm), kDoubleColumn);
    m_widthChoice->addItem(tr("Custom"), kCustom);
    m_width = spin(this, 20, 500, paper.widthMm, 1, " mm");
    m_height = spin(this, 20, 500, paper.heightMm, 1, " mm");
    m_font = spin(this, 4, 24, paper.fontPt, 0.5, " pt");
    m_line = spin(this, 0.1, 5, paper.lineWidth, 0.1, " pt");
    m_dpi->setRange(72, 1200);
    m_dpi->setValue(paper.dpi);
    m_dpi->setSuffix(" dpi");
    m_legend->addItem(tr("Above the plot"), int(LegendPlace::OutsideTop));
    m_legend->addItem(tr("Inside, top left"), int(LegendPlace::TopLeft));
    m_legend->addItem(tr("Inside, top right"), int(LegendPlace::TopRight));
    m_legend->addItem(tr("Inside, bottom left"), int(LegendPlace::BottomLeft));
    m_legend->addItem(tr("Inside, bottom right"), int(LegendPlace::BottomRight));
    m_legend->addItem(tr("Hidden"), int(LegendPlace::Hidden));
    m_legend->setCurrentIndex(m_legend->findData(int(paper.legend)));
    m_tokenAxis->addItem(tr("Logarithmic"), 1);
    m_tokenAxis->addItem(tr("Linear"), 0);
    m_tokenAxis->addItem(tr("As on screen"), -1);
    m_tokenAxis->setCurrentIndex(m_tokenAxis->findData(paper.logX.value_or(true) ? 1 : 0));
    m_tokenNll->setChecked(paper.tokenNll.value_or(false));
    m_tokenNll->setToolTip(tr("Off: the moving average and the perplexity only; a long run's per-token "
                              "NLL is a band that hides them"));
    m_traceLabel->setToolTip(tr("The run's name in the legends"));
    m_overlayLabel->setToolTip(tr("The overlaid run's name in the legends"));
    m_overlayLabel->setEnabled(false);
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
    lookForm->addRow(tr("Figure"), m_widthChoice);
    lookForm->addRow(tr("Width"), m_width);
    lookForm->addRow(tr("Height"), m_height);
    lookForm->addRow(tr("Font size"), m_font);
    lookForm->addRow(tr("Line width"), m_line);
    lookForm->addRow(tr("PNG resolution"), m_dpi);
    lookForm->addRow(tr("Legend"), m_legend);
    lookForm->addRow(tr("Token axis"), m_tokenAxis);
    lookForm->addRow(m_tokenNll);
    lookForm->addRow(m_darkBox);
    connect(m_paper, &QRadioButton::toggled, this, &ExportDialog::updateEnabled);
    connect(m_widthChoice, qOverload<int>(&QComboBox::currentIndexChanged), this,
            &ExportDialog::applyWidthChoice);
    // Typing a size of one's own makes it a custom figure.
    for (QDoubleSpinBox* s : {m_width, m_height})
        connect(s, &QDoubleSpinBox::valueChanged, this, [this] {
            const int choice = m_widthChoice->currentData().toInt();
            const ExportStyle preset =
                choice == kDoubleColumn ? ExportStyle::paperWidePreset() : ExportStyle::paperPreset();
            if (choice != kCustom &&
                (m_width->value() != preset.widthMm || m_height->value() != preset.heightMm)) {
                const QSignalBlocker block(m_widthChoice);
                m_widthChoice->setCurrentIndex(m_widthChoice->findData(kCustom));
            }
        });

    auto* names = new QGroupBox(tr("Names in the legends"), this);
    auto* namesForm = new QFormLayout(names);
    namesForm->addRow(tr("Run"), m_traceLabel);
    namesForm->addRow(tr("Overlay"), m_overlayLabel);

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
    layout->addWidget(names);
    layout->addWidget(buttons);
    updateEnabled();
}

void ExportDialog::setTraceLabels(const QString& trace, const QString& overlay)
{
    m_traceLabel->setText(ExportStyle::shortLabel(trace));
    m_overlayLabel->setText(overlay.isEmpty() ? QString() : ExportStyle::shortLabel(overlay));
    m_overlayLabel->setEnabled(!overlay.isEmpty());
}

void ExportDialog::applyWidthChoice()
{
    const int choice = m_widthChoice->currentData().toInt();
    if (choice == kCustom)
        return;
    const ExportStyle s =
        choice == kDoubleColumn ? ExportStyle::paperWidePreset() : ExportStyle::paperPreset();
    const QSignalBlocker b1(m_width), b2(m_height);
    m_width->setValue(s.widthMm);
    m_height->setValue(s.heightMm);
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
        s.legend = LegendPlace(m_legend->currentData().toInt());
        const int axis = m_tokenAxis->currentData().toInt();
        s.logX = axis < 0 ? std::nullopt : std::optional<bool>(axis == 1);
        s.tokenNll = m_tokenNll->isChecked();
    }
    s.traceLabel = m_traceLabel->text().trimmed();
    if (m_overlayLabel->isEnabled())
        s.overlayLabel = m_overlayLabel->text().trimmed();
    s.dark = m_darkBox->isChecked();
    return s;
}

void ExportDialog::updateEnabled()
{
    const bool paper = m_paper->isChecked();
    for (QWidget* w : std::initializer_list<QWidget*>{m_widthChoice, m_width, m_height, m_font, m_line, m_dpi,
                                                      m_legend, m_tokenAxis, m_tokenNll})
        w->setEnabled(paper);
}

} // namespace statescope
