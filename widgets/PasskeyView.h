#pragma once

// The passkey sweep as the paper draws it (stuffed-mamba.md §3.7): a depth x length accuracy heatmap
// (RdYlGn) and the "last-k" accuracy curves against length, with the training length marked. It draws
// what it is given and knows nothing of models; a click on a cell asks for one of its samples.
#include <QVector>
#include <QWidget>

class QCustomPlot;
class QCPAxisRect;
class QCPColorMap;
class QCPColorScale;
class QCPGraph;
class QCPItemStraightLine;
class QLabel;

namespace statescope {

struct PasskeyViewData {
    QVector<qint64> lengths;                // the columns, ascending, in tokens
    int bins = 10;                          // depth rows over [0, 1)
    QVector<double> accuracy;               // [lengths x bins] row-major by length; NaN: no sample yet
    QVector<QVector<qint64>> cellSamples;   // per cell, the sample indices a click may open (first first)
    QVector<qint64> lastK;                  // the k of each curve, in tokens
    QVector<QVector<double>> lastKAccuracy; // per k, per length; NaN: no sample within the last k
    qint64 trainingLength = 0;              // 0: unknown (no marker)
};

class PasskeyView : public QWidget {
    Q_OBJECT
public:
    explicit PasskeyView(QWidget* parent = nullptr);

    void setData(const PasskeyViewData& data);
    const PasskeyViewData& data() const { return m_data; }

    QCustomPlot* plot() const { return m_plot; }
    QCPColorMap* heatmap() const { return m_map; }
    QCPAxisRect* heatmapRect() const { return m_heatRect; }
    QCPAxisRect* curvesRect() const { return m_curveRect; }
    const QVector<QCPGraph*>& lastKGraphs() const { return m_curves; }
    QCPItemStraightLine* trainingLine() const { return m_trainLine; }
    // The pixel centre of a cell (length column, depth bin), for tests and tooltips.
    QPointF cellCenter(int column, int bin) const;
    // The cell under a pixel, or false.
    bool cellAt(const QPointF& pos, int* column, int* bin) const;

signals:
    // The user clicked a cell with samples: open the first of them.
    void sampleRequested(qint64 length, qint64 index);

private:
    void onPress(const QPointF& pos);

    QCustomPlot* m_plot;
    QCPAxisRect* m_heatRect;
    QCPAxisRect* m_curveRect;
    QCPColorMap* m_map;
    QCPColorScale* m_scale;
    QVector<QCPGraph*> m_curves;
    QCPItemStraightLine* m_trainLine;
    QLabel* m_hint;
    PasskeyViewData m_data;
};

} // namespace statescope
