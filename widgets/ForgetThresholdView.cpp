#include "ForgetThresholdView.h"

#include "PlotExporter.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace statescope {

namespace {

// Marker sizes in pixels where the seeds' dots have room; fitMarkers shrinks them where they have not.
constexpr double kForgetMarker = 8, kCollapseMarker = 9, kSeedThresholdMarker = 6;

// N_S in millions with two significant digits at least: "1.08", "0.54", but "0.0057" and "0.0099"
// for the micro sizes a CPU sweep trains, which two decimals would print alike as "0.01".
QString millions(double stateSize)
{
    const double m = stateSize / 1e6;
    const int decimals = m > 0 ? std::max(2, 1 - static_cast<int>(std::floor(std::log10(m)))) : 2;
    return QString::number(m, 'f', decimals);
}

// "heading: a; b" on one line where that is short enough, else the items on lines of their own
// below the heading: the exported figure is narrow, and a longer line runs off its right edge.
QStringList headingLines(const QString& heading, const QStringList& items)
{
    constexpr int kMaxLine = 58;
    const QString oneLine = heading + QStringLiteral(": ") + items.join(QStringLiteral("; "));
    if (oneLine.size() <= kMaxLine)
        return {oneLine};
    QStringList lines{heading + QLatin1Char(':')};
    for (const QString& item : items) {
        if (lines.size() > 1 && lines.last().size() + 2 + item.size() <= kMaxLine)
            lines.last() += QStringLiteral("; ") + item;
        else
            lines.push_back(QStringLiteral("  ") + item);
    }
    return lines;
}

bool readJson(const QString& path, QJsonObject* out, QString* error)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        *error = QObject::tr("%1: cannot open the file (%2)").arg(path, f.errorString());
        return false;
    }
    QJsonParseError pe;
    const QJsonDocument doc = QJsonDocument::fromJson(f.readAll(), &pe);
    if (pe.error != QJsonParseError::NoError || !doc.isObject()) {
        *error = QObject::tr("%1: not a JSON object (%2)").arg(path, pe.errorString());
        return false;
    }
    *out = doc.object();
    return true;
}

} // namespace

