#include "NormView.h"

#include "PlotExporter.h"
#include "PlotHelpers.h"

#include <QCheckBox>
#include <QComboBox>
#include <QLabel>

#include <qcustomplot.h>

#include <cmath>

namespace statescope {

namespace {

constexpr int kHeatPixels = 2;

QColor shade(const QColor& base, int i, int n)
{
    // Heads of one trace in one hue, from darker to lighter, so two traces stay apart.
    const double f = n > 1 ? double(i) / (n - 1) : 0.5;
    return QColor::fromHsvF(base.hsvHueF(), std::clamp(base.hsvSaturationF() * (1.0 - 0.45 * f), 0.0, 1.0),
                            std::clamp(base.valueF() * (0.75 + 0.25 * f), 0.0, 1.0));
}

} // namespace

NormView::NormView(QWidget* parent) : TraceView(parent)
{
    m_layerBox = new QComboBox(this);
    m_logBox = new QCheckBox(tr("log y"), this);
    addControl(new QLabel(tr("Layer:"), this));
    addControl(m_layerBox);
    addControl(m_logBox);
    connect(m_layerBox, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) {
        if (i >= 0)
            setLayer(i);
    });
    connect(m_logBox, &QCheckBox::toggled, this, &NormView::setLogY);

    QCustomPlot* p = m_plot;
    m_plot->setMinimumHeight(260);
    m_linesRect = p->axisRect();
    m_linesRect->axis(QCPAxis::atLeft)->setLabel(tr("‖S_h‖"));
    m_heatRect = new QCPAxisRect(p);
    p->plotLayout()->addElement(1, 0, m_heatRect);
    m_scale = new QCPColorScale(p);
    p->plotLayout()->addElement(1, 1, m_scale);
    m_scale->setBarWidth(10);
    m_scale->axis()->setLabel(tr("layer state norm"));
    auto* group = new QCPMarginGroup(p);
    m_linesRect->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    m_heatRect->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    m_scale->setMarginGroup(QCP::msTop | QCP::msBottom, group);
    m_heatRect->axis(QCPAxis::atBottom)->setLabel(tr("token position"));
    QCPAxis* ly = m_heatRect->axis(QCPAxis::atLeft);
    QSharedPointer<QCPAxisTickerFixed> t(new QCPAxisTickerFixed);
    t->setTickStep(1.0);
    t->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
    ly->setTicker(t);
    ly->setRangeReversed(true);
    ly->setLabel(tr("layer"));
    m_heatmap = new QCPColorMap(m_heatRect->axis(QCPAxis::atBottom), ly);
    m_heatmap->setColorScale(m_scale);
    m_heatmap->removeFromLegend(); // the colour scale explains it
    m_heatmap->setGradient(viridisGradient());
    m_heatmap->setInterpolate(false);
    p->legend->setVisible(true);
    // One row at the top right: a column of entries would cover the lines of a short axis rect.
    p->legend->setFillOrder(QCPLayoutGrid::foColumnsFirst);
    p->legend->setWrap(0);
    m_linesRect->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
    tracesChanged();
}

QList<QCPAxis*> NormView::tokenAxes() const
{
    return {m_linesRect->axis(QCPAxis::atBottom), m_heatRect->axis(QCPAxis::atBottom)};
}

void NormView::ensureGraphs()
{
    QCPAxis* x = m_linesRect->axis(QCPAxis::atBottom);
    QCPAxis* y = m_linesRect->axis(QCPAxis::atLeft);
    auto make = [&](QVector<QCPGraph*>& graphs, int n) {
        if (graphs.size() == n)
            return;
        for (QCPGraph* g : graphs)
            m_plot->removeGraph(g);
        graphs.clear();
        for (int h = 0; h < n; ++h) {
            QCPGraph* g = m_plot->addGraph(x, y);
            g->setAdaptiveSampling(false);
            g->removeFromLegend();
            graphs.push_back(g);
        }
    };
    make(m_headGraphs, m_trace ? m_trace->heads() : 0);
    const bool ov = m_overlay && m_overlay != m_trace;
    make(m_overlayGraphs, ov ? m_overlay->heads() : 0);
    restyle();
}

void NormView::tracesChanged()
{
    const int L = m_trace ? m_trace->layers() : 0;
    {
        const QSignalBlocker b(m_layerBox);
        if (m_layerBox->count() != L) {
            m_layerBox->clear();
            for (int l = 0; l < L; ++l)
                m_layerBox->addItem(QString::number(l));
        }
        m_layer = std::clamp(m_layer, 0, std::max(0, L - 1));
        m_layerBox->setCurrentIndex(L ? m_layer : -1);
    }
    ensureGraphs();
    m_heatRect->axis(QCPAxis::atLeft)->setRange(-0.5, std::max(1, L) - 0.5);
}

