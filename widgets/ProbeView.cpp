#include "ProbeView.h"

#include "FlowLayout.h"
#include "PlotExporter.h"
#include "PlotHelpers.h"

#include <QCheckBox>
#include <QComboBox>
#include <QLabel>
#include <QToolButton>

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

void setLogScale(QCPAxis* axis, bool log)
{
    axis->setScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    if (log)
        axis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    else
        axis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
}

QString capitalized(QString s)
{
    if (!s.isEmpty())
        s[0] = s[0].toUpper();
    return s;
}

// The probe's short name for axes and legends: its label, else its name.
QString shortName(const ProbeDesc& d)
{
    return QString::fromStdString(d.label.empty() ? d.name : d.label);
}

// The summary in a word or two, for compact legends (a paper legend of four entries in two columns).
QString summaryWord(ProbeSummary summary)
{
    switch (summary) {
    case ProbeSummary::Mean:
        return QObject::tr("mean");
    case ProbeSummary::GeoMean:
        return QObject::tr("geo. mean");
    case ProbeSummary::RootSumSquare:
        // The root of the sum of squares of the units is the L2 norm of them all.
        return QObject::tr("L2 norm");
    }
    return {};
}

QString unitOrEmpty(TraceData* t)
{
    return t ? t->unitName() : QString();
}

// The layer the selected unit is lifted to, above the other lines and below the cursor and markers.
const char* const kHighlightLayer = "highlight";

// Pens wider than a pixel cost ~100x more per segment (PlotHelpers' setEmphasisPen); the selected
// unit is one graph of at most two points per pixel column, so it may be wide up to this many.
constexpr int kMaxWideSelectedPoints = 6000;

// One legend entry for the lines of all units: a swatch of their colours, left to right, and a text.
class UnitsLegendItem : public QCPAbstractLegendItem {
public:
    UnitsLegendItem(QCPLegend* legend, const QVector<QColor>& colors, const QString& text)
        : QCPAbstractLegendItem(legend), m_colors(colors), m_text(text)
    {
        setSelectable(false);
    }
    QString text() const { return m_text; }

protected:
    void draw(QCPPainter* painter) override
    {
        const QSize icon = mParentLegend->iconSize();
        painter->setFont(mParentLegend->font());
        const QRect textRect =
            painter->fontMetrics().boundingRect(0, 0, 0, icon.height(), Qt::TextDontClip, m_text);
        const int textHeight = std::max(textRect.height(), icon.height());
        const int y = mRect.top() + textHeight / 2;
        const int n = std::max(1, int(m_colors.size()));
        for (int i = 0; i < m_colors.size(); ++i) {
            painter->setPen(QPen(m_colors[i], 3.0));
            painter->drawLine(QLineF(mRect.left() + double(icon.width()) * i / n, y,
                                     mRect.left() + double(icon.width()) * (i + 1) / n, y));
        }
        painter->setPen(QPen(mParentLegend->textColor()));
        painter->drawText(mRect.left() + icon.width() + mParentLegend->iconTextPadding(), mRect.top(),
                          textRect.width(), textHeight, Qt::TextDontClip, m_text);
    }
    QSize minimumOuterSizeHint() const override
    {
        const QSize icon = mParentLegend->iconSize();
        const QRect textRect = QFontMetrics(mParentLegend->font())
                                   .boundingRect(0, 0, 0, icon.height(), Qt::TextDontClip, m_text);
        return QSize(icon.width() + mParentLegend->iconTextPadding() + textRect.width() + mMargins.left() +
                         mMargins.right(),
                     std::max(textRect.height(), icon.height()) + mMargins.top() + mMargins.bottom());
    }

private:
    QVector<QColor> m_colors;
    QString m_text;
};

} // namespace

