#include "PlotExporter.h"

#include "TraceView.h"

#include <QFile>
#include <QFileInfo>
#include <QSaveFile>
#include <QSvgGenerator>
#include <QTextStream>

#include <qcustomplot.h>

#include <cmath>
#include <functional>

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
        if (auto* l = qobject_cast<QCPLegend*>(el))
            out.push_back(l);
        for (QCPLayoutElement* c : el->elements(false))
            walk(c);
        if (auto* rect = qobject_cast<QCPAxisRect*>(el))
            if (rect->insetLayout())
                walk(rect->insetLayout());
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

// Everything a paper export changes, so that the screen look comes back afterwards.
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
            m_legends.push_back({l, l->font(), l->borderPen(), l->iconSize(), l->fillOrder(), l->wrap(),
                                 l->margins(), l->rowSpacing(), l->columnSpacing(), l->iconTextPadding(),
                                 itemMargins});
        }
        for (int i = 0; i < plot->itemCount(); ++i)
            if (auto* t = qobject_cast<QCPItemText*>(plot->item(i)))
                m_texts.push_back({t, t->font()});
        for (QCPLayoutElement* el : plot->plotLayout()->elements(true)) {
            if (auto* t = qobject_cast<QCPTextElement*>(el))
                m_titles.push_back({t, t->font()});
            if (auto* r = qobject_cast<QCPAxisRect*>(el))
                m_rects.push_back({r, r->minimumMargins()});
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
        // Margins widened to line up with other views on screen are in screen pixels: drop them.
        // Room for the top tick label and the last x tick label, which QCustomPlot lets overhang.
        for (const auto& r : m_rects)
            if (r.rect)
                r.rect->setMinimumMargins(QMargins(0, px, px, 0));
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
        // As many legend entries per row as fit in the figure's width.
        for (const auto& l : m_legends) {
            if (!l.legend)
                continue;
            const QList<QCPAbstractLegendItem*> items = legendItems(l.legend);
            if (items.size() < 2)
                continue;
            int itemWidth = 1;
            for (QCPAbstractLegendItem* item : items)
                itemWidth = std::max(itemWidth, item->minimumOuterSizeHint().width());
            const double available = 0.8 * mmToPt(s.widthMm) - px;
            const int perRow = std::clamp(int(available / (itemWidth + px)), 1, int(items.size()));
            repack(l.legend, QCPLayoutGrid::foColumnsFirst, perRow);
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
        for (const auto& r : m_rects)
            if (r.rect)
                r.rect->setMinimumMargins(r.margins);
        PlotExporter::applyTheme(m_plot, m_dark);
        m_plot->replot(QCustomPlot::rpQueuedReplot);
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
    struct RectStyle {
        QPointer<QCPAxisRect> rect;
        QMargins margins;
    };
    QCustomPlot* m_plot;
    QList<AxisStyle> m_axes;
    QList<PlottableStyle> m_plottables;
    QList<LegendStyle> m_legends;
    QList<TextStyle> m_texts;
    QList<TitleStyle> m_titles;
    QList<RectStyle> m_rects;
    bool m_dark = false;
};

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

QSize paperSize(const ExportStyle& s)
{
    return QSize(int(std::lround(mmToPt(s.widthMm))), int(std::lround(mmToPt(s.heightMm))));
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
    return s;
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

bool PlotExporter::savePng(QCustomPlot* plot, const QString& path, const ExportStyle& style, QString* error)
{
    if (!plot)
        return setError(error, QObject::tr("no plot to export"));
    bool ok;
    if (style.paper) {
        StyleSnapshot snap(plot);
        snap.applyPaper(style);
        const QSize s = paperSize(style);
        // Layout in points, rendered at dpi.
        ok = plot->savePng(path, s.width(), s.height(), style.dpi / 72.0, -1, style.dpi);
    } else {
        ok = plot->savePng(path, 0, 0, 1.0);
    }
    if (!ok)
        return setError(error, QObject::tr("%1: could not write the PNG file").arg(path));
    return checkWritten(path, error);
}

bool PlotExporter::saveSvg(QCustomPlot* plot, const QString& path, const ExportStyle& style, QString* error)
{
    if (!plot)
        return setError(error, QObject::tr("no plot to export"));
    QFile probe(path);
    if (!probe.open(QIODevice::WriteOnly))
        return setError(error, QObject::tr("%1: %2").arg(path, probe.errorString()));
    probe.close();

    std::unique_ptr<StyleSnapshot> snap;
    QSize size = plot->size();
    int resolution = plot->logicalDpiX() > 0 ? plot->logicalDpiX() : 96;
    if (style.paper) {
        snap = std::make_unique<StyleSnapshot>(plot);
        snap->applyPaper(style);
        size = paperSize(style);
        resolution = 72; // one unit = one point, so the SVG's size in mm is the requested one
    }
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

bool PlotExporter::savePdf(QCustomPlot* plot, const QString& path, const ExportStyle& style, QString* error)
{
    if (!plot)
        return setError(error, QObject::tr("no plot to export"));
    bool ok;
    if (style.paper) {
        StyleSnapshot snap(plot);
        snap.applyPaper(style);
        const QSize s = paperSize(style);
        ok = plot->savePdf(path, s.width(), s.height(), QCP::epNoCosmetic, QStringLiteral("StateScope"));
    } else {
        ok = plot->savePdf(path, 0, 0, QCP::epAllowCosmetic, QStringLiteral("StateScope"));
    }
    if (!ok)
        return setError(error, QObject::tr("%1: could not write the PDF file").arg(path));
    return checkWritten(path, error);
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
    // Views colour their plottables for their theme: paper exports want the light colours.
    const bool wasDark = view->darkTheme();
    const bool wantDark = style.paper ? style.dark : wasDark;
    if (wantDark != wasDark)
        view->setDarkTheme(wantDark);
    view->refresh();
    bool ok = false;
    switch (format) {
    case ExportFormat::Png:
        ok = savePng(view->plot(), path, style, error);
        break;
    case ExportFormat::Svg:
        ok = saveSvg(view->plot(), path, style, error);
        break;
    case ExportFormat::Pdf:
        ok = savePdf(view->plot(), path, style, error);
        break;
    case ExportFormat::Csv:
        break;
    }
    if (wantDark != wasDark)
        view->setDarkTheme(wasDark);
    return ok;
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
    QColor c = trace == 0 ? QColor(31, 119, 180) : QColor(230, 85, 13);
    return dark ? c.lighter(140) : c;
}

} // namespace statescope
