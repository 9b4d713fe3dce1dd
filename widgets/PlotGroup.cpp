#include "PlotGroup.h"

#include "PlotExporter.h"
#include "TraceView.h"

#include <algorithm>
#include <cmath>

namespace statescope {

namespace {

QCPItemStraightLine* makeVLine(QCustomPlot* plot, QCPAxis* x, const char* layer)
{
    auto* line = new QCPItemStraightLine(plot);
    QCPAxisRect* rect = x->axisRect();
    line->setLayer(QString::fromLatin1(layer));
    line->setClipToAxisRect(true);
    line->setClipAxisRect(rect);
    line->setSelectable(false);
    QCPAxis* y = rect->axis(QCPAxis::atLeft);
    for (QCPItemPosition* p : {line->point1, line->point2}) {
        p->setAxes(x, y);
        p->setAxisRect(rect);
        p->setTypeX(QCPItemPosition::ptPlotCoords);
        p->setTypeY(QCPItemPosition::ptAxisRectRatio);
    }
    line->point1->setCoords(1, 0);
    line->point2->setCoords(1, 1);
    line->setVisible(false);
    return line;
}

QCPItemText* makeLabel(QCustomPlot* plot, QCPAxis* x)
{
    auto* t = new QCPItemText(plot);
    QCPAxisRect* rect = x->axisRect();
    t->setLayer(QStringLiteral("overlay"));
    t->setClipToAxisRect(true);
    t->setClipAxisRect(rect);
    t->setSelectable(false);
    t->position->setAxes(x, rect->axis(QCPAxis::atLeft));
    t->position->setAxisRect(rect);
    t->position->setTypeX(QCPItemPosition::ptPlotCoords);
    t->position->setTypeY(QCPItemPosition::ptAxisRectRatio);
    t->setPositionAlignment(Qt::AlignLeft | Qt::AlignTop);
    t->setPadding(QMargins(3, 1, 3, 1));
    QFont f = t->font();
    f.setPointSizeF(std::max(6.0, f.pointSizeF() - 1));
    t->setFont(f);
    t->setVisible(false);
    return t;
}

// The crosshair's value box: top corner of the axis rect, on the cursor's buffered layer so that
// following the mouse repaints only that layer.
QCPItemText* makeReadout(QCustomPlot* plot, QCPAxis* x)
{
    QCPItemText* t = makeLabel(plot, x);
    t->setLayer(QString::fromLatin1(kCursorLayer));
    t->position->setType(QCPItemPosition::ptAxisRectRatio);
    t->position->setCoords(1, 0);
    t->setPositionAlignment(Qt::AlignRight | Qt::AlignTop);
    t->setTextAlignment(Qt::AlignLeft);
    t->setPadding(QMargins(4, 2, 4, 2));
    return t;
}

// A band over a token span, the full height of the axis rect, under the data.
QCPItemRect* makeBand(QCustomPlot* plot, QCPAxis* x)
{
    auto* band = new QCPItemRect(plot);
    QCPAxisRect* rect = x->axisRect();
    band->setLayer(QStringLiteral("grid"));
    band->setClipToAxisRect(true);
    band->setClipAxisRect(rect);
    band->setSelectable(false);
    for (QCPItemPosition* p : {band->topLeft, band->bottomRight}) {
        p->setAxes(x, rect->axis(QCPAxis::atLeft));
        p->setAxisRect(rect);
        p->setTypeX(QCPItemPosition::ptPlotCoords);
        p->setTypeY(QCPItemPosition::ptAxisRectRatio);
    }
    band->setVisible(false);
    return band;
}

QString tokensText(double t)
{
    if (t >= 1e6)
        return QString::number(t / 1e6, 'g', 3) + QStringLiteral("M");
    if (t >= 1e3)
        return QString::number(t / 1e3, 'g', 3) + QStringLiteral("K");
    return QString::number(qint64(std::llround(t)));
}

} // namespace

struct PlotGroup::RectItems {
    QCPAxis* x = nullptr;
    QCPItemStraightLine* cursor = nullptr;
    QCPItemStraightLine* train = nullptr;
    QCPItemStraightLine* forget = nullptr;
    QCPItemText* trainLabel = nullptr;
    QCPItemText* forgetLabel = nullptr;
    QCPItemStraightLine* overlayTrain = nullptr;
    QCPItemText* overlayTrainLabel = nullptr;
    QCPItemRect* needle = nullptr;
    QCPItemText* needleLabel = nullptr;
    QCPItemStraightLine* hover = nullptr;
    QCPItemText* readout = nullptr;
};

struct PlotGroup::Entry {
    QPointer<QCustomPlot> plot;
    QPointer<TraceView> view;
    QList<RectItems> rects;
    QPoint pressPos;
    bool pressed = false;
    QPair<int, int> natural{-1, -1};
    QPair<int, int> applied{-1, -1};
    QList<QMetaObject::Connection> connections;
};

PlotGroup::PlotGroup(QObject* parent) : QObject(parent) {}

PlotGroup::~PlotGroup()
{
    for (Entry* e : m_entries) {
        for (const auto& c : e->connections)
            disconnect(c);
        delete e;
    }
}

PlotGroup::Entry* PlotGroup::entryFor(QCustomPlot* plot)
{
    for (Entry* e : m_entries)
        if (e->plot == plot)
            return e;
    return nullptr;
}

QList<QCustomPlot*> PlotGroup::plots() const
{
    QList<QCustomPlot*> out;
    for (Entry* e : m_entries)
        if (e->plot)
            out.push_back(e->plot);
    return out;
}

void PlotGroup::addView(TraceView* view)
{
    addPlot(view->plot(), view->tokenAxes());
    if (Entry* e = entryFor(view->plot())) {
        e->view = view;
        e->connections.push_back(connect(view, &TraceView::aboutToReplot, this, [this, view] {
            alignInsets(view);
            if (Entry* en = entryFor(view->plot()))
                placeLabels(*en);
        }));
        // New data or another layer: the values under the crosshair changed.
        e->connections.push_back(connect(view, &TraceView::refreshed, this, [this] {
            if (readoutToken() >= 0)
                updateReadout();
        }));
        view->scheduleRefresh();
    }
}

void PlotGroup::addPlot(QCustomPlot* plot, const QList<QCPAxis*>& xAxes)
{
    if (!plot || entryFor(plot))
        return;
    auto* e = new Entry;
    e->plot = plot;
    if (!plot->layer(kCursorLayer)) {
        // A buffered layer of its own: moving the cursor repaints only this layer.
        plot->addLayer(kCursorLayer, plot->layer(QStringLiteral("overlay")), QCustomPlot::limBelow);
        plot->layer(kCursorLayer)->setMode(QCPLayer::lmBuffered);
    }
    for (QCPAxis* x : xAxes) {
        RectItems r;
        r.x = x;
        r.cursor = makeVLine(plot, x, kCursorLayer);
        r.train = makeVLine(plot, x, "overlay");
        r.forget = makeVLine(plot, x, "overlay");
        r.overlayTrain = makeVLine(plot, x, "overlay");
        r.needle = makeBand(plot, x);
        r.hover = makeVLine(plot, x, kCursorLayer);
        r.readout = makeReadout(plot, x);
        if (e->rects.isEmpty()) {
            r.trainLabel = makeLabel(plot, x);
            r.forgetLabel = makeLabel(plot, x);
            r.overlayTrainLabel = makeLabel(plot, x);
            r.needleLabel = makeLabel(plot, x);
        }
        QCPAxisRect* rect = x->axisRect();
        rect->setRangeDrag(Qt::Horizontal);
        rect->setRangeZoom(Qt::Horizontal);
        rect->setRangeDragAxes(QList<QCPAxis*>{x}, QList<QCPAxis*>{});
        rect->setRangeZoomAxes(QList<QCPAxis*>{x}, QList<QCPAxis*>{});
        x->setNumberFormat(QStringLiteral("gb"));
        x->setNumberPrecision(7);
        e->connections.push_back(connect(x, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), this,
                                         [this, x](const QCPRange& r) { onAxisRangeChanged(x, r); }));
        e->rects.push_back(r);
    }
    plot->setInteraction(QCP::iRangeDrag, true);
    plot->setInteraction(QCP::iRangeZoom, true);
    // Hover without a button pressed, and the arrow keys once clicked.
    plot->setMouseTracking(true);
    plot->setFocusPolicy(Qt::StrongFocus);
    plot->installEventFilter(this);
    m_entries.push_back(e);
    installMouse(plot);
    // QPointer has cleared e->plot by the time destroyed() arrives.
    e->connections.push_back(connect(plot, &QObject::destroyed, this, [this] { removePlot(nullptr); }));

