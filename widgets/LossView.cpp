#include "LossView.h"

#include "PlotExporter.h"
#include "PlotHelpers.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QSlider>

#include <qcustomplot.h>

#include <algorithm>
#include <cmath>

namespace statescope {

LossView::LossView(QWidget* parent) : TraceView(parent)
{
    auto* label = new QLabel(tr("Bucket"), this);
    m_bucketBox = new QComboBox(this);
    for (int b = kMinBucket; b <= kMaxBucket; b *= 2)
        m_bucketBox->addItem(QString::number(b), b);
    m_bucketBox->setToolTip(tr("Tokens per bucket of the perplexity exp(mean NLL)"));
    addControl(label);
    addControl(m_bucketBox);
    m_bucketBox->setCurrentIndex(m_bucketBox->findData(m_bucket));
    connect(m_bucketBox, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setBucketSize(m_bucketBox->itemData(i).toInt()); });

    m_tokenBox = new QCheckBox(tr("Each token"), this);
    m_tokenBox->setChecked(m_tokenNll);
    m_tokenBox->setToolTip(tr("Show the NLL of every token, not only its moving average and perplexity"));
    addControl(m_tokenBox);
    connect(m_tokenBox, &QCheckBox::toggled, this, &LossView::setTokenNllVisible);

    // TensorBoard's smoothing, as the moving average's window: 2^k tokens.
    m_smoothing = new QSlider(Qt::Horizontal, this);
    m_smoothing->setObjectName("smoothingSlider");
    m_smoothing->setRange(0, 12);
    m_smoothing->setPageStep(1);
    m_smoothing->setFixedWidth(110);
    m_smoothing->setToolTip(tr("Smoothing: the moving average's window in tokens"));
    m_smoothingLabel = new QLabel(this);
    addControl(m_smoothing);
    addControl(m_smoothingLabel);
    connect(m_smoothing, &QSlider::valueChanged, this, [this](int k) { setMovingAverageWindow(1 << k); });
    m_diffBox = new QCheckBox(tr("B − A"), this);
    m_diffBox->setToolTip(tr("Each compared run's NLL minus this run's, on the tokens both have"));
    m_diffBox->setEnabled(false);
    addControl(m_diffBox);
    connect(m_diffBox, &QCheckBox::toggled, this, &LossView::setDifference);

    QCustomPlot* p = m_plot;
    p->xAxis->setLabel(tr("token position"));
    p->yAxis->setLabel(tr("NLL (nats)"));
    p->yAxis2->setVisible(true);
    p->yAxis2->setLabel(tr("perplexity"));
    p->yAxis2->setScaleType(QCPAxis::stLogarithmic);
    p->yAxis2->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    p->yAxis2->setNumberFormat(QStringLiteral("gb"));
    p->legend->setVisible(true);
    // Top left: collapse curves rise on the right.
    p->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignLeft);

    m_nll = p->addGraph(p->xAxis, p->yAxis);
    m_avg = p->addGraph(p->xAxis, p->yAxis);
    m_ppl = p->addGraph(p->xAxis, p->yAxis2);
    m_ppl->setLineStyle(QCPGraph::lsStepCenter);
    for (QCPGraph* g : {m_nll, m_avg, m_ppl})
        g->setAdaptiveSampling(false); // the data are decimated already
    restyle();
    tracesChanged();
}

QList<QCPAxis*> LossView::tokenAxes() const
{
    return {m_plot->xAxis};
}

void LossView::setBucketSize(int tokens)
{
    int b = kMinBucket;
    while (b < kMaxBucket && b * 3 / 2 < tokens)
        b *= 2;
    if (b == m_bucket)
        return;
    m_bucket = b;
    const QSignalBlocker block(m_bucketBox);
    m_bucketBox->setCurrentIndex(m_bucketBox->findData(b));
    tracesChanged();
    refresh();
    emit bucketSizeChanged(b);
}

void LossView::setTokenNllVisible(bool visible)
{
    if (visible == m_tokenNll)
        return;
    m_tokenNll = visible;
    const QSignalBlocker block(m_tokenBox);
    m_tokenBox->setChecked(visible);
    refresh();
}