ProbeView::ProbeView(const QString& probe, QWidget* parent) : TraceView(parent), m_probe(probe)
{
    m_probeBox = new QComboBox(this);
    m_probeBox->setPlaceholderText(tr("(not in this trace)"));
    m_probeBox->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    m_layerBox = new QComboBox(this);
    m_unitBox = new QComboBox(this);
    m_unitBoxLabel = new QLabel(this);
    m_reduceBox = new QComboBox(this);
    m_reduceBox->addItem(QString(), int(Reduce::Summary));
    m_reduceBox->addItem(QString(), int(Reduce::Min));
    m_reduceBox->addItem(QString(), int(Reduce::Unit));
    // Long entries ("root sum of squares over channel groups") are elided rather than widening the
    // row past a small window; the list shows them whole.
    m_reduceBox->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    m_reduceBox->setMinimumContentsLength(18);
    m_logBox = new QCheckBox(tr("log y"), this);
    m_linkBox = new QCheckBox(tr("link layers"), this);
    m_linkBox->setToolTip(tr("Show the same layer in every probe view"));
    m_linkBox->setVisible(false);
    m_close = new QToolButton(this);
    m_close->setText(QStringLiteral("×"));
    m_close->setToolTip(tr("Close this view"));
    m_close->setAutoRaise(true);
    m_close->setVisible(false);
    m_probeBox->setToolTip(tr("The probe this view shows"));
    addControl(m_probeBox);
    addControl(new QLabel(tr("Layer:"), this));
    addControl(m_layerBox);
    addControl(m_linkBox);
    addControl(m_unitBoxLabel);
    addControl(m_unitBox);
    addControl(new QLabel(tr("Heatmap:"), this));
    addControl(m_reduceBox);
    addControl(m_logBox);
    m_controls->addWidget(m_close);
    connect(m_probeBox, qOverload<int>(&QComboBox::activated), this, [this](int i) {
        const QString name = m_probeBox->itemData(i).toString();
        if (name.isEmpty() || name == m_probe)
            return;
        setProbe(name);
        emit probePicked(name);
    });
    connect(m_layerBox, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) {
        if (i >= 0)
            setLayer(i);
    });
    connect(m_unitBox, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) {
        if (i >= 0)
            setUnit(i);
    });
    connect(m_reduceBox, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setReduce(Reduce(m_reduceBox->itemData(i).toInt())); });
    connect(m_logBox, &QCheckBox::toggled, this, &ProbeView::setLogY);
    connect(m_linkBox, &QCheckBox::toggled, this, &ProbeView::layerLinkToggled);
    connect(m_close, &QToolButton::clicked, this, &ProbeView::closeRequested);

    QCustomPlot* p = m_plot;
    m_plot->setMinimumHeight(230);
    p->addLayer(QString::fromLatin1(kHighlightLayer), p->layer(QStringLiteral("main")),
                QCustomPlot::limAbove);
    m_linesRect = p->axisRect();
    m_heatRect = new QCPAxisRect(p);
    p->plotLayout()->addElement(1, 0, m_heatRect);
    m_scale = new QCPColorScale(p);
    p->plotLayout()->addElement(1, 1, m_scale);
    m_scale->setBarWidth(10);
    auto* group = new QCPMarginGroup(p);
    m_linesRect->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    // Top and bottom too: the colour scale's bar spans the heatmap's rows, not its tick labels' margin.
    m_heatRect->setMarginGroup(QCP::msLeft | QCP::msRight | QCP::msTop | QCP::msBottom, group);
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
    // Two entries a row at the top right: one column would cover the lines of a short axis rect, and
    // one row of four entries (with an overlay's long label) ran out of the plot on the left.
    p->legend->setFillOrder(QCPLayoutGrid::foColumnsFirst);
    p->legend->setWrap(2);
    m_linesRect->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
    tracesChanged();
}

QList<QCPAxis*> ProbeView::tokenAxes() const
{
    return {m_linesRect->axis(QCPAxis::atBottom), m_heatRect->axis(QCPAxis::atBottom)};
}

int ProbeView::probeIndex() const
{
    return m_trace && m_trace->hasSeries(m_probe) ? m_trace->probeIndex(m_probe) : -1;
}

const ProbeDesc* ProbeView::probeDesc() const
{
    return m_trace ? m_trace->probe(probeIndex()) : nullptr;
}

QString ProbeView::title() const
{
    const ProbeDesc* d = probeDesc();
    if (!d || d->label.empty())
        return m_probe;
    return QStringLiteral("%1 (%2)").arg(m_probe, QString::fromStdString(d->label));
}

QString ProbeView::unitLabel(TraceData* t, int unit) const
{
    const QString name = unitOrEmpty(t);
    return QStringLiteral("%1 %2").arg(name.isEmpty() ? tr("unit") : name).arg(unit);
}

void ProbeView::setClosable(bool closable)
{
    m_close->setVisible(closable);
}