    m_syncing = true;
    for (const auto& r : e->rects) {
        if (m_logX) {
            r.x->setScaleType(QCPAxis::stLogarithmic);
            r.x->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
        }
        r.x->setRange(m_range);
    }
    m_syncing = false;
    updateItems();
    updateMarkers(*e);
    plot->replot(QCustomPlot::rpQueuedReplot);
}

void PlotGroup::removePlot(QCustomPlot* plot)
{
    for (int i = 0; i < m_entries.size(); ++i) {
        Entry* e = m_entries[i];
        if (plot ? e->plot == plot : e->plot.isNull()) {
            for (const auto& c : e->connections)
                disconnect(c);
            m_entries.removeAt(i);
            delete e;
            return;
        }
    }
}

void PlotGroup::installMouse(QCustomPlot* plot)
{
    Entry* e = entryFor(plot);
    e->connections.push_back(connect(plot, &QCustomPlot::mousePress, this, [this, plot](QMouseEvent* ev) {
        Entry* en = entryFor(plot);
        if (!en)
            return;
        // QCustomPlot emits this before it handles the press: Shift+drag becomes a box, anything else
        // pans as before.
        const bool box = ev->button() == Qt::LeftButton && ev->modifiers().testFlag(Qt::ShiftModifier);
        plot->setSelectionRectMode(box ? QCP::srmCustom : QCP::srmNone);
        en->pressPos = ev->pos();
        en->pressed = ev->button() == Qt::LeftButton && !box;
    }));
    e->connections.push_back(connect(plot->selectionRect(), &QCPSelectionRect::accepted, this,
                                     [this, plot](const QRect& box, QMouseEvent*) {
                                         plot->setSelectionRectMode(QCP::srmNone);
                                         boxZoom(plot, box);
                                     }));
    e->connections.push_back(connect(plot, &QCustomPlot::mouseWheel, this,
                                     [this, plot](QWheelEvent* ev) { prepareWheel(plot, ev); }));
    e->connections.push_back(connect(plot, &QCustomPlot::mouseMove, this, [this, plot](QMouseEvent* ev) {
        Entry* en = entryFor(plot);
        if (!en)
            return;
        qint64 token = -1;
        for (const auto& r : en->rects)
            if (r.x->axisRect()->rect().contains(ev->pos())) {
                const qint64 n = m_trace ? m_trace->tokens() : 0;
                const qint64 t = qint64(std::llround(r.x->pixelToCoord(ev->pos().x()) - 1.0));
                if (n > 0 && t >= 0 && t < n)
                    token = t;
            }
        m_hoverPlot = plot;
        m_hoverPos = ev->pos();
        setHoverToken(token);
    }));
    e->connections.push_back(connect(plot, &QCustomPlot::mouseDoubleClick, this, [this, plot](QMouseEvent*) {
        Entry* en = entryFor(plot);
        if (en && en->view)
            en->view->setYAutoFit(true);
    }));
    e->connections.push_back(connect(plot, &QCustomPlot::mouseRelease, this, [this, plot](QMouseEvent* ev) {
        Entry* en = entryFor(plot);
        if (!en || !en->pressed)
            return;
        en->pressed = false;
        // A click, not the end of a drag.
        if ((ev->pos() - en->pressPos).manhattanLength() > 3)
            return;
        QCPAxisRect* rect = plot->axisRectAt(ev->pos());
        if (!rect)
            return;
        for (const auto& r : en->rects)
            if (r.x->axisRect() == rect) {
                const double x = r.x->pixelToCoord(ev->pos().x());
                const qint64 n = m_trace ? m_trace->tokens() : 0;
                qint64 t = qint64(std::llround(x - 1.0));
                if (n > 0)
                    t = std::clamp<qint64>(t, 0, n - 1);
                setCursor(std::max<qint64>(0, t));
                return;
            }
    }));
}