bool ForgetThresholdData::fromSummary(const QString& path, ForgetThresholdData* data, QString* error)
{
    QJsonObject j;
    if (!readJson(path, &j, error))
        return false;
    if (!j.value("runs").isArray() || !j.value("sizes").isArray()) {
        *error = QObject::tr("%1: runs: expected a sweep summary (statescope-cli sweep report), got none")
                     .arg(path);
        return false;
    }
    ForgetThresholdData d;
    d.name = j.value("name").toString();
    const bool reportedProvisional = j.value("provisional").toBool();
    bool thresholdFromSomeSeeds = false;
    const QJsonObject c = j.value("criterion").toObject();
    d.criterion = c.value("kind").toString() == "paper"
                      ? QObject::tr("forgets: last bucket < %1 × the worst inside T_train")
                            .arg(c.value("factor").toDouble())
                      : QObject::tr("forgets: NLL[%1T, %2T) ≤ %3 × NLL[T/2, T)")
                            .arg(c.value("from").toDouble())
                            .arg(c.value("to").toDouble())
                            .arg(c.value("threshold").toDouble());
    if (c.value("max_norm_growth").toDouble() > 0)
        d.criterion += QObject::tr(", |S| growth ≤ %1×").arg(c.value("max_norm_growth").toDouble());
    const QDir folder = QFileInfo(path).absoluteDir();
    // The seeds in the order the runs (every planned job, finished or not) name them.
    QVector<qint64> seeds;
    for (const QJsonValue& v : j.value("runs").toArray()) {
        const qint64 seed = static_cast<qint64>(v.toObject().value("seed").toDouble());
        if (!seeds.contains(seed))
            seeds.push_back(seed);
    }
    d.seedCount = std::max<int>(1, seeds.size());
    for (const QJsonValue& v : j.value("runs").toArray()) {
        const QJsonObject r = v.toObject();
        ++d.plannedRuns;
        if (!r.value("finished").toBool())
            continue;
        ++d.finishedRuns;
        ForgetThresholdRun run;
        run.id = r.value("id").toString();
        run.stateSize = r.value("state_size").toDouble();
        run.trainLength = r.value("train_length").toDouble();
        run.forgets = r.value("forgets").toBool();
        run.score = r.value("score").toDouble();
        run.reason = r.value("reason").toString();
        run.seed = static_cast<qint64>(r.value("seed").toDouble());
        run.seedIndex = std::max<int>(0, seeds.indexOf(run.seed));
        for (const QJsonValue& domain : r.value("domains").toArray()) {
            const QJsonValue slowest = domain.toObject().value("half_life").toObject().value("max");
            if (slowest.isDouble()) // null: a head that does not decay, or none measured
                run.slowestHalfLife = std::max(run.slowestHalfLife, slowest.toDouble());
        }
        if (r.contains("eval"))
            run.evalPath = folder.absoluteFilePath(r.value("eval").toString());
        run.source = r.value("source").toString();
        if (!(run.stateSize > 0 && run.trainLength > 0)) {
            *error =
                QObject::tr("%1: run %2: expected a positive state_size and train_length").arg(path, run.id);
            return false;
        }
        d.runs.push_back(run);
    }
    for (const QJsonValue& v : j.value("sizes").toArray()) {
        const QJsonObject s = v.toObject();
        if (s.value("t_forget").toDouble() > 0) {
            // The report lists the sizes by N_S (the spec's values, sorted).
            if (!d.sizeThreshold.isEmpty() && s.value("t_forget").toDouble() < d.sizeThreshold.last())
                d.fallsWithStateSize.push_back(
                    QObject::tr("N_S %1 → %2 M")
                        .arg(millions(d.sizeStateSize.last()), millions(s.value("state_size").toDouble())));
            d.sizeStateSize.push_back(s.value("state_size").toDouble());
            d.sizeThreshold.push_back(s.value("t_forget").toDouble());
        }
        if (!s.value("seeds_agree").toBool(true))
            d.seedsDisagree.push_back(
                QObject::tr("N_S %1 M").arg(millions(s.value("state_size").toDouble())));
        for (const QJsonValue& sv : s.value("seeds").toArray()) {
            const QJsonObject f = sv.toObject();
            // --provisional gives such a size the threshold of its other seeds.
            if (s.value("t_forget").toDouble() > 0 &&
                !(f.value("inside").toBool() && f.value("monotone").toBool(true)))
                thresholdFromSomeSeeds = true;
            if (!f.value("monotone").toBool(true)) {
                d.notMonotone.push_back(QObject::tr("N_S %1 M, seed %2")
                                            .arg(millions(s.value("state_size").toDouble()))
                                            .arg(static_cast<qint64>(f.value("seed").toDouble())));
                continue;
            }
            if (f.value("inside").toBool() && f.value("interpolated").toDouble() > 0)
                d.seedThresholds.push_back(
                    {s.value("state_size").toDouble(), f.value("interpolated").toDouble(),
                     std::max<int>(0, seeds.indexOf(static_cast<qint64>(f.value("seed").toDouble())))});
        }
    }
    // --provisional on a finished sweep whose every size has all its seeds' thresholds changes
    // nothing, and the figure should not call it unfinished.
    d.provisional = reportedProvisional && (d.finishedRuns < d.plannedRuns || thresholdFromSomeSeeds);
    const QJsonArray texts = j.value("training_texts").toArray();
    if (texts.size() > 1)
        for (const QJsonValue& v : texts) {
            const QJsonObject t = v.toObject();
            const QString text = t.value("data").toString();
            d.trainingTexts.push_back(text.isEmpty() ? QObject::tr("not recorded") : text);
            d.trainingTextJobs.push_back(t.value("jobs").toInt());
        }
    if (j.value("fit").isObject()) {
        const QJsonObject f = j.value("fit").toObject();
        d.hasFit = true;
        d.slope = f.value("slope").toDouble();
        d.intercept = f.value("intercept").toDouble();
        d.r2 = f.value("r2").toDouble();
        const QJsonArray ci = f.value("slope_ci95").toArray();
        d.hasSlopeInterval = ci.size() == 2 && ci.at(0).isDouble() && ci.at(1).isDouble();
        d.slopeLow = ci.at(0).toDouble();
        d.slopeHigh = ci.at(1).toDouble();
    }
    *data = d;
    return true;
}

