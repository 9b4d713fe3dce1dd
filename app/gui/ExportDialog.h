#pragma once

#include "PlotExporter.h"

#include <QDialog>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLineEdit;
class QRadioButton;
class QSpinBox;

namespace statescope {

// Which plots, which formats, screen look or the paper preset (one or two columns wide, legend
// place, token axis, per-token NLL), the names of the runs in the legends, and where.
class ExportDialog : public QDialog {
    Q_OBJECT
public:
    ExportDialog(const QString& folder, const QString& baseName, bool dark, QWidget* parent = nullptr);

    // The labels of the trace and of the overlay (empty: none); the fields start with their short
    // form (ExportStyle::shortLabel()) for the user to edit.
    void setTraceLabels(const QString& trace, const QString& overlay);

    QString folder() const;
    QString baseName() const;
    QList<ExportFormat> formats() const;
    ExportStyle style() const;

    // Parts, for tests.
    QComboBox* widthBox() const { return m_widthChoice; }
    QComboBox* legendBox() const { return m_legend; }
    QComboBox* tokenAxisBox() const { return m_tokenAxis; }
    QCheckBox* tokenNllBox() const { return m_tokenNll; }
    QLineEdit* traceLabelEdit() const { return m_traceLabel; }
    QLineEdit* overlayLabelEdit() const { return m_overlayLabel; }
    QRadioButton* paperButton() const { return m_paper; }
    QRadioButton* screenButton() const { return m_screen; }

private:
    void updateEnabled();
    void applyWidthChoice();

    QLineEdit* m_folder;
    QLineEdit* m_base;
    QCheckBox* m_png;
    QCheckBox* m_svg;
    QCheckBox* m_pdf;
    QCheckBox* m_csv;
    QRadioButton* m_screen;
    QRadioButton* m_paper;
    QComboBox* m_widthChoice;
    QDoubleSpinBox* m_width;
    QDoubleSpinBox* m_height;
    QDoubleSpinBox* m_font;
    QDoubleSpinBox* m_line;
    QSpinBox* m_dpi;
    QComboBox* m_legend;
    QComboBox* m_tokenAxis;
    QCheckBox* m_tokenNll;
    QLineEdit* m_traceLabel;
    QLineEdit* m_overlayLabel;
    QCheckBox* m_darkBox;
};

} // namespace statescope
