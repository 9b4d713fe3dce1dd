#include "PlotExporter.h"

#include "LossView.h"
#include "TraceView.h"

#include <QFile>
#include <QFileInfo>
#include <QHash>
#include <QImage>
#include <QRegularExpression>
#include <QSaveFile>
#include <QSvgGenerator>
#include <QTextStream>

#include <qcustomplot.h>

#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

namespace statescope {

namespace {

const char* const kDarkProperty = "statescopeDarkTheme";

double mmToPt(double mm)
{
    return mm / 25.4 * 72.0;
}

void forEachAxis(QCustomPlot* plot, const std::function<void(QCPAxis*)>& f)
{
    for (QCPLayoutElement* el : plot->plotLayout()->elements(true)) {
        if (auto* rect = qobject_cast<QCPAxisRect*>(el)) {
            for (QCPAxis* a : rect->axes())
                f(a);
        } else if (auto* scale = qobject_cast<QCPColorScale*>(el)) {
            if (scale->axis())
                f(scale->axis());
        }
    }
}

QList<QCPLegend*> legends(QCustomPlot* plot)
{
    QList<QCPLegend*> out;
    std::function<void(QCPLayoutElement*)> walk = [&](QCPLayoutElement* el) {
        if (!el)
            return;
        if (auto* l = qobject_cast<QCPLegend*>(el); l && !out.contains(l))
            out.push_back(l);
        // An axis rect's elements are its inset layout.
        for (QCPLayoutElement* c : el->elements(false))
            walk(c);
    };
    walk(plot->plotLayout());
    return out;
}

// The legend's entries in order (its grid may have holes where entries were removed).
QList<QCPAbstractLegendItem*> legendItems(QCPLegend* legend)
{
    QList<QCPAbstractLegendItem*> items;
    for (int i = 0; i < legend->elementCount(); ++i)
        if (auto* item = qobject_cast<QCPAbstractLegendItem*>(legend->elementAt(i)))
            items.push_back(item);
    return items;
}

// Lays the legend's entries out again in their order, without holes.
void repack(QCPLegend* legend, QCPLayoutGrid::FillOrder order, int wrap)
{
    const QList<QCPAbstractLegendItem*> items = legendItems(legend);
    for (QCPAbstractLegendItem* item : items)
        legend->take(item);
    legend->simplify();
    legend->setWrap(wrap);
    legend->setFillOrder(order, false);
    for (QCPAbstractLegendItem* item : items)
        legend->addElement(item);
}

// Entries per row of a legend: as many as fit in width, each column as wide as its widest entry.
int entriesPerRow(QCPLegend* legend, int width)
{
    const QList<QCPAbstractLegendItem*> items = legendItems(legend);
    const QMargins m = legend->margins();
    for (int perRow = int(items.size()); perRow > 1; --perRow) {
        QVector<int> columns(perRow, 0);
        for (int i = 0; i < items.size(); ++i)
            columns[i % perRow] = std::max(columns[i % perRow], items[i]->minimumOuterSizeHint().width());
        const int needed = std::accumulate(columns.begin(), columns.end(), 0) +
                           legend->columnSpacing() * (perRow - 1) + m.left() + m.right();
        if (needed <= width)
            return perRow;
    }
    return 1;
}

// A colour scale's automatic margin is its last one, so that a margin group it shares (with its
// heatmap) never shrinks: the screen's margins would stay in a paper figure. Margins start afresh.
void forgetScaleMargins(QCustomPlot* plot)
{
    for (QCPLayoutElement* el : plot->plotLayout()->elements(true))
        if (auto* scale = qobject_cast<QCPColorScale*>(el))
            scale->setMargins(QMargins());
}

// QCustomPlot lays a plot out only when it draws it; exports need the geometry of the export's size
// before that, to fit tick labels and margins.
struct PlotAccess : QCustomPlot {
    static void layoutAt(QCustomPlot* plot, const QSize& size)
    {
        forgetScaleMargins(plot);
        const QRect old = plot->viewport();
        plot->setViewport(QRect(QPoint(0, 0), size));
        (plot->*(&PlotAccess::updateLayout))();
        // The elements keep the geometry just computed; only the top layout takes the old size back.
        plot->setViewport(old);
    }
};

// ---- tick labels

bool isDecade(double v)
{
    if (!(v > 0) || !std::isfinite(v))
        return false;
    const double e = std::log10(v);
    return std::abs(e - std::round(e)) < 1e-9;
}

// Decimals that write v exactly (up to 12).
int decimalsOf(double v)
{
    for (int d = 0; d < 12; ++d) {
        const double scaled = std::abs(v) * std::pow(10.0, d);
        if (std::abs(scaled - std::round(scaled)) <= 1e-6 * std::max(1.0, scaled))
            return d;
    }
    return 12;
}

QString plainNumber(double v, int decimals, const QLocale& locale)
{
    if (std::abs(v) < 1e-300)
        v = 0; // no "-0"
    return locale.toString(v, 'f', decimals);
}

// "m" + exponential + "n", which an axis with a 'b' number format draws as m·10ⁿ (10ⁿ for m = 1 on a
// log axis).
QString powerNumber(double v, const QLocale& locale)
{
    if (v == 0)
        return QStringLiteral("0");
    const int e = int(std::floor(std::log10(std::abs(v)) + 1e-9));
    const double m = v / std::pow(10.0, e);
    return plainNumber(m, std::min(3, decimalsOf(m)), locale) + locale.exponential() + QString::number(e);
}

// One number format for all labels of an axis: powers of ten for decades beyond 10⁴ (or below
// 10⁻³), m·10ⁿ for linear ticks of very large or small numbers, plain numbers otherwise (with
// shared decimals on a linear axis).
QVector<QString> uniformLabels(const QVector<double>& ticks, bool log, const QLocale& locale)
{
    QVector<QString> out;
    if (ticks.isEmpty())
        return out;
    bool decades = log;
    double hi = 0, lo = std::numeric_limits<double>::infinity();
    for (double t : ticks) {
        decades = decades && isDecade(t);
        hi = std::max(hi, std::abs(t));
        if (t != 0)
            lo = std::min(lo, std::abs(t));
    }
    out.reserve(ticks.size());
    if (decades) {
        const bool powers = hi > 1e4 || lo < 1e-3;
        for (double t : ticks)
            out.push_back(powers ? powerNumber(t, locale)
                                 : plainNumber(t, std::max(0, -int(std::lround(std::log10(t)))), locale));
        return out;
    }
    if (hi >= 1e7 || hi < 1e-3) {
        for (double t : ticks)
            out.push_back(powerNumber(t, locale));
        return out;
    }
    // A log axis of another base (1/16 to 64) spans orders of magnitude: shared decimals would
    // write 64.0000, so each label keeps its own.
    if (log) {
        for (double t : ticks)
            out.push_back(plainNumber(t, std::min(decimalsOf(t), 6), locale));
        return out;
    }
    int decimals = 0;
    for (double t : ticks)
        decimals = std::max(decimals, decimalsOf(t));
    for (double t : ticks)
        out.push_back(plainNumber(t, std::min(decimals, 6), locale));
    return out;
}

// Places the ticks as the axis' own ticker does and writes all their labels in one format.
class UniformTicker : public QCPAxisTicker {
public:
    explicit UniformTicker(const QSharedPointer<QCPAxisTicker>& inner) : m_inner(inner) {}
    QSharedPointer<QCPAxisTicker> inner() const { return m_inner; }

