#pragma once

// Internal helpers shared by the views (not part of the widgets' public API).
#include "SeriesPyramid.h"

#include <QVector>

#include <qcustomplot.h>

namespace statescope {

// Fills a graph from an envelope: when decimated and minMax, two points per column (min then max,
// so each column draws as a vertical stroke: at most 2 * columns points); else one per column
// (the mean).
void setEnvelope(QCPGraph* graph, const Envelope& env, bool minMax = true);

// Gives a graph its emphasis width only while it has few points: Qt strokes pens wider than one
// pixel as filled paths, which for thousands of jagged segments takes ~100x longer than 1-px lines.
void setEmphasisPen(QCPGraph* graph, double width);

// Viridis, perceptually uniform and readable in print and for colour-blind readers.
QCPColorGradient viridisGradient();

// Columns of a heatmap over the visible part of the data, equal in pixels (so they line up on log
// axes too): edges in tokens and the pixel span they cover.
struct HeatColumns {
    QVector<qint64> edges; // columns + 1, ascending
    double px0 = 0, px1 = 0;
    int columns() const { return edges.size() - 1; }
};
HeatColumns heatColumns(QCPAxis* x, qint64 tokens, int pixelsPerColumn);

// Puts layers x columns values (row-major by layer) into the map so that its cells cover the
// columns' pixels exactly; layer 0 at value 0. NaN cells are transparent.
void fillHeatmap(QCPColorMap* map, const HeatColumns& cols, const QVector<float>& values, int layers);

// Sets y to the visible graphs' value range (in the current key range) with a margin; log keeps it
// positive. Leaves y alone if no graph has data there.
void rescaleY(QCPAxis* y, const QList<QCPGraph*>& graphs, bool log, bool includeZero = false);

// Fewer ticks on the value axes of short axis rects (a small window): each tick label gets at least
// about two lines of its font, so labels never overlap.
void fitTickCounts(QCustomPlot* plot);

// A value as the crosshair's readout shows it: 5 significant digits, "–" for NaN.
QString readoutNumber(double v);

} // namespace statescope
