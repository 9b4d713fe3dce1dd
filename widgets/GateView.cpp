#include "GateView.h"

#include "PlotExporter.h"
#include "PlotHelpers.h"

#include <QComboBox>
#include <QLabel>

#include <qcustomplot.h>

#include <cmath>

namespace statescope {

namespace {

// Pixels per heatmap column: finer than this shows nothing more and costs more.
constexpr int kHeatPixels = 2;

void setupLayerAxis(QCPAxis* y, int layers)
{
    QSharedPointer<QCPAxisTickerFixed> t(new QCPAxisTickerFixed);
    t->setTickStep(1.0);
    t->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
    y->setTicker(t);
    y->setRangeReversed(true); // layer 0 on top, as the model reads
    y->setRange(-0.5, std::max(1, layers) - 0.5);
    y->setLabel(QObject::tr("layer"));
}

} // namespace

GateView::GateView(QWidget* parent) : TraceView(parent)
{
    m_layerBox = new QComboBox(this);
    m_headBox = new QComboBox(this);
    m_reduceBox = new QComboBox(this);
    m_reduceBox->addItem(tr("mean over heads"), int(HeadReduce::Mean));
    m_reduceBox->addItem(tr("min over heads"), int(HeadReduce::Min));
    m_reduceBox->addItem(tr("selected head"), int(HeadReduce::Head));
    addControl(new QLabel(tr("Layer:"), this));
    addControl(m_layerBox);
    addControl(new QLabel(tr("Head:"), this));
    addControl(m_headBox);
    addControl(new QLabel(tr("Heatmap:"), this));
    addControl(m_reduceBox);
    connect(m_layerBox, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) {
        if (i >= 0)
            setLayer(i);
    });
    connect(m_headBox, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) {
        if (i >= 0)
            setHead(i);
    });
    connect(m_reduceBox, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setReduce(HeadReduce(m_reduceBox->itemData(i).toInt())); });

    QCustomPlot* p = m_plot;
    m_plot->setMinimumHeight(260);
    m_linesRect = p->axisRect();
    m_linesRect->axis(QCPAxis::atLeft)->setLabel(tr("decay α"));
    m_heatRect = new QCPAxisRect(p);
    p->plotLayout()->addElement(1, 0, m_heatRect);
    m_scale = new QCPColorScale(p);
    p->plotLayout()->addElement(1, 1, m_scale);
    m_scale->setBarWidth(10);
    m_scale->axis()->setLabel(tr("α"));
    auto* group = new QCPMarginGroup(p);
    m_linesRect->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    m_heatRect->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    m_scale->setMarginGroup(QCP::msTop | QCP::msBottom, group);
    m_heatRect->axis(QCPAxis::atBottom)->setLabel(tr("token position"));
    setupLayerAxis(m_heatRect->axis(QCPAxis::atLeft), 1);
    m_heatmap = new QCPColorMap(m_heatRect->axis(QCPAxis::atBottom), m_heatRect->axis(QCPAxis::atLeft));
    m_heatmap->setColorScale(m_scale);
    m_heatmap->removeFromLegend(); // the colour scale explains it
    m_heatmap->setGradient(viridisGradient());
    m_heatmap->setInterpolate(false);
    m_heatmap->setTightBoundary(false);
    p->legend->setVisible(true);
    // One row at the top right: a column of entries would cover the lines of a short axis rect.
    p->legend->setFillOrder(QCPLayoutGrid::foColumnsFirst);
    p->legend->setWrap(0);
    m_linesRect->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
    tracesChanged();
}

QList<QCPAxis*> GateView::tokenAxes() const
{
    return {m_linesRect->axis(QCPAxis::atBottom), m_heatRect->axis(QCPAxis::atBottom)};
}

void GateView::fillPickers()
{
    const int L = m_trace ? m_trace->layers() : 0, H = m_trace ? m_trace->heads() : 0;
    const QSignalBlocker b1(m_layerBox), b2(m_headBox);
    if (m_layerBox->count() != L) {
        m_layerBox->clear();
        for (int l = 0; l < L; ++l)
            m_layerBox->addItem(QString::number(l));
    }
    if (m_headBox->count() != H) {
        m_headBox->clear();
        for (int h = 0; h < H; ++h)
            m_headBox->addItem(QString::number(h));
    }
    m_layer = std::clamp(m_layer, 0, std::max(0, L - 1));
    m_head = std::clamp(m_head, 0, std::max(0, H - 1));
    m_layerBox->setCurrentIndex(L ? m_layer : -1);
    m_headBox->setCurrentIndex(H ? m_head : -1);
}