    void generate(const QCPRange& range, const QLocale& locale, QChar formatChar, int precision,
                  QVector<double>& ticks, QVector<double>* subTicks, QVector<QString>* tickLabels) override
    {
        m_inner->generate(range, locale, formatChar, precision, ticks, subTicks, tickLabels);
        if (tickLabels)
            *tickLabels = uniformLabels(ticks, bool(m_inner.dynamicCast<QCPAxisTickerLog>()), locale);
    }

private:
    QSharedPointer<QCPAxisTicker> m_inner;
};

// Only tickers that write numbers: text, date and time tickers keep their labels.
bool writesNumbers(const QSharedPointer<QCPAxisTicker>& t)
{
    return t && !t.dynamicCast<QCPAxisTickerText>() && !t.dynamicCast<QCPAxisTickerDateTime>() &&
           !t.dynamicCast<QCPAxisTickerTime>() && !t.dynamicCast<UniformTicker>();
}

// Whether neighbouring labels along the axis come closer than gap.
bool labelsOverlap(QCPAxis* axis, double gap)
{
    QVector<QRectF> rects = PlotExporter::tickLabelRects(axis);
    const bool horizontal = axis->orientation() == Qt::Horizontal;
    std::sort(rects.begin(), rects.end(), [horizontal](const QRectF& a, const QRectF& b) {
        return horizontal ? a.center().x() < b.center().x() : a.center().y() < b.center().y();
    });
    for (int i = 1; i < rects.size(); ++i) {
        const QRectF &a = rects[i - 1], &b = rects[i];
        if (horizontal ? a.right() + gap > b.left() : a.bottom() + gap > b.top())
            return true;
    }
    return false;
}

// ---- paper look

// Fonts, pens and spacing of a paper export, and how to put the screen look back.
class StyleSnapshot {
public:
    explicit StyleSnapshot(QCustomPlot* plot) : m_plot(plot)
    {
        forEachAxis(plot, [&](QCPAxis* a) {
            m_axes.push_back({a, a->tickLabelFont(), a->labelFont(), a->basePen(), a->tickPen(),
                              a->subTickPen(), a->grid()->pen(), a->grid()->subGridPen(),
                              a->grid()->zeroLinePen(), a->tickLengthIn(), a->tickLengthOut(),
                              a->subTickLengthIn(), a->padding(), a->labelPadding(), a->tickLabelPadding()});
        });
        for (int i = 0; i < plot->plottableCount(); ++i) {
            QCPAbstractPlottable* p = plot->plottable(i);
            m_plottables.push_back({p, p->pen()});
        }
        for (QCPLegend* l : legends(plot)) {
            QList<QPair<QPointer<QCPAbstractLegendItem>, QMargins>> itemMargins;
            for (QCPAbstractLegendItem* item : legendItems(l))
                itemMargins.push_back({item, item->margins()});
            m_legends.push_back({l, l->font(), l->borderPen(), l->brush(), l->iconSize(), l->fillOrder(),
                                 l->wrap(), l->margins(), l->rowSpacing(), l->columnSpacing(),
                                 l->iconTextPadding(), itemMargins});
        }
        for (int i = 0; i < plot->itemCount(); ++i)
            if (auto* t = qobject_cast<QCPItemText*>(plot->item(i)))
                m_texts.push_back({t, t->font()});
        for (QCPLayoutElement* el : plot->plotLayout()->elements(true)) {
            if (auto* t = qobject_cast<QCPTextElement*>(el))
                m_titles.push_back({t, t->font()});
            if (qobject_cast<QCPAxisRect*>(el) || qobject_cast<QCPColorScale*>(el))
                m_margins.push_back({el, el->minimumMargins()});
        }
        m_dark = plot->property(kDarkProperty).toBool();
    }

    void applyPaper(const ExportStyle& s)
    {
        const int px = std::max(4, int(std::lround(s.fontPt)));
        auto sized = [&](QFont f, double factor = 1.0) {
            f.setPixelSize(std::max(4, int(std::lround(px * factor))));
            return f;
        };
        auto widthPen = [&](QPen p, double w) {
            if (p.style() != Qt::NoPen)
                p.setWidthF(w);
            return p;
        };
        PlotExporter::applyTheme(m_plot, s.dark);
        // Margins widened to line up with other views on screen are in screen pixels: drop them (the
        // export fits its own to the tick labels).
        for (const auto& m : m_margins)
            if (m.element)
                m.element->setMinimumMargins(QMargins());
        const double thin = 0.5 * s.lineWidth;
        forEachAxis(m_plot, [&](QCPAxis* a) {
            a->setTickLabelFont(sized(a->tickLabelFont()));
            a->setLabelFont(sized(a->labelFont()));
            a->setBasePen(widthPen(a->basePen(), thin));
            a->setTickPen(widthPen(a->tickPen(), thin));
            a->setSubTickPen(widthPen(a->subTickPen(), thin));
            a->grid()->setPen(widthPen(a->grid()->pen(), 0.5 * thin));
            a->grid()->setSubGridPen(widthPen(a->grid()->subGridPen(), 0.5 * thin));
            a->setTickLength(0, 3);
            a->setSubTickLength(0, 2);
            a->setPadding(2);
            a->setLabelPadding(2);
            a->setTickLabelPadding(2);
        });
        for (const auto& p : m_plottables)
            if (p.plottable)
                p.plottable->setPen(widthPen(p.pen, std::max(1.0, p.pen.widthF()) * s.lineWidth));
        for (const auto& l : m_legends)
            if (l.legend) {
                l.legend->setFont(sized(l.font));
                l.legend->setBorderPen(widthPen(l.border, thin));
                l.legend->setIconSize(QSize(px * 2, px));
                // Spacing is in pixels on screen and would be points here: shrink it with the font.
                l.legend->setMargins(QMargins(px / 2, px / 4, px / 2, px / 4));
                l.legend->setRowSpacing(0);
                l.legend->setColumnSpacing(px);
                l.legend->setIconTextPadding(px / 2);
                for (QCPAbstractLegendItem* item : legendItems(l.legend))
                    item->setMargins(QMargins(px / 4, 1, px / 4, 1));
            }
        for (const auto& t : m_texts)
            if (t.item)
                t.item->setFont(sized(t.font, 0.9));
        for (const auto& t : m_titles)
            if (t.title)
                t.title->setFont(sized(t.font, 1.1));
    }

