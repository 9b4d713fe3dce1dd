#pragma once

#include "TraceView.h"

class QCheckBox;
class QComboBox;
class QCPGraph;
class QCPAxis;

namespace statescope {

// Per-token NLL (thin; min/max per pixel column when decimated), its moving average, and bucketed
// perplexity exp(mean NLL) on the right y axis. An overlay trace adds its NLL average and perplexity
// in a second colour, with a legend.
class LossView : public TraceView {
    Q_OBJECT
public:
    static constexpr int kMinBucket = 128;
    static constexpr int kMaxBucket = 8192;

    explicit LossView(QWidget* parent = nullptr);

    QList<QCPAxis*> tokenAxes() const override;
    QString title() const override { return tr("Loss"); }
    QVector<CsvColumn> csvColumns() const override;
    QStringList readout(qint64 token, QCPAxisRect* rect, int pointerY) const override;

    // Power of two in [kMinBucket, kMaxBucket] (others are rounded to the nearest one).
    void setBucketSize(int tokens);
    int bucketSize() const { return m_bucket; }
    void setMovingAverageWindow(int tokens);
    int movingAverageWindow() const { return m_window; }
    void setPerplexityLogY(bool log);
    // The thin per-token NLL line; off, the axis fits the averages, which a long noisy run hides.
    void setTokenNllVisible(bool visible);
    bool tokenNllVisible() const { return m_tokenNll; }

    QCPGraph* nllGraph() const { return m_nll; }
    QCPGraph* averageGraph() const { return m_avg; }
    QCPGraph* perplexityGraph() const { return m_ppl; }
    QCPGraph* overlayNllGraph() const { return m_ovNll; }
    QCPGraph* overlayAverageGraph() const { return m_ovAvg; }
    QCPGraph* overlayPerplexityGraph() const { return m_ovPpl; }
    QComboBox* bucketBox() const { return m_bucketBox; }

signals:
    void bucketSizeChanged(int tokens);

protected:
    void rebuild() override;
    void restyle() override;
    void tracesChanged() override;

private:
    QCPGraph* m_nll = nullptr;
    QCPGraph* m_avg = nullptr;
    QCPGraph* m_ppl = nullptr;
    QCPGraph* m_ovNll = nullptr;
    QCPGraph* m_ovAvg = nullptr;
    QCPGraph* m_ovPpl = nullptr;
    QComboBox* m_bucketBox = nullptr;
    QCheckBox* m_tokenBox = nullptr;
    bool m_tokenNll = true;
    int m_bucket = 1024;
    int m_window = 256;
};

} // namespace statescope
