#pragma once

#include "TraceView.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QSlider;
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
    // Tokens of the NLL's moving average (the smoothing slider: powers of two from 1 to 4096).
    void setMovingAverageWindow(int tokens);
    int movingAverageWindow() const { return m_window; }
    void setPerplexityLogY(bool log);
    // The thin per-token NLL line; off, the axis fits the averages, which a long noisy run hides.
    void setTokenNllVisible(bool visible);
    bool tokenNllVisible() const { return m_tokenNll; }

    QCPGraph* nllGraph() const { return m_nll; }
    QCPGraph* averageGraph() const { return m_avg; }
    QCPGraph* perplexityGraph() const { return m_ppl; }
    QCPGraph* overlayNllGraph() const { return m_ov.isEmpty() ? nullptr : m_ov[0].nll; }
    QCPGraph* overlayAverageGraph() const { return m_ov.isEmpty() ? nullptr : m_ov[0].avg; }
    QCPGraph* overlayPerplexityGraph() const { return m_ov.isEmpty() ? nullptr : m_ov[0].ppl; }
    // Of the i-th overlay drawn (drawnOverlays() order).
    QCPGraph* overlayAverageGraph(int i) const { return i < m_ov.size() ? m_ov[i].avg : nullptr; }
    // Its NLL minus the main trace's, moving averages on the tokens both have (difference mode).
    QCPGraph* differenceGraph(int i) const { return i < m_ov.size() ? m_ov[i].diff : nullptr; }
    QComboBox* bucketBox() const { return m_bucketBox; }
    QSlider* smoothingSlider() const { return m_smoothing; }
    QCheckBox* differenceBox() const { return m_diffBox; }

    // Difference mode: each overlay's NLL minus the main trace's (B - A, moving averages over the
    // smoothing window, on the tokens both have) instead of the NLL and perplexity lines.
    void setDifference(bool on);
    bool difference() const { return m_difference; }

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
    struct OverlayGraphs {
        QCPGraph* nll = nullptr;
        QCPGraph* avg = nullptr;
        QCPGraph* ppl = nullptr;
        QCPGraph* diff = nullptr;
    };
    QVector<OverlayGraphs> m_ov; // one per drawn overlay
    QSlider* m_smoothing = nullptr;
    QLabel* m_smoothingLabel = nullptr;
    QCheckBox* m_diffBox = nullptr;
    bool m_difference = false;
    QComboBox* m_bucketBox = nullptr;
    QCheckBox* m_tokenBox = nullptr;
    bool m_tokenNll = true;
    int m_bucket = 1024;
    int m_window = 256;
};

} // namespace statescope
