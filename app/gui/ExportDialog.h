#pragma once

#include "PlotExporter.h"

#include <QDialog>

class QCheckBox;
class QDoubleSpinBox;
class QLineEdit;
class QRadioButton;
class QSpinBox;

namespace statescope {

// Which plots, which formats, screen look or the paper preset, and where.
class ExportDialog : public QDialog {
    Q_OBJECT
public:
    ExportDialog(const QString& folder, const QString& baseName, bool dark, QWidget* parent = nullptr);

    QString folder() const;
    QString baseName() const;
    QList<ExportFormat> formats() const;
    ExportStyle style() const;

private:
    void updateEnabled();

    QLineEdit* m_folder;
    QLineEdit* m_base;
    QCheckBox* m_png;
    QCheckBox* m_svg;
    QCheckBox* m_pdf;
    QCheckBox* m_csv;
    QRadioButton* m_screen;
    QRadioButton* m_paper;
    QDoubleSpinBox* m_width;
    QDoubleSpinBox* m_height;
    QDoubleSpinBox* m_font;
    QDoubleSpinBox* m_line;
    QSpinBox* m_dpi;
    QCheckBox* m_darkBox;
};

} // namespace statescope