void PlotGroup::prepareWheel(QCustomPlot* plot, QWheelEvent* event)
{
    // QCustomPlot emits mouseWheel before the axis rect under the pointer zooms: point that zoom at
    // the shared token axis, or at the rect's own y axes for Ctrl+wheel and the wheel over a y axis.
    Entry* en = entryFor(plot);
    if (!en)
        return;
    const QPoint pos = event->position().toPoint();
    for (const auto& r : en->rects) {
        QCPAxisRect* rect = r.x->axisRect();
        if (!rect->outerRect().contains(pos))
            continue;
        const bool overY = pos.x() < rect->left() || pos.x() > rect->right();
        const bool zoomY = overY || event->modifiers().testFlag(Qt::ControlModifier);
        QList<QCPAxis*> ys;
        for (QCPAxis* y : rect->axes(QCPAxis::atLeft | QCPAxis::atRight))
            if (y->visible())
                ys.push_back(y);
        rect->setRangeZoom(zoomY ? Qt::Vertical : Qt::Horizontal);
        rect->setRangeZoomAxes(zoomY ? QList<QCPAxis*>{} : QList<QCPAxis*>{r.x},
                               zoomY ? ys : QList<QCPAxis*>{});
        if (zoomY && en->view)
            en->view->setYAutoFit(false);
    }
}