void LossView::setMovingAverageWindow(int tokens)
{
    m_window = std::max(1, tokens);
    int k = 0;
    while (k < 12 && (1 << (k + 1)) <= m_window)
        ++k;
    {
        const QSignalBlocker block(m_smoothing);
        m_smoothing->setValue(k);
    }
    m_smoothingLabel->setText(tr("mean of %1").arg(m_window));
    tracesChanged();
    scheduleRefresh();
}

void LossView::setDifference(bool on)
{
    if (on == m_difference)
        return;
    m_difference = on;
    {
        const QSignalBlocker block(m_diffBox);
        m_diffBox->setChecked(on);
    }
    tracesChanged();
    refresh();
}

void LossView::setPerplexityLogY(bool log)
{
    m_plot->yAxis2->setScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    if (log)
        m_plot->yAxis2->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    else
        m_plot->yAxis2->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    scheduleRefresh();
}

void LossView::tracesChanged()
{
    const QList<TraceData*> ovs = drawnOverlays();
    while (m_ov.size() > ovs.size()) {
        const OverlayGraphs g = m_ov.takeLast();
        for (QCPGraph* graph : {g.nll, g.avg, g.ppl, g.diff})
            m_plot->removeGraph(graph);
    }
    while (m_ov.size() < ovs.size()) {
        OverlayGraphs g;
        g.nll = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis);
        g.avg = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis);
        g.ppl = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis2);
        g.diff = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis);
        g.ppl->setLineStyle(QCPGraph::lsStepCenter);
        for (QCPGraph* graph : {g.nll, g.avg, g.ppl, g.diff})
            graph->setAdaptiveSampling(false);
        m_ov.push_back(g);
    }
    if (m_smoothingLabel->text().isEmpty())
        setMovingAverageWindow(m_window); // the slider and its label
    m_diffBox->setEnabled(!ovs.isEmpty());
    const bool diff = m_difference && !ovs.isEmpty();
    const QString a = legendName(m_trace, tr("trace"));
    const bool compact = compactNames();
    auto names = [&](QCPGraph* nll, QCPGraph* avg, QCPGraph* ppl, const QString& label) {
        nll->setName(tr("%1: NLL").arg(label));
        avg->setName(compact ? tr("%1: NLL").arg(label) : tr("%1: NLL, mean of %2").arg(label).arg(m_window));
        ppl->setName(compact ? tr("%1: perplexity").arg(label)
                             : tr("%1: perplexity per %2").arg(label).arg(m_bucket));
    };
    names(m_nll, m_avg, m_ppl, a);
    for (int i = 0; i < m_ov.size(); ++i) {
        const QString b = legendName(ovs[i], tr("overlay"));
        names(m_ov[i].nll, m_ov[i].avg, m_ov[i].ppl, b);
        m_ov[i].diff->setName(tr("%1 − %2").arg(b, a));
    }
    // The legend lists what is drawn: the differences, or the NLL averages and perplexities (the thin
    // per-token line is the least telling entry: left out to keep the legend short).
    QList<QCPGraph*> lines{m_nll, m_avg, m_ppl};
    for (const OverlayGraphs& g : m_ov)
        lines << g.nll << g.avg << g.ppl << g.diff;
    for (QCPGraph* g : lines) {
        const bool isDiff =
            std::any_of(m_ov.begin(), m_ov.end(), [g](const OverlayGraphs& o) { return o.diff == g; });
        const bool isNll = g == m_nll || std::any_of(m_ov.begin(), m_ov.end(),
                                                     [g](const OverlayGraphs& o) { return o.nll == g; });
        const bool shown = diff ? isDiff : !isDiff;
        g->setVisible(shown && (!isNll || m_tokenNll));
        if (shown && !isNll)
            g->addToLegend();
        else
            g->removeFromLegend();
    }
    m_plot->yAxis2->setVisible(!diff);
    // On screen short: a rotated label longer than the axis is clipped, and the legend names the
    // window and bucket size. Compact legends leave them to the axes.
    m_plot->yAxis->setLabel(diff      ? tr("ΔNLL (nats), mean of %1").arg(m_window)
                            : compact ? tr("NLL (nats), mean of %1").arg(m_window)
                                      : tr("NLL (nats)"));
    m_plot->yAxis2->setLabel(compact ? tr("perplexity per %1 tokens").arg(m_bucket) : tr("perplexity"));
}

