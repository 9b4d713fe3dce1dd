#pragma once

#include "models/Mitigation.h"

#include <QWidget>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;

namespace statescope {

// The training-free mitigations of the next run (models/Mitigation.h, docs/mitigations.md): the gate
// and input scales, state normalisation with where its tau is calibrated, and the state-difference
// window. "Compare with original" asks the window to run the input twice, plain and mitigated, and
// to overlay them.
class MitigationsPanel : public QWidget {
    Q_OBJECT
public:
    explicit MitigationsPanel(QWidget* parent = nullptr);

    // What the controls say (tau empty: the run calibrates it).
    Mitigation mitigation() const;
    // The text whose first T_train tokens calibrate normalisation; empty: the input's.
    QString calibrationFile() const;
    // Sets the controls from a --mitigate spec (as Mitigation::describe writes it). Returns false
    // and changes nothing for a spec parseMitigation refuses; *error says why.
    bool setSpec(const QString& spec, QString* error = nullptr);
    void setCalibrationFile(const QString& path);
    // The old-context probes' window for the next run (0: off). Not a mitigation: it measures, for
    // any run, how much of the state is older than this many tokens.
    qint64 oldContext() const;
    void setOldContext(qint64 tokens);
    // While a run goes the settings of the next one stay editable; the compare button does not.
    void setRunning(bool running);

signals:
    void changed();
    void compareRequested();

private:
    void update();

    QDoubleSpinBox *m_alpha, *m_B, *m_dt, *m_A;
    QComboBox* m_norm;
    QDoubleSpinBox* m_clip;
    QSpinBox* m_every;
    QLineEdit* m_calibration;
    QPushButton* m_browse;
    QCheckBox* m_windowOn;
    QSpinBox *m_window, *m_snapshot;
    QSpinBox* m_oldContext;
    QLabel* m_summary;
    QPushButton *m_reset, *m_compare;
    bool m_updating = false;
};

} // namespace statescope