void NormView::restyle()
{
    const bool ov = !m_overlayGraphs.isEmpty();
    auto label = [](TraceData* t, const QString& fallback) {
        return t && !t->label().isEmpty() ? t->label() : fallback;
    };
    for (int h = 0; h < m_headGraphs.size(); ++h) {
        QColor c = ov ? shade(PlotExporter::traceColor(0, m_dark), h, m_headGraphs.size())
                      : PlotExporter::seriesColor(h, m_headGraphs.size(), m_dark);
        // One-pixel pens: wider ones make Qt stroke thousands of min/max segments as paths, 100x slower.
        m_headGraphs[h]->setPen(QPen(c, 1.0));
        m_headGraphs[h]->setName(
            ov ? tr("%1: heads of layer %2").arg(label(m_trace, tr("trace"))).arg(m_layer)
               : tr("head %1").arg(h));
        // One legend entry per trace with an overlay; per head otherwise (for few heads).
        if ((ov && h == 0) || (!ov && m_headGraphs.size() <= 8))
            m_headGraphs[h]->addToLegend();
        else
            m_headGraphs[h]->removeFromLegend();
    }
    for (int h = 0; h < m_overlayGraphs.size(); ++h) {
        QColor c = shade(PlotExporter::traceColor(1, m_dark), h, m_overlayGraphs.size());
        m_overlayGraphs[h]->setPen(QPen(c, 1.0));
        m_overlayGraphs[h]->setName(
            tr("%1: heads of layer %2").arg(label(m_overlay, tr("overlay"))).arg(m_layer));
        if (h == 0)
            m_overlayGraphs[h]->addToLegend();
        else
            m_overlayGraphs[h]->removeFromLegend();
    }
}

void NormView::setLayer(int layer)
{
    const int L = m_trace ? m_trace->layers() : 0;
    layer = std::clamp(layer, 0, std::max(0, L - 1));
    if (layer == m_layer && m_layerBox->currentIndex() == layer)
        return;
    m_layer = layer;
    const QSignalBlocker b(m_layerBox);
    m_layerBox->setCurrentIndex(L ? layer : -1);
    restyle();
    refresh();
    emit layerChanged(layer);
}

void NormView::setLogY(bool log)
{
    m_logY = log;
    {
        const QSignalBlocker b(m_logBox);
        m_logBox->setChecked(log);
    }
    QCPAxis* y = m_linesRect->axis(QCPAxis::atLeft);
    y->setScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    if (log)
        y->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    else
        y->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    m_heatmap->setDataScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    m_scale->axis()->setScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    if (log)
        m_scale->axis()->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    else
        m_scale->axis()->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    refresh();
}

void NormView::rebuild()
{
    QCPAxis* x = m_linesRect->axis(QCPAxis::atBottom);
    auto fill = [&](TraceData* t, const QVector<QCPGraph*>& graphs) {
        const qint64 n = t ? t->tokens() : 0;
        const QVector<qint64> edges = columnEdges(x, n);
        for (int h = 0; h < graphs.size(); ++h) {
            if (!t || edges.size() < 2 || m_layer >= t->layers())
                graphs[h]->data()->clear();
            else
                setEnvelope(graphs[h], t->seriesEdges(Quantity::StateNorm, m_layer, h, edges), true);
        }
    };
    fill(m_trace, m_headGraphs);
    if (!m_overlayGraphs.isEmpty())
        fill(m_overlay, m_overlayGraphs);
    QList<QCPGraph*> all(m_headGraphs.begin(), m_headGraphs.end());
    for (QCPGraph* g : m_overlayGraphs)
        all.push_back(g);
    rescaleY(m_linesRect->axis(QCPAxis::atLeft), all, m_logY, !m_logY);

    TraceData* t = m_trace;
    const qint64 n = t ? t->tokens() : 0;
    const int L = t ? t->layers() : 0;
    const HeatColumns hc = heatColumns(m_heatRect->axis(QCPAxis::atBottom), n, kHeatPixels);
    if (!t || L == 0 || hc.columns() < 1) {
        fillHeatmap(m_heatmap, hc, {}, L);
    } else {
        fillHeatmap(m_heatmap, hc, t->layerHeatmapEdges(Quantity::StateNormLayer, HeadReduce::Mean, hc.edges),
                    L);
        m_heatmap->rescaleDataRange(true);
        if (m_logY) {
            QCPRange r = m_heatmap->dataRange();
            if (r.lower <= 0)
                m_heatmap->setDataRange(QCPRange(std::max(r.upper * 1e-6, 1e-12), std::max(r.upper, 1e-11)));
        }
    }
}

QVector<CsvColumn> NormView::csvColumns() const
{
    QVector<CsvColumn> cols;
    const int layer = m_layer;
    auto add = [&](QPointer<TraceData> t, const QString& prefix) {
        if (!t)
            return;
        for (int h = 0; h < t->heads(); ++h)
            cols.push_back(
                {prefix + QStringLiteral("state_norm_L%1_H%2").arg(layer).arg(h), [t, layer, h](qint64 k) {
                     return t ? double(t->valueAt(Quantity::StateNorm, layer, h, k)) : NAN;
                 }});
    };
    add(m_trace, QString());
    if (m_overlay && m_overlay != m_trace)
        add(m_overlay, QStringLiteral("overlay_"));
    if (QPointer<TraceData> t = m_trace)
        for (int l = 0; l < t->layers(); ++l)
            cols.push_back({QStringLiteral("state_norm_layer_L%1").arg(l), [t, l](qint64 k) {
                                return t ? double(t->valueAt(Quantity::StateNormLayer, l, 0, k)) : NAN;
                            }});
    return cols;
}

} // namespace statescope
