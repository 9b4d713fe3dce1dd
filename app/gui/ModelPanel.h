#pragma once

#include "io/DType.h"
#include "runtime/Runner.h"

#include <QWidget>

#include <optional>

class QComboBox;
class QLabel;
class QSpinBox;
class QPushButton;

namespace statescope {

// Which model runs and how: the model list (built-in, recent, Hugging Face cache, or a folder the
// user opens), what the config says about it (architecture, N_S, predicted T_forget; the parameter
// count once loaded), device and dtype, and the training length marked on the loss plot.
class ModelPanel : public QWidget {
    Q_OBJECT
public:
    explicit ModelPanel(QWidget* parent = nullptr);

    // Inspects the folder (config only, no weights). On success it becomes the current model and the
    // first of the recent models; on failure *error names the file and problem and nothing changes.
    bool setModel(const QString& dir, QString* error);
    QString modelDir() const { return m_modelDir; }
    QString modelName() const;
    QString tokenizerPath() const; // as the engine chooses it: the model's own, or the built-in one

    RunOptions runOptions() const;
    QString device() const;
    QString dtype() const;
    void setDevice(const QString& device); // ignored if not offered (no CUDA here)
    void setDtype(const QString& dtype);
    // Tokens per engine call; 0 = adapt so that each chunk takes about 50 ms (plots move smoothly).
    void setChunkSize(int tokens);
    int chunkSize() const;
    qint64 trainingLength() const;                                        // 0 = not set
    double predictedForgetThreshold() const { return m_forgetThreshold; } // 0 = none

    // What the panel shows of the model's shape (architecture, layout, layers, units) and state size.
    QString shapeText() const;
    QString stateSizeText() const;

    // Fills in what only the loaded model knows.
    void setLoadedInfo(const ModelInfo& info);

    QStringList recentModels() const;
    void setRecentModels(const QStringList& dirs);
    void refreshModelList();
    // While a run goes the model and its options are fixed; the training-length marker is not.
    void setRunning(bool running);

signals:
    void modelChanged(const QString& dir);
    void trainingLengthChanged(qint64 tokens);
    void errorOccurred(const QString& message);

private:
    void onListActivated(int index);
    void onOpenClicked();
    void updateDtypes();

    QComboBox* m_list;
    QPushButton* m_open;
    QLabel* m_architecture;
    QLabel* m_parameters;
    QLabel* m_stateSize;
    QLabel* m_forget;
    QLabel* m_tokenizer;
    QSpinBox* m_trainingLength;
    QComboBox* m_device;
    QComboBox* m_dtype;
    QSpinBox* m_chunk;
    QString m_modelDir;
    QString m_tokenizerPath;
    double m_forgetThreshold = 0;
    QStringList m_recent;
    bool m_filling = false;
};

} // namespace statescope