bool readEvalCurves(const QString& jobJson, QVector<EvalCurve>* curves, qint64* trainLength, QString* error)
{
    QJsonObject j;
    if (!readJson(jobJson, &j, error))
        return false;
    curves->clear();
    for (const QJsonValue& v : j.value("evals").toArray()) {
        const QJsonObject e = v.toObject();
        EvalCurve c;
        c.domain = e.value("domain").toString();
        const double grain = e.value("grain").toDouble();
        *trainLength = static_cast<qint64>(e.value("training_length").toDouble());
        const QJsonArray nll = e.value("nll").toArray();
        for (int i = 0; i < nll.size(); ++i)
            if (nll[i].isDouble() && i > 0) { // bucket 0 holds the cold start's first tokens
                c.position.push_back(i * grain);
                c.nll.push_back(nll[i].toDouble());
            }
        if (!(grain > 0) || c.position.isEmpty()) {
            *error =
                QObject::tr("%1: evals: expected bucketed NLL curves (sweep run), got none").arg(jobJson);
            return false;
        }
        curves->push_back(c);
    }
    if (curves->isEmpty()) {
        *error = QObject::tr("%1: evals: expected at least one held-out text, got none").arg(jobJson);
        return false;
    }
    return true;
}

ForgetThresholdView::ForgetThresholdView(QWidget* parent) : QWidget(parent), m_plot(new QCustomPlot(this))
{
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_hint = new QLabel(tr("Click a run's dot to see its loss against position."), this);
    layout->addWidget(m_plot, 1);
    layout->addWidget(m_hint);

    m_mainRect = m_plot->axisRect();
    // In the layout only while a run is shown, so that a figure of the dots alone has no empty plot.
    m_curveRect = new QCPAxisRect(m_plot);
    m_plot->plotLayout()->addElement(1, 0, m_curveRect);
    m_plot->plotLayout()->setRowStretchFactors({3, 2});

    auto logAxis = [](QCPAxis* axis) {
        axis->setScaleType(QCPAxis::stLogarithmic);
        QSharedPointer<QCPAxisTickerLog> ticker(new QCPAxisTickerLog);
        ticker->setLogBase(2);
        ticker->setSubTickCount(1);
        axis->setTicker(ticker);
    };
    QCPAxis* x = m_mainRect->axis(QCPAxis::atBottom);
    QCPAxis* y = m_mainRect->axis(QCPAxis::atLeft);
    x->setLabel(tr("state size N_S (M elements)"));
    y->setLabel(tr("T_train (K = 1024 tokens)"));
    logAxis(y);
    y->setNumberFormat("g");
    y->setNumberPrecision(4);

    auto graph = [&](const QString& name, const QColor& color, QCPScatterStyle::ScatterShape shape,
                     double size) {
        QCPGraph* g = m_plot->addGraph(x, y);
        g->setName(name);
        g->setLineStyle(QCPGraph::lsNone);
        g->setScatterStyle(
            QCPScatterStyle(shape, color, shape == QCPScatterStyle::ssDisc ? color : Qt::white, size));
        return g;
    };
    m_forgets = graph(tr("forgets"), QColor(26, 150, 65), QCPScatterStyle::ssDisc, kForgetMarker);
    m_collapses = graph(tr("collapses"), QColor(215, 48, 39), QCPScatterStyle::ssCross, kCollapseMarker);
    m_thresholds = graph(tr("T_forget (interpolated)"), QColor(40, 40, 40), QCPScatterStyle::ssDiamond, 9);
    m_seedThresholds = graph(tr("T_forget of one seed"), QColor(110, 110, 110), QCPScatterStyle::ssDiamond,
                             kSeedThresholdMarker);
    m_fit = m_plot->addGraph(x, y);
    m_fit->setName(tr("fit"));
    m_fit->setPen(QPen(QColor(33, 102, 172), 2));
    m_paper = m_plot->addGraph(x, y);
    m_paper->setName(tr("paper: 5.172·N_S − 4.469"));
    m_paper->setPen(QPen(QColor(120, 120, 120), 1.5, Qt::DashLine));
    m_equation = new QCPItemText(m_plot);
    m_equation->setClipAxisRect(m_mainRect);
    m_equation->position->setAxisRect(m_mainRect);
    m_equation->position->setType(QCPItemPosition::ptAxisRectRatio);
    m_equation->position->setCoords(0.02, 0.04);
    m_equation->setPositionAlignment(Qt::AlignLeft | Qt::AlignTop);
    m_equation->setTextAlignment(Qt::AlignLeft);
    m_plot->legend->setVisible(true);
    m_mainRect->insetLayout()->setInsetAlignment(0, Qt::AlignBottom | Qt::AlignRight);

    QCPAxis* cx = m_curveRect->axis(QCPAxis::atBottom);
    QCPAxis* cy = m_curveRect->axis(QCPAxis::atLeft);
    logAxis(cx);
    cx->setNumberFormat("g");
    cx->setNumberPrecision(6);
    cx->setLabel(tr("position (tokens)"));
    cy->setLabel(tr("mean NLL (nats)"));
    m_curveTitle = new QCPItemText(m_plot);
    m_curveTitle->setClipAxisRect(m_curveRect);
    m_curveTitle->position->setAxisRect(m_curveRect);
    m_curveTitle->position->setType(QCPItemPosition::ptAxisRectRatio);
    m_curveTitle->position->setCoords(0.02, 0.04);
    m_curveTitle->setPositionAlignment(Qt::AlignLeft | Qt::AlignTop);
    m_curveTitle->setText(tr("no run selected"));
    // The curves pass under the title: a veil keeps it legible without hiding them.
    m_curveTitle->setBrush(QColor(255, 255, 255, 210));
    m_curveLegend = new QCPLegend;
    m_curveRect->insetLayout()->addElement(m_curveLegend, Qt::AlignTop | Qt::AlignRight);
    m_curveLegend->setLayer("legend");
    m_curveLegend->setVisible(false);

    connect(m_plot, &QCustomPlot::mousePress, this, [this](QMouseEvent* e) { onPress(e->pos()); });
    connect(m_plot, &QCustomPlot::afterLayout, this, [this] {
        fitMarkers();
        if (!fitHeadroom())
            return;
        // The layout just made placed the ticks and margins for the old range: again, for this frame.
        for (auto phase :
             {QCPLayoutElement::upPreparation, QCPLayoutElement::upMargins, QCPLayoutElement::upLayout})
            m_mainRect->update(phase);
    });
    connect(m_plot, &QCustomPlot::afterReplot, this, [this] {
        if (placeLegend())
            m_plot->replot(QCustomPlot::rpQueuedReplot);
    });
    setMinimumSize(480, 420);
}