void ProbeView::setLayerLinkVisible(bool visible)
{
    m_linkBox->setVisible(visible);
}

bool ProbeView::layersLinked() const
{
    return m_linkBox->isChecked();
}

void ProbeView::setLayersLinked(bool linked)
{
    const QSignalBlocker b(m_linkBox);
    m_linkBox->setChecked(linked);
}

QStringList ProbeView::legendTexts() const
{
    QStringList out;
    QCPLegend* legend = m_plot->legend;
    for (int i = 0; i < legend->itemCount(); ++i) {
        QCPAbstractLegendItem* item = legend->item(i);
        if (auto* p = qobject_cast<QCPPlottableLegendItem*>(item))
            out.push_back(p->plottable()->name());
        else if (auto* u = dynamic_cast<UnitsLegendItem*>(item))
            out.push_back(u->text());
    }
    return out;
}

void ProbeView::updateLegend()
{
    // Rebuilt in drawing order rather than left to graph creation: summary, selected unit, the other
    // units as one entry, overlay.
    QCPLegend* legend = m_plot->legend;
    legend->clearItems();
    m_unitsItem = nullptr;
    if (m_summaryGraph)
        m_summaryGraph->addToLegend(legend);
    const int U = m_unitGraphs.size();
    if (m_unit >= 0 && m_unit < U)
        m_unitGraphs[m_unit]->addToLegend(legend);
    if (U > 1) {
        QVector<QColor> colors;
        for (QCPGraph* g : m_unitGraphs)
            colors.push_back(g->pen().color());
        const QString units =
            pluralUnitName(unitOrEmpty(m_trace).isEmpty() ? tr("unit") : m_trace->unitName());
        const QString text = compactNames() ? tr("%1 0–%2").arg(units).arg(U - 1)
                                            : tr("%1 0–%2 of layer %3").arg(units).arg(U - 1).arg(m_layer);
        m_unitsItem = new UnitsLegendItem(legend, colors, text);
        legend->addItem(m_unitsItem);
    }
    for (QCPGraph* g : m_overlaySummaries)
        g->addToLegend(legend);
}

void ProbeView::setProbe(const QString& name)
{
    if (name == m_probe)
        return;
    m_probe = name;
    tracesChanged();
    refresh();
    emit probeChanged(name);
}

void ProbeView::fillPickers()
{
    const int p = probeIndex();
    const int L = m_trace ? m_trace->probeLayers(p) : 0, U = m_trace ? m_trace->probeUnits(p) : 0;
    const QSignalBlocker b0(m_probeBox), b1(m_layerBox), b2(m_unitBox);
    m_probeBox->clear();
    if (m_trace)
        for (int i : m_trace->seriesProbes()) {
            const ProbeDesc& d = *m_trace->probe(i);
            const QString name = QString::fromStdString(d.name);
            m_probeBox->addItem(d.label.empty() ? name : QStringLiteral("%1 (%2)").arg(name, shortName(d)),
                                name);
            m_probeBox->setItemData(m_probeBox->count() - 1, QString::fromStdString(d.description),
                                    Qt::ToolTipRole);
        }
    m_probeBox->setCurrentIndex(m_probeBox->findData(m_probe));
    if (m_layerBox->count() != L) {
        m_layerBox->clear();
        for (int l = 0; l < L; ++l)
            m_layerBox->addItem(QString::number(l));
    }
    if (m_unitBox->count() != U) {
        m_unitBox->clear();
        for (int u = 0; u < U; ++u)
            m_unitBox->addItem(QString::number(u));
    }
    m_layer = std::clamp(m_layer, 0, std::max(0, L - 1));
    m_unit = std::clamp(m_unit, 0, std::max(0, U - 1));
    m_layerBox->setCurrentIndex(L ? m_layer : -1);
    m_unitBox->setCurrentIndex(U ? m_unit : -1);
}

