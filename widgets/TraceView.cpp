#include "TraceView.h"

#include "FlowLayout.h"
#include "PlotExporter.h"
#include "PlotHelpers.h"

#include <QCheckBox>
#include <QElapsedTimer>
#include <QHBoxLayout>
#include <QResizeEvent>
#include <QSignalBlocker>
#include <QTimer>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include <algorithm>
#include <cmath>

namespace statescope {

namespace {

// QCustomPlot computes its layout only when it replots; the views need the axis rects' pixel size
// before that to decimate for them.
class LayoutPlot : public QCustomPlot {
public:
    using QCustomPlot::QCustomPlot;
    void layoutNow()
    {
        if (viewport().width() <= 1 || viewport().height() <= 1)
            setViewport(QRect(QPoint(0, 0), size().expandedTo(QSize(2, 2))));
        updateLayout();
    }
};

} // namespace

TraceView::TraceView(QWidget* parent) : QWidget(parent)
{
    m_layout = new QVBoxLayout(this);
    m_layout->setContentsMargins(0, 0, 0, 0);
    m_layout->setSpacing(2);
    m_controls = new FlowLayout(nullptr, 6);
    m_controls->setContentsMargins(4, 2, 4, 0);
    m_layout->addLayout(m_controls);
    m_plot = new LayoutPlot(this);
    m_plot->setMinimumHeight(130);
    m_legendBox = new QCheckBox(tr("legend"), this);
    m_legendBox->setChecked(true);
    m_legendBox->setToolTip(tr("Show the legend (a click on the legend hides it)"));
    m_controls->addWidget(m_legendBox);
    connect(m_legendBox, &QCheckBox::toggled, this, [this](bool on) {
        m_legendChosen = true;
        setLegendShown(on);
    });
    connect(m_plot, &QCustomPlot::legendClick, this,
            [this](QCPLegend*, QCPAbstractLegendItem*, QMouseEvent*) {
                m_legendChosen = true;
                setLegendShown(false);
            });
    // Plots are redrawn from decimated data at most ~30 times a second; antialiasing of thousands of
    // segments is the main cost of a replot, so it is off while dragging.
    m_plot->setNoAntialiasingOnDrag(true);
    m_layout->addWidget(m_plot, 1);

    m_timer = new QTimer(this);
    m_timer->setSingleShot(true);
    m_timer->setInterval(kRefreshIntervalMs);
    connect(m_timer, &QTimer::timeout, this, &TraceView::refresh);
    PlotExporter::applyTheme(m_plot, m_dark);
    connect(m_plot, &QCustomPlot::afterReplot, this, [this] {
        if (m_frameTimes.size() >= kFrameHistory)
            m_frameTimes.remove(0, kFrameHistory / 2);
        m_frameTimes.push_back(float(m_plot->replotTime(false) + m_pendingRebuildMs));
        m_pendingRebuildMs = 0;
    });
}

TraceView::~TraceView() = default;

void TraceView::addControl(QWidget* widget)
{
    // Before the legend box, which ends the row.
    m_controls->insertWidget(m_controls->indexOf(m_legendBox), widget);
}

void TraceView::ensureLayout()
{
    static_cast<LayoutPlot*>(m_plot)->layoutNow();
}

void TraceView::connectTrace(TraceData* t)
{
    if (!t)
        return;
    connect(t, &TraceData::appended, this, &TraceView::scheduleRefresh);
    connect(t, &TraceData::fineChanged, this, &TraceView::scheduleRefresh);
    connect(t, &TraceData::colorChanged, this, [this] {
        restyle();
        scheduleRefresh();
    });
    connect(t, &TraceData::traceReset, this, [this] {
        tracesChanged();
        scheduleRefresh();
    });
    connect(t, &TraceData::labelChanged, this, [this] {
        tracesChanged();
        scheduleRefresh();
    });
    connect(t, &QObject::destroyed, this, [this] {
        tracesChanged();
        scheduleRefresh();
    });
}

void TraceView::setTrace(TraceData* trace)
{
    if (m_trace == trace)
        return;
    if (m_trace)
        disconnect(m_trace, nullptr, this, nullptr);
    m_trace = trace;
    connectTrace(trace);
    tracesChanged();
    scheduleRefresh();
}

void TraceView::setOverlay(TraceData* overlay)
{
    setOverlays(overlay ? QList<TraceData*>{overlay} : QList<TraceData*>{});
}

void TraceView::setOverlays(const QList<TraceData*>& overlays)
{
    if (overlays == this->overlays())
        return;
    for (TraceData* old : this->overlays())
        if (old != m_trace)
            disconnect(old, nullptr, this, nullptr);
    m_overlay = overlays.value(0, nullptr);
    m_moreOverlays.clear();
    for (int i = 1; i < overlays.size(); ++i)
        m_moreOverlays.push_back(overlays[i]);
    for (TraceData* t : overlays)
        if (t != m_trace)
            connectTrace(t);
    tracesChanged();
    restyle();
    scheduleRefresh();
}

QList<TraceData*> TraceView::overlays() const
{
    QList<TraceData*> out;
    if (m_overlay)
        out.push_back(m_overlay);
    for (const QPointer<TraceData>& t : m_moreOverlays)
        if (t)
            out.push_back(t);
    return out;
}

QColor TraceView::colorOf(TraceData* t) const
{
    if (t && t->color().isValid())
        return t->color();
    const int i = t == m_trace ? 0 : int(overlays().indexOf(t)) + 1;
    return PlotExporter::traceColor(std::max(0, i), m_dark);
}

void TraceView::setDarkTheme(bool dark)
{
    m_dark = dark;
    PlotExporter::applyTheme(m_plot, dark);
    restyle();
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void TraceView::setLegendShown(bool shown)
{
    {
        const QSignalBlocker block(m_legendBox);
        m_legendBox->setChecked(shown);
    }
    if (m_plot->legend->visible() == shown)
        return;
    m_plot->legend->setVisible(shown);
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

bool TraceView::legendShown() const
{
    return m_plot->legend->visible();
}

void TraceView::fitLegend()
{
    if (m_legendChosen || m_legendFitSuspended)
        return;
    QCPAxisRect* rect = m_plot->axisRect();
    const QSize legend = m_plot->legend->minimumOuterSizeHint();
    const QRect area = rect->rect();
    // A fifth of the data area at most: more hides the very lines it explains.
    const bool fits = area.height() > 0 &&
                      legend.height() * legend.width() <= area.width() * area.height() / 5 &&
                      legend.height() <= area.height() / 2;
    setLegendShown(fits);
}

void TraceView::setLegendLabels(const QString& trace, const QString& overlay)
{
    if (trace == m_traceLegendLabel && overlay == m_overlayLegendLabel)
        return;
    m_traceLegendLabel = trace;
    m_overlayLegendLabel = overlay;
    tracesChanged();
    scheduleRefresh();
}

void TraceView::setCompactNames(bool compact)
{
    if (compact == m_compactNames)
        return;
    m_compactNames = compact;
    tracesChanged();
    scheduleRefresh();
}

QString TraceView::legendName(TraceData* t, const QString& fallback) const
{
    if (!t)
        return fallback;
    // The overlay may be the trace itself (overlaying a trace on itself shows one).
    const QString set = t == m_trace ? m_traceLegendLabel : t == m_overlay ? m_overlayLegendLabel : QString();
    if (!set.isEmpty())
        return set;
    return t->label().isEmpty() ? fallback : t->label();
}

void TraceView::refresh()
{
    QElapsedTimer clock;
    clock.start();
    m_timer->stop();
    ensureLayout();
    // Zoomed in far enough, every token is drawn exactly (read from the file or the recent tokens).
    const auto [begin, end] = visibleTokens();
    QList<TraceData*> drawn = overlays();
    drawn.prepend(m_trace);
    for (TraceData* t : drawn)
        if (t) {
            const QVector<int> probes = probesDrawn(t);
            if (!probes.isEmpty())
                t->ensureFullResolution(begin, end, probes);
        }
    rebuild();
    fitTickCounts(m_plot);
    fitLegend();
    emit aboutToReplot();
    ++m_refreshCount;
    m_pendingRebuildMs += clock.nsecsElapsed() / 1e6;
    m_plot->replot(QCustomPlot::rpQueuedReplot);
    emit refreshed();
}

void TraceView::setYAutoFit(bool on)
{
    if (on == m_yAutoFit)
        return;
    m_yAutoFit = on;
    if (on)
        refresh();
}

void TraceView::scheduleRefresh()
{
    if (!m_timer->isActive())
        m_timer->start();
}

bool TraceView::refreshPending() const
{
    return m_timer->isActive();
}

void TraceView::resizeEvent(QResizeEvent* event)
{
    QWidget::resizeEvent(event);
    scheduleRefresh();
}

QPair<int, int> TraceView::naturalInsets()
{
    for (QCPAxis* x : tokenAxes()) {
        QCPAxisRect* r = x->axisRect();
        QMargins m = r->minimumMargins();
        m.setLeft(0);
        m.setRight(0);
        r->setMinimumMargins(m);
    }
    ensureLayout();
    const QRect vp = m_plot->viewport();
    int left = 0, right = 0;
    for (QCPAxis* x : tokenAxes()) {
        const QRect r = x->axisRect()->rect();
        left = std::max(left, r.left() - vp.left());
        right = std::max(right, vp.right() - r.right());
    }
    return {left, right};
}

void TraceView::setInsets(int left, int right)
{
    const QRect vp = m_plot->viewport();
    for (QCPAxis* x : tokenAxes()) {
        QCPAxisRect* r = x->axisRect();
        const QRect outer = r->outerRect();
        QMargins m = r->minimumMargins();
        m.setLeft(std::max(0, left - (outer.left() - vp.left())));
        m.setRight(std::max(0, right - (vp.right() - outer.right())));
        r->setMinimumMargins(m);
    }
}

std::pair<qint64, qint64> TraceView::visibleTokens() const
{
    const qint64 n = m_trace ? m_trace->tokens() : 0;
    const QList<QCPAxis*> axes = tokenAxes();
    if (axes.isEmpty() || n == 0)
        return {0, 0};
    const QCPRange r = axes.front()->range();
    const qint64 b = std::clamp<qint64>(qint64(std::ceil(r.lower - 1.0)), 0, n);
    const qint64 e = std::clamp<qint64>(qint64(std::floor(r.upper - 1.0)) + 1, 0, n);
    return {b, std::max(b, e)};
}

int TraceView::dataColumns() const
{
    const QList<QCPAxis*> axes = tokenAxes();
    int w = axes.isEmpty() ? 0 : axes.front()->axisRect()->width();
    if (w <= 1)
        w = std::max(1, m_plot->width() - 60);
    return std::max(1, w);
}

QVector<qint64> TraceView::columnEdges(QCPAxis* axis, qint64 tokens, int pixelsPerColumn) const
{
    QVector<qint64> edges;
    if (!axis || tokens <= 0)
        return edges;
    pixelsPerColumn = std::max(1, pixelsPerColumn);
    const QCPRange r = axis->range();
    // Token t is drawn at x = t + 1, so a column [xa, xb) holds tokens ceil(xa - 1) .. ceil(xb - 1) - 1.
    auto toToken = [&](double x) { return std::clamp<qint64>(qint64(std::ceil(x - 1.0)), 0, tokens); };
    const int left = axis->axisRect()->left();
    const int width = axis->axisRect()->width();
    if (width <= 1) {
        // No geometry yet: equal columns in coordinates.
        const int cols = std::max(1, dataColumns() / pixelsPerColumn);
        for (int c = 0; c <= cols; ++c)
            edges.push_back(toToken(r.lower + r.size() * c / cols));
    } else {
        const int cols = std::max(1, width / pixelsPerColumn);
        edges.reserve(cols + 1);
        for (int c = 0; c <= cols; ++c) {
            const double px = left + double(width) * c / cols;
            double x = axis->pixelToCoord(px);
            if (c == 0)
                x = r.lower;
            else if (c == cols)
                x = r.upper;
            edges.push_back(toToken(x));
        }
    }
    for (int i = 1; i < edges.size(); ++i)
        edges[i] = std::max(edges[i], edges[i - 1]);
    // The last visible token belongs to the last column.
    if (!edges.isEmpty())
        edges.back() = std::clamp<qint64>(qint64(std::floor(r.upper - 1.0)) + 1, edges.back(), tokens);
    return edges;
}

} // namespace statescope