void ForgetThresholdView::setData(const ForgetThresholdData& data)
{
    m_data = data;
    m_shown = -1;
    double yMin = std::numeric_limits<double>::infinity(), yMax = 0;
    std::vector<double> sizes; // M elements, the runs' distinct state sizes
    for (const auto& r : data.runs) {
        yMin = std::min(yMin, r.trainLength / 1024.0);
        yMax = std::max(yMax, r.trainLength / 1024.0);
        if (r.stateSize > 0)
            sizes.push_back(r.stateSize / 1e6);
    }
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    const double xMax = sizes.empty() ? 1 : sizes.back(), xMin = sizes.empty() ? 1 : sizes.front();
    m_logX = xMax / xMin >= kLogStateSizeRatio;
    // The room either side of the smallest and largest size on a log axis, as a factor.
    constexpr double kLogMargin = 1.6;
    const double x0 = m_logX ? xMin / kLogMargin : 0, x1 = m_logX ? xMax * kLogMargin : xMax * 1.1;
    // Each size's seeds side by side, in a column that leaves two steps free before the next size's,
    // so that the eye can tell the columns apart; on a linear axis none left of 0.
    m_seedStep = 0;
    if (data.seedCount > 1) {
        const double n = data.seedCount + 2;
        m_seedStep = m_logX ? 0.025 * std::log(x1 / x0) : std::min(0.025 * xMax, xMin / n);
        for (size_t i = 1; i < sizes.size(); ++i)
            m_seedStep = std::min(m_seedStep, m_logX ? std::log(sizes[i] / sizes[i - 1]) / n
                                                     : (sizes[i] - sizes[i - 1]) / n);
    }
    QVector<double> fx, fy, cx, cy;
    for (const auto& r : data.runs) {
        (r.forgets ? fx : cx).push_back(seedX(r.stateSize, r.seedIndex));
        (r.forgets ? fy : cy).push_back(r.trainLength / 1024.0);
    }
    m_forgets->setData(fx, fy);
    m_collapses->setData(cx, cy);
    QVector<double> tx, ty;
    for (int i = 0; i < data.sizeStateSize.size(); ++i) {
        tx.push_back(data.sizeStateSize[i] / 1e6);
        ty.push_back(data.sizeThreshold[i] / 1024.0);
    }
    m_thresholds->setData(tx, ty);
    // One seed's threshold only means something beside the others': drawn where there are several.
    QVector<double> sx, sy;
    if (data.seedCount > 1)
        for (const auto& t : data.seedThresholds) {
            sx.push_back(seedX(t.stateSize, t.seedIndex));
            sy.push_back(t.threshold / 1024.0);
        }
    m_seedThresholds->setData(sx, sy, true);
    m_seedThresholds->removeFromLegend();
    if (!sx.isEmpty())
        m_seedThresholds->addToLegend();
    if (!(yMax > 0))
        yMin = 0.125, yMax = 64;
    QStringList aboutSeedLines;
    if (!data.notMonotone.isEmpty())
        aboutSeedLines += headingLines(tr("not monotone in T_train, no threshold"), data.notMonotone);
    if (!data.seedsDisagree.isEmpty())
        aboutSeedLines += headingLines(tr("seeds more than one grid step apart"), data.seedsDisagree);
    if (!data.fallsWithStateSize.isEmpty())
        aboutSeedLines +=
            headingLines(tr("T_forget falls as N_S grows, not monotone"), data.fallsWithStateSize);
    if (!data.trainingTexts.isEmpty()) {
        // The texts' names and hashes are too long for a heading; sweep report lists them.
        QStringList jobs;
        for (int n : data.trainingTextJobs)
            jobs.push_back(QString::number(n));
        aboutSeedLines += tr("jobs trained on %1 different texts (%2 jobs), not comparable")
                              .arg(data.trainingTexts.size())
                              .arg(jobs.join(QStringLiteral(" + ")));
    }
    const QString aboutSeeds =
        aboutSeedLines.isEmpty() ? QString() : QLatin1Char('\n') + aboutSeedLines.join(QLatin1Char('\n'));
    // Room above the highest dots for the equation, and for its lines on seeds (a factor 1.5 a line on
    // the log axis).
    const int seedLines = aboutSeedLines.size();
    const double y0 = yMin / 2, y1 = yMax * 8 * std::pow(1.5, seedLines);
    // The lines as many points: straight in N_S, curved on the log T axis (and on a log N_S one); only
    // where they are positive.
    auto line = [&](QCPGraph* g, double slope, double intercept) {
        QVector<double> lx, ly;
        for (int i = 0; i <= 200; ++i) {
            const double xs = m_logX ? x0 * std::pow(x1 / x0, i / 200.0) : x1 * i / 200.0,
                         v = slope * xs + intercept;
            if (v > 0) {
                lx.push_back(xs);
                ly.push_back(v);
            }
        }
        g->setData(lx, ly);
    };
    if (data.hasFit) {
        line(m_fit, data.slope, data.intercept);
        m_equation->setText(
            tr("%7fit: T_forget[K] = %1·N_S[M] %2 %3, R² = %4\n%5\n%6")
                .arg(data.slope, 0, 'f', 3)
                .arg(data.intercept < 0 ? "−" : "+")
                .arg(std::abs(data.intercept), 0, 'f', 3)
                .arg(data.r2, 0, 'f', 3)
                .arg(data.hasSlopeInterval ? tr("slope 95 % CI [%1, %2]")
                                                 .arg(data.slopeLow, 0, 'f', 3)
                                                 .arg(data.slopeHigh, 0, 'f', 3)
                                           : tr("slope 95 % CI: none, a line through two sizes"))
                .arg(data.criterion)
                .arg(!data.provisional ? QString()
                     : data.finishedRuns < data.plannedRuns
                         ? tr("provisional: %1 of %2 runs finished\n")
                               .arg(data.finishedRuns)
                               .arg(data.plannedRuns)
                         : tr("provisional: some sizes' T_forget from part of their seeds\n")) +
            aboutSeeds);
    } else {
        m_fit->data()->clear();
        m_equation->setText(
            tr("no fit: fewer than two state sizes have T_forget inside the grid\n%1").arg(data.criterion) +
            aboutSeeds);
    }
    line(m_paper, kPaperSlope, kPaperIntercept);
    m_fit->setVisible(data.hasFit);
    m_fit->removeFromLegend();
    if (data.hasFit)
        m_fit->addToLegend();
    QCPAxis* xAxis = m_mainRect->axis(QCPAxis::atBottom);
    if (m_logX) {
        // A tick at each size, as the seeds' columns stand there; powers of two of M would mean nothing.
        QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
        for (double v : sizes)
            ticker->addTick(v, millions(v * 1e6));
        xAxis->setScaleType(QCPAxis::stLogarithmic);
        xAxis->setTicker(ticker);
    } else {
        xAxis->setScaleType(QCPAxis::stLinear);
        xAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    }
    xAxis->setRange(x0, x1);
    m_mainRect->axis(QCPAxis::atLeft)->setRange(y0, y1); // fitHeadroom sets the top once laid out
    m_yTopLeast = y1;
    for (QCPGraph* g : m_curves)
        m_plot->removeGraph(g);
    m_curves.clear();
    m_curveLegend->setVisible(false);
    m_curveTitle->setText(tr("no run selected"));
    setCurvesShown(false);
    // The replot's afterReplot moves the legend to the emptiest corner and queues a replot; draw that
    // now, so that the view is whole when setData returns (an export, a test).
    const Qt::Alignment corner = m_mainRect->insetLayout()->insetAlignment(0);
    m_plot->replot();
    if (m_mainRect->insetLayout()->insetAlignment(0) != corner)
        m_plot->replot();
}

