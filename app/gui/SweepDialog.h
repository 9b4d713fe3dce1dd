#pragma once

// A sweep's results (statescope-cli sweep report): the forget-threshold view of its summary.json.
#include <QDialog>

namespace statescope {

class ForgetThresholdView;

class SweepDialog : public QDialog {
    Q_OBJECT
public:
    explicit SweepDialog(QWidget* parent = nullptr);

    // Reads summary.json into the view; false (and errorOccurred) when it cannot.
    bool openSummary(const QString& path);
    QString summaryPath() const { return m_path; }
    ForgetThresholdView* view() const { return m_view; }

signals:
    void errorOccurred(const QString& message);

private:
    ForgetThresholdView* m_view;
    QString m_path;
};

} // namespace statescope
