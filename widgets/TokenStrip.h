#pragma once

// The input text, each token shaded by its NLL. Only a window of tokens around the cursor is laid
// out (kWindowTokens), so the strip stays cheap for 1M-token traces.
#include "TraceData.h"

#include <QAbstractScrollArea>
#include <QPointer>
#include <QRectF>
#include <QVector>

namespace statescope {

class PlotGroup;

class TokenStrip : public QAbstractScrollArea {
    Q_OBJECT
public:
    static constexpr qint64 kWindowTokens = 4096;

    explicit TokenStrip(QWidget* parent = nullptr);

    void setTrace(TraceData* trace);
    TraceData* trace() const { return m_trace; }
    // Follows the group's cursor and moves it when a token is clicked.
    void setGroup(PlotGroup* group);
    // The layer whose probes the tooltip shows.
    void setLayer(int layer);
    int layer() const { return m_layer; }
    // NLL that gets the darkest shade (default 10 nats).
    void setNllScale(double nats);
    void setDarkTheme(bool dark);

    qint64 cursorToken() const { return m_cursor; }
    // The token under the plots' crosshair, outlined here too (-1: none).
    qint64 hoverToken() const { return m_hover; }
    // Tokens laid out now: [windowBegin, windowEnd).
    qint64 windowBegin() const { return m_winBegin; }
    qint64 windowEnd() const { return m_winEnd; }
    // Token under a viewport point, or -1.
    qint64 tokenAt(const QPoint& viewportPos) const;
    // The token's box in viewport coordinates (empty if not laid out).
    QRect tokenRect(qint64 token) const;
    // The hover text: token text, id, position, NLL, and each probe's summary over the units of the
    // selected layer, with their min.
    QString toolTipFor(qint64 token) const;
    QColor shadeFor(float nll) const;

public slots:
    // Moves the highlighted token and scrolls it into view (re-laying out if outside the window).
    void setCursorToken(qint64 token);
    // Outlines the token under the plots' crosshair and scrolls it into view.
    void setHoverToken(qint64 token);
    // Follows the plots' zoom: unless the cursor or the strip's first visible token is among tokens
    // [first, last], shows the first of them at the top of the strip.
    void showRange(qint64 first, qint64 last);
    // The first token whose row is at least partly visible (-1 if none is laid out).
    qint64 firstVisibleToken() const;

signals:
    void tokenClicked(qint64 token);

protected:
    void paintEvent(QPaintEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    bool viewportEvent(QEvent* event) override;
    void scrollContentsBy(int dx, int dy) override;

private:
    struct Item {
        qint64 token;
        QString text; // as drawn (newline shown as a symbol)
        QRectF rect;  // in content coordinates
    };
    void relayout(qint64 center);
    void ensureVisible(qint64 token);
    void onAppended(qint64 tokens);
    int itemIndex(qint64 token) const;

    QPointer<TraceData> m_trace;
    QPointer<PlotGroup> m_group;
    QVector<Item> m_items;
    qint64 m_winBegin = 0, m_winEnd = 0;
    qint64 m_cursor = -1;
    qint64 m_hover = -1;
    int m_layer = 0;
    double m_nllScale = 10.0;
    bool m_dark = false;
    int m_contentHeight = 0;
    int m_layoutWidth = 0;
};

} // namespace statescope