    ~StyleSnapshot()
    {
        for (const auto& a : m_axes) {
            if (!a.axis)
                continue;
            a.axis->setTickLabelFont(a.tickFont);
            a.axis->setLabelFont(a.labelFont);
            a.axis->setBasePen(a.base);
            a.axis->setTickPen(a.tick);
            a.axis->setSubTickPen(a.subTick);
            a.axis->grid()->setPen(a.grid);
            a.axis->grid()->setSubGridPen(a.subGrid);
            a.axis->grid()->setZeroLinePen(a.zero);
            a.axis->setTickLength(a.tickIn, a.tickOut);
            a.axis->setSubTickLength(a.subTickIn, a.tickOut / 2);
            a.axis->setPadding(a.padding);
            a.axis->setLabelPadding(a.labelPadding);
            a.axis->setTickLabelPadding(a.tickLabelPadding);
        }
        for (const auto& p : m_plottables)
            if (p.plottable)
                p.plottable->setPen(p.pen);
        for (const auto& l : m_legends)
            if (l.legend) {
                l.legend->setFont(l.font);
                l.legend->setBorderPen(l.border);
                l.legend->setBrush(l.brush);
                l.legend->setIconSize(l.icon);
                repack(l.legend, l.order, l.wrap);
                l.legend->setMargins(l.margins);
                l.legend->setRowSpacing(l.rowSpacing);
                l.legend->setColumnSpacing(l.columnSpacing);
                l.legend->setIconTextPadding(l.iconPadding);
                for (const auto& im : l.itemMargins)
                    if (im.first)
                        im.first->setMargins(im.second);
            }
        for (const auto& t : m_texts)
            if (t.item)
                t.item->setFont(t.font);
        for (const auto& t : m_titles)
            if (t.title)
                t.title->setFont(t.font);
        for (const auto& m : m_margins)
            if (m.element)
                m.element->setMinimumMargins(m.margins);
        PlotExporter::applyTheme(m_plot, m_dark);
    }

private:
    struct AxisStyle {
        QPointer<QCPAxis> axis;
        QFont tickFont, labelFont;
        QPen base, tick, subTick, grid, subGrid, zero;
        int tickIn, tickOut, subTickIn, padding, labelPadding, tickLabelPadding;
    };
    struct PlottableStyle {
        QPointer<QCPAbstractPlottable> plottable;
        QPen pen;
    };
    struct LegendStyle {
        QPointer<QCPLegend> legend;
        QFont font;
        QPen border;
        QBrush brush;
        QSize icon;
        QCPLayoutGrid::FillOrder order;
        int wrap;
        QMargins margins;
        int rowSpacing, columnSpacing, iconPadding;
        QList<QPair<QPointer<QCPAbstractLegendItem>, QMargins>> itemMargins;
    };
    struct TextStyle {
        QPointer<QCPItemText> item;
        QFont font;
    };
    struct TitleStyle {
        QPointer<QCPTextElement> title;
        QFont font;
    };
    struct MarginStyle {
        QPointer<QCPLayoutElement> element;
        QMargins margins;
    };
    QCustomPlot* m_plot;
    QList<AxisStyle> m_axes;
    QList<PlottableStyle> m_plottables;
    QList<LegendStyle> m_legends;
    QList<TextStyle> m_texts;
    QList<TitleStyle> m_titles;
    QList<MarginStyle> m_margins;
    bool m_dark = false;
};

// Where a legend was on screen, so that an export can move it and put it back.
struct LegendHome {
    QPointer<QCPLegend> legend;
    QPointer<QCPAxisRect> rect; // whose inset layout holds it on screen (null: elsewhere, left alone)
    Qt::Alignment alignment;
    QCPLayoutInset::InsetPlacement placement = QCPLayoutInset::ipBorderAligned;
    QRectF insetRect;
    QMargins insetMargins;
    bool visible = true;
    bool inRow = false; // moved to a row of its own at the top of the plot layout
};

QCPAxisRect* insetOwner(QCustomPlot* plot, QCPLegend* legend, int* index)
{
    for (QCPAxisRect* r : plot->axisRects()) {
        QCPLayoutInset* inset = r->insetLayout();
        for (int i = 0; i < inset->elementCount(); ++i)
            if (inset->elementAt(i) == legend) {
                *index = i;
                return r;
            }
    }
    return nullptr;
}

Qt::Alignment cornerOf(LegendPlace place)
{
    switch (place) {
    case LegendPlace::TopLeft:
        return Qt::AlignTop | Qt::AlignLeft;
    case LegendPlace::TopRight:
        return Qt::AlignTop | Qt::AlignRight;
    case LegendPlace::BottomLeft:
        return Qt::AlignBottom | Qt::AlignLeft;
    case LegendPlace::BottomRight:
        return Qt::AlignBottom | Qt::AlignRight;
    default:
        return Qt::AlignTop | Qt::AlignLeft;
    }
}

// Layout elements whose tick labels must stay inside them: axis rects and colour scales, with their
// data rect and axes.
struct Framed {
    QCPLayoutElement* element;
    QList<QCPAxis*> axes;
};

QList<Framed> framedElements(QCustomPlot* plot)
{
    QList<Framed> out;
    for (QCPLayoutElement* el : plot->plotLayout()->elements(true)) {
        if (auto* r = qobject_cast<QCPAxisRect*>(el))
            out.push_back({r, r->axes()});
        else if (auto* s = qobject_cast<QCPColorScale*>(el))
            if (s->axis())
                out.push_back({s, {s->axis()}});
    }
    return out;
}

QSize paperSize(const ExportStyle& s)
{
    return QSize(int(std::lround(mmToPt(s.widthMm))), int(std::lround(mmToPt(s.heightMm))));
}

} // namespace

// ---- ExportScope

struct ExportScope::Private {
    QPointer<QCustomPlot> plot;
    ExportStyle style;
    QSize size;

    // The view's part.
    QPointer<TraceView> view;
    bool themeChanged = false;
    bool labelsSet = false;
    bool compactSet = false;
    QString oldTraceLabel, oldOverlayLabel;
    std::optional<bool> oldTokenNll;
    bool legendWasShown = true; // on screen, where it may have stepped aside for a small window
    struct TokenAxis {
        QPointer<QCPAxis> axis;
        QCPAxis::ScaleType type;
        QSharedPointer<QCPAxisTicker> ticker;
        QCPRange range;
    };
    QList<TokenAxis> tokenAxes;

