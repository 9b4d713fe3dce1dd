#pragma once

// Base of the plot views: one QCustomPlot (possibly with several axis rects) whose x axes are token
// axes shared through a PlotGroup. Data are re-queried for the visible range and width (min/max per
// pixel column) at most ~30 times a second, however often the trace grows.
#include "TraceData.h"

#include <QPointer>
#include <QWidget>

#include <functional>

class QCheckBox;
class QCustomPlot;
class QCPAxis;
class QCPAxisRect;
class QTimer;
class QVBoxLayout;
class QHBoxLayout;

namespace statescope {

class FlowLayout;
class PlotGroup;

// One column of a CSV export: a name and the value at a token.
struct CsvColumn {
    QString name;
    std::function<double(qint64 token)> value;
};

class TraceView : public QWidget {
    Q_OBJECT
public:
    static constexpr int kRefreshIntervalMs = 33;

    explicit TraceView(QWidget* parent = nullptr);
    ~TraceView() override;

    QCustomPlot* plot() const { return m_plot; }
    // The x axes that show tokens (one per axis rect); a PlotGroup keeps them in step.
    virtual QList<QCPAxis*> tokenAxes() const = 0;
    virtual QString title() const = 0;

    void setTrace(TraceData* trace);
    TraceData* trace() const { return m_trace; }
    // A second trace drawn on the same axes in a second colour, with a legend; nullptr removes it.
    void setOverlay(TraceData* overlay);
    TraceData* overlay() const { return m_overlay; }
    // Any number of traces drawn over the main one (compared in the run table), each in its colour
    // (TraceData::color(), else PlotExporter::traceColor(1 + index)); overlay() is the first.
    void setOverlays(const QList<TraceData*>& overlays);
    QList<TraceData*> overlays() const;
    // The colour a trace of the view is drawn in: the main trace is index 0, overlays 1, 2, ...
    QColor colorOf(TraceData* t) const;
    // overlays() without the main trace itself (overlaying a trace on itself draws it once).
    QList<TraceData*> drawnOverlays() const
    {
        QList<TraceData*> out = overlays();
        out.removeAll(m_trace.data());
        return out;
    }

    void setDarkTheme(bool dark);
    bool darkTheme() const { return m_dark; }

    // Names of the trace and of the overlay in the legend, in place of their labels (empty: the
    // label). Exports set them for their duration.
    void setLegendLabels(const QString& trace, const QString& overlay);
    QString traceLegendLabel() const { return m_traceLegendLabel; }
    QString overlayLegendLabel() const { return m_overlayLegendLabel; }
    // Short legend entries for figures: the run and the quantity, with details such as averaging
    // windows on the axes instead (a paper legend has room for a few words an entry).
    void setCompactNames(bool compact);
    bool compactNames() const { return m_compactNames; }

    // Rebuilds the plottables from the data for the current x range and plot width, then queues a
    // replot. Synchronous: tests call it directly; the views call it from their refresh timer.
    void refresh();
    // Asks for a refresh within kRefreshIntervalMs (coalesces appends and range changes).
    void scheduleRefresh();
    bool refreshPending() const;
    // Refreshes done so far (to measure update rates).
    qint64 refreshCount() const { return m_refreshCount; }
    // Milliseconds of the frames drawn so far (the last kFrameHistory): each replot's own time plus
    // the data queries of the refresh that asked for it (including full-resolution reads). What
    // --stats reports, for runs and for zooming and panning by hand alike.
    static constexpr int kFrameHistory = 20000;
    const QVector<float>& frameTimes() const { return m_frameTimes; }
    void clearFrameTimes() { m_frameTimes.clear(); }

    // While on (the default) every refresh fits the y axes to the visible data; a y zoom by the user
    // turns it off so that the next refresh keeps the range they chose. Turning it on refreshes.
    void setYAutoFit(bool on);
    bool yAutoFit() const { return m_yAutoFit; }

