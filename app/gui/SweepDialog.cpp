#include "SweepDialog.h"

#include "ForgetThresholdView.h"

#include <QFileInfo>
#include <QVBoxLayout>

namespace statescope {

SweepDialog::SweepDialog(QWidget* parent) : QDialog(parent), m_view(new ForgetThresholdView(this))
{
    setWindowTitle(tr("Sweep results"));
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(m_view);
    connect(m_view, &ForgetThresholdView::errorOccurred, this, &SweepDialog::errorOccurred);
    resize(900, 700);
}

bool SweepDialog::openSummary(const QString& path)
{
    ForgetThresholdData data;
    QString error;
    if (!ForgetThresholdData::fromSummary(path, &data, &error)) {
        emit errorOccurred(error);
        return false;
    }
    m_path = QFileInfo(path).absoluteFilePath();
    m_view->setData(data);
    setWindowTitle(tr("Sweep results: %1 (%2 runs)").arg(data.name).arg(data.runs.size()));
    return true;
}

} // namespace statescope