    // The plot's part.
    std::unique_ptr<StyleSnapshot> snapshot;
    QList<LegendHome> legendHomes;
    struct AxisTicks {
        QPointer<QCPAxis> axis;
        QSharedPointer<QCPAxisTicker> ticker;
        QString numberFormat;
    };
    QList<AxisTicks> ticks;
    QHash<QCPAxisTicker*, QPair<QSharedPointer<QCPAxisTicker>, int>> tickCounts;
    QPointer<QCPLayer> cursorLayer;
    bool cursorVisible = false;
    // The plot layout's elements, moved into body below a legend row that spans every column.
    struct Moved {
        QPointer<QCPLayoutElement> element;
        int row, column;
    };
    QCPLayoutGrid* body = nullptr;
    QList<Moved> moved;
    QList<double> rowStretch, columnStretch;
    int rowSpacing = 0, columnSpacing = 0;
    QList<QPair<QPointer<QCPColorScale>, int>> barWidths;
    QList<QPair<QPointer<QCPAxisRect>, QSize>> minimumSizes;
    struct TextPlace {
        QPointer<QCPItemText> item;
        QPointF coords;
        QBrush brush;
    };
    QList<TextPlace> texts;
    // Tick labels of the upper token axes of a view of stacked rects (the bottom one says the same).
    QList<QPointer<QCPAxis>> hiddenTickLabels;

    void applyView(TraceView* v);
    void restoreView();
    void applyPlot();
    void restorePlot();
    void placeLegends();
    void wrapLayout();
    void unwrapLayout();
    bool separateTexts();
    bool fitMargins(double gap);
    void fit();
    int unit() const { return style.paper ? std::max(4, int(std::lround(style.fontPt))) : 8; }
};

void ExportScope::Private::applyView(TraceView* v)
{
    view = v;
    // A figure has room for its legend (style.legend places or hides it): the screen's automatic
    // hiding must not reach it, nor run while the plot is laid out at the figure's size.
    legendWasShown = v->legendShown();
    v->setLegendFitSuspended(true);
    if (style.paper)
        v->plot()->legend->setVisible(true);
    // Views colour their plottables for their theme: paper exports want the light colours.
    const bool wantDark = style.paper ? style.dark : v->darkTheme();
    if (wantDark != v->darkTheme()) {
        themeChanged = true;
        v->setDarkTheme(wantDark);
    }
    TraceData* t = v->trace();
    TraceData* o = v->overlay();
    QString a = style.traceLabel, b = style.overlayLabel;
    if (style.paper) {
        if (a.isEmpty() && t)
            a = ExportStyle::shortLabel(t->label());
        if (b.isEmpty() && o)
            b = ExportStyle::shortLabel(o->label());
    }
    if (!a.isEmpty() || !b.isEmpty()) {
        labelsSet = true;
        oldTraceLabel = v->traceLegendLabel();
        oldOverlayLabel = v->overlayLegendLabel();
        v->setLegendLabels(a.isEmpty() ? oldTraceLabel : a, b.isEmpty() ? oldOverlayLabel : b);
    }
    if (style.paper && !v->compactNames()) {
        compactSet = true;
        v->setCompactNames(true);
    }
    if (auto* loss = qobject_cast<LossView*>(v);
        loss && style.tokenNll && *style.tokenNll != loss->tokenNllVisible()) {
        oldTokenNll = loss->tokenNllVisible();
        loss->setTokenNllVisible(*style.tokenNll);
    }
    if (style.logX) {
        const bool log = *style.logX;
        for (QCPAxis* x : v->tokenAxes()) {
            if ((x->scaleType() == QCPAxis::stLogarithmic) == log)
                continue;
            tokenAxes.push_back({x, x->scaleType(), x->ticker(), x->range()});
            // Not through the PlotGroup: the other views and the group's state stay as they are.
            const QSignalBlocker block(x);
            x->setScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
            if (log) {
                x->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTickerLog));
                // Token 0 is at x = 1; a log axis starts just before it (PlotGroup's limit).
                QCPRange r = x->range();
                r.lower = std::max(r.lower, 0.9);
                x->setRange(r.lower, std::max(r.upper, r.lower * 2));
            } else {
                x->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
            }
        }
    }
    if (style.paper) {
        // Stacked rects share the token axis: numbers under the lowest only, as in a figure with
        // shared x, which leaves the data more of the height.
        const QList<QCPAxis*> xs = v->tokenAxes();
        for (int i = 0; i + 1 < xs.size(); ++i)
            if (xs[i]->tickLabels() &&
                xs[i]->axisRect()->outerRect().top() < xs.last()->axisRect()->outerRect().top()) {
                xs[i]->setTickLabels(false);
                hiddenTickLabels.push_back(xs[i]);
            }
    }
    v->refresh();
}

void ExportScope::Private::restoreView()
{
    if (!view)
        return;
    for (const QPointer<QCPAxis>& a : hiddenTickLabels)
        if (a)
            a->setTickLabels(true);
    for (const TokenAxis& a : tokenAxes) {
        if (!a.axis)
            continue;
        const QSignalBlocker block(a.axis.data());
        a.axis->setScaleType(a.type);
        a.axis->setTicker(a.ticker);
        a.axis->setRange(a.range);
    }
    if (auto* loss = qobject_cast<LossView*>(view.data()); loss && oldTokenNll)
        loss->setTokenNllVisible(*oldTokenNll);
    if (labelsSet)
        view->setLegendLabels(oldTraceLabel, oldOverlayLabel);
    if (compactSet)
        view->setCompactNames(false);
    if (themeChanged)
        view->setDarkTheme(!view->darkTheme());
    view->plot()->legend->setVisible(legendWasShown);
    view->setLegendFitSuspended(false);
    view->refresh();
}