void PlotGroup::boxZoom(QCustomPlot* plot, const QRect& box)
{
    Entry* en = entryFor(plot);
    const QRect b = box.normalized();
    if (!en || (b.width() < 4 && b.height() < 4))
        return;
    for (const auto& r : en->rects) {
        QCPAxisRect* rect = r.x->axisRect();
        if (!rect->rect().contains(b.center()))
            continue;
        if (b.height() >= 4) {
            // Off first: the refresh that the x change below schedules must keep this y.
            if (en->view)
                en->view->setYAutoFit(false);
            for (QCPAxis* y : rect->axes(QCPAxis::atLeft | QCPAxis::atRight))
                if (y->visible())
                    y->setRange(QCPRange(y->pixelToCoord(b.bottom()), y->pixelToCoord(b.top())));
        }
        if (b.width() >= 4)
            r.x->setRange(QCPRange(r.x->pixelToCoord(b.left()), r.x->pixelToCoord(b.right()))); // synced
        plot->replot(QCustomPlot::rpQueuedReplot);
        return;
    }
}

void PlotGroup::setTrace(TraceData* trace)
{
    if (m_trace == trace)
        return;
    if (m_trace)
        disconnect(m_trace, nullptr, this, nullptr);
    m_trace = trace;
    m_lastTokens = trace ? trace->tokens() : 0;
    if (trace) {
        connect(trace, &TraceData::appended, this, &PlotGroup::onAppended);
        connect(trace, &TraceData::traceReset, this, [this] {
            m_lastTokens = 0;
            m_cursor = -1;
            updateItems();
        });
        connect(trace, &TraceData::markersChanged, this, [this] {
            for (Entry* e : m_entries)
                updateMarkers(*e);
        });
    }
    for (Entry* e : m_entries)
        updateMarkers(*e);
    if (trace && trace->tokens() > 0)
        showAll();
}

void PlotGroup::setOverlay(TraceData* overlay)
{
    if (m_overlay == overlay)
        return;
    if (m_overlay && m_overlay != m_trace)
        disconnect(m_overlay, nullptr, this, nullptr);
    m_overlay = overlay;
    if (overlay && overlay != m_trace) {
        connect(overlay, &TraceData::markersChanged, this, [this] {
            for (Entry* e : m_entries)
                updateMarkers(*e);
        });
        connect(overlay, &QObject::destroyed, this, [this] {
            for (Entry* e : m_entries)
                updateMarkers(*e);
        });
    }
    for (Entry* e : m_entries)
        updateMarkers(*e);
}

void PlotGroup::onAppended(qint64 tokens)
{
    const qint64 before = m_lastTokens;
    m_lastTokens = tokens;
    if (!m_follow)
        return;
    const double endBefore = TraceData::tokenToX(std::max<qint64>(0, before - 1)) + 0.5;
    // Growing while the whole trace is shown, or the view ends at the old end: keep the end in view.
    if (before == 0 || m_range.lower <= 1.0 && m_range.upper >= endBefore - 1e-9) {
        showAll();
    } else if (m_range.upper >= endBefore - 1e-9) {
        const double shift = TraceData::tokenToX(tokens - 1) + 0.5 - m_range.upper;
        if (m_logX)
            setRange(QCPRange(m_range.lower, m_range.upper + shift));
        else
            setRange(QCPRange(m_range.lower + shift, m_range.upper + shift));
    }
}

void PlotGroup::showAll()
{
    for (Entry* e : m_entries)
        if (e->view)
            e->view->setYAutoFit(true);
    showAllTokens();
}

void PlotGroup::showAllTokens()
{
    const qint64 n = m_trace ? m_trace->tokens() : 0;
    const double upper = std::max<double>(double(n) + 0.5, 2.5);
    setRange(QCPRange(m_logX ? 0.9 : 0.5, upper));
}

QCPRange PlotGroup::clampRange(QCPRange r) const
{
    r.normalize();
    const qint64 n = m_trace ? m_trace->tokens() : 0;
    const double lo = m_logX ? 0.9 : 0.5;
    const double hi = std::max<double>(double(n) + 0.5, 2.5);
    // A span of a few tokens at least, so that zooming in stops at single tokens.
    if (r.size() < 4.0) {
        const double c = r.center();
        r = QCPRange(c - 2.0, c + 2.0);
    }
    if (m_trace && n > 0) {
        if (r.size() >= hi - lo)
            return QCPRange(lo, hi);
        if (r.lower < lo)
            r = QCPRange(lo, lo + r.size());
        if (r.upper > hi)
            r = QCPRange(hi - r.size(), hi);
    } else if (r.lower < lo) {
        r = QCPRange(lo, lo + r.size());
    }
    return r;
}

