#include "PlotHelpers.h"

#include "TraceData.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace statescope {

void setEnvelope(QCPGraph* graph, const Envelope& env, bool minMax)
{
    QVector<double> keys, values;
    if (env.decimated && minMax) {
        keys.reserve(2 * env.size());
        values.reserve(2 * env.size());
        for (int i = 0; i < env.size(); ++i) {
            if (std::isnan(env.min[i]))
                continue;
            keys.push_back(env.x[i]);
            values.push_back(env.min[i]);
            keys.push_back(env.x[i]);
            values.push_back(env.max[i]);
        }
    } else {
        // Only points with a place: a NaN key would break the sorted order QCustomPlot relies on.
        keys.reserve(env.size());
        values.reserve(env.size());
        for (int i = 0; i < env.size(); ++i)
            if (std::isfinite(env.x[i])) {
                keys.push_back(env.x[i]);
                values.push_back(env.mean[i]);
            }
    }
    graph->setData(keys, values, true);
    // Thousands of min/max strokes: antialiasing them costs most of a replot and shows nothing more.
    graph->setAntialiased(!(env.decimated && minMax));
}

void setEmphasisPen(QCPGraph* graph, double width)
{
    constexpr int kMaxWidePoints = 600;
    QPen pen = graph->pen();
    const double w = graph->dataCount() <= kMaxWidePoints ? width : 1.0;
    if (pen.widthF() != w) {
        pen.setWidthF(w);
        graph->setPen(pen);
    }
}

QCPColorGradient viridisGradient()
{
    QCPColorGradient g;
    g.clearColorStops();
    static const QRgb stops[] = {0x440154, 0x482878, 0x3e4989, 0x31688e, 0x26828e,
                                 0x1f9e89, 0x35b779, 0x6ece58, 0xb5de2b, 0xfde725};
    const int n = int(sizeof(stops) / sizeof(stops[0]));
    for (int i = 0; i < n; ++i)
        g.setColorStopAt(double(i) / (n - 1), QColor(stops[i]));
    g.setColorInterpolation(QCPColorGradient::ciRGB);
    g.setNanHandling(QCPColorGradient::nhTransparent);
    return g;
}

HeatColumns heatColumns(QCPAxis* x, qint64 tokens, int pixelsPerColumn)
{
    HeatColumns hc;
    if (!x || tokens <= 0)
        return hc;
    pixelsPerColumn = std::max(1, pixelsPerColumn);
    const QCPRange r = x->range();
    const double dataLo = std::max(r.lower, 0.5);
    const double dataHi = std::min(r.upper, TraceData::tokenToX(tokens - 1) + 0.5);
    if (dataHi <= dataLo)
        return hc;
    QCPAxisRect* rect = x->axisRect();
    double p0 = x->coordToPixel(dataLo), p1 = x->coordToPixel(dataHi);
    if (p1 < p0)
        std::swap(p0, p1);
    p0 = std::max(p0, double(rect->left()));
    p1 = std::min(p1, double(rect->left() + rect->width()));
    if (p1 - p0 < 1 || rect->width() <= 1) {
        // No geometry yet: one column per token up to 1000.
        const qint64 b = std::clamp<qint64>(qint64(std::ceil(dataLo - 1.0)), 0, tokens);
        const qint64 e = std::clamp<qint64>(qint64(std::floor(dataHi - 1.0)) + 1, b, tokens);
        const qint64 n = std::max<qint64>(1, std::min<qint64>(e - b, 1000));
        for (qint64 c = 0; c <= n; ++c)
            hc.edges.push_back(b + (e - b) * c / n);
        hc.px0 = 0;
        hc.px1 = double(n);
        return hc;
    }
    const int cols = std::max(1, int(std::lround((p1 - p0) / pixelsPerColumn)));
    hc.px0 = p0;
    hc.px1 = p1;
    hc.edges.reserve(cols + 1);
    for (int c = 0; c <= cols; ++c) {
        const double px = p0 + (p1 - p0) * c / cols;
        double xv = x->pixelToCoord(px);
        if (x->rangeReversed() ? c == cols : c == 0)
            xv = dataLo;
        const qint64 t = std::clamp<qint64>(qint64(std::ceil(xv - 1.0)), 0, tokens);
        hc.edges.push_back(t);
    }
    if (hc.edges.front() > hc.edges.back())
        std::reverse(hc.edges.begin(), hc.edges.end());
    hc.edges.back() = std::clamp<qint64>(qint64(std::floor(dataHi - 1.0)) + 1, hc.edges.back(), tokens);
    for (int i = 1; i < hc.edges.size(); ++i)
        hc.edges[i] = std::max(hc.edges[i], hc.edges[i - 1]);
    return hc;
}