bool ForgetThresholdView::fitHeadroom()
{
    const QRect area = m_mainRect->rect();
    QCPAxis* yAxis = m_mainRect->axis(QCPAxis::atLeft);
    const double bottom = yAxis->range().lower;
    if (!(bottom > 0) || !(m_yTopLeast > bottom) || area.height() < 40 || m_equation->text().isEmpty())
        return false;
    const QRectF box =
        QRectF(m_equation->topLeft->pixelPosition(), m_equation->bottomRight->pixelPosition()).normalized();
    // A marker's half size and a gap: what a dot may not come nearer the heading than.
    const double pad = 8;
    QCPAxis* xAxis = m_mainRect->axis(QCPAxis::atBottom);
    double under = 0; // the highest dot below the heading's width
    for (QCPGraph* g : {m_forgets, m_collapses, m_thresholds, m_seedThresholds})
        for (auto it = g->data()->constBegin(); it != g->data()->constEnd(); ++it) {
            const double px = xAxis->coordToPixel(it->key);
            if (px >= box.left() - pad && px <= box.right() + pad)
                under = std::max(under, it->value);
        }
    // On the log axis a value v is drawn at top + H ln(y1/v) / ln(y1/y0): the y1 that puts `under`
    // a share f of the height down, f the heading's share. Never less room than setData gave, which
    // keeps a top corner free for the legend.
    const double f = std::min(0.85, (box.bottom() + pad - area.top()) / area.height());
    double top = m_yTopLeast;
    if (under > 0 && f > 0)
        top = std::max(top, std::exp((std::log(under) - f * std::log(bottom)) / (1 - f)));
    if (std::abs(std::log(top / yAxis->range().upper)) < 0.01)
        return false;
    yAxis->setRange(bottom, top);
    return true;
}

