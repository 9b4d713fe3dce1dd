#pragma once

#include "TraceView.h"

#include <QVector>

class QCheckBox;
class QComboBox;
class QLabel;
class QCPGraph;
class QCPColorMap;
class QCPColorScale;
class QCPAbstractLegendItem;
class QToolButton;

namespace statescope {

// Any probe shaped [layer, unit], drawn from its descriptor alone (label, unit, summary,
// description), whatever the architecture: the units of the selected layer as lines, with the layer's
// summary as a thicker line (top axis rect), and a layer x token heatmap of the summary, the min over
// the units, or one chosen unit (bottom axis rect). An overlay trace shows as its layer summary, so
// that models with different units compare. Log-y applies to the lines and to the heatmap's colours.
//
// Every line drawn is named in the legend: the summary, the selected unit (thicker, on top, and
// where a pixel column holds many tokens drawn as their min-max stroke, which the legend says), one
// entry for the other units (their colours, drawn as per-column means so that they stay lines), and
// the overlay.
class ProbeView : public TraceView {
    Q_OBJECT
public:
    // What a heatmap row shows of a layer.
    enum class Reduce {
        Summary, // the probe's ProbeSummary over the units
        Min,     // the min over the units (and over the cell's tokens)
        Unit,    // the selected unit
    };
    Q_ENUM(Reduce)

    // probe: the name of the probe to show (e.g. "decay"); the view shows nothing while its trace
    // lacks it.
    explicit ProbeView(const QString& probe = QString(), QWidget* parent = nullptr);

    QList<QCPAxis*> tokenAxes() const override;
    QString title() const override;
    QVector<CsvColumn> csvColumns() const override;
    QStringList readout(qint64 token, QCPAxisRect* rect, int pointerY) const override;

    QString probeName() const { return m_probe; }
    // The probe's index in trace() (-1 if it lacks it) and its descriptor (nullptr then).
    int probeIndex() const;
    const ProbeDesc* probeDesc() const;
    int layer() const { return m_layer; }
    int unit() const { return m_unit; }
    Reduce reduce() const { return m_reduce; }
    bool logY() const { return m_logY; }

    QCPAxisRect* linesRect() const { return m_linesRect; }
    QCPAxisRect* heatmapRect() const { return m_heatRect; }
    // One graph per unit of the selected layer.
    const QVector<QCPGraph*>& unitGraphs() const { return m_unitGraphs; }
    // The layer's summary (ProbeDesc::summary over its units).
    QCPGraph* summaryGraph() const { return m_summaryGraph; }
    // The overlay trace's summary of the layer, when an overlay is set (null otherwise).
    QCPGraph* overlaySummaryGraph() const { return m_overlaySummaries.value(0, nullptr); }
    // One per overlay, in overlays() order.
    const QVector<QCPGraph*>& overlaySummaryGraphs() const { return m_overlaySummaries; }
    QCPColorMap* heatmap() const { return m_heatmap; }
    QCPColorScale* colorScale() const { return m_scale; }
    QComboBox* probeBox() const { return m_probeBox; }
    QComboBox* layerBox() const { return m_layerBox; }
    QComboBox* unitBox() const { return m_unitBox; }
    QComboBox* reduceBox() const { return m_reduceBox; }
    QCheckBox* logBox() const { return m_logBox; }
    // "link layers": shown where several views share a window (setLayerLinkVisible).
    QCheckBox* linkBox() const { return m_linkBox; }
    // The legend's entries as the plot draws them, top left to bottom right (for tests).
    QStringList legendTexts() const;
    // The entry that stands for the units' lines.
    QCPAbstractLegendItem* unitsLegendItem() const { return m_unitsItem; }

    void setLayerLinkVisible(bool visible);
    bool layersLinked() const;
    // Sets the box without emitting layerLinkToggled().
    void setLayersLinked(bool linked);

    // A close button in the controls row (for views the user added); it emits closeRequested().
    void setClosable(bool closable);

public slots:
    void setProbe(const QString& name);
    void setLayer(int layer);
    // The unit drawn highlighted among the lines and used by the heatmap in Reduce::Unit.
    void setUnit(int unit);
    void setReduce(statescope::ProbeView::Reduce reduce);
    void setLogY(bool log);

signals:
    void probeChanged(const QString& name);
    // The user picked a probe in the view's own box (not emitted by setProbe()).
    void probePicked(const QString& name);
    void layerChanged(int layer);
    void unitChanged(int unit);
    void closeRequested();
    // The user toggled "link layers".
    void layerLinkToggled(bool linked);

protected:
    QVector<int> probesDrawn(TraceData* t) const override;
    void rebuild() override;
    void restyle() override;
    void tracesChanged() override;

private:
    void ensureGraphs();
    void fillPickers();
    void updateLabels();
    void updateLegend();
    QString unitLabel(TraceData* t, int unit) const;

    QString m_probe;
    QCPAxisRect* m_linesRect = nullptr;
    QCPAxisRect* m_heatRect = nullptr;
    QVector<QCPGraph*> m_unitGraphs;
    QCPGraph* m_summaryGraph = nullptr;
    QVector<QCPGraph*> m_overlaySummaries;
    QCPColorMap* m_heatmap = nullptr;
    QCPColorScale* m_scale = nullptr;
    QComboBox* m_probeBox = nullptr;
    QComboBox* m_layerBox = nullptr;
    QComboBox* m_unitBox = nullptr;
    QLabel* m_unitBoxLabel = nullptr;
    QComboBox* m_reduceBox = nullptr;
    QCheckBox* m_logBox = nullptr;
    QCheckBox* m_linkBox = nullptr;
    QCPAbstractLegendItem* m_unitsItem = nullptr; // owned by the legend while in it
    QToolButton* m_close = nullptr;
    int m_layer = 0;
    int m_unit = 0;
    Reduce m_reduce = Reduce::Summary;
    bool m_logY = false;
};

} // namespace statescope