void GateView::ensureGraphs()
{
    const int H = m_trace ? m_trace->heads() : 0;
    if (m_headGraphs.size() != H) {
        for (QCPGraph* g : m_headGraphs)
            m_plot->removeGraph(g);
        m_headGraphs.clear();
        QCPAxis* x = m_linesRect->axis(QCPAxis::atBottom);
        QCPAxis* y = m_linesRect->axis(QCPAxis::atLeft);
        for (int h = 0; h < H; ++h) {
            QCPGraph* g = m_plot->addGraph(x, y);
            g->setAdaptiveSampling(false);
            g->removeFromLegend();
            m_headGraphs.push_back(g);
        }
        if (m_meanGraph)
            m_plot->removeGraph(m_meanGraph);
        m_meanGraph = m_plot->addGraph(x, y);
        m_meanGraph->setAdaptiveSampling(false);
        m_meanGraph->setName(tr("mean over heads"));
    }
    // An overlay shows as its layer mean: eight more head lines in a second colour would hide both.
    const bool overlay = m_overlay && m_overlay != m_trace;
    if (overlay && !m_overlayMean) {
        m_overlayMean =
            m_plot->addGraph(m_linesRect->axis(QCPAxis::atBottom), m_linesRect->axis(QCPAxis::atLeft));
        m_overlayMean->setAdaptiveSampling(false);
    } else if (!overlay && m_overlayMean) {
        m_plot->removeGraph(m_overlayMean);
        m_overlayMean = nullptr;
    }
    restyle();
}

void GateView::tracesChanged()
{
    fillPickers();
    ensureGraphs();
    setupLayerAxis(m_heatRect->axis(QCPAxis::atLeft), m_trace ? m_trace->layers() : 1);
}

void GateView::restyle()
{
    const int H = m_headGraphs.size();
    for (int h = 0; h < H; ++h) {
        QColor c = PlotExporter::seriesColor(h, H, m_dark);
        const bool sel = h == m_head;
        if (!sel)
            c = PlotExporter::blend(c, m_dark ? QColor(30, 31, 34) : QColor(Qt::white), 0.45);
        // One-pixel pens: wider ones make Qt stroke thousands of min/max segments as paths, 100x slower.
        m_headGraphs[h]->setPen(QPen(c, 1.0));
        m_headGraphs[h]->setName(tr("head %1").arg(h));
        if (sel)
            m_headGraphs[h]->addToLegend();
        else
            m_headGraphs[h]->removeFromLegend();
    }
    if (m_meanGraph)
        m_meanGraph->setPen(
            QPen(m_dark ? QColor(235, 235, 235) : QColor(20, 20, 20), m_meanGraph->pen().widthF()));
    if (m_overlayMean)
        m_overlayMean->setPen(QPen(PlotExporter::traceColor(1, m_dark), m_overlayMean->pen().widthF()));
}

void GateView::setLayer(int layer)
{
    const int L = m_trace ? m_trace->layers() : 0;
    layer = std::clamp(layer, 0, std::max(0, L - 1));
    if (layer == m_layer && m_layerBox->currentIndex() == layer)
        return;
    m_layer = layer;
    const QSignalBlocker b(m_layerBox);
    m_layerBox->setCurrentIndex(L ? layer : -1);
    refresh();
    emit layerChanged(layer);
}

void GateView::setHead(int head)
{
    const int H = m_trace ? m_trace->heads() : 0;
    head = std::clamp(head, 0, std::max(0, H - 1));
    if (head == m_head && m_headBox->currentIndex() == head)
        return;
    m_head = head;
    const QSignalBlocker b(m_headBox);
    m_headBox->setCurrentIndex(H ? head : -1);
    restyle();
    refresh();
    emit headChanged(head);
}

void GateView::setReduce(HeadReduce reduce)
{
    m_reduce = reduce;
    const QSignalBlocker b(m_reduceBox);
    m_reduceBox->setCurrentIndex(m_reduceBox->findData(int(reduce)));
    refresh();
}