void PlotGroup::setRange(const QCPRange& range)
{
    applyRange(clampRange(range), nullptr);
}

void PlotGroup::onAxisRangeChanged(QCPAxis* axis, const QCPRange& range)
{
    if (m_syncing)
        return;
    const QCPRange r = clampRange(range);
    // Zooming or panning away from the end stops following a live run; back at the end resumes it.
    const qint64 n = m_trace ? m_trace->tokens() : 0;
    m_follow = r.upper >= double(n) + 0.5 - 1e-6;
    applyRange(r, (r.lower == range.lower && r.upper == range.upper) ? axis : nullptr);
}

void PlotGroup::applyRange(const QCPRange& range, QCPAxis* except)
{
    m_range = range;
    m_syncing = true;
    for (Entry* e : m_entries) {
        if (!e->plot)
            continue;
        for (const auto& r : e->rects)
            if (r.x != except && (r.x->range().lower != range.lower || r.x->range().upper != range.upper))
                r.x->setRange(range);
        placeLabels(*e);
        if (e->view)
            e->view->scheduleRefresh();
        else
            e->plot->replot(QCustomPlot::rpQueuedReplot);
    }
    m_syncing = false;
    emit rangeChanged(range);
}

void PlotGroup::setAlignViews(bool align)
{
    m_align = align;
    for (Entry* e : m_entries)
        if (e->view) {
            if (!align)
                e->view->setInsets(0, 0);
            e->view->scheduleRefresh();
        }
}

void PlotGroup::alignInsets(TraceView* changed)
{
    if (!m_align || m_aligning)
        return;
    m_aligning = true;
    // Natural insets change only when a view is rebuilt: measure the changed one (and any not yet
    // measured), then give every view the widest.
    int left = 0, right = 0;
    for (Entry* e : m_entries) {
        if (!e->view)
            continue;
        if (e->view == changed || e->natural.first < 0)
            e->natural = e->view->naturalInsets();
        left = std::max(left, e->natural.first);
        right = std::max(right, e->natural.second);
    }
    for (Entry* e : m_entries) {
        if (!e->view)
            continue;
        const QPair<int, int> target{left, right};
        e->view->setInsets(left, right);
        if (e->view != changed && e->applied != target)
            e->plot->replot(QCustomPlot::rpQueuedReplot);
        e->applied = target;
    }
    m_aligning = false;
}

void PlotGroup::setLogX(bool log)
{
    if (m_logX == log)
        return;
    m_logX = log;
    m_syncing = true;
    for (Entry* e : m_entries)
        for (const auto& r : e->rects) {
            if (log) {
                r.x->setScaleType(QCPAxis::stLogarithmic);
                r.x->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
            } else {
                r.x->setScaleType(QCPAxis::stLinear);
                r.x->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
            }
        }
    m_syncing = false;
    setRange(QCPRange(std::max(m_range.lower, log ? 0.9 : 0.5), m_range.upper));
    emit logXChanged(log);
}

void PlotGroup::setCursor(qint64 token)
{
    const qint64 n = m_trace ? m_trace->tokens() : -1;
    if (token >= 0 && n >= 0)
        token = std::min(token, std::max<qint64>(0, n - 1));
    if (token == m_cursor)
        return;
    m_cursor = token;
    // Bring the cursor into view when it moved outside (a click in the token strip).
    if (token >= 0) {
        const double x = TraceData::tokenToX(token);
        if (x < m_range.lower || x > m_range.upper) {
            const double half = m_range.size() / 2;
            if (m_logX)
                setRange(QCPRange(std::max(0.9, x / std::sqrt(m_range.upper / m_range.lower)),
                                  x * std::sqrt(m_range.upper / m_range.lower)));
            else
                setRange(QCPRange(x - half, x + half));
        }
    }
    updateItems();
    emit cursorMoved(token);
}

void PlotGroup::stepCursor(qint64 steps)
{
    const qint64 n = m_trace ? m_trace->tokens() : 0;
    if (n <= 0)
        return;
    // No cursor yet: the first press puts it where the user looks (under the mouse, else the first
    // visible token).
    if (m_cursor < 0) {
        const qint64 first = qint64(std::ceil(m_range.lower - 1.0));
        setCursor(std::clamp<qint64>(m_hover >= 0 ? m_hover : first, 0, n - 1));
        return;
    }
    setCursor(std::clamp<qint64>(m_cursor + steps, 0, n - 1));
}