void ProbeView::ensureGraphs()
{
    const int U = m_trace ? m_trace->probeUnits(probeIndex()) : 0;
    QCPAxis* x = m_linesRect->axis(QCPAxis::atBottom);
    QCPAxis* y = m_linesRect->axis(QCPAxis::atLeft);
    if (m_unitGraphs.size() != U || !m_summaryGraph) {
        for (QCPGraph* g : m_unitGraphs)
            m_plot->removeGraph(g);
        m_unitGraphs.clear();
        for (int u = 0; u < U; ++u) {
            QCPGraph* g = m_plot->addGraph(x, y);
            g->setAdaptiveSampling(false);
            g->removeFromLegend();
            m_unitGraphs.push_back(g);
        }
        // Recreated after the units, so that it is drawn on top of them.
        if (m_summaryGraph)
            m_plot->removeGraph(m_summaryGraph);
        m_summaryGraph = m_plot->addGraph(x, y);
        m_summaryGraph->setAdaptiveSampling(false);
        for (QCPGraph* g : m_overlaySummaries)
            m_plot->removeGraph(g);
        m_overlaySummaries.clear();
    }
    // An overlay shows as its layer summary: its units in a second colour would hide both, and a
    // model of another architecture has other units anyway.
    int wanted = 0;
    for (TraceData* o : overlays())
        wanted += o != m_trace ? 1 : 0;
    while (m_overlaySummaries.size() > wanted)
        m_plot->removeGraph(m_overlaySummaries.takeLast());
    while (m_overlaySummaries.size() < wanted) {
        QCPGraph* g = m_plot->addGraph(x, y);
        g->setAdaptiveSampling(false);
        m_overlaySummaries.push_back(g);
    }
    restyle();
}

void ProbeView::updateLabels()
{
    const ProbeDesc* d = probeDesc();
    const QString unitName = unitOrEmpty(m_trace);
    m_unitBoxLabel->setText(capitalized(unitName.isEmpty() ? tr("unit") : unitName) + QLatin1Char(':'));
    const ProbeSummary summary = d ? d->summary : ProbeSummary::Mean;
    m_reduceBox->setItemText(0, summaryText(summary, unitName));
    m_reduceBox->setItemText(1, tr("min over %1").arg(pluralUnitName(unitName)));
    m_reduceBox->setItemText(2, tr("selected %1").arg(unitName.isEmpty() ? tr("unit") : unitName));
    QString axis = d ? shortName(*d) : m_probe;
    if (d && !d->unit.empty())
        axis += QStringLiteral(" (%1)").arg(QString::fromStdString(d->unit));
    m_linesRect->axis(QCPAxis::atLeft)->setLabel(axis);
    QString tip;
    if (d) {
        tip = QStringLiteral("<b>%1</b>: %2")
                  .arg(m_probe.toHtmlEscaped(), QString::fromStdString(d->description).toHtmlEscaped());
        if (!d->headMeaning.empty())
            tip += QStringLiteral("<br>") + tr("One %1: %2")
                                                .arg(unitName.isEmpty() ? tr("unit") : unitName,
                                                     QString::fromStdString(d->headMeaning).toHtmlEscaped());
    } else if (!m_probe.isEmpty()) {
        tip = tr("This trace has no probe %1 shaped [layer, unit].").arg(m_probe.toHtmlEscaped());
    }
    m_plot->setToolTip(tip);
    m_probeBox->setToolTip(tip);
}

void ProbeView::tracesChanged()
{
    fillPickers();
    ensureGraphs();
    updateLabels();
    setupLayerAxis(m_heatRect->axis(QCPAxis::atLeft), m_trace ? m_trace->probeLayers(probeIndex()) : 1);
}

void ProbeView::restyle()
{
    const int U = m_unitGraphs.size();
    for (int u = 0; u < U; ++u) {
        QColor c = PlotExporter::seriesColor(u, U, m_dark);
        const bool sel = u == m_unit;
        if (!sel)
            c = PlotExporter::blend(c, m_dark ? QColor(30, 31, 34) : QColor(Qt::white), 0.45);
        // One-pixel pens: wider ones make Qt stroke thousands of min/max segments as paths, 100x slower.
        // The selected unit is the exception that shows which one it is (kMaxWideSelectedPoints).
        const double width = sel && m_unitGraphs[u]->dataCount() <= kMaxWideSelectedPoints ? 2.0 : 1.0;
        m_unitGraphs[u]->setPen(QPen(c, width));
        m_unitGraphs[u]->setLayer(QString::fromLatin1(sel ? kHighlightLayer : "main"));
    }
    if (m_summaryGraph)
        m_summaryGraph->setPen(
            QPen(m_dark ? QColor(235, 235, 235) : QColor(20, 20, 20), m_summaryGraph->pen().widthF()));
    const QList<TraceData*> ovs = drawnOverlays();
    for (int i = 0; i < m_overlaySummaries.size() && i < ovs.size(); ++i)
        m_overlaySummaries[i]->setPen(QPen(colorOf(ovs[i]), m_overlaySummaries[i]->pen().widthF()));
    updateLegend();
}

