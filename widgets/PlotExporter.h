#pragma once

// Export of a plot as PNG, SVG or PDF, in the screen look or a paper preset, and of a view's data in
// the visible range as CSV. Light and dark palettes for plots.
#include <QColor>
#include <QRectF>
#include <QSize>
#include <QString>
#include <QVector>

#include <memory>
#include <optional>

class QCPAxis;
class QCustomPlot;
class QImage;

namespace statescope {

class TraceView;

// The layer of a plot that holds PlotGroup's cursor: exports leave it out.
inline constexpr char kCursorLayer[] = "cursor";

// Where a paper export puts the legend of a plot.
enum class LegendPlace {
    OutsideTop, // a row of its own above the data, entries side by side
    TopLeft,    // inside the data area, in a corner
    TopRight,
    BottomLeft,
    BottomRight,
    Hidden,
};

struct ExportStyle {
    bool paper = false;   // false: the plot as it is on screen (size, fonts, pens, legend)
    double widthMm = 120; // paper: figure size
    double heightMm = 75;
    double fontPt = 8;                            // paper: tick labels, axis labels, legend
    double lineWidth = 1.0;                       // paper: pen width (pt) of the graphs
    int dpi = 300;                                // PNG in paper mode
    bool dark = false;                            // paper exports are always light unless this is set
    LegendPlace legend = LegendPlace::OutsideTop; // paper only
    // Legend names of the trace and of the overlay. Empty: the trace's label, shortened in paper mode
    // (shortLabel()), as it is on screen otherwise.
    QString traceLabel;
    QString overlayLabel;
    // Token axis and the loss plot's per-token NLL line for the export; nullopt: as on screen.
    std::optional<bool> logX;
    std::optional<bool> tokenNll;

    static ExportStyle screen();
    // Single-column figure: 89 x 60 mm, 7 pt, 0.8 pt lines, 300 dpi; the legend above the plot, a log
    // token axis and the averaged NLL without the per-token line.
    static ExportStyle paperPreset();
    // The same across two columns: 183 x 70 mm.
    static ExportStyle paperWidePreset();
    // A trace's label without the date and time a run's file name ends in, e.g. "tiny-collapse" for
    // "tiny-collapse-20261129-192634" (also inside a longer label, such as an overlay's).
    static QString shortLabel(const QString& label);
};

enum class ExportFormat { Png, Svg, Pdf, Csv };

// Everything an export changes, for the time it lives: the constructor applies the style (paper fonts
// and pens, legend place, labels, token axis, no cursor, tick labels that fit) and lays the plot out
// at the export's size; the destructor puts the plot back as it was on screen. The save functions use
// one; tests use one to look at a plot as it is exported.
class ExportScope {
public:
    ExportScope(TraceView* view, const ExportStyle& style);
    ExportScope(QCustomPlot* plot, const ExportStyle& style);
    ~ExportScope();
    ExportScope(const ExportScope&) = delete;
    ExportScope& operator=(const ExportScope&) = delete;

    // Size of the figure in layout units: points in paper mode, pixels otherwise.
    QSize size() const;
    // Lays the plot out at size() (geometry, tick vectors), as the export draws it.
    void layout();
    // The plot as exported, at scale pixels per layout unit.
    QImage render(double scale = 1.0);

private:
    struct Private;
    std::unique_ptr<Private> d;
};

class PlotExporter {
public:
    // By file suffix (.png .svg .pdf .csv); nullopt-like: returns false with *error for others.
    static bool formatFromPath(const QString& path, ExportFormat* format);

    // Each returns false and a one-line message in *error on failure (never throws).
    static bool savePng(QCustomPlot* plot, const QString& path, const ExportStyle& style, QString* error);
    static bool saveSvg(QCustomPlot* plot, const QString& path, const ExportStyle& style, QString* error);
    static bool savePdf(QCustomPlot* plot, const QString& path, const ExportStyle& style, QString* error);
    // The view's plot in the format of path's suffix, or its visible data for .csv.
    static bool save(TraceView* view, const QString& path, const ExportStyle& style, QString* error);

    // Columns "token" (0-based index) and each of view->csvColumns(), one row per token in the
    // visible range (the values of decimated series are their bucket means). Returns the rows written
    // in *rows if given.
    static bool saveCsv(TraceView* view, const QString& path, QString* error, qint64* rows = nullptr);

    // Where the axis draws its tick labels in the plot's current layout, in the order of its ticks
    // (visible axes with tick labels only). Exports make them not overlap; tests check that.
    static QVector<QRectF> tickLabelRects(QCPAxis* axis);

    // Light or dark colours for the plot's background, axes, grid, text and legend (graphs keep
    // theirs; views restyle their own plottables).
    static void applyTheme(QCustomPlot* plot, bool dark);
    // Distinct line colours for series i of n (units), readable on the theme's background.
    static QColor seriesColor(int i, int n, bool dark);
    // a mixed with b (f = weight of b): an opaque stand-in for a translucent colour, which is much
    // cheaper to draw for thousands of segments.
    static QColor blend(const QColor& a, const QColor& b, double f);
    // Trace i's colour: 0 the trace shown, 1, 2, ... the runs compared with it (8, then around).
    static QColor traceColor(int trace, bool dark);
};

} // namespace statescope