void LossView::restyle()
{
    auto styleTraceAs = [&](QCPGraph* nll, QCPGraph* avg, QCPGraph* ppl, const QColor& c, bool main) {
        QColor thin = c;
        thin.setAlpha(m_dark ? 110 : 90);
        nll->setPen(QPen(thin, 1.0));
        avg->setPen(QPen(c.darker(m_dark ? 100 : 130), 2.0));
        QColor pc = main ? (m_dark ? QColor(120, 220, 120) : QColor(30, 140, 60)) : c.darker(110);
        ppl->setPen(QPen(pc, 2.0, main ? Qt::SolidLine : Qt::DashLine));
    };
    styleTraceAs(m_nll, m_avg, m_ppl, colorOf(m_trace), !(m_trace && m_trace->color().isValid()));
    const QList<TraceData*> ovs = drawnOverlays();
    for (int i = 0; i < m_ov.size() && i < ovs.size(); ++i) {
        styleTraceAs(m_ov[i].nll, m_ov[i].avg, m_ov[i].ppl, colorOf(ovs[i]), false);
        m_ov[i].diff->setPen(QPen(colorOf(ovs[i]), 2.0));
    }
}

void LossView::rebuild()
{
    QCPAxis* x = m_plot->xAxis;
    auto fill = [&](TraceData* t, QCPGraph* nll, QCPGraph* avg, QCPGraph* ppl) {
        if (!nll)
            return;
        if (!t || t->tokens() == 0) {
            nll->data()->clear();
            avg->data()->clear();
            ppl->data()->clear();
            return;
        }
        const QVector<qint64> edges = columnEdges(x, t->tokens());
        if (edges.size() < 2) {
            nll->data()->clear();
            avg->data()->clear();
            ppl->data()->clear();
            return;
        }
        setEnvelope(nll, t->nllEdges(edges), true);
        // The average is smooth: one point per column (the column's mean) is enough.
        setEnvelope(avg, t->movingAverageEdges(edges, m_window), false);
        setEmphasisPen(avg, 2.0);
        const qint64 b = edges.front(), e = edges.back();
        // Buckets overlapping the visible range plus one on each side, so the steps reach the edges.
        const QVector<QPointF> pts =
            t->bucketedPerplexity(m_bucket, std::max<qint64>(0, b - m_bucket), e + m_bucket);
        QVector<double> px, py;
        px.reserve(pts.size());
        py.reserve(pts.size());
        for (const QPointF& p : pts) {
            px.push_back(p.x());
            py.push_back(p.y());
        }
        ppl->setData(px, py, true);
        setEmphasisPen(ppl, 2.0);
        // A step line needs two buckets to show: mark the buckets while there are few.
        ppl->setScatterStyle(pts.size() <= 64 ? QCPScatterStyle(QCPScatterStyle::ssDisc, 5)
                                              : QCPScatterStyle(QCPScatterStyle::ssNone));
    };
    fill(m_trace, m_nll, m_avg, m_ppl);
    const QList<TraceData*> ovs = drawnOverlays();
    const bool diff = m_difference && !ovs.isEmpty();
    QList<QCPGraph*> nllLines{m_nll, m_avg}, pplLines{m_ppl}, diffLines;
    for (int i = 0; i < m_ov.size() && i < ovs.size(); ++i) {
        fill(ovs[i], m_ov[i].nll, m_ov[i].avg, m_ov[i].ppl);
        nllLines << m_ov[i].nll << m_ov[i].avg;
        pplLines << m_ov[i].ppl;
        diffLines << m_ov[i].diff;
        // B - A on the tokens both have: the difference of the two moving averages, per column.
        const qint64 shared = m_trace ? std::min(m_trace->tokens(), ovs[i]->tokens()) : 0;
        const QVector<qint64> edges = columnEdges(x, shared);
        if (!diff || edges.size() < 2) {
            m_ov[i].diff->data()->clear();
            continue;
        }
        const Envelope ea = m_trace->movingAverageEdges(edges, m_window);
        const Envelope eb = ovs[i]->movingAverageEdges(edges, m_window);
        QVector<double> dx, dy;
        for (int k = 0; k < ea.size() && k < eb.size(); ++k) {
            dx.push_back(ea.x[k]);
            dy.push_back(eb.mean[k] - ea.mean[k]);
        }
        m_ov[i].diff->setData(dx, dy, true);
    }
    for (QCPGraph* g : {m_nll})
        g->setVisible(m_tokenNll && !diff);
    for (const OverlayGraphs& g : m_ov)
        g.nll->setVisible(m_tokenNll && !diff);
    // A y range the user zoomed to stays until they ask for the fit again (PlotGroup).
    if (!m_yAutoFit)
        return;
    if (diff) {
        rescaleY(m_plot->yAxis, diffLines, false, true);
        return;
    }
    rescaleY(m_plot->yAxis, nllLines, false, true); // the visible ones
    if (m_plot->yAxis2->scaleType() == QCPAxis::stLogarithmic) {
        // Perplexity is exp(NLL): on a log axis it is the NLL axis in other units, so the two are locked
        // and a bucket's step sits at the height of the NLL it averages.
        QCPRange r = m_plot->yAxis->range();
        for (QCPGraph* g : pplLines) { // widen the NLL axis to the buckets' own range
            bool found = false;
            const QCPRange pr =
                g ? g->getValueRange(found, QCP::sdPositive, m_plot->xAxis->range()) : QCPRange();
            if (found) {
                r.lower = std::min(r.lower, std::log(pr.lower));
                r.upper = std::max(r.upper, std::log(pr.upper));
            }
        }
        m_plot->yAxis->setRange(r);
        m_plot->yAxis2->setRange(std::exp(r.lower), std::exp(r.upper));
    } else {
        rescaleY(m_plot->yAxis2, pplLines, false);
    }
}

