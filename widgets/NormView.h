#pragma once

#include "TraceView.h"

#include <QVector>

class QCheckBox;
class QComboBox;
class QCPGraph;
class QCPColorMap;
class QCPColorScale;

namespace statescope {

// State norms: per-head ||S_h|| of the selected layer as lines (top axis rect; an overlay trace adds
// its own per-head lines in a second colour, with a legend) and a layer x token heatmap of each
// layer's state norm sqrt(sum_h ||S_h||^2) (bottom axis rect). Log-y applies to the lines and to
// the heatmap's colour scale.
class NormView : public TraceView {
    Q_OBJECT
public:
    explicit NormView(QWidget* parent = nullptr);

    QList<QCPAxis*> tokenAxes() const override;
    QString title() const override { return tr("State norms"); }
    QVector<CsvColumn> csvColumns() const override;

    int layer() const { return m_layer; }
    bool logY() const { return m_logY; }

    QCPAxisRect* linesRect() const { return m_linesRect; }
    QCPAxisRect* heatmapRect() const { return m_heatRect; }
    const QVector<QCPGraph*>& headGraphs() const { return m_headGraphs; }
    const QVector<QCPGraph*>& overlayGraphs() const { return m_overlayGraphs; }
    QCPColorMap* heatmap() const { return m_heatmap; }
    QComboBox* layerBox() const { return m_layerBox; }
    QCheckBox* logBox() const { return m_logBox; }

public slots:
    void setLayer(int layer);
    void setLogY(bool log);

signals:
    void layerChanged(int layer);

protected:
    void rebuild() override;
    void restyle() override;
    void tracesChanged() override;

private:
    void ensureGraphs();

    QCPAxisRect* m_linesRect = nullptr;
    QCPAxisRect* m_heatRect = nullptr;
    QVector<QCPGraph*> m_headGraphs;
    QVector<QCPGraph*> m_overlayGraphs;
    QCPColorMap* m_heatmap = nullptr;
    QCPColorScale* m_scale = nullptr;
    QComboBox* m_layerBox = nullptr;
    QCheckBox* m_logBox = nullptr;
    int m_layer = 0;
    bool m_logY = false;
};

} // namespace statescope