double ForgetThresholdView::seedX(double stateSize, int seedIndex) const
{
    const double offset = (seedIndex - (m_data.seedCount - 1) / 2.0) * m_seedStep;
    return m_logX ? stateSize / 1e6 * std::exp(offset) : stateSize / 1e6 + offset;
}

void ForgetThresholdView::fitMarkers()
{
    double scale = 1;
    if (m_seedStep > 0) {
        // The pixels between two seeds' dots, measured where the axis is (a log one is even).
        QCPAxis* x = m_mainRect->axis(QCPAxis::atBottom);
        const double at = x->range().center();
        const double px = std::abs(x->coordToPixel(m_logX ? at * std::exp(m_seedStep) : at + m_seedStep) -
                                   x->coordToPixel(at));
        scale = std::clamp(0.9 * px / kCollapseMarker, 0.35, 1.0);
    }
    const auto resize = [scale](QCPGraph* g, double size) {
        QCPScatterStyle style = g->scatterStyle();
        style.setSize(size * scale);
        g->setScatterStyle(style);
    };
    resize(m_forgets, kForgetMarker);
    resize(m_collapses, kCollapseMarker);
    resize(m_seedThresholds, kSeedThresholdMarker);
}

bool ForgetThresholdView::placeLegend()
{
    QCPLegend* legend = m_plot->legend;
    QCPLayoutInset* inset = m_mainRect->insetLayout();
    // An export lays the legend out elsewhere for the figure's time.
    if (!legend->visible() || inset->elementCount() == 0 || inset->elementAt(0) != legend)
        return false;
    const QRect area = m_mainRect->rect();
    const QSize size = legend->minimumOuterSizeHint();
    const Qt::Alignment corners[] = {Qt::AlignBottom | Qt::AlignRight, Qt::AlignTop | Qt::AlignRight,
                                     Qt::AlignBottom | Qt::AlignLeft};
    Qt::Alignment best = inset->insetAlignment(0);
    int fewest = std::numeric_limits<int>::max();
    for (Qt::Alignment corner : corners) {
        const QPoint origin(corner & Qt::AlignRight ? area.right() - size.width() : area.left(),
                            corner & Qt::AlignBottom ? area.bottom() - size.height() : area.top());
        const QRect covered(origin, size);
        int hidden = 0;
        for (QCPGraph* g : {m_forgets, m_collapses, m_thresholds, m_seedThresholds})
            for (auto it = g->data()->constBegin(); it != g->data()->constEnd(); ++it)
                hidden += covered.contains(g->coordsToPixels(it->key, it->value).toPoint());
        if (hidden < fewest)
            fewest = hidden, best = corner;
    }
    if (best == inset->insetAlignment(0))
        return false;
    inset->setInsetAlignment(0, best);
    return true;
}