void ExportScope::Private::applyPlot()
{
    // The cursor follows the mouse on screen; a figure has no use for it.
    cursorLayer = plot->layer(QString::fromLatin1(kCursorLayer));
    if (cursorLayer) {
        cursorVisible = cursorLayer->visible();
        cursorLayer->setVisible(false);
    }
    if (style.paper) {
        snapshot = std::make_unique<StyleSnapshot>(plot);
        snapshot->applyPaper(style);
        const int u = unit();
        rowSpacing = plot->plotLayout()->rowSpacing();
        columnSpacing = plot->plotLayout()->columnSpacing();
        plot->plotLayout()->setRowSpacing(std::max(2, u / 2));
        plot->plotLayout()->setColumnSpacing(u);
        for (QCPLayoutElement* el : plot->plotLayout()->elements(true)) {
            if (auto* scale = qobject_cast<QCPColorScale*>(el)) {
                barWidths.push_back({scale, scale->barWidth()});
                scale->setBarWidth(u);
            }
            // QCustomPlot's least size of a data area, 50 units, is 18 mm on paper: two stacked rects
            // and their labels would not fit in a figure of 60 mm.
            if (auto* rect = qobject_cast<QCPAxisRect*>(el)) {
                minimumSizes.push_back({rect, rect->minimumSize()});
                rect->setMinimumSize(3 * u, 3 * u);
            }
        }
        // Marker labels over the data: on a ground of the background's colour, so that they read.
        const QColor ground = style.dark ? QColor(30, 31, 34, 210) : QColor(255, 255, 255, 210);
        for (int i = 0; i < plot->itemCount(); ++i)
            if (auto* t = qobject_cast<QCPItemText*>(plot->item(i))) {
                texts.push_back({t, t->position->coords(), t->brush()});
                t->setBrush(ground);
            }
        placeLegends();
    }
    forEachAxis(plot, [&](QCPAxis* a) {
        ticks.push_back({a, a->ticker(), a->numberFormat()});
        if (!writesNumbers(a->ticker()))
            return;
        if (!tickCounts.contains(a->ticker().data()))
            tickCounts.insert(a->ticker().data(), {a->ticker(), a->ticker()->tickCount()});
        a->setTicker(QSharedPointer<QCPAxisTicker>(new UniformTicker(a->ticker())));
        // 'b': labels written as 1e5 are drawn as 10⁵.
        a->setNumberFormat(QStringLiteral("gb"));
    });
    fit();
}

void ExportScope::Private::placeLegends()
{
    for (QCPLegend* legend : legends(plot)) {
        LegendHome home;
        home.legend = legend;
        home.visible = legend->visible();
        int index = -1;
        home.rect = insetOwner(plot, legend, &index);
        if (home.rect) {
            QCPLayoutInset* inset = home.rect->insetLayout();
            home.alignment = inset->insetAlignment(index);
            home.placement = inset->insetPlacement(index);
            home.insetRect = inset->insetRect(index);
            home.insetMargins = inset->margins();
        }
        legendHomes.push_back(home);
        if (!home.visible || !home.rect)
            continue;
        switch (style.legend) {
        case LegendPlace::Hidden:
            legend->setVisible(false);
            break;
        case LegendPlace::OutsideTop: {
            // A row of its own above the rect, in the rect's column: it covers no data and no axis.
            // A row of its own above everything else, as wide as the figure (a column of the plot's
            // own layout could be narrower, beside a colour scale).
            home.rect->insetLayout()->take(legend);
            wrapLayout();
            QCPLayoutGrid* grid = plot->plotLayout();
            grid->insertRow(0);
            grid->addElement(0, 0, legend);
            // The least height the legend needs; the plots below get the rest.
            grid->setRowStretchFactor(0, 0.001);
            legend->setBorderPen(Qt::NoPen);
            legend->setBrush(Qt::NoBrush);
            repack(legend, QCPLayoutGrid::foColumnsFirst, 1);
            legendHomes.back().inRow = true;
            break;
        }
        default: {
            QCPLayoutInset* inset = home.rect->insetLayout();
            // In the corner: the screen's distance from the axes is 12 pt on paper.
            const int gap = std::max(2, unit() / 2);
            inset->setMargins(QMargins(gap, gap, gap, gap));
            inset->setInsetPlacement(index, QCPLayoutInset::ipBorderAligned);
            inset->setInsetAlignment(index, cornerOf(style.legend));
            repack(legend, QCPLayoutGrid::foColumnsFirst, 1);
            break;
        }
        }
    }
}

void ExportScope::Private::wrapLayout()
{
    if (body)
        return;
    QCPLayoutGrid* top = plot->plotLayout();
    for (int r = 0; r < top->rowCount(); ++r)
        for (int c = 0; c < top->columnCount(); ++c)
            if (top->hasElement(r, c))
                moved.push_back({top->element(r, c), r, c});
    rowStretch = top->rowStretchFactors();
    columnStretch = top->columnStretchFactors();
    for (const Moved& m : moved)
        top->take(m.element);
    top->simplify();
    body = new QCPLayoutGrid;
    top->addElement(0, 0, body); // first, so that the body belongs to the plot
    body->setRowSpacing(top->rowSpacing());
    body->setColumnSpacing(top->columnSpacing());
    for (const Moved& m : moved)
        body->addElement(m.row, m.column, m.element);
    body->setRowStretchFactors(rowStretch);
    body->setColumnStretchFactors(columnStretch);
}

void ExportScope::Private::unwrapLayout()
{
    if (!body)
        return;
    QCPLayoutGrid* top = plot->plotLayout();
    for (const Moved& m : moved)
        if (m.element)
            body->take(m.element);
    top->take(body);
    delete body; // empty now
    body = nullptr;
    top->simplify();
    for (const Moved& m : moved)
        if (m.element)
            top->addElement(m.row, m.column, m.element);
    top->setRowStretchFactors(rowStretch);
    top->setColumnStretchFactors(columnStretch);
    moved.clear();
}

// Marker labels a line apart in a tall rect run into each other in a short one: moves each one that
// touches another down below it. Returns whether one moved.
bool ExportScope::Private::separateTexts()
{
    bool movedOne = false;
    QHash<QCPAxisRect*, QList<QRectF>> placed;
    QList<QCPItemText*> items;
    for (const TextPlace& t : texts)
        if (t.item && t.item->visible() && t.item->clipAxisRect() &&
            t.item->position->typeY() == QCPItemPosition::ptAxisRectRatio)
            items.push_back(t.item);
    std::stable_sort(items.begin(), items.end(), [](QCPItemText* a, QCPItemText* b) {
        return a->position->coords().y() < b->position->coords().y();
    });
    for (QCPItemText* t : items) {
        QCPAxisRect* rect = t->clipAxisRect();
        QRectF r = QRectF(t->topLeft->pixelPosition(), t->bottomRight->pixelPosition()).normalized();
        QList<QRectF>& others = placed[rect];
        for (bool again = true; again && rect->height() > 0;) {
            again = false;
            for (const QRectF& o : others)
                if (o.intersects(r)) {
                    const double dy = o.bottom() + 1 - r.top();
                    const QPointF c = t->position->coords();
                    t->position->setCoords(c.x(), c.y() + dy / rect->height());
                    r.translate(0, dy);
                    movedOne = again = true;
                }
        }
        others.push_back(r);
    }
    return movedOne;
}