void PlotGroup::jumpTo(qint64 token)
{
    const qint64 n = m_trace ? m_trace->tokens() : 0;
    if (n <= 0)
        return;
    token = std::clamp<qint64>(token, 0, n - 1);
    const double x = TraceData::tokenToX(token);
    if (m_logX) {
        const double ratio = std::sqrt(m_range.upper / std::max(1e-9, m_range.lower));
        setRange(QCPRange(std::max(0.5, x / ratio), x * ratio));
    } else {
        const double half = m_range.size() / 2;
        setRange(QCPRange(x - half, x + half));
    }
    setCursor(token);
}

void PlotGroup::setHoverToken(qint64 token)
{
    if (token == m_hover)
        return;
    m_hover = token;
    updateReadout();
    emit hoverMoved(token);
}

const PlotGroup::RectItems* PlotGroup::itemsOf(QCPAxisRect* rect) const
{
    for (Entry* e : m_entries)
        for (const RectItems& r : e->rects)
            if (r.x->axisRect() == rect)
                return &r;
    return nullptr;
}

QCPItemText* PlotGroup::readoutItem(QCPAxisRect* rect) const
{
    const RectItems* r = itemsOf(rect);
    return r ? r->readout : nullptr;
}

QCPItemStraightLine* PlotGroup::hoverLine(QCPAxisRect* rect) const
{
    const RectItems* r = itemsOf(rect);
    return r ? r->hover : nullptr;
}

void PlotGroup::updateReadout()
{
    const qint64 token = readoutToken();
    for (Entry* e : m_entries) {
        if (!e->plot)
            continue;
        for (const auto& r : e->rects) {
            QCPAxisRect* rect = r.x->axisRect();
            r.hover->setVisible(m_hover >= 0);
            const double x = TraceData::tokenToX(std::max<qint64>(0, m_hover));
            r.hover->point1->setCoords(x, 0);
            r.hover->point2->setCoords(x, 1);
            r.hover->setPen(
                QPen(m_dark ? QColor(200, 200, 200, 150) : QColor(60, 60, 60, 130), 1, Qt::DashLine));
            const bool here = e->plot == m_hoverPlot && rect->rect().contains(m_hoverPos);
            QStringList lines = token >= 0 && e->view
                                    ? e->view->readout(token, rect, here ? m_hoverPos.y() : -1)
                                    : QStringList();
            r.readout->setVisible(!lines.isEmpty());
            if (lines.isEmpty())
                continue;
            // As many lines as the rect holds: details go first, then lines from the end.
            const int fit = std::max(1, (rect->height() - 6) / QFontMetrics(r.readout->font()).lineSpacing());
            for (int i = int(lines.size()) - 1; i >= 0 && lines.size() > fit; --i)
                if (lines[i].startsWith(QChar(TraceView::kReadoutDetail)))
                    lines.removeAt(i);
            if (lines.size() > fit) {
                lines = lines.mid(0, fit);
                lines.back() = QStringLiteral("…");
            }
            for (QString& l : lines)
                if (l.startsWith(QChar(TraceView::kReadoutDetail)))
                    l.remove(0, 1);
            r.readout->setText(lines.join(QLatin1Char('\n')));
            // On the side away from the pointer (or the cursor), so that it never hides what is read.
            const double px = r.x->coordToPixel(TraceData::tokenToX(token));
            const bool right = px < rect->center().x();
            r.readout->position->setCoords(right ? 1 : 0, 0);
            r.readout->setPositionAlignment((right ? Qt::AlignRight : Qt::AlignLeft) | Qt::AlignTop);
            r.readout->setColor(m_dark ? QColor(230, 230, 230) : QColor(20, 20, 20));
            r.readout->setBrush(m_dark ? QColor(40, 42, 46, 225) : QColor(255, 255, 255, 225));
            r.readout->setPen(QPen(m_dark ? QColor(110, 110, 110) : QColor(170, 170, 170)));
        }
        if (QCPLayer* layer = e->plot->layer(kCursorLayer))
            layer->replot();
    }
}

