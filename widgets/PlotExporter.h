#pragma once

// Export of a plot as PNG, SVG or PDF, in the screen look or a paper preset, and of a view's data in
// the visible range as CSV. Light and dark palettes for plots.
#include <QColor>
#include <QString>
#include <QVector>

class QCustomPlot;

namespace statescope {

class TraceView;

struct ExportStyle {
    bool paper = false;   // false: the plot as it is on screen (size, fonts, pens)
    double widthMm = 120; // paper: figure size
    double heightMm = 75;
    double fontPt = 8;      // paper: tick labels, axis labels, legend
    double lineWidth = 1.0; // paper: pen width (pt) of the graphs
    int dpi = 300;          // PNG in paper mode
    bool dark = false;      // paper exports are always light unless this is set

    static ExportStyle screen();
    static ExportStyle paperPreset(); // single-column figure: 89 x 60 mm, 7 pt, 0.8 pt lines
};

enum class ExportFormat { Png, Svg, Pdf, Csv };

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

    // Light or dark colours for the plot's background, axes, grid, text and legend (graphs keep
    // theirs; views restyle their own plottables).
    static void applyTheme(QCustomPlot* plot, bool dark);
    // Distinct line colours for series i of n (units), readable on the theme's background.
    static QColor seriesColor(int i, int n, bool dark);
    // a mixed with b (f = weight of b): an opaque stand-in for a translucent colour, which is much
    // cheaper to draw for thousands of segments.
    static QColor blend(const QColor& a, const QColor& b, double f);
    // The first and second trace's colours (overlay = 1).
    static QColor traceColor(int trace, bool dark);
};

} // namespace statescope