void fillHeatmap(QCPColorMap* map, const HeatColumns& cols, const QVector<float>& values, int layers)
{
    const int n = cols.columns();
    if (n < 1 || layers < 1 || values.size() < n * layers) {
        map->data()->clear();
        map->setVisible(false);
        return;
    }
    map->setVisible(true);
    // A map needs two cells per dimension for QCustomPlot to give it a size: repeat a single one.
    const int kx = std::max(2, n), ky = std::max(2, layers);
    QCPColorMapData* d = map->data();
    if (d->keySize() != kx || d->valueSize() != ky)
        d->setSize(kx, ky);
    for (int l = 0; l < ky; ++l)
        for (int c = 0; c < kx; ++c) {
            const float v = values[std::min(l, layers - 1) * n + std::min(c, n - 1)];
            d->setCell(c, l, std::isfinite(v) ? double(v) : std::numeric_limits<double>::quiet_NaN());
        }
    // Cells are centred on the key range's ends: place the centres half a cell inside the span.
    QCPAxis* x = map->keyAxis();
    const double cell = (cols.px1 - cols.px0) / kx;
    double k0, k1;
    if (x && x->axisRect()->width() > 1) {
        k0 = x->pixelToCoord(cols.px0 + 0.5 * cell);
        k1 = x->pixelToCoord(cols.px1 - 0.5 * cell);
    } else {
        k0 = TraceData::tokenToX(cols.edges.front());
        k1 = TraceData::tokenToX(std::max(cols.edges.front(), cols.edges.back() - 1));
    }
    d->setKeyRange(QCPRange(std::min(k0, k1), std::max(k0, k1)));
    if (layers == 1)
        d->setValueRange(QCPRange(-0.25, 0.25));
    else
        d->setValueRange(QCPRange(0, layers - 1));
}

void rescaleY(QCPAxis* y, const QList<QCPGraph*>& graphs, bool log, bool includeZero)
{
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (QCPGraph* g : graphs) {
        if (!g || !g->visible())
            continue;
        // Every point, not QCustomPlot's getValueRange(): that binary-searches the keys for the range,
        // and a column without tokens (NaN) breaks their order, so dips went uncounted and were cut off.
        const QCPRange keys = g->keyAxis()->range();
        for (auto it = g->data()->constBegin(); it != g->data()->constEnd(); ++it) {
            if (!(it->key >= keys.lower && it->key <= keys.upper) || !std::isfinite(it->value) ||
                (log && it->value <= 0))
                continue;
            lo = std::min(lo, it->value);
            hi = std::max(hi, it->value);
        }
    }
    if (!(lo <= hi))
        return;
    if (includeZero && !log)
        lo = std::min(lo, 0.0);
    if (log) {
        lo = std::max(lo, 1e-12);
        hi = std::max(hi, lo * 1.0001);
        y->setRange(lo / 1.15, hi * 1.15);
    } else {
        const double pad = (hi - lo) > 0 ? 0.05 * (hi - lo) : std::max(1e-6, 0.05 * std::abs(hi));
        y->setRange(includeZero && lo == 0.0 ? 0.0 : lo - pad, hi + pad);
    }
}

void fitTickCounts(QCustomPlot* plot)
{
    auto fit = [](QCPAxis* y, int height) {
        if (!y || !y->visible() || !y->ticker())
            return;
        const int line = QFontMetrics(y->tickLabelFont()).height();
        const int count = std::clamp(height / std::max(1, 2 * line + 2), 1, 5);
        if (y->ticker()->tickCount() != count)
            y->ticker()->setTickCount(count);
    };
    for (QCPAxisRect* rect : plot->axisRects())
        for (QCPAxis* y : rect->axes(QCPAxis::atLeft | QCPAxis::atRight))
            fit(y, rect->height());
    // Colour scales are layout elements of their own.
    for (QCPLayoutElement* e : plot->plotLayout()->elements(true))
        if (auto* scale = qobject_cast<QCPColorScale*>(e))
            fit(scale->axis(), scale->rect().height());
}

QString readoutNumber(double v)
{
    if (!std::isfinite(v))
        return std::isnan(v) ? QStringLiteral("–") : (v > 0 ? QStringLiteral("∞") : QStringLiteral("−∞"));
    return QString::number(v, 'g', 5);
}

} // namespace statescope