QPointF ForgetThresholdView::runPixel(int index) const
{
    const auto& r = m_data.runs.at(index);
    return {m_mainRect->axis(QCPAxis::atBottom)->coordToPixel(seedX(r.stateSize, r.seedIndex)),
            m_mainRect->axis(QCPAxis::atLeft)->coordToPixel(r.trainLength / 1024.0)};
}

int ForgetThresholdView::runAt(const QPointF& pos) const
{
    int best = -1;
    double bestDistance = 8;
    for (int i = 0; i < m_data.runs.size(); ++i) {
        const QPointF d = runPixel(i) - pos;
        const double distance = std::hypot(d.x(), d.y());
        if (distance <= bestDistance) {
            bestDistance = distance;
            best = i;
        }
    }
    return best;
}

bool ForgetThresholdView::showRun(int index, QString* error)
{
    if (index < 0 || index >= m_data.runs.size())
        return false;
    const ForgetThresholdRun& run = m_data.runs[index];
    if (run.evalPath.isEmpty()) {
        if (error)
            *error = run.source.isEmpty()
                         ? tr("%1: the summary names no evaluation for this run").arg(run.id)
                         : tr("%1: taken from an earlier report, %2; its evaluation (job.json) stayed where "
                              "that report was made")
                               .arg(run.id, run.source);
        return false;
    }
    QVector<EvalCurve> curves;
    qint64 trainLength = 0;
    QString message;
    if (!readEvalCurves(run.evalPath, &curves, &trainLength, &message)) {
        if (error)
            *error = message;
        return false;
    }
    for (QCPGraph* g : m_curves)
        m_plot->removeGraph(g);
    m_curves.clear();
    double lo = std::numeric_limits<double>::infinity(), hi = 0, xMax = 1;
    for (int i = 0; i < curves.size(); ++i) {
        QCPGraph* g =
            m_plot->addGraph(m_curveRect->axis(QCPAxis::atBottom), m_curveRect->axis(QCPAxis::atLeft));
        g->setName(curves[i].domain);
        g->setPen(QPen(PlotExporter::seriesColor(i, curves.size(), false), 1.5));
        g->setData(curves[i].position, curves[i].nll);
        g->removeFromLegend();
        g->addToLegend(m_curveLegend);
        m_curves.push_back(g);
        for (double v : curves[i].nll)
            lo = std::min(lo, v), hi = std::max(hi, v);
        xMax = std::max(xMax, curves[i].position.last());
    }
    m_curveRect->axis(QCPAxis::atBottom)->setRange(std::max(1.0, curves[0].position.first()), xMax * 1.05);
    m_curveRect->axis(QCPAxis::atLeft)->setRange(lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9));
    m_curveLegend->setVisible(true);
    setCurvesShown(true);
    QString title = tr("%1: T_train %2, %3 (score %4)")
                        .arg(run.id)
                        .arg(trainLength)
                        .arg(run.forgets ? tr("forgets") : tr("collapses: %1").arg(run.reason))
                        .arg(run.score, 0, 'f', 3);
    if (run.slowestHalfLife > 0 && trainLength > 0)
        title += tr("; slowest head's half-life %1 tokens, %2 T_train")
                     .arg(run.slowestHalfLife, 0, 'f', 0)
                     .arg(run.slowestHalfLife / trainLength, 0, 'f', 1);
    m_curveTitle->setText(title);
    m_shown = index;
    m_plot->replot();
    return true;
}

void ForgetThresholdView::setCurvesShown(bool shown)
{
    QCPLayoutGrid* grid = m_plot->plotLayout();
    const bool inLayout = grid->hasElement(1, 0) && grid->element(1, 0) == m_curveRect;
    if (shown && !inLayout) {
        grid->addElement(1, 0, m_curveRect);
        grid->setRowStretchFactors({3, 2});
    } else if (!shown && inLayout) {
        grid->take(m_curveRect);
        grid->simplify();
    }
    m_curveRect->setVisible(shown);
    m_curveTitle->setVisible(shown);
}

bool ForgetThresholdView::curvesShown() const
{
    return m_curveRect->visible();
}

void ForgetThresholdView::onPress(const QPointF& pos)
{
    const int i = runAt(pos);
    if (i < 0)
        return;
    emit runClicked(i);
    QString error;
    if (!showRun(i, &error))
        emit errorOccurred(error);
}

} // namespace statescope
