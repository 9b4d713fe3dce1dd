#pragma once

// Passkey retrieval in the window (issue 11): the sweep of statescope-cli passkey on a worker thread,
// resumable from its results file, cancellable, filling the heatmap length by length. A click on a
// cell asks the window to run that sample's prompt with its needle marked.
#include "PasskeyView.h"
#include "runtime/Passkey.h"
#include "runtime/Runner.h"

#include <QDialog>

#include <atomic>
#include <thread>
#include <vector>

class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;

namespace statescope {

// The model a sweep runs, as the window's panels set it.
struct PasskeySweepRequest {
    QString modelDir;
    QString modelName;
    RunOptions options;        // device, dtype, mitigation
    QString calibrationFile;   // state normalisation's tau; empty: a passkey prompt of T_train tokens
    qint64 trainingLength = 0; // the Model panel's; 0: the model card's
};

class PasskeyDialog : public QDialog {
    Q_OBJECT
public:
    explicit PasskeyDialog(QWidget* parent = nullptr);
    ~PasskeyDialog() override; // cancels a sweep and waits for it

    void setRequest(const PasskeySweepRequest& request);
    void setLengths(const QString& spec);
    void setSamples(int samples);
    void setSeed(int seed);
    void setBatch(int batch);
    void setResultsPath(const QString& path);
    QString resultsPath() const;

    // false (with the reason shown and errorOccurred emitted) for bad settings or a sweep going.
    bool start();
    // Shows a results file as it is, with its own settings (a sweep run elsewhere, on a GPU machine
    // say); Start then resumes it if the window's model is the file's. false, with the reason shown
    // and errorOccurred emitted, for a file that is not one or while a sweep runs.
    bool openResults(const QString& path);
    void cancel();
    bool isRunning() const { return m_running; }
    const std::vector<PasskeyResult>& results() const { return m_results; }
    PasskeyView* view() const { return m_view; }
    QString statusText() const;

signals:
    // A sample to run in the window: its prompt, key and a line with the truth and the prediction.
    void sampleRequested(const QString& text, const QString& passkey, const QString& description);
    void sweepEnded(bool completed);
    void errorOccurred(const QString& message);

private:
    void onResults(const std::vector<PasskeyResult>& results);
    void onEnded(bool completed, const QString& error);
    void onCell(qint64 length, qint64 index);
    void updateView();
    void join();

    QLineEdit* m_lengths;
    QSpinBox *m_samples, *m_seed, *m_batch;
    QLineEdit* m_path;
    QPushButton *m_start, *m_cancel;
    QProgressBar* m_progress;
    QLabel* m_status;
    PasskeyView* m_view;

    PasskeySweepRequest m_request;
    PasskeySettings m_settings; // of the sweep shown
    qint64 m_trainingLength = 0;
    std::vector<PasskeyResult> m_results;
    std::thread m_worker;
    std::atomic<bool> m_cancelFlag{false};
    bool m_running = false;
};

} // namespace statescope