bool PlotGroup::eventFilter(QObject* watched, QEvent* event)
{
    auto* plot = qobject_cast<QCustomPlot*>(watched);
    if (!plot || !entryFor(plot))
        return QObject::eventFilter(watched, event);
    if (event->type() == QEvent::Leave) {
        if (m_hoverPlot == plot)
            setHoverToken(-1);
    } else if (event->type() == QEvent::KeyPress) {
        auto* key = static_cast<QKeyEvent*>(event);
        const qint64 step = key->modifiers().testFlag(Qt::ShiftModifier) ? 10 : 1;
        const qint64 n = m_trace ? m_trace->tokens() : 0;
        switch (key->key()) {
        case Qt::Key_Left:
            stepCursor(-step);
            return true;
        case Qt::Key_Right:
            stepCursor(step);
            return true;
        case Qt::Key_Home:
            if (n > 0)
                setCursor(0);
            return true;
        case Qt::Key_End:
            if (n > 0)
                setCursor(n - 1);
            return true;
        default:
            break;
        }
    }
    return QObject::eventFilter(watched, event);
}

void PlotGroup::updateItems()
{
    for (Entry* e : m_entries) {
        if (!e->plot)
            continue;
        for (const auto& r : e->rects) {
            r.cursor->setVisible(m_cursor >= 0);
            const double x = TraceData::tokenToX(std::max<qint64>(0, m_cursor));
            r.cursor->point1->setCoords(x, 0);
            r.cursor->point2->setCoords(x, 1);
            r.cursor->setPen(QPen(m_dark ? QColor(255, 110, 110) : QColor(200, 0, 0), 1.2));
        }
    }
    updateReadout(); // replots the cursor layers
}

std::optional<qint64> PlotGroup::trainingLength() const
{
    if (m_trainingSet)
        return m_trainingLength;
    return m_trace ? m_trace->trainingLength() : std::nullopt;
}

std::optional<double> PlotGroup::forgetThreshold() const
{
    if (m_forgetSet)
        return m_forgetThreshold;
    return m_trace ? m_trace->forgetThreshold() : std::nullopt;
}

void PlotGroup::setTrainingLength(std::optional<qint64> tokens)
{
    m_trainingSet = true;
    m_trainingLength = tokens;
    for (Entry* e : m_entries)
        updateMarkers(*e);
}

void PlotGroup::setForgetThreshold(std::optional<double> tokens)
{
    m_forgetSet = true;
    m_forgetThreshold = tokens;
    for (Entry* e : m_entries)
        updateMarkers(*e);
}

void PlotGroup::useTraceMarkers()
{
    m_trainingSet = m_forgetSet = false;
    for (Entry* e : m_entries)
        updateMarkers(*e);
}

void PlotGroup::setMarkersVisible(bool visible)
{
    m_markersVisible = visible;
    for (Entry* e : m_entries)
        updateMarkers(*e);
}

void PlotGroup::setNeedle(std::optional<QPair<qint64, qint64>> tokens)
{
    if (tokens && tokens->second < tokens->first)
        tokens = std::nullopt;
    m_needle = tokens;
    for (Entry* e : m_entries)
        updateMarkers(*e);
}

void PlotGroup::updateMarkers(Entry& e)
{
    if (!e.plot)
        return;
    const std::optional<qint64> train = trainingLength();
    const std::optional<double> forget = forgetThreshold();
    const QColor trainColor = m_dark ? QColor(255, 170, 60) : QColor(220, 110, 0);
    const QColor forgetColor = m_dark ? QColor(200, 140, 255) : QColor(120, 40, 180);
    const std::optional<qint64> overlayTrain =
        m_overlay && m_overlay != m_trace ? m_overlay->trainingLength() : std::nullopt;
    const QColor overlayColor = PlotExporter::traceColor(1, m_dark);
    const QColor needleColor = m_dark ? QColor(90, 220, 140) : QColor(0, 140, 70);
    auto place = [&](QCPItemStraightLine* line, QCPItemText* label, std::optional<double> x, const QColor& c,
                     const QString& text) {
        const bool on = m_markersVisible && x && *x > 0;
        line->setVisible(on);
        if (label)
            label->setVisible(on);
        if (!on)
            return;
        line->setPen(QPen(c, 1.2, Qt::DashLine));
        line->point1->setCoords(*x, 0);
        line->point2->setCoords(*x, 1);
        if (label) {
            label->setText(text);
            label->setColor(c);
        }
    };
    for (const auto& r : e.rects) {
        place(r.train, r.trainLabel, train ? std::optional<double>(double(*train)) : std::nullopt, trainColor,
              train ? tr("training length %1").arg(tokensText(double(*train))) : QString());
        place(r.forget, r.forgetLabel, forget, forgetColor,
              forget ? tr("T_forget %1").arg(tokensText(*forget)) : QString());
        // The overlay's model may have been trained on other lengths: its marker, in its colour.
        place(r.overlayTrain, r.overlayTrainLabel,
              overlayTrain ? std::optional<double>(double(*overlayTrain)) : std::nullopt, overlayColor,
              overlayTrain ? tr("overlay: training length %1").arg(tokensText(double(*overlayTrain)))
                           : QString());
        // Translucent and under the data: the needle's tokens stay readable in every plot.
        const bool needle = m_markersVisible && m_needle.has_value();
        r.needle->setVisible(needle);
        if (r.needleLabel)
            r.needleLabel->setVisible(needle);
        if (needle) {
            QColor fill = needleColor;
            fill.setAlpha(m_dark ? 70 : 50);
            r.needle->setBrush(fill);
            r.needle->setPen(QPen(needleColor, 1.0));
            // Token i spans plot x [i + 0.5, i + 1.5].
            r.needle->topLeft->setCoords(TraceData::tokenToX(m_needle->first) - 0.5, 0);
            r.needle->bottomRight->setCoords(TraceData::tokenToX(m_needle->second) + 0.5, 1);
            if (r.needleLabel) {
                r.needleLabel->setText(tr("needle"));
                r.needleLabel->setColor(needleColor);
            }
        }
    }
    placeLabels(e);
    e.plot->replot(QCustomPlot::rpQueuedReplot);
}