void ProbeView::setLayer(int layer)
{
    const int L = m_trace ? m_trace->probeLayers(probeIndex()) : 0;
    layer = std::clamp(layer, 0, std::max(0, L - 1));
    if (layer == m_layer && m_layerBox->currentIndex() == (L ? layer : -1))
        return;
    m_layer = layer;
    const QSignalBlocker b(m_layerBox);
    m_layerBox->setCurrentIndex(L ? layer : -1);
    refresh();
    emit layerChanged(layer);
}

void ProbeView::setUnit(int unit)
{
    const int U = m_trace ? m_trace->probeUnits(probeIndex()) : 0;
    unit = std::clamp(unit, 0, std::max(0, U - 1));
    if (unit == m_unit && m_unitBox->currentIndex() == (U ? unit : -1))
        return;
    m_unit = unit;
    const QSignalBlocker b(m_unitBox);
    m_unitBox->setCurrentIndex(U ? unit : -1);
    restyle();
    refresh();
    emit unitChanged(unit);
}

void ProbeView::setReduce(Reduce reduce)
{
    m_reduce = reduce;
    const QSignalBlocker b(m_reduceBox);
    m_reduceBox->setCurrentIndex(m_reduceBox->findData(int(reduce)));
    refresh();
}

void ProbeView::setLogY(bool log)
{
    m_logY = log;
    {
        const QSignalBlocker b(m_logBox);
        m_logBox->setChecked(log);
    }
    setLogScale(m_linesRect->axis(QCPAxis::atLeft), log);
    m_heatmap->setDataScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    setLogScale(m_scale->axis(), log);
    refresh();
}

