#pragma once

#include "TraceView.h"

#include <QVector>

class QComboBox;
class QCPGraph;
class QCPColorMap;
class QCPColorScale;

namespace statescope {

// Forget gates: per-head decay alpha of the selected layer as lines (top axis rect) and a layer x
// token heatmap (bottom axis rect) of the mean over heads, the min, or one chosen head.
class GateView : public TraceView {
    Q_OBJECT
public:
    explicit GateView(QWidget* parent = nullptr);

    QList<QCPAxis*> tokenAxes() const override;
    QString title() const override { return tr("Forget gates"); }
    QVector<CsvColumn> csvColumns() const override;

    int layer() const { return m_layer; }
    int head() const { return m_head; }
    HeadReduce reduce() const { return m_reduce; }

    QCPAxisRect* linesRect() const { return m_linesRect; }
    QCPAxisRect* heatmapRect() const { return m_heatRect; }
    // One graph per head of the selected layer (plus the layer mean as a thicker line, last).
    const QVector<QCPGraph*>& headGraphs() const { return m_headGraphs; }
    QCPGraph* meanGraph() const { return m_meanGraph; }
    // The overlay trace's layer mean, when an overlay is set (null otherwise).
    QCPGraph* overlayMeanGraph() const { return m_overlayMean; }
    QCPColorMap* heatmap() const { return m_heatmap; }
    QComboBox* layerBox() const { return m_layerBox; }
    QComboBox* headBox() const { return m_headBox; }
    QComboBox* reduceBox() const { return m_reduceBox; }

public slots:
    void setLayer(int layer);
    // The head drawn highlighted among the lines and used by the heatmap in HeadReduce::Head.
    void setHead(int head);
    void setReduce(HeadReduce reduce);

signals:
    void layerChanged(int layer);
    void headChanged(int head);

protected:
    void rebuild() override;
    void restyle() override;
    void tracesChanged() override;

private:
    void ensureGraphs();
    void fillPickers();

    QCPAxisRect* m_linesRect = nullptr;
    QCPAxisRect* m_heatRect = nullptr;
    QVector<QCPGraph*> m_headGraphs;
    QCPGraph* m_meanGraph = nullptr;
    QCPGraph* m_overlayMean = nullptr;
    QCPColorMap* m_heatmap = nullptr;
    QCPColorScale* m_scale = nullptr;
    QComboBox* m_layerBox = nullptr;
    QComboBox* m_headBox = nullptr;
    QComboBox* m_reduceBox = nullptr;
    int m_layer = 0;
    int m_head = 0;
    HeadReduce m_reduce = HeadReduce::Mean;
};

} // namespace statescope