// Tick labels overhang the data area by half a label at its ends: margins that hold them, so that
// none runs into the colour scale, the legend or off the figure. Returns whether a margin grew.
bool ExportScope::Private::fitMargins(double gap)
{
    bool changed = false;
    for (const Framed& f : framedElements(plot)) {
        const QRect r = f.element->rect();
        QMargins need;
        for (QCPAxis* a : f.axes)
            for (const QRectF& l : PlotExporter::tickLabelRects(a)) {
                need.setLeft(std::max(need.left(), int(std::ceil(r.left() - l.left() + gap))));
                need.setRight(std::max(need.right(), int(std::ceil(l.right() - r.right() + gap))));
                need.setTop(std::max(need.top(), int(std::ceil(r.top() - l.top() + gap))));
                need.setBottom(std::max(need.bottom(), int(std::ceil(l.bottom() - r.bottom() + gap))));
            }
        const QMargins have = f.element->margins();
        for (QCP::MarginSide side : {QCP::msLeft, QCP::msRight, QCP::msTop, QCP::msBottom}) {
            const int want = QCP::getMarginValue(need, side);
            if (want <= QCP::getMarginValue(have, side))
                continue;
            // Elements aligned with this one on that side keep in line.
            QList<QCPLayoutElement*> group{f.element};
            if (QCPMarginGroup* g = f.element->marginGroup(side))
                group = g->elements(side);
            for (QCPLayoutElement* el : group) {
                QMargins m = el->minimumMargins();
                if (QCP::getMarginValue(m, side) < want) {
                    QCP::setMarginValue(m, side, want);
                    el->setMinimumMargins(m);
                    changed = true;
                }
            }
        }
    }
    return changed;
}

void ExportScope::Private::fit()
{
    const int u = unit();
    const double gap = 0.4 * u; // between a tick label and the next element
    // Between neighbouring tick labels: a space's width side by side; one above another a point, as
    // their boxes hold the font's leading already.
    const double tickGap = 0.4 * u, rowGap = std::max(1.0, 0.15 * u);
    for (int pass = 0; pass < 24; ++pass) {
        PlotAccess::layoutAt(plot, size);
        bool changed = false;
        // Legends: as many entries a row as fit (above the plot: its width; inside: part of the data
        // area, so that most of the data stays in view).
        for (const LegendHome& h : legendHomes) {
            if (!h.legend || !h.rect || !h.legend->visible() || style.legend == LegendPlace::Hidden)
                continue;
            const int width = h.inRow ? size.width() : int(0.6 * h.rect->width());
            const int perRow = entriesPerRow(h.legend, width);
            if (perRow != h.legend->wrap()) {
                repack(h.legend, QCPLayoutGrid::foColumnsFirst, perRow);
                changed = true;
            }
        }
        if (style.paper && separateTexts())
            changed = true;
        if (style.paper && fitMargins(gap))
            changed = true;
        if (changed)
            continue;
        // Once the rest has settled (a squeezed first layout would thin the ticks too much): fewer
        // ticks on an axis whose labels touch.
        forEachAxis(plot, [&](QCPAxis* a) {
            auto uniform = a->ticker().dynamicCast<UniformTicker>();
            if (!uniform || !labelsOverlap(a, a->orientation() == Qt::Horizontal ? tickGap : rowGap))
                return;
            QSharedPointer<QCPAxisTicker> inner = uniform->inner();
            if (inner->tickCount() > 1) {
                inner->setTickCount(inner->tickCount() - 1);
                changed = true;
            }
        });
        if (!changed)
            break;
    }
    if (!style.paper)
        return;
    // The margins grew with the layouts on the way, some of which had more ticks or a squeezed plot:
    // fit them again from none to the final ticks.
    for (const Framed& f : framedElements(plot))
        f.element->setMinimumMargins(QMargins());
    for (int pass = 0; pass < 16; ++pass) {
        PlotAccess::layoutAt(plot, size);
        const bool grew = fitMargins(gap);
        if (!separateTexts() && !grew)
            break;
    }
}

void ExportScope::Private::restorePlot()
{
    if (!plot)
        return;
    for (const LegendHome& h : legendHomes) {
        if (!h.legend)
            continue;
        if (h.inRow && h.rect) {
            plot->plotLayout()->take(h.legend);
            plot->plotLayout()->simplify();
            h.rect->insetLayout()->addElement(h.legend, h.alignment);
        }
        unwrapLayout();
        if (h.rect) {
            QCPLayoutInset* inset = h.rect->insetLayout();
            inset->setMargins(h.insetMargins);
            for (int i = 0; i < inset->elementCount(); ++i)
                if (inset->elementAt(i) == h.legend) {
                    inset->setInsetPlacement(i, h.placement);
                    inset->setInsetAlignment(i, h.alignment);
                    inset->setInsetRect(i, h.insetRect);
                }
        }
        h.legend->setVisible(h.visible);
    }
    if (style.paper) {
        plot->plotLayout()->setRowSpacing(rowSpacing);
        plot->plotLayout()->setColumnSpacing(columnSpacing);
    }
    for (const auto& b : barWidths)
        if (b.first)
            b.first->setBarWidth(b.second);
    for (const auto& m : minimumSizes)
        if (m.first)
            m.first->setMinimumSize(m.second);
    for (const TextPlace& t : texts)
        if (t.item) {
            t.item->position->setCoords(t.coords);
            t.item->setBrush(t.brush);
        }
    for (const AxisTicks& t : ticks)
        if (t.axis) {
            t.axis->setTicker(t.ticker);
            t.axis->setNumberFormat(t.numberFormat);
        }
    for (const auto& c : tickCounts)
        c.first->setTickCount(c.second);
    snapshot.reset();
    forgetScaleMargins(plot);
    if (cursorLayer)
        cursorLayer->setVisible(cursorVisible);
    plot->replot(QCustomPlot::rpQueuedReplot);
}

ExportScope::ExportScope(TraceView* view, const ExportStyle& style) : d(std::make_unique<Private>())
{
    d->style = style;
    d->plot = view->plot();
    d->size = style.paper ? paperSize(style) : d->plot->size();
    d->applyView(view);
    d->applyPlot();
}

ExportScope::ExportScope(QCustomPlot* plot, const ExportStyle& style) : d(std::make_unique<Private>())
{
    d->style = style;
    d->plot = plot;
    d->size = style.paper ? paperSize(style) : plot->size();
    d->applyPlot();
}

ExportScope::~ExportScope()
{
    d->restorePlot();
    d->restoreView();
}

QSize ExportScope::size() const
{
    return d->size;
}

void ExportScope::layout()
{
    PlotAccess::layoutAt(d->plot, d->size);
}

QImage ExportScope::render(double scale)
{
    return d->plot->toPixmap(d->size.width(), d->size.height(), scale).toImage();
}

namespace {

bool setError(QString* error, const QString& msg)
{
    if (error)
        *error = msg;
    return false;
}

bool checkWritten(const QString& path, QString* error)
{
    const QFileInfo fi(path);
    if (!fi.exists() || fi.size() == 0)
        return setError(error, QObject::tr("%1: could not write the file").arg(path));
    return true;
}

} // namespace