void ProbeView::rebuild()
{
    TraceData* t = m_trace;
    const int p = probeIndex();
    const ProbeDesc* d = probeDesc();
    const qint64 n = t && d ? t->tokens() : 0;
    QCPAxis* x = m_linesRect->axis(QCPAxis::atBottom);
    const QVector<qint64> edges = columnEdges(x, n);
    const bool empty = edges.size() < 2;
    const QString unitName = unitOrEmpty(t);
    bool decimated = false;
    for (int u = 0; u < m_unitGraphs.size(); ++u) {
        if (empty) {
            m_unitGraphs[u]->data()->clear();
            continue;
        }
        // The selected unit keeps its extremes (a min-max stroke per pixel column, so that a dip of one
        // token shows); the others are their columns' means, lines rather than filled bands.
        const Envelope env = t->seriesEdges(p, m_layer, u, edges);
        decimated = decimated || env.decimated;
        setEnvelope(m_unitGraphs[u], env, u == m_unit);
    }
    const bool compact = compactNames();
    for (int u = 0; u < m_unitGraphs.size(); ++u) {
        const QString name = unitLabel(t, u);
        m_unitGraphs[u]->setName(u == m_unit && decimated && !compact ? tr("%1, min–max per pixel").arg(name)
                                                                      : name);
    }
    const ProbeSummary summary = d ? d->summary : ProbeSummary::Mean;
    if (empty)
        m_summaryGraph->data()->clear();
    else
        setEnvelope(m_summaryGraph, t->seriesEdges(p, m_layer, TraceData::kSummary, edges), false);
    setEmphasisPen(m_summaryGraph, 2.0);
    // Compact: the quantity without "over heads", which the units' entry says.
    m_summaryGraph->setName(
        tr("layer %1: %2").arg(m_layer).arg(compact ? summaryWord(summary) : summaryText(summary, unitName)));
    QList<QCPGraph*> all(m_unitGraphs.begin(), m_unitGraphs.end());
    all.push_back(m_summaryGraph);
    const QList<TraceData*> ovs = drawnOverlays();
    for (int i = 0; i < m_overlaySummaries.size() && i < ovs.size(); ++i) {
        QCPGraph* graph = m_overlaySummaries[i];
        TraceData* o = ovs[i];
        // The overlay's own descriptor: another architecture may summarise its own units.
        const int op = o->hasSeries(m_probe) ? o->probeIndex(m_probe) : -1;
        const QVector<qint64> oedges = columnEdges(x, op >= 0 ? o->tokens() : 0);
        if (oedges.size() < 2 || m_layer >= o->probeLayers(op))
            graph->data()->clear();
        else
            setEnvelope(graph, o->seriesEdges(op, m_layer, TraceData::kSummary, oedges), false);
        setEmphasisPen(graph, 2.0);
        const QString label = legendName(o, tr("overlay"));
        const ProbeDesc* od = o->probe(op);
        graph->setName(
            !od ? tr("%1: no %2").arg(label, m_probe)
            : compact
                ? tr("%1: %2").arg(label, summaryWord(od->summary))
                : tr("%1: layer %2 %3").arg(label).arg(m_layer).arg(summaryText(od->summary, o->unitName())));
        all.push_back(graph);
    }
    restyle(); // the selected unit's width depends on its points; the legend on the names
    // Every drawn line, the overlay's too, with a margin; root-sum-square summaries are magnitudes
    // (norms): their axis starts at zero. Unless the user zoomed y (PlotGroup).
    if (m_yAutoFit) {
        rescaleY(m_linesRect->axis(QCPAxis::atLeft), all, m_logY,
                 !m_logY && summary == ProbeSummary::RootSumSquare);
        setupLayerAxis(m_heatRect->axis(QCPAxis::atLeft), t ? t->probeLayers(p) : 1);
    }

    const int L = t ? t->probeLayers(p) : 0;
    const HeatColumns hc = heatColumns(m_heatRect->axis(QCPAxis::atBottom), n, kHeatPixels);
    if (!t || L == 0 || hc.columns() < 1) {
        fillHeatmap(m_heatmap, hc, {}, L);
    } else {
        const int unit = m_reduce == Reduce::Summary ? TraceData::kSummary
                         : m_reduce == Reduce::Min   ? TraceData::kMinimum
                                                     : m_unit;
        fillHeatmap(m_heatmap, hc, t->layerHeatmapEdges(p, unit, hc.edges), L);
        m_heatmap->rescaleDataRange(true);
        if (m_logY) {
            const QCPRange r = m_heatmap->dataRange();
            if (r.lower <= 0)
                m_heatmap->setDataRange(QCPRange(std::max(r.upper * 1e-6, 1e-12), std::max(r.upper, 1e-11)));
        }
    }
    // Terse: a rotated label longer than the short heatmap is clipped; the reduce box says it in full.
    const QString what = m_reduce == Reduce::Summary ? QString::fromLatin1(probeSummaryName(summary))
                         : m_reduce == Reduce::Min   ? tr("min")
                                                     : unitLabel(t, m_unit);
    m_scale->axis()->setLabel(QStringLiteral("%1, %2").arg(d ? shortName(*d) : m_probe, what));
    // The scale's margins follow the heatmap's through their margin group, but QCustomPlot counts the
    // scale's last margins in: start afresh, so that the bar fits the heatmap after it shrank too.
    m_scale->setMargins(QMargins());
}

QVector<CsvColumn> ProbeView::csvColumns() const
{
    QVector<CsvColumn> cols;
    QPointer<TraceData> t = m_trace;
    const int p = probeIndex();
    const ProbeDesc* d = probeDesc();
    if (!t || !d)
        return cols;
    const QString name = m_probe;
    const int layer = m_layer;
    auto value = [](QPointer<TraceData> data, int probe, int l, int u) {
        return [data, probe, l, u](qint64 k) { return data ? double(data->valueAt(probe, l, u, k)) : NAN; };
    };
    for (int u = 0; u < t->probeUnits(p); ++u)
        cols.push_back({QStringLiteral("%1_L%2_U%3").arg(name).arg(layer).arg(u), value(t, p, layer, u)});
    if (m_reduce == Reduce::Unit) {
        // The heatmap's rows: the selected unit in every other layer.
        for (int l = 0; l < t->probeLayers(p); ++l)
            if (l != layer)
                cols.push_back(
                    {QStringLiteral("%1_L%2_U%3").arg(name).arg(l).arg(m_unit), value(t, p, l, m_unit)});
    } else {
        const bool min = m_reduce == Reduce::Min;
        const QString tag = min ? QStringLiteral("min") : QString::fromLatin1(probeSummaryName(d->summary));
        for (int l = 0; l < t->probeLayers(p); ++l)
            cols.push_back({QStringLiteral("%1_%2_L%3").arg(name, tag).arg(l),
                            value(t, p, l, min ? TraceData::kMinimum : TraceData::kSummary)});
    }
    const QList<TraceData*> ovs = drawnOverlays();
    for (int i = 0; i < ovs.size(); ++i) {
        QPointer<TraceData> o = ovs[i];
        if (!o->hasSeries(name))
            continue;
        const int op = o->probeIndex(name);
        const QString tag = QString::fromLatin1(probeSummaryName(o->probe(op)->summary));
        const QString prefix = i == 0 ? QStringLiteral("overlay_") : QStringLiteral("overlay%1_").arg(i + 1);
        if (layer < o->probeLayers(op))
            cols.push_back({prefix + QStringLiteral("%1_%2_L%3").arg(name, tag).arg(layer),
                            value(o, op, layer, TraceData::kSummary)});
    }
    return cols;
}