    // The legend: shown by default; a click on it or the "legend" box in the controls row hides it.
    // While the user has not chosen, it also hides itself when it would cover more than a fifth of
    // the data area (a small window), and comes back when there is room.
    void setLegendShown(bool shown);
    bool legendShown() const;
    QCheckBox* legendBox() const { return m_legendBox; }
    // While suspended (an export lays the plot out at a figure's size), the legend is left as it is.
    void setLegendFitSuspended(bool suspended) { m_legendFitSuspended = suspended; }

    // Tokens [begin, end) in the visible x range, clamped to the trace.
    std::pair<qint64, qint64> visibleTokens() const;
    // The columns a CSV export of this view writes (after "token").
    virtual QVector<CsvColumn> csvColumns() const = 0;
    // The crosshair's readout for one of the view's axis rects: a line per series drawn there, its
    // name and its value at token (exact when zoomed in; a bucket's mean, said so, otherwise). The
    // y pixel of the pointer (-1: none) picks a heatmap row.
    // Lines that start with kReadoutDetail are details (every unit's value), the first to go when
    // the box would be taller than the axis rect.
    virtual QStringList readout(qint64 token, QCPAxisRect* rect, int pointerY) const = 0;
    static constexpr char16_t kReadoutDetail = u'\u2063';

    // Pixel columns of the plot's data area (at least 1), the decimation target.
    int dataColumns() const;
    // Column edges in tokens for the visible range of axis, one column per `pixelsPerColumn` pixels,
    // equal in pixels (so log axes work); clamped to [0, tokens).
    QVector<qint64> columnEdges(QCPAxis* axis, qint64 tokens, int pixelsPerColumn = 1) const;

    // Distances in pixels from the plot's left and right edges to the data area of its token axis
    // rects, as laid out on their own. PlotGroup lines stacked views up with setInsets().
    QPair<int, int> naturalInsets();
    // Widens the margins so that the data area starts `left` pixels from the plot's left edge and ends
    // `right` pixels from its right edge (values below the natural insets have no effect).
    void setInsets(int left, int right);

signals:
    void refreshed();
    // After the data were rebuilt and before the replot (PlotGroup aligns the views' margins here).
    void aboutToReplot();

protected:
    // The probes of t the view draws, which refresh() has the trace load at full resolution when
    // zoomed in (none by default: the NLL is always kept whole).
    virtual QVector<int> probesDrawn(TraceData* t) const
    {
        Q_UNUSED(t);
        return {};
    }
    // Subclasses rebuild their plottables here (called by refresh()).
    virtual void rebuild() = 0;
    // Subclasses restyle their plottables here after a theme change (applyTheme is done already).
    virtual void restyle() {}
    // Called after setTrace / setOverlay (the plottables may need to be recreated).
    virtual void tracesChanged() {}
    void resizeEvent(QResizeEvent* event) override;
    // Adds a widget to the controls row above the plot (left to right).
    void addControl(QWidget* widget);
    // Makes sure the plot's axis rects have their geometry (before the first replot of a hidden or
    // never-painted plot), so that pixel columns can be computed.
    void ensureLayout();
    // What the legend calls t (the trace or the overlay): the name set by setLegendLabels(), else its
    // label, else fallback.
    QString legendName(TraceData* t, const QString& fallback) const;

    QVBoxLayout* m_layout = nullptr;  // controls row (m_controls) above the plot
    FlowLayout* m_controls = nullptr; // wraps onto more rows in a narrow window
    QCustomPlot* m_plot = nullptr;
    QPointer<TraceData> m_trace;
    QPointer<TraceData> m_overlay;
    QList<QPointer<TraceData>> m_moreOverlays; // overlays after the first
    bool m_dark = false;
    bool m_yAutoFit = true;

private:
    void connectTrace(TraceData* t);
    void fitLegend();
    QCheckBox* m_legendBox = nullptr;
    bool m_legendChosen = false; // the user showed or hid it: no automatic hiding
    bool m_legendFitSuspended = false;
    QTimer* m_timer = nullptr;
    qint64 m_refreshCount = 0;
    double m_pendingRebuildMs = 0; // data queries waiting for the replot they asked for
    QVector<float> m_frameTimes;
    QString m_traceLegendLabel;
    QString m_overlayLegendLabel;
    bool m_compactNames = false;
};

} // namespace statescope