QVector<CsvColumn> LossView::csvColumns() const
{
    QVector<CsvColumn> cols;
    QPointer<TraceData> t = m_trace;
    const int w = m_window, b = m_bucket;
    auto add = [&](QPointer<TraceData> d, const QString& prefix) {
        cols.push_back(
            {prefix + QStringLiteral("nll"), [d](qint64 k) { return d ? double(d->nllAt(k)) : NAN; }});
        cols.push_back({prefix + QStringLiteral("nll_mean%1").arg(w),
                        [d, w](qint64 k) { return d ? d->movingAverageAt(k, w) : NAN; }});
        cols.push_back({prefix + QStringLiteral("perplexity_bucket%1").arg(b),
                        [d, b](qint64 k) { return d ? d->bucketedPerplexityAt(k, b) : NAN; }});
    };
    if (t)
        add(t, QString());
    const QList<TraceData*> ovs = drawnOverlays();
    for (int i = 0; i < ovs.size(); ++i)
        add(ovs[i], i == 0 ? QStringLiteral("overlay_") : QStringLiteral("overlay%1_").arg(i + 1));
    return cols;
}

QStringList LossView::readout(qint64 token, QCPAxisRect*, int) const
{
    QStringList lines;
    auto add = [&](TraceData* d, const QString& who) {
        if (!d || token < 0 || token >= d->tokens())
            return;
        const QString prefix = who.isEmpty() ? QString() : who + QStringLiteral(": ");
        // The averages are what the lines show; the token's own NLL and the bucket's perplexity are
        // details, left out first in a short plot.
        const QString detail = QString(QChar(kReadoutDetail));
        lines
            << detail + prefix + tr("NLL %1 nats").arg(readoutNumber(d->nllAt(token)))
            << prefix +
                   tr("mean of %1: %2").arg(m_window).arg(readoutNumber(d->movingAverageAt(token, m_window)))
            << detail + prefix +
                   tr("perplexity (%1-token bucket) %2")
                       .arg(m_bucket)
                       .arg(readoutNumber(d->bucketedPerplexityAt(token, m_bucket)));
    };
    const QList<TraceData*> ovs = drawnOverlays();
    add(m_trace, ovs.isEmpty() ? QString() : legendName(m_trace, m_trace->label()));
    for (TraceData* o : ovs) {
        add(o, legendName(o, o->label()));
        if (m_difference && m_trace && token < o->tokens() && token < m_trace->tokens())
            lines << tr("%1 − %2: %3 nats")
                         .arg(legendName(o, o->label()), legendName(m_trace, m_trace->label()))
                         .arg(readoutNumber(o->movingAverageAt(token, m_window) -
                                            m_trace->movingAverageAt(token, m_window)));
    }
    return lines;
}

} // namespace statescope
