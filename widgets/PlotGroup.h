#pragma once

// Keeps the token axes of several plots in step: zoom and pan together, linear or log x, one cursor
// drawn in every plot, and markers for the training length and the predicted T_forget (and the
// overlay trace's training length, in the overlay's colour). Besides the shared x zoom every plot
// zooms its own y: Ctrl+wheel, or the wheel over a y axis; Shift+drag draws a box and zooms to it
// (x for all plots, y for that one); a double-click gives y back to the fit to the data.
#include "TraceData.h"

#include <QList>
#include <QObject>
#include <QPointer>

#include <optional>

#include <qcustomplot.h>

namespace statescope {

class TraceView;

class PlotGroup : public QObject {
    Q_OBJECT
public:
    explicit PlotGroup(QObject* parent = nullptr);
    ~PlotGroup() override;

    // Adds the view's token axes; the view is refreshed whenever the shared range changes. Mouse
    // drag/wheel on the plot pans/zooms x; a click (press and release without dragging) moves the
    // cursor; y zoom and box zoom as above.
    void addView(TraceView* view);
    // For plain QCustomPlots (no re-query on range changes).
    void addPlot(QCustomPlot* plot, const QList<QCPAxis*>& xAxes);
    void removePlot(QCustomPlot* plot);
    QList<QCustomPlot*> plots() const;

    // The trace whose length bounds the range and which supplies marker defaults.
    void setTrace(TraceData* trace);
    TraceData* trace() const { return m_trace; }

    QCPRange range() const { return m_range; } // in plot x (1-based token positions)
    void setRange(const QCPRange& range);
    // Shows the whole trace (at least [1, minimumSpan]) and fits every view's y to its data again.
    void showAll();
    // While true (default) and the view shows the end of a growing trace, the range follows it.
    void setFollow(bool follow) { m_follow = follow; }
    bool follow() const { return m_follow; }

    void setLogX(bool log);
    bool logX() const { return m_logX; }

    // Token index (0-based) of the cursor, or -1 for none.
    qint64 cursor() const { return m_cursor; }
    void setCursor(qint64 token);
    // Moves the cursor by steps tokens (with none yet, puts it under the mouse or on the first visible
    // token), as the arrow
    // keys do over a plot (Shift: 10 at a time; Home/End: the first/last token).
    void stepCursor(qint64 steps);
    // Centres the visible range on token, keeping its width, and puts the cursor there.
    void jumpTo(qint64 token);

    // The token under the mouse (-1 when it is over no plot). The crosshair follows it: a thin line
    // in every plot and, in each axis rect, a box with the values of every series the view draws at
    // that token (TraceView::readout); with the mouse away, the box shows the cursor's token.
    qint64 hoverToken() const { return m_hover; }
    void setHoverToken(qint64 token);
    // The token the readout boxes show now (hover, else cursor, else -1).
    qint64 readoutToken() const { return m_hover >= 0 ? m_hover : m_cursor; }
    QCPItemText* readoutItem(QCPAxisRect* rect) const;
    QCPItemStraightLine* hoverLine(QCPAxisRect* rect) const;

    // Markers. The trace's values are shown until one is set here (nullopt then hides it);
    // useTraceMarkers() goes back to the trace's values.
    void setTrainingLength(std::optional<qint64> tokens);
    void setForgetThreshold(std::optional<double> tokens);
    void useTraceMarkers();
    std::optional<qint64> trainingLength() const;
    std::optional<double> forgetThreshold() const;
    void setMarkersVisible(bool visible);
    // The needle of a passkey prompt: a shaded band over tokens first..last (0-based, inclusive),
    // labelled "needle", in every plot; nullopt hides it. Set by whoever knows where the needle is
    // (the trace does not record it).
    void setNeedle(std::optional<QPair<qint64, qint64>> tokens);
    std::optional<QPair<qint64, qint64>> needle() const { return m_needle; }
    // The trace drawn over the main one: its own training length is marked too (nullptr: none).
    void setOverlay(TraceData* overlay);
    TraceData* overlay() const { return m_overlay; }

    void setDarkTheme(bool dark);
    // Lines up the data areas of the views (same left and right insets), so that a token sits at the
    // same x on screen in every stacked view. On by default.
    void setAlignViews(bool align);

    // Items in a plot (for tests): the cursor line of an axis rect, markers.
    QCPItemStraightLine* cursorLine(QCPAxisRect* rect) const;
    int markerCount(QCustomPlot* plot) const;
    enum class Marker { TrainingLength, ForgetThreshold, OverlayTrainingLength, Needle };
    QCPItemStraightLine* markerLine(QCPAxisRect* rect, Marker marker) const; // nullptr for Needle
    QCPItemRect* needleBand(QCPAxisRect* rect) const;
    // The marker's label (in the plot's first token axis rect), or nullptr.
    QCPItemText* markerLabel(QCustomPlot* plot, Marker marker) const;

signals:
    void cursorMoved(qint64 token);
    void hoverMoved(qint64 token);
    void rangeChanged(const QCPRange& range);
    void logXChanged(bool log);

private:
    struct RectItems; // the items PlotGroup draws in one token axis rect
    struct Entry;
    const RectItems* itemsOf(QCPAxisRect* rect) const;
    void onAxisRangeChanged(QCPAxis* axis, const QCPRange& range);
    void applyRange(const QCPRange& range, QCPAxis* except);
    void onAppended(qint64 tokens);
    void updateItems();
    void updateReadout();
    bool eventFilter(QObject* watched, QEvent* event) override;
    void updateMarkers(Entry& e);
    void placeLabels(Entry& e);
    void installMouse(QCustomPlot* plot);
    void prepareWheel(QCustomPlot* plot, QWheelEvent* event);
    void boxZoom(QCustomPlot* plot, const QRect& box);
    void showAllTokens();
    QCPRange clampRange(QCPRange r) const;
    void alignInsets(TraceView* changed);
    Entry* entryFor(QCustomPlot* plot);

    QList<Entry*> m_entries;
    QPointer<TraceData> m_trace;
    QPointer<TraceData> m_overlay;
    QCPRange m_range{1, 1024};
    bool m_follow = true;
    bool m_logX = false;
    bool m_dark = false;
    bool m_markersVisible = true;
    bool m_syncing = false;
    bool m_align = true;
    bool m_aligning = false;
    qint64 m_cursor = -1;
    qint64 m_hover = -1;
    QPoint m_hoverPos; // in the hovered plot, to put the readout on the side away from the pointer
    QPointer<QCustomPlot> m_hoverPlot;
    qint64 m_lastTokens = 0;
    std::optional<qint64> m_trainingLength;
    std::optional<double> m_forgetThreshold;
    bool m_trainingSet = false, m_forgetSet = false;
    std::optional<QPair<qint64, qint64>> m_needle;
};

} // namespace statescope