ExportStyle ExportStyle::screen()
{
    return ExportStyle{};
}

ExportStyle ExportStyle::paperPreset()
{
    ExportStyle s;
    s.paper = true;
    s.widthMm = 89;
    s.heightMm = 60;
    s.fontPt = 7;
    s.lineWidth = 0.8;
    s.dpi = 300;
    s.legend = LegendPlace::OutsideTop;
    // Collapse shows over decades of positions, and a long run's per-token NLL is a band that hides
    // its average.
    s.logX = true;
    s.tokenNll = false;
    return s;
}

ExportStyle ExportStyle::paperWidePreset()
{
    ExportStyle s = paperPreset();
    s.widthMm = 183;
    s.heightMm = 70;
    return s;
}

QString ExportStyle::shortLabel(const QString& label)
{
    // Run files are named <model>-yyyyMMdd-HHmmss[-N] (Resources' newTracePath).
    static const QRegularExpression stamp(QStringLiteral("-\\d{8}-\\d{6}(-\\d+)?(?=$|\\s)"));
    QString s = label;
    s.remove(stamp);
    s = s.trimmed();
    return s.isEmpty() ? label : s;
}

bool PlotExporter::formatFromPath(const QString& path, ExportFormat* format)
{
    const QString suffix = QFileInfo(path).suffix().toLower();
    ExportFormat f;
    if (suffix == QLatin1String("png"))
        f = ExportFormat::Png;
    else if (suffix == QLatin1String("svg"))
        f = ExportFormat::Svg;
    else if (suffix == QLatin1String("pdf"))
        f = ExportFormat::Pdf;
    else if (suffix == QLatin1String("csv"))
        f = ExportFormat::Csv;
    else
        return false;
    if (format)
        *format = f;
    return true;
}

namespace {

// The writers draw the plot as it is, at size (layout units); an ExportScope has set it up.
bool writePng(QCustomPlot* plot, const QString& path, const ExportStyle& style, QSize size, QString* error)
{
    // Paper: layout in points, rendered at dpi.
    const bool ok = style.paper
                        ? plot->savePng(path, size.width(), size.height(), style.dpi / 72.0, -1, style.dpi)
                        : plot->savePng(path, size.width(), size.height(), 1.0);
    if (!ok)
        return setError(error, QObject::tr("%1: could not write the PNG file").arg(path));
    return checkWritten(path, error);
}

bool writeSvg(QCustomPlot* plot, const QString& path, const ExportStyle& style, QSize size, QString* error)
{
    QFile probe(path);
    if (!probe.open(QIODevice::WriteOnly))
        return setError(error, QObject::tr("%1: %2").arg(path, probe.errorString()));
    probe.close();
    // Paper: one unit = one point, so that the SVG's size in mm is the requested one.
    const int resolution = style.paper ? 72 : plot->logicalDpiX() > 0 ? plot->logicalDpiX() : 96;
    if (size.width() < 2 || size.height() < 2)
        size = QSize(800, 500);
    QSvgGenerator gen;
    gen.setFileName(path);
    gen.setSize(size);
    gen.setViewBox(QRect(QPoint(0, 0), size));
    gen.setResolution(resolution);
    gen.setTitle(QStringLiteral("StateScope plot"));
    gen.setDescription(QStringLiteral("Exported by StateScope"));
    QCPPainter painter;
    if (!painter.begin(&gen))
        return setError(error, QObject::tr("%1: could not start the SVG file").arg(path));
    plot->toPainter(&painter, size.width(), size.height());
    painter.end();
    return checkWritten(path, error);
}

bool writePdf(QCustomPlot* plot, const QString& path, const ExportStyle& style, QSize size, QString* error)
{
    const bool ok =
        plot->savePdf(path, size.width(), size.height(),
                      style.paper ? QCP::epNoCosmetic : QCP::epAllowCosmetic, QStringLiteral("StateScope"));
    if (!ok)
        return setError(error, QObject::tr("%1: could not write the PDF file").arg(path));
    return checkWritten(path, error);
}

} // namespace

bool PlotExporter::savePng(QCustomPlot* plot, const QString& path, const ExportStyle& style, QString* error)
{
    if (!plot)
        return setError(error, QObject::tr("no plot to export"));
    ExportScope scope(plot, style);
    return writePng(plot, path, style, scope.size(), error);
}

bool PlotExporter::saveSvg(QCustomPlot* plot, const QString& path, const ExportStyle& style, QString* error)
{
    if (!plot)
        return setError(error, QObject::tr("no plot to export"));
    ExportScope scope(plot, style);
    return writeSvg(plot, path, style, scope.size(), error);
}

bool PlotExporter::savePdf(QCustomPlot* plot, const QString& path, const ExportStyle& style, QString* error)
{
    if (!plot)
        return setError(error, QObject::tr("no plot to export"));
    ExportScope scope(plot, style);
    return writePdf(plot, path, style, scope.size(), error);
}

bool PlotExporter::save(TraceView* view, const QString& path, const ExportStyle& style, QString* error)
{
    if (!view)
        return setError(error, QObject::tr("no view to export"));
    ExportFormat format;
    if (!formatFromPath(path, &format))
        return setError(error,
                        QObject::tr("%1: unknown export format (use .png, .svg, .pdf or .csv)").arg(path));
    if (format == ExportFormat::Csv)
        return saveCsv(view, path, error);
    ExportScope scope(view, style);
    switch (format) {
    case ExportFormat::Png:
        return writePng(view->plot(), path, style, scope.size(), error);
    case ExportFormat::Svg:
        return writeSvg(view->plot(), path, style, scope.size(), error);
    case ExportFormat::Pdf:
        return writePdf(view->plot(), path, style, scope.size(), error);
    case ExportFormat::Csv:
        break;
    }
    return false;
}

bool PlotExporter::saveCsv(TraceView* view, const QString& path, QString* error, qint64* rows)
{
    if (!view || !view->trace())
        return setError(error, QObject::tr("no trace to export"));
    const QVector<CsvColumn> columns = view->csvColumns();
    const auto [begin, end] = view->visibleTokens();
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Text))
        return setError(error, QObject::tr("%1: %2").arg(path, file.errorString()));
    QTextStream out(&file);
    out << "token";
    for (const CsvColumn& c : columns) {
        QString name = c.name;
        name.replace(QLatin1Char('"'), QLatin1String("\"\""));
        out << ',' << (name.contains(QLatin1Char(',')) ? QLatin1Char('"') + name + QLatin1Char('"') : name);
    }
    out << '\n';
    for (qint64 t = begin; t < end; ++t) {
        out << t;
        for (const CsvColumn& c : columns) {
            const double v = c.value(t);
            out << ',';
            if (std::isfinite(v))
                out << QString::number(v, 'g', 8);
        }
        out << '\n';
    }
    out.flush();
    if (!file.commit())
        return setError(error, QObject::tr("%1: %2").arg(path, file.errorString()));
    if (rows)
        *rows = end - begin;
    return true;
}