QVector<int> ProbeView::probesDrawn(TraceData* t) const
{
    const int p = t && t->hasSeries(m_probe) ? t->probeIndex(m_probe) : -1;
    return p >= 0 ? QVector<int>{p} : QVector<int>{};
}

QStringList ProbeView::readout(qint64 token, QCPAxisRect* rect, int pointerY) const
{
    QStringList lines;
    TraceData* t = m_trace;
    const int p = probeIndex();
    const ProbeDesc* d = probeDesc();
    if (!t || !d || token < 0 || token >= t->tokens())
        return lines;
    const QString label = shortName(*d);
    const qint64 resolution = t->resolutionFor(token, token + 1, p);
    if (rect == m_heatRect) {
        // The row under the pointer, else the selected layer.
        int layer = m_layer;
        if (pointerY >= 0) {
            const double y = m_heatRect->axis(QCPAxis::atLeft)->pixelToCoord(pointerY);
            layer = std::clamp(int(std::lround(y)), 0, std::max(0, t->probeLayers(p) - 1));
        }
        const int unit = m_reduce == Reduce::Summary ? TraceData::kSummary
                         : m_reduce == Reduce::Min   ? TraceData::kMinimum
                                                     : m_unit;
        const QString what = m_reduce == Reduce::Summary ? QString::fromLatin1(probeSummaryName(d->summary))
                             : m_reduce == Reduce::Min   ? tr("min")
                                                         : unitLabel(t, m_unit);
        lines
            << tr("layer %1, %2: %3").arg(layer).arg(what, readoutNumber(t->valueAt(p, layer, unit, token)));
    } else {
        lines << tr("layer %1 %2: %3")
                     .arg(m_layer)
                     .arg(QString::fromLatin1(probeSummaryName(d->summary)),
                          readoutNumber(t->valueAt(p, m_layer, TraceData::kSummary, token)));
        lines << tr("%1 (selected): %2")
                     .arg(unitLabel(t, m_unit), readoutNumber(t->valueAt(p, m_layer, m_unit, token)));
        // Every unit, a few to a line, so that 24 heads stay a short box.
        const int units = t->probeUnits(p);
        QStringList row;
        for (int u = 0; u < units; ++u) {
            row << QStringLiteral("%1: %2").arg(u).arg(readoutNumber(t->valueAt(p, m_layer, u, token)));
            if (row.size() == 4 || u + 1 == units) {
                lines << QChar(kReadoutDetail) + row.join(QStringLiteral("  "));
                row.clear();
            }
        }
        lines << tr("min over %1: %2")
                     .arg(pluralUnitName(t->unitName()),
                          readoutNumber(t->valueAt(p, m_layer, TraceData::kMinimum, token)));
        for (TraceData* o : drawnOverlays()) {
            if (!o->hasSeries(m_probe))
                continue;
            const int op = o->probeIndex(m_probe);
            if (m_layer < o->probeLayers(op) && token < o->tokens())
                lines << tr("%1: layer %2 %3")
                             .arg(legendName(o, o->label()))
                             .arg(m_layer)
                             .arg(readoutNumber(o->valueAt(op, m_layer, TraceData::kSummary, token)));
        }
    }
    lines.prepend(tr("%1 at token %2").arg(label).arg(token));
    if (resolution > 1)
        lines << tr("(means over %1 tokens: zoom in for exact values)").arg(resolution);
    return lines;
}

} // namespace statescope
