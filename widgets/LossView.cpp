#include "LossView.h"

#include "PlotExporter.h"
#include "PlotHelpers.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>

#include <qcustomplot.h>

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
    tracesChanged();
    scheduleRefresh();
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
    const bool ov = m_overlay && m_overlay != m_trace;
    if (ov && !m_ovNll) {
        m_ovNll = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis);
        m_ovAvg = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis);
        m_ovPpl = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis2);
        m_ovPpl->setLineStyle(QCPGraph::lsStepCenter);
        for (QCPGraph* g : {m_ovNll, m_ovAvg, m_ovPpl})
            g->setAdaptiveSampling(false);
        restyle();
    } else if (!ov && m_ovNll) {
        for (QCPGraph* g : {m_ovNll, m_ovAvg, m_ovPpl})
            m_plot->removeGraph(g);
        m_ovNll = m_ovAvg = m_ovPpl = nullptr;
    }
    const QString a = legendName(m_trace, tr("trace")), b = legendName(m_overlay, tr("overlay"));
    const bool compact = compactNames();
    auto names = [&](QCPGraph* nll, QCPGraph* avg, QCPGraph* ppl, const QString& label) {
        nll->setName(tr("%1: NLL").arg(label));
        avg->setName(compact ? tr("%1: NLL").arg(label) : tr("%1: NLL, mean of %2").arg(label).arg(m_window));
        ppl->setName(compact ? tr("%1: perplexity").arg(label)
                             : tr("%1: perplexity per %2").arg(label).arg(m_bucket));
    };
    names(m_nll, m_avg, m_ppl, a);
    if (m_ovNll)
        names(m_ovNll, m_ovAvg, m_ovPpl, b);
    // On screen short: a rotated label longer than the axis is clipped, and the legend names the
    // window and bucket size. Compact legends leave them to the axes.
    m_plot->yAxis->setLabel(compact ? tr("NLL (nats), mean of %1").arg(m_window) : tr("NLL (nats)"));
    m_plot->yAxis2->setLabel(compact ? tr("perplexity per %1 tokens").arg(m_bucket) : tr("perplexity"));
    // The thin per-token line is the least telling entry: keep the legend short.
    m_nll->removeFromLegend();
    if (m_ovNll)
        m_ovNll->removeFromLegend();
}

void LossView::restyle()
{
    auto styleTrace = [&](QCPGraph* nll, QCPGraph* avg, QCPGraph* ppl, int which) {
        if (!nll)
            return;
        const QColor c = PlotExporter::traceColor(which, m_dark);
        QColor thin = c;
        thin.setAlpha(m_dark ? 110 : 90);
        nll->setPen(QPen(thin, 1.0));
        avg->setPen(QPen(c.darker(m_dark ? 100 : 130), 2.0));
        QColor pc = which == 0 ? (m_dark ? QColor(120, 220, 120) : QColor(30, 140, 60)) : c.darker(110);
        ppl->setPen(QPen(pc, 2.0, which == 0 ? Qt::SolidLine : Qt::DashLine));
    };
    styleTrace(m_nll, m_avg, m_ppl, 0);
    styleTrace(m_ovNll, m_ovAvg, m_ovPpl, 1);
}

void LossView::rebuild()
{
    QCPAxis* x = m_plot->xAxis;
    const bool ov = m_overlay && m_overlay != m_trace;
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
    if (ov)
        fill(m_overlay, m_ovNll, m_ovAvg, m_ovPpl);
    for (QCPGraph* g : {m_nll, m_ovNll})
        if (g)
            g->setVisible(m_tokenNll);
    // A y range the user zoomed to stays until they ask for the fit again (PlotGroup).
    if (!m_yAutoFit)
        return;
    rescaleY(m_plot->yAxis, {m_nll, m_avg, m_ovNll, m_ovAvg}, false, true); // the visible ones
    if (m_plot->yAxis2->scaleType() == QCPAxis::stLogarithmic) {
        // Perplexity is exp(NLL): on a log axis it is the NLL axis in other units, so the two are locked
        // and a bucket's step sits at the height of the NLL it averages.
        QCPRange r = m_plot->yAxis->range();
        for (QCPGraph* g : {m_ppl, m_ovPpl}) { // widen the NLL axis to the buckets' own range
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
        rescaleY(m_plot->yAxis2, {m_ppl, m_ovPpl}, false);
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
    if (m_overlay && m_overlay != m_trace)
        add(m_overlay, QStringLiteral("overlay_"));
    return cols;
}

QStringList LossView::readout(qint64 token, QCPAxisRect*, int) const
{
    QStringList lines;
    auto add = [&](TraceData* d, const QString& who) {
        if (!d || token < 0 || token >= d->tokens())
            return;
        const QString prefix = who.isEmpty() ? QString() : who + QStringLiteral(": ");
        lines
            << prefix + tr("NLL %1 nats").arg(readoutNumber(d->nllAt(token)))
            << prefix +
                   tr("mean of %1: %2").arg(m_window).arg(readoutNumber(d->movingAverageAt(token, m_window)))
            << prefix + tr("perplexity (%1-token bucket) %2")
                            .arg(m_bucket)
                            .arg(readoutNumber(d->bucketedPerplexityAt(token, m_bucket)));
    };
    add(m_trace, m_overlay && m_overlay != m_trace ? m_trace->label() : QString());
    if (m_overlay && m_overlay != m_trace)
        add(m_overlay, m_overlay->label());
    return lines;
}

} // namespace statescope