QVector<QRectF> PlotExporter::tickLabelRects(QCPAxis* axis)
{
    QVector<QRectF> out;
    if (!axis || !axis->visible() || !axis->tickLabels() || !axis->axisRect())
        return out;
    const QVector<double> ticks = axis->tickVector();
    const QVector<QString> labels = axis->tickVectorLabels();
    const QFont font = axis->tickLabelFont();
    // As QCustomPlot draws a power: "10" or "m·10", then the exponent at three quarters of the size.
    QFont expFont = font;
    if (font.pointSize() > 0)
        expFont.setPointSize(int(font.pointSize() * 0.75));
    else
        expFont.setPixelSize(int(font.pixelSize() * 0.75));
    const QFontMetrics fm(font), em(expFont);
    const bool powers = axis->numberFormat().contains(QLatin1Char('b'));
    const QString exponential = axis->parentPlot()->locale().exponential();
    const QRect r = axis->axisRect()->rect();
    const int distance = axis->offset() +
                         std::max(0, std::max(axis->tickLengthOut(), axis->subTickLengthOut())) +
                         axis->tickLabelPadding();
    for (int i = 0; i < ticks.size() && i < labels.size(); ++i) {
        const QString& text = labels[i];
        QSize size;
        const int e = powers ? int(text.indexOf(exponential)) : -1;
        if (e > 0 && text.at(e - 1).isDigit()) {
            QString base = text.left(e);
            base = axis->scaleType() == QCPAxis::stLogarithmic && base == QLatin1String("1")
                       ? QStringLiteral("10")
                       : base + QChar(0x00B7) + QStringLiteral("10");
            QString exp = text.mid(e + exponential.size());
            if (exp.startsWith(QLatin1Char('+')))
                exp.remove(0, 1);
            const QRect b = fm.boundingRect(0, 0, 0, 0, Qt::TextDontClip, base);
            const QRect x = em.boundingRect(0, 0, 0, 0, Qt::TextDontClip, exp);
            size = QSize(b.width() + x.width() + 2, b.height());
        } else {
            size = fm.boundingRect(0, 0, 0, 0, Qt::TextDontClip, text).size();
        }
        const double p = axis->coordToPixel(ticks[i]);
        const double w = size.width(), h = size.height();
        switch (axis->axisType()) {
        case QCPAxis::atBottom:
            out.push_back(QRectF(p - w / 2, r.bottom() + distance, w, h));
            break;
        case QCPAxis::atTop:
            out.push_back(QRectF(p - w / 2, r.top() - distance - h, w, h));
            break;
        case QCPAxis::atLeft:
            out.push_back(QRectF(r.left() - distance - w, p - h / 2, w, h));
            break;
        case QCPAxis::atRight:
            out.push_back(QRectF(r.right() + distance, p - h / 2, w, h));
            break;
        }
    }
    return out;
}

void PlotExporter::applyTheme(QCustomPlot* plot, bool dark)
{
    if (!plot)
        return;
    plot->setProperty(kDarkProperty, dark);
    const QColor bg = dark ? QColor(30, 31, 34) : QColor(Qt::white);
    const QColor fg = dark ? QColor(220, 220, 220) : QColor(30, 30, 30);
    const QColor grid = dark ? QColor(70, 72, 78) : QColor(222, 222, 222);
    const QColor subGrid = dark ? QColor(50, 52, 56) : QColor(240, 240, 240);
    plot->setBackground(QBrush(bg));
    forEachAxis(plot, [&](QCPAxis* a) {
        auto recolor = [&](QPen p, const QColor& c) {
            p.setColor(c);
            return p;
        };
        a->setBasePen(recolor(a->basePen(), fg));
        a->setTickPen(recolor(a->tickPen(), fg));
        a->setSubTickPen(recolor(a->subTickPen(), fg));
        a->setTickLabelColor(fg);
        a->setLabelColor(fg);
        a->grid()->setPen(QPen(grid, a->grid()->pen().widthF(), Qt::SolidLine));
        a->grid()->setSubGridPen(QPen(subGrid, a->grid()->subGridPen().widthF(), Qt::DotLine));
        a->grid()->setZeroLinePen(Qt::NoPen);
    });
    for (QCPLayoutElement* el : plot->plotLayout()->elements(true)) {
        if (auto* rect = qobject_cast<QCPAxisRect*>(el))
            rect->setBackground(QBrush(bg));
        else if (auto* t = qobject_cast<QCPTextElement*>(el))
            t->setTextColor(fg);
    }
    for (QCPLegend* l : legends(plot)) {
        l->setBrush(QBrush(dark ? QColor(40, 42, 46, 230) : QColor(255, 255, 255, 230)));
        l->setBorderPen(QPen(dark ? QColor(90, 90, 90) : QColor(180, 180, 180)));
        l->setTextColor(fg);
    }
}

QColor PlotExporter::seriesColor(int i, int n, bool dark)
{
    // Tableau 10 for few series; evenly spaced hues beyond.
    static const QRgb tab10[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
    QColor c;
    if (n <= 10)
        c = QColor(tab10[std::max(0, i) % 10]);
    else
        c = QColor::fromHsvF(std::fmod(0.61803398875 * i, 1.0), 0.65, 0.85);
    return dark ? c.lighter(125) : c;
}

QColor PlotExporter::blend(const QColor& a, const QColor& b, double f)
{
    auto mix = [f](double x, double y) { return x * (1 - f) + y * f; };
    return QColor::fromRgbF(float(mix(a.redF(), b.redF())), float(mix(a.greenF(), b.greenF())),
                            float(mix(a.blueF(), b.blueF())));
}

QColor PlotExporter::traceColor(int trace, bool dark)
{
    // Blue, then orange (the first comparison, as before), then the rest of a colour-blind-safe
    // qualitative palette (Okabe-Ito), then around again.
    static const QColor kPalette[] = {QColor(31, 119, 180),  QColor(230, 85, 13),  QColor(0, 158, 115),
                                      QColor(204, 121, 167), QColor(86, 180, 233), QColor(213, 94, 0),
                                      QColor(0, 114, 178),   QColor(230, 159, 0)};
    constexpr int n = int(sizeof kPalette / sizeof kPalette[0]);
    const QColor c = kPalette[((trace % n) + n) % n];
    return dark ? c.lighter(140) : c;
}

} // namespace statescope