void GateView::rebuild()
{
    TraceData* t = m_trace;
    const qint64 n = t ? t->tokens() : 0;
    QCPAxis* x = m_linesRect->axis(QCPAxis::atBottom);
    const QVector<qint64> edges = columnEdges(x, n);
    for (int h = 0; h < m_headGraphs.size(); ++h) {
        if (edges.size() < 2 || !t)
            m_headGraphs[h]->data()->clear();
        else
            setEnvelope(m_headGraphs[h], t->seriesEdges(Quantity::Decay, m_layer, h, edges), true);
    }
    if (m_meanGraph) {
        if (edges.size() < 2 || !t)
            m_meanGraph->data()->clear();
        else
            setEnvelope(m_meanGraph, t->seriesEdges(Quantity::DecayLayerMean, m_layer, 0, edges), false);
        setEmphasisPen(m_meanGraph, 2.0);
        m_meanGraph->setName(tr("layer %1: mean over heads").arg(m_layer));
    }
    QList<QCPGraph*> all(m_headGraphs.begin(), m_headGraphs.end());
    all.push_back(m_meanGraph);
    if (m_overlayMean) {
        const qint64 on = m_overlay->tokens();
        const QVector<qint64> oedges = columnEdges(x, on);
        if (oedges.size() < 2 || m_layer >= m_overlay->layers())
            m_overlayMean->data()->clear();
        else
            setEnvelope(m_overlayMean, m_overlay->seriesEdges(Quantity::DecayLayerMean, m_layer, 0, oedges),
                        false);
        setEmphasisPen(m_overlayMean, 2.0);
        const QString label = m_overlay->label().isEmpty() ? tr("overlay") : m_overlay->label();
        m_overlayMean->setName(tr("%1: layer %2 mean over heads").arg(label).arg(m_layer));
        all.push_back(m_overlayMean);
    }
    rescaleY(m_linesRect->axis(QCPAxis::atLeft), all, false);

    const int L = t ? t->layers() : 0;
    const HeatColumns hc = heatColumns(m_heatRect->axis(QCPAxis::atBottom), n, kHeatPixels);
    if (!t || L == 0 || hc.columns() < 1) {
        fillHeatmap(m_heatmap, hc, {}, L);
    } else {
        fillHeatmap(m_heatmap, hc, t->layerHeatmapEdges(Quantity::Decay, m_reduce, hc.edges, m_head), L);
        m_heatmap->rescaleDataRange(true);
    }
    QString what = m_reduce == HeadReduce::Mean  ? tr("mean over heads")
                   : m_reduce == HeadReduce::Min ? tr("min over heads")
                                                 : tr("head %1").arg(m_head);
    m_scale->axis()->setLabel(tr("α, %1").arg(what));
}

QVector<CsvColumn> GateView::csvColumns() const
{
    QVector<CsvColumn> cols;
    QPointer<TraceData> t = m_trace;
    if (!t)
        return cols;
    const int layer = m_layer;
    for (int h = 0; h < t->heads(); ++h)
        cols.push_back({QStringLiteral("decay_L%1_H%2").arg(layer).arg(h), [t, layer, h](qint64 k) {
                            return t ? double(t->valueAt(Quantity::Decay, layer, h, k)) : NAN;
                        }});
    if (m_reduce == HeadReduce::Head) {
        // The heatmap's rows: the selected head in every other layer.
        const int h = m_head;
        for (int l = 0; l < t->layers(); ++l)
            if (l != layer)
                cols.push_back({QStringLiteral("decay_L%1_H%2").arg(l).arg(h), [t, l, h](qint64 k) {
                                    return t ? double(t->valueAt(Quantity::Decay, l, h, k)) : NAN;
                                }});
        return cols;
    }
    const Quantity q = m_reduce == HeadReduce::Min ? Quantity::DecayLayerMin : Quantity::DecayLayerMean;
    const QString tag = m_reduce == HeadReduce::Min ? QStringLiteral("min") : QStringLiteral("mean");
    for (int l = 0; l < t->layers(); ++l)
        cols.push_back({QStringLiteral("decay_%1_L%2").arg(tag).arg(l),
                        [t, q, l](qint64 k) { return t ? double(t->valueAt(q, l, 0, k)) : NAN; }});
    return cols;
}

} // namespace statescope