void PlotGroup::placeLabels(Entry& e)
{
    if (e.rects.isEmpty() || !e.rects.front().trainLabel)
        return;
    const RectItems& r = e.rects.front();
    const std::optional<qint64> train = trainingLength();
    const std::optional<double> forget = forgetThreshold();
    // Labels sit right of their line, or left of it in the right part of the view so that they are
    // not cut off; the second one a line lower, so that close markers do not overlap.
    auto place = [&](QCPItemText* label, std::optional<double> x, double y) {
        if (!x)
            return;
        const double px = r.x->coordToPixel(*x);
        const QCPAxisRect* rect = r.x->axisRect();
        const bool right = px > rect->left() + 0.6 * rect->width();
        label->setPositionAlignment((right ? Qt::AlignRight : Qt::AlignLeft) | Qt::AlignTop);
        label->position->setCoords(*x, y);
    };
    place(r.trainLabel, train ? std::optional<double>(double(*train)) : std::nullopt, 0.0);
    place(r.forgetLabel, forget, 0.08);
    const std::optional<qint64> overlayTrain =
        m_overlay && m_overlay != m_trace ? m_overlay->trainingLength() : std::nullopt;
    place(r.overlayTrainLabel, overlayTrain ? std::optional<double>(double(*overlayTrain)) : std::nullopt,
          0.16);
    if (r.needleLabel && m_needle)
        place(r.needleLabel, TraceData::tokenToX(m_needle->first) - 0.5, 0.24);
}

void PlotGroup::setDarkTheme(bool dark)
{
    m_dark = dark;
    for (Entry* e : m_entries)
        updateMarkers(*e);
    updateItems();
}

QCPItemStraightLine* PlotGroup::cursorLine(QCPAxisRect* rect) const
{
    const RectItems* r = itemsOf(rect);
    return r ? r->cursor : nullptr;
}

int PlotGroup::markerCount(QCustomPlot* plot) const
{
    int n = 0;
    for (Entry* e : m_entries)
        if (e->plot == plot)
            for (const auto& r : e->rects)
                n += (r.train->visible() ? 1 : 0) + (r.forget->visible() ? 1 : 0) +
                     (r.overlayTrain->visible() ? 1 : 0) + (r.needle->visible() ? 1 : 0);
    return n;
}

QCPItemStraightLine* PlotGroup::markerLine(QCPAxisRect* rect, Marker marker) const
{
    const RectItems* r = itemsOf(rect);
    if (!r)
        return nullptr;
    return marker == Marker::TrainingLength          ? r->train
           : marker == Marker::ForgetThreshold       ? r->forget
           : marker == Marker::OverlayTrainingLength ? r->overlayTrain
                                                     : nullptr;
}

QCPItemRect* PlotGroup::needleBand(QCPAxisRect* rect) const
{
    const RectItems* r = itemsOf(rect);
    return r ? r->needle : nullptr;
}

QCPItemText* PlotGroup::markerLabel(QCustomPlot* plot, Marker marker) const
{
    for (Entry* e : m_entries)
        if (e->plot == plot && !e->rects.isEmpty()) {
            const auto& r = e->rects.front();
            return marker == Marker::TrainingLength          ? r.trainLabel
                   : marker == Marker::ForgetThreshold       ? r.forgetLabel
                   : marker == Marker::OverlayTrainingLength ? r.overlayTrainLabel
                                                             : r.needleLabel;
        }
    return nullptr;
}

} // namespace statescope
