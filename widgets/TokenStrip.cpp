#include "TokenStrip.h"

#include "PlotGroup.h"

#include <QFontMetrics>
#include <QHelpEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QScrollBar>
#include <QToolTip>

#include <algorithm>
#include <cmath>

namespace statescope {

namespace {

constexpr int kMargin = 4;
constexpr int kPadX = 1;
constexpr int kRowGap = 2;

// What a token's text looks like in the strip: control characters made visible.
QString displayText(const QString& s, bool* newline)
{
    *newline = false;
    QString out;
    out.reserve(s.size());
    for (QChar c : s) {
        if (c == QLatin1Char('\n')) {
            out += QChar(0x21B5); // ↵
            *newline = true;
        } else if (c == QLatin1Char('\r')) {
            continue;
        } else if (c == QLatin1Char('\t')) {
            out += QChar(0x2192); // →
        } else if (c.category() == QChar::Other_Control) {
            out += QChar(0xB7);
        } else {
            out += c;
        }
    }
    if (out.isEmpty())
        out = QString(QChar(0xB7));
    return out;
}

} // namespace

TokenStrip::TokenStrip(QWidget* parent) : QAbstractScrollArea(parent)
{
    setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    setVerticalScrollBarPolicy(Qt::ScrollBarAsNeeded);
    viewport()->setMouseTracking(true);
    setMinimumHeight(60);
    verticalScrollBar()->setSingleStep(QFontMetrics(font()).height());
}

void TokenStrip::setTrace(TraceData* trace)
{
    if (m_trace == trace)
        return;
    if (m_trace)
        disconnect(m_trace, nullptr, this, nullptr);
    m_trace = trace;
    m_cursor = -1;
    if (trace) {
        connect(trace, &TraceData::appended, this, &TokenStrip::onAppended);
        connect(trace, &TraceData::traceReset, this, [this] {
            m_cursor = -1;
            relayout(0);
        });
    }
    relayout(trace ? trace->tokens() : 0);
}

void TokenStrip::setGroup(PlotGroup* group)
{
    if (m_group)
        disconnect(m_group, nullptr, this, nullptr);
    m_group = group;
    if (group) {
        connect(group, &PlotGroup::cursorMoved, this, &TokenStrip::setCursorToken);
        connect(group, &PlotGroup::hoverMoved, this, &TokenStrip::setHoverToken);
        connect(group, &PlotGroup::rangeChanged, this, [this](const QCPRange& r) {
            showRange(std::max<qint64>(0, TraceData::xToToken(r.lower) + 1), TraceData::xToToken(r.upper));
        });
        if (group->cursor() >= 0)
            setCursorToken(group->cursor());
    }
}

void TokenStrip::setLayer(int layer)
{
    m_layer = layer;
}

void TokenStrip::setNllScale(double nats)
{
    m_nllScale = std::max(1e-3, nats);
    viewport()->update();
}

void TokenStrip::setDarkTheme(bool dark)
{
    m_dark = dark;
    viewport()->update();
}

QColor TokenStrip::shadeFor(float nll) const
{
    if (!std::isfinite(nll))
        return QColor(0, 0, 0, 0);
    const double f = std::clamp(double(nll) / m_nllScale, 0.0, 1.0);
    QColor c = m_dark ? QColor(255, 90, 70) : QColor(220, 30, 20);
    c.setAlphaF(0.06 + 0.74 * f);
    return c;
}

void TokenStrip::onAppended(qint64 tokens)
{
    // Hidden (another tab): lay out when shown.
    if (!isVisible()) {
        m_layoutWidth = -1;
        return;
    }
    // While no token is selected the strip shows the newest tokens as they arrive.
    if (m_cursor < 0) {
        if (m_winEnd < tokens) {
            const bool atBottom = verticalScrollBar()->value() >= verticalScrollBar()->maximum() - 2;
            relayout(tokens);
            if (atBottom)
                verticalScrollBar()->setValue(verticalScrollBar()->maximum());
        }
    } else if (m_winEnd < std::min(tokens, m_winBegin + kWindowTokens)) {
        relayout(m_cursor);
    }
}

void TokenStrip::relayout(qint64 center)
{
    m_items.clear();
    const qint64 n = m_trace ? m_trace->tokens() : 0;
    m_winBegin = std::clamp<qint64>(center - kWindowTokens / 2, 0, std::max<qint64>(0, n - kWindowTokens));
    m_winEnd = std::min(n, m_winBegin + kWindowTokens);
    const QFontMetrics fm(font());
    const int lineH = fm.height() + 2;
    const int width = std::max(50, viewport()->width() - 2 * kMargin);
    m_layoutWidth = viewport()->width();
    double x = kMargin, y = kMargin;
    m_items.reserve(int(m_winEnd - m_winBegin));
    for (qint64 t = m_winBegin; t < m_winEnd; ++t) {
        bool newline = false;
        const QString text = displayText(m_trace->tokenText(t), &newline);
        const double w = fm.horizontalAdvance(text) + 2 * kPadX;
        if (x + w > kMargin + width && x > kMargin) {
            x = kMargin;
            y += lineH + kRowGap;
        }
        m_items.push_back({t, text, QRectF(x, y, w, lineH)});
        x += w;
        if (newline) {
            x = kMargin;
            y += lineH + kRowGap;
        }
    }
    m_contentHeight = int(std::ceil(y + lineH + kMargin));
    verticalScrollBar()->setPageStep(viewport()->height());
    verticalScrollBar()->setRange(0, std::max(0, m_contentHeight - viewport()->height()));
    viewport()->update();
}

int TokenStrip::itemIndex(qint64 token) const
{
    if (token < m_winBegin || token >= m_winEnd)
        return -1;
    const int i = int(token - m_winBegin);
    return i < m_items.size() ? i : -1;
}

void TokenStrip::ensureVisible(qint64 token)
{
    const int i = itemIndex(token);
    if (i < 0)
        return;
    const QRectF r = m_items[i].rect;
    QScrollBar* sb = verticalScrollBar();
    const int top = sb->value(), h = viewport()->height();
    if (r.top() < top || r.bottom() > top + h)
        sb->setValue(int(r.center().y() - h / 2));
}

void TokenStrip::setCursorToken(qint64 token)
{
    if (token == m_cursor)
        return;
    m_cursor = token;
    if (token >= 0 && (token < m_winBegin || token >= m_winEnd))
        relayout(token);
    ensureVisible(token);
    viewport()->update();
}

void TokenStrip::setHoverToken(qint64 token)
{
    if (token == m_hover)
        return;
    m_hover = token;
    if (token >= 0) {
        if (token < m_winBegin || token >= m_winEnd)
            relayout(token);
        ensureVisible(token);
    }
    viewport()->update();
}

void TokenStrip::showRange(qint64 first, qint64 last)
{
    const qint64 n = m_trace ? m_trace->tokens() : 0;
    if (n == 0 || (m_cursor >= first && m_cursor <= last))
        return;
    first = std::clamp<qint64>(first, 0, n - 1);
    // Already showing tokens of the range (a live run's growing range, a zoom around them): stay.
    const qint64 shown = firstVisibleToken();
    if (shown >= first && shown <= last)
        return;
    if (first < m_winBegin || first >= m_winEnd)
        relayout(first + kWindowTokens / 2 - 1);
    const int i = itemIndex(first);
    if (i >= 0)
        verticalScrollBar()->setValue(int(m_items[i].rect.top()) - kMargin);
    viewport()->update();
}

qint64 TokenStrip::firstVisibleToken() const
{
    const int top = verticalScrollBar()->value();
    auto it = std::lower_bound(m_items.begin(), m_items.end(), double(top),
                               [](const Item& a, double y) { return a.rect.bottom() < y; });
    return it == m_items.end() ? -1 : it->token;
}

qint64 TokenStrip::tokenAt(const QPoint& pos) const
{
    const QPointF p(pos.x(), pos.y() + verticalScrollBar()->value());
    // Items are in reading order: rows ascending, so a binary search on the row finds the line.
    auto it = std::lower_bound(m_items.begin(), m_items.end(), p.y(),
                               [](const Item& a, double y) { return a.rect.bottom() < y; });
    for (; it != m_items.end() && it->rect.top() <= p.y(); ++it)
        if (it->rect.contains(p))
            return it->token;
    return -1;
}

QRect TokenStrip::tokenRect(qint64 token) const
{
    const int i = itemIndex(token);
    if (i < 0)
        return {};
    return m_items[i].rect.translated(0, -verticalScrollBar()->value()).toAlignedRect();
}

QString TokenStrip::toolTipFor(qint64 token) const
{
    if (!m_trace || token < 0 || token >= m_trace->tokens())
        return {};
    const TraceData* t = m_trace;
    bool nl = false;
    const QString text = displayText(t->tokenText(token), &nl).toHtmlEscaped();
    auto num = [](double v, int prec = 4) {
        return std::isfinite(v) ? QString::number(v, 'g', prec) : QStringLiteral("–");
    };
    QString s = QStringLiteral("<b>%1</b><br>").arg(text);
    s += tr("id %1, position %2").arg(t->ids().value(int(token))).arg(token);
    s += QStringLiteral("<br>") + tr("NLL %1 nats").arg(num(t->nllAt(token)));
    const int l = std::clamp(m_layer, 0, std::max(0, t->layers() - 1));
    if (t->layers() > 0) {
        s += QStringLiteral("<br>") + tr("layer %1:").arg(l);
        // Every probe with series, by its descriptor: its summary over the layer's units and their min.
        for (int p : t->seriesProbes()) {
            if (l >= t->probeLayers(p))
                continue;
            const ProbeDesc& d = *t->probe(p);
            s += QStringLiteral("<br>") +
                 tr("%1 %2 %3, min %4")
                     .arg(QString::fromStdString(d.label.empty() ? d.name : d.label).toHtmlEscaped(),
                          QString::fromLatin1(probeSummaryName(d.summary)),
                          num(t->valueAt(p, l, TraceData::kSummary, token)),
                          num(t->valueAt(p, l, TraceData::kMinimum, token)));
        }
        if (const qint64 res = t->resolutionFor(token, token + 1); res > 1)
            s += QStringLiteral("<br><i>") +
                 tr("(means over %1 tokens: zoom in for this token's own values)").arg(res) +
                 QStringLiteral("</i>");
    }
    return s;
}

void TokenStrip::paintEvent(QPaintEvent*)
{
    QPainter p(viewport());
    const QColor bg = m_dark ? QColor(30, 31, 34) : QColor(Qt::white);
    const QColor fg = m_dark ? QColor(225, 225, 225) : QColor(20, 20, 20);
    p.fillRect(viewport()->rect(), bg);
    if (!m_trace)
        return;
    if (m_layoutWidth != viewport()->width())
        relayout(m_cursor >= 0       ? m_cursor
                 : m_layoutWidth < 0 ? m_trace->tokens()
                                     : (m_winBegin + m_winEnd) / 2);
    const int top = verticalScrollBar()->value();
    const int h = viewport()->height();
    p.translate(0, -top);
    p.setFont(font());
    auto it = std::lower_bound(m_items.begin(), m_items.end(), double(top),
                               [](const Item& a, double y) { return a.rect.bottom() < y; });
    for (; it != m_items.end() && it->rect.top() <= top + h; ++it) {
        p.fillRect(it->rect, shadeFor(m_trace->nllAt(it->token)));
        p.setPen(fg);
        p.drawText(it->rect, Qt::AlignCenter, it->text);
        if (it->token == m_cursor) {
            p.setPen(QPen(m_dark ? QColor(255, 110, 110) : QColor(200, 0, 0), 2));
            p.drawRect(it->rect.adjusted(0.5, 0.5, -0.5, -0.5));
        } else if (it->token == m_hover) {
            p.setPen(QPen(fg, 1, Qt::DashLine));
            p.drawRect(it->rect.adjusted(0.5, 0.5, -0.5, -0.5));
        }
    }
    if (m_winBegin > 0 || m_winEnd < m_trace->tokens()) {
        p.resetTransform();
        p.setPen(m_dark ? QColor(150, 150, 150) : QColor(120, 120, 120));
        const QString note =
            tr("tokens %1–%2 of %3").arg(m_winBegin).arg(m_winEnd - 1).arg(m_trace->tokens());
        const QFontMetrics fm(font());
        p.drawText(viewport()->width() - fm.horizontalAdvance(note) - kMargin, h - fm.descent() - 1, note);
    }
}

void TokenStrip::resizeEvent(QResizeEvent* event)
{
    QAbstractScrollArea::resizeEvent(event);
    relayout(m_cursor >= 0 ? m_cursor : (m_winEnd > m_winBegin ? (m_winBegin + m_winEnd) / 2 : 0));
    ensureVisible(m_cursor);
}

void TokenStrip::mousePressEvent(QMouseEvent* event)
{
    if (event->button() != Qt::LeftButton)
        return QAbstractScrollArea::mousePressEvent(event);
    const qint64 t = tokenAt(event->pos());
    if (t < 0)
        return;
    setCursorToken(t);
    emit tokenClicked(t);
    if (m_group)
        m_group->setCursor(t);
}

bool TokenStrip::viewportEvent(QEvent* event)
{
    if (event->type() == QEvent::ToolTip) {
        auto* he = static_cast<QHelpEvent*>(event);
        const qint64 t = tokenAt(he->pos());
        if (t >= 0)
            QToolTip::showText(he->globalPos(), toolTipFor(t), viewport(), tokenRect(t));
        else
            QToolTip::hideText();
        return true;
    }
    return QAbstractScrollArea::viewportEvent(event);
}

void TokenStrip::scrollContentsBy(int, int)
{
    viewport()->update();
}

} // namespace statescope
