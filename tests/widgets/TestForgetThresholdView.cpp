// The forget-threshold view (widgets/ForgetThresholdView.h) on a sweep summary written here: the dots,
// their colours and places, the interpolated thresholds, the fitted and the paper's line and the
// equation as drawn; a click on a dot draws that run's curves; bad files give one message naming them;
// the exported figure has both colours of dots in it.
#include "ForgetThresholdView.h"
#include "PlotExporter.h"

#include <QFile>
#include <QFontMetricsF>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QtTest>

#include <qcustomplot.h>

#include <cmath>

using namespace statescope;

namespace {

void writeJson(const QString& path, const QJsonObject& o)
{
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(QJsonDocument(o).toJson());
}

QJsonObject readJsonFile(const QString& path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return QJsonDocument::fromJson(f.readAll()).object();
}

// 3 state sizes (1, 2, 4 M) x T_train 1K, 4K, 16K: the runs at T >= the threshold forget.
QString writeSweep(const QTemporaryDir& dir)
{
    QJsonArray runs, sizes;
    const double thresholds[] = {2048, 6144, 12288};
    int n = 0;
    for (int s = 0; s < 3; ++s) {
        const double ns = 1e6 * (1 << s);
        for (double t : {1024.0, 4096.0, 16384.0}) {
            const QString id = QString("d_state-%1_T-%2_seed-0").arg(1 << s).arg(t);
            QJsonObject r{{"id", id},
                          {"state_size", ns},
                          {"train_length", t},
                          {"finished", true},
                          {"forgets", t >= thresholds[s]},
                          {"score", t >= thresholds[s] ? 1.02 : 1.4},
                          {"reason", t >= thresholds[s] ? "" : "loss ratio 1.400 > 1.100"},
                          {"eval", "jobs/" + id + "/job.json"}};
            if (n == 4) // its slowest head: 4.5 T_train on the worse of two texts; null on a third
                r["domains"] = QJsonArray{QJsonObject{{"half_life", QJsonObject{{"max", 4.5 * t}}}},
                                          QJsonObject{{"half_life", QJsonObject{{"max", 2.0 * t}}}},
                                          QJsonObject{{"half_life", QJsonObject{{"max", QJsonValue()}}}}};
            runs.append(r);
            QDir().mkpath(dir.filePath("jobs/" + id));
            QJsonArray nll;
            for (int b = 0; b < 32 * 8; ++b)
                nll.append(b == 0 ? QJsonValue() : QJsonValue(1.0 + 0.001 * b + n));
            writeJson(dir.filePath("jobs/" + id + "/job.json"),
                      QJsonObject{{"evals", QJsonArray{QJsonObject{{"domain", "licences"},
                                                                   {"grain", t / 8},
                                                                   {"training_length", t},
                                                                   {"nll", nll}}}}});
            ++n;
        }
        sizes.append(QJsonObject{{"state_size", ns}, {"t_forget", thresholds[s]}});
    }
    sizes.append(QJsonObject{{"state_size", 8e6}, {"t_forget", 0}}); // outside the grid: no diamond
    // T_forget[K] = 4 N_S[M] - 2 through (1, 2), (2, 6); (4, 12) lies off it.
    writeJson(
        dir.filePath("summary.json"),
        QJsonObject{
            {"name", "test"},
            {"criterion",
             QJsonObject{
                 {"kind", "ratio"}, {"from", 8}, {"to", 16}, {"threshold", 1.1}, {"max_norm_growth", 5}}},
            {"runs", runs},
            {"sizes", sizes},
            {"fit",
             QJsonObject{
                 {"slope", 4.0}, {"intercept", -2.0}, {"r2", 0.97}, {"slope_ci95", QJsonArray{1.5, 6.5}}}}});
    return dir.filePath("summary.json");
}

// A finished run of the width axis: size index s, T_train t, its seed and verdict.
QJsonObject widthRun(int s, double stateSize, double t, int seed, bool forgets)
{
    return {{"id", QString("d_model-%1_T-%2_seed-%3").arg(s).arg(t).arg(seed)},
            {"state_size", stateSize},
            {"train_length", t},
            {"seed", seed},
            {"finished", true},
            {"forgets", forgets},
            {"score", 1.0}};
}

// A summary.json of these runs and sizes under the paired criterion, with a fit through them.
QString writePairedSummary(const QTemporaryDir& dir, const QString& name, const QJsonArray& runs,
                           const QJsonArray& sizes, const QJsonObject& fit)
{
    writeJson(dir.filePath("summary.json"),
              QJsonObject{{"name", name},
                          {"criterion", QJsonObject{{"kind", "paired"}, {"from", 8}, {"to", 16}}},
                          {"runs", runs},
                          {"sizes", sizes},
                          {"fit", fit}});
    return dir.filePath("summary.json");
}

// The view on screen at 900 x 700, drawing data.
void show(ForgetThresholdView& view, const ForgetThresholdData& data)
{
    view.resize(900, 700);
    view.show();
    view.setData(data);
}

} // namespace

class TestForgetThresholdView : public QObject {
    Q_OBJECT

private slots:
    void drawsTheSweep()
    {
        QTemporaryDir dir;
        const QString path = writeSweep(dir);
        ForgetThresholdData data;
        QString error;
        QVERIFY2(ForgetThresholdData::fromSummary(path, &data, &error), qPrintable(error));
        QCOMPARE(data.runs.size(), 9);
        ForgetThresholdView view;
        show(view, data);
        QVERIFY(QTest::qWaitForWindowExposed(&view));

        // 4 forgetting runs, 5 collapsing, at (N_S in M, T in K).
        auto points = [](QCPGraph* g) {
            QVector<QPointF> p;
            for (auto it = g->data()->constBegin(); it != g->data()->constEnd(); ++it)
                p.push_back({it->key, it->value});
            return p;
        };
        const auto forgets = points(view.forgetsGraph()), collapses = points(view.collapsesGraph());
        QCOMPARE(forgets.size(), 4);
        QCOMPARE(collapses.size(), 5);
        QVERIFY(forgets.contains(QPointF(1, 4)) && forgets.contains(QPointF(4, 16)));
        QVERIFY(collapses.contains(QPointF(1, 1)) && collapses.contains(QPointF(4, 4)));
        QCOMPARE(view.forgetsGraph()->scatterStyle().pen().color(), QColor(26, 150, 65));
        QCOMPARE(view.collapsesGraph()->scatterStyle().pen().color(), QColor(215, 48, 39));
        // Thresholds of the sizes inside the grid only.
        const auto diamonds = points(view.thresholdGraph());
        QCOMPARE(diamonds.size(), 3);
        QCOMPARE(diamonds[1], QPointF(2, 6));
        // The fitted line is 4 x - 2 where positive; the paper's 5.172 x - 4.469, positive from 0.864 M.
        const auto fit = points(view.fitGraph());
        QVERIFY(!fit.isEmpty());
        for (const QPointF& p : fit)
            QVERIFY(std::abs(p.y() - (4 * p.x() - 2)) < 1e-9 && p.y() > 0);
        const auto paper = points(view.paperGraph());
        QVERIFY(paper.first().x() > 0.86 && paper.first().x() < 0.9);
        QVERIFY(std::abs(paper.last().y() - (5.172 * paper.last().x() - 4.469)) < 1e-9);
        // The dots alone (no run shown) in the paper look. A base-2 log axis: each label with its own
        // decimals ("0.25", "64"), not the decimals of the finest label ("64.0000").
        {
            ExportScope scope(view.plot(), ExportStyle::paperPreset());
            scope.layout();
            scope.render(1.0); // ticks are generated when the figure is drawn at its own size
            QCPAxis* y = view.plot()->axisRect(0)->axis(QCPAxis::atLeft);
            const QStringList labels = y->tickVectorLabels().toList();
            const QString all = labels.join(QLatin1Char(' '));
            QVERIFY2(labels.size() >= 3, qPrintable(all));
            for (const QString& l : labels) {
                QVERIFY2(!l.endsWith(QLatin1Char('0')) || !l.contains(QLatin1Char('.')), qPrintable(all));
                QVERIFY2(std::log2(view.plot()->locale().toDouble(l)) ==
                             std::round(std::log2(view.plot()->locale().toDouble(l))),
                         qPrintable(all));
            }
        }

        const QString eq = view.equationLabel()->text();
        QVERIFY2(eq.contains("T_forget[K] = 4.000·N_S[M] − 2.000, R² = 0.970"), qPrintable(eq));
        QVERIFY2(eq.contains("slope 95 % CI [1.500, 6.500]"), qPrintable(eq));
        QVERIFY2(eq.contains("NLL[8T, 16T) ≤ 1.1 × NLL[T/2, T)"), qPrintable(eq));
        // The y axis is log 2 over every dot, with room above; every dot lies inside the data area.
        QCOMPARE(view.forgetsGraph()->valueAxis()->scaleType(), QCPAxis::stLogarithmic);
        for (int i = 0; i < data.runs.size(); ++i)
            QVERIFY(view.forgetsGraph()->keyAxis()->axisRect()->rect().contains(view.runPixel(i).toPoint()));
        QVERIFY(!view.curvesShown());
        // The legend hides no dot: it takes the corner with the fewest (the bottom right holds the
        // largest state's shortest T_train), in the window's first size and after a resize.
        auto hidden = [&] {
            QStringList ids;
            for (int i = 0; i < data.runs.size(); ++i)
                if (view.plot()->legend->outerRect().contains(view.runPixel(i).toPoint()))
                    ids.push_back(data.runs[i].id);
            return ids.join(' ');
        };
        QVERIFY2(hidden().isEmpty(), qPrintable(hidden()));
        view.resize(1280, 720);
        QTRY_VERIFY2(view.plot()->legend->outerRect().right() > 1000, "the resized window is replotted");
        QVERIFY2(hidden().isEmpty(), qPrintable(hidden()));
        view.resize(900, 700);
        QTRY_VERIFY(view.plot()->legend->outerRect().right() < 900);

        // A click on the dot of run 4 (2 M, 4K: collapses) draws its curve below.
        QSignalSpy clicked(&view, &ForgetThresholdView::runClicked);
        QTest::mouseClick(view.plot(), Qt::LeftButton, Qt::NoModifier, view.runPixel(4).toPoint());
        QCOMPARE(clicked.count(), 1);
        QCOMPARE(clicked[0][0].toInt(), 4);
        QCOMPARE(view.shownRun(), 4);
        QVERIFY(view.curvesShown());
        QCOMPARE(view.curveGraphs().size(), 1);
        QCPGraph* curve = view.curveGraphs()[0];
        QCOMPARE(curve->name(), QString("licences"));
        QCOMPARE(curve->data()->size(), 255);       // bucket 0 left out
        QCOMPARE(curve->data()->at(0)->key, 512.0); // grain T/8 = 512
        QCOMPARE(curve->data()->at(0)->value, 1.0 + 0.001 + 4);
        QCOMPARE(view.curveTitle()->text(),
                 QString("d_state-2_T-4096_seed-0: T_train 4096, collapses: loss ratio 1.400 > 1.100 (score "
                         "1.400); slowest head's half-life 18432 tokens, 4.5 T_train"));
        // Off any dot: nothing happens.
        QTest::mouseClick(view.plot(), Qt::LeftButton, Qt::NoModifier, QPoint(3, 3));
        QCOMPARE(clicked.count(), 1);

        // The exported figure has green and red dots in it.
        const QString png = dir.filePath("figure.png");
        QVERIFY2(PlotExporter::savePng(view.plot(), png, ExportStyle::paperPreset(), &error),
                 qPrintable(error));
        const QImage image(png);
        QVERIFY(image.width() > 800);
        int green = 0, red = 0;
        for (int y = 0; y < image.height(); y += 2)
            for (int x = 0; x < image.width(); x += 2) {
                const QColor c = image.pixelColor(x, y);
                green += c == QColor(26, 150, 65);
                red += c == QColor(215, 48, 39);
            }
        QVERIFY2(green > 100 && red > 20, qPrintable(QString("%1 green, %2 red").arg(green).arg(red)));
    }

    void seedsSitSideBySide()
    {
        // One size (1 M) x T 1K, 2K x seeds 0 and 1; seed 1 has finished its threshold, seed 0 has not.
        QTemporaryDir dir;
        QJsonArray runs;
        for (double t : {1024.0, 2048.0})
            for (int seed : {0, 1}) {
                const QString id = QString("d_state-1_T-%1_seed-%2").arg(t).arg(seed);
                const bool finished = !(seed == 0 && t == 2048);
                runs.append(QJsonObject{{"id", id},
                                        {"state_size", 1e6},
                                        {"train_length", t},
                                        {"seed", seed},
                                        {"finished", finished},
                                        {"forgets", t == 2048},
                                        {"score", 1.0},
                                        {"eval", "jobs/" + id + "/job.json"}});
            }
        const QJsonArray seeds{QJsonObject{{"seed", 0}, {"inside", false}, {"interpolated", 0}},
                               QJsonObject{{"seed", 1}, {"inside", true}, {"interpolated", 1448.0}}};
        writeJson(
            dir.filePath("summary.json"),
            QJsonObject{
                {"name", "seeds"},
                {"provisional", true},
                {"fit",
                 QJsonObject{
                     {"slope", 0.5}, {"intercept", 0.1}, {"r2", 0.9}, {"slope_ci95", QJsonArray{0.2, 0.8}}}},
                {"criterion", QJsonObject{{"kind", "paired"}, {"from", 8}, {"to", 16}}},
                {"runs", runs},
                {"sizes", QJsonArray{QJsonObject{{"state_size", 1e6}, {"t_forget", 0}, {"seeds", seeds}}}}});
        ForgetThresholdData data;
        QString error;
        QVERIFY2(ForgetThresholdData::fromSummary(dir.filePath("summary.json"), &data, &error),
                 qPrintable(error));
        QCOMPARE(data.seedCount, 2);
        QCOMPARE(data.runs.size(), 3);
        ForgetThresholdView view;
        show(view, data);
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        // The two dots at (1 M, 1K), one per seed, either side of 1 M; seed 1's forgetting dot right of it.
        QCOMPARE(view.collapsesGraph()->data()->size(), 2);
        const double left = view.collapsesGraph()->data()->at(0)->key,
                     right = view.collapsesGraph()->data()->at(1)->key;
        QVERIFY2(left < 1 && right > 1 && std::abs(left + right - 2) < 1e-9,
                 qPrintable(QString("%1 %2").arg(left).arg(right)));
        QCOMPARE(view.forgetsGraph()->data()->size(), 1);
        QCOMPARE(view.forgetsGraph()->data()->at(0)->key, right);
        // Seed 1's threshold, at its dots' x; no size diamond until both seeds have one.
        QCOMPARE(view.thresholdGraph()->data()->size(), 0);
        QCOMPARE(view.seedThresholdGraph()->data()->size(), 1);
        QCOMPARE(view.seedThresholdGraph()->data()->at(0)->key, right);
        QCOMPARE(view.seedThresholdGraph()->data()->at(0)->value, 1448.0 / 1024);
        QVERIFY(view.plot()->legend->hasItemWithPlottable(view.seedThresholdGraph()));
        // The dots are apart on screen, and each click finds its own seed's run.
        QVERIFY(std::abs(view.runPixel(0).x() - view.runPixel(1).x()) >= 8);
        for (int i = 0; i < data.runs.size(); ++i)
            QCOMPARE(view.runAt(view.runPixel(i)), i);
        // The report of a sweep still running says so on the figure, and how far it is.
        QVERIFY(data.provisional);
        const QString eq = view.equationLabel()->text();
        QVERIFY2(eq.startsWith("provisional: 3 of 4 runs finished\nfit: T_forget[K] = 0.500·N_S[M] + 0.100"),
                 qPrintable(eq));
    }

    void aFinishedSweepOfMicroSizes()
    {
        // The CPU round's shape: sizes of 5728 to 35072 numbers, every run finished, reported with
        // --provisional. Two decimals of a million would name 0.0057 and 0.0099 M both "0.01", and a
        // finished sweep whose every seed has its threshold is no provisional one.
        QTemporaryDir dir;
        QJsonArray runs, sizes;
        const double stateSizes[] = {5728, 9920, 18304};
        const double thresholds[] = {84.0, 39.0, 40.0};
        for (int i = 0; i < 3; ++i) {
            for (double t : {32.0, 64.0, 128.0})
                for (int seed : {0, 1})
                    runs.append(
                        QJsonObject{{"id", QString("d_state-%1_T-%2_seed-%3").arg(8 << i).arg(t).arg(seed)},
                                    {"state_size", stateSizes[i]},
                                    {"train_length", t},
                                    {"seed", seed},
                                    {"finished", true},
                                    {"forgets", t > thresholds[i]},
                                    {"score", 1.0}});
            const QJsonObject seed{{"inside", true}, {"monotone", true}, {"interpolated", thresholds[i]}};
            sizes.append(QJsonObject{{"state_size", stateSizes[i]},
                                     {"t_forget", thresholds[i]},
                                     {"seeds_agree", i != 1},
                                     {"seeds", QJsonArray{seed, seed}}});
        }
        QJsonObject summary{{"name", "micro"},
                            {"provisional", true},
                            {"criterion", QJsonObject{{"kind", "paired"}, {"from", 8}, {"to", 16}}},
                            {"fit", QJsonObject{{"slope", -0.352},
                                                {"intercept", 0.06},
                                                {"r2", 0.049},
                                                {"slope_ci95", QJsonArray{-5.049, 4.345}}}},
                            {"runs", runs},
                            {"sizes", sizes}};
        writeJson(dir.filePath("summary.json"), summary);
        ForgetThresholdData data;
        QString error;
        QVERIFY2(ForgetThresholdData::fromSummary(dir.filePath("summary.json"), &data, &error),
                 qPrintable(error));
        QCOMPARE(data.finishedRuns, 18);
        QCOMPARE(data.plannedRuns, 18);
        QVERIFY(!data.provisional);
        QCOMPARE(data.fallsWithStateSize, QStringList{"N_S 0.0057 → 0.0099 M"});
        QCOMPARE(data.seedsDisagree, QStringList{"N_S 0.0099 M"});
        ForgetThresholdView view;
        show(view, data);
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        // Sizes 3.2 times apart: the axis stays linear, as the paper's is.
        QVERIFY(!view.stateSizeAxisIsLog());
        const QString eq = view.equationLabel()->text();
        QVERIFY2(eq.startsWith("fit: T_forget[K] = -0.352·N_S[M] + 0.060, R² = 0.049"), qPrintable(eq));
        // The line naming the falling pair is too long for the figure: its sizes go on a line below.
        QVERIFY2(eq.endsWith("\nseeds more than one grid step apart: N_S 0.0099 M"
                             "\nT_forget falls as N_S grows, not monotone:\n  N_S 0.0057 → 0.0099 M"),
                 qPrintable(eq));
        // Every line of the heading ends inside the plot, in the window and in the paper figure.
        const auto widestLineEnd = [&] {
            const QFontMetricsF metrics(view.equationLabel()->font());
            double widest = 0;
            for (const QString& line : view.equationLabel()->text().split(QLatin1Char('\n')))
                widest = std::max(widest, metrics.horizontalAdvance(line));
            return view.equationLabel()->position->pixelPosition().x() + widest;
        };
        QVERIFY2(widestLineEnd() <= view.plot()->axisRect(0)->rect().right(),
                 qPrintable(QString::number(widestLineEnd())));
        {
            ExportScope scope(view.plot(), ExportStyle::paperPreset());
            scope.layout();
            scope.render(1.0);
            QVERIFY2(
                widestLineEnd() <= view.plot()->axisRect(0)->rect().right(),
                qPrintable(
                    QString("%1 > %2").arg(widestLineEnd()).arg(view.plot()->axisRect(0)->rect().right())));
        }

        // A fit through two sizes has no interval: the summary's nulls read as none, never as [0, 0].
        {
            QJsonObject two = summary;
            QJsonObject fit = two["fit"].toObject();
            fit["slope_ci95"] = QJsonArray{QJsonValue::Null, QJsonValue::Null};
            two["fit"] = fit;
            writeJson(dir.filePath("two.json"), two);
            ForgetThresholdData twoData;
            QVERIFY2(ForgetThresholdData::fromSummary(dir.filePath("two.json"), &twoData, &error),
                     qPrintable(error));
            QVERIFY(!twoData.hasSlopeInterval);
            show(view, twoData);
            const QString twoEq = view.equationLabel()->text();
            QVERIFY2(twoEq.contains("\nslope 95 % CI: none, a line through two sizes\n") &&
                         !twoEq.contains("[0.000"),
                     qPrintable(twoEq));
            QVERIFY(data.hasSlopeInterval);
            show(view, data);
            QVERIFY2(view.equationLabel()->text().contains("slope 95 % CI [-5.049, 4.345]"),
                     qPrintable(view.equationLabel()->text()));
        }

        // A size whose threshold rests on one of its seeds keeps the word, and says why.
        QJsonObject middle = sizes[1].toObject();
        middle["seeds"] = QJsonArray{QJsonObject{{"inside", false}, {"interpolated", 0}},
                                     QJsonObject{{"inside", true}, {"interpolated", 39.0}}};
        sizes[1] = middle;
        summary["sizes"] = sizes;
        writeJson(dir.filePath("summary.json"), summary);
        QVERIFY2(ForgetThresholdData::fromSummary(dir.filePath("summary.json"), &data, &error),
                 qPrintable(error));
        QVERIFY(data.provisional);
        show(view, data);
        QVERIFY2(view.equationLabel()->text().startsWith(
                     "provisional: some sizes' T_forget from part of their seeds\nfit:"),
                 qPrintable(view.equationLabel()->text()));
        // The same summary without --provisional is no provisional report.
        summary["provisional"] = false;
        writeJson(dir.filePath("summary.json"), summary);
        QVERIFY2(ForgetThresholdData::fromSummary(dir.filePath("summary.json"), &data, &error),
                 qPrintable(error));
        QVERIFY(!data.provisional);
    }

    void aSeedNotMonotoneGetsNoThreshold()
    {
        // Seed 0 forgets at T 512 and collapses again at 1024: its bracket [1024, 512] is no threshold,
        // even though the report still gives it a middle; seed 1's threshold is drawn.
        QTemporaryDir dir;
        QJsonArray runs;
        for (int seed : {0, 1})
            for (double t : {256.0, 512.0, 1024.0}) {
                const QString id = QString("n_layer-8_T-%1_seed-%2").arg(t).arg(seed);
                const bool forgets = seed == 0 ? t == 512 : t >= 512;
                runs.append(QJsonObject{{"id", id},
                                        {"state_size", 1079296},
                                        {"train_length", t},
                                        {"seed", seed},
                                        {"finished", true},
                                        {"forgets", forgets},
                                        {"score", 1.0}});
            }
        const QJsonArray seeds{
            QJsonObject{{"seed", 0}, {"inside", true}, {"monotone", false}, {"interpolated", 724.08}},
            QJsonObject{{"seed", 1}, {"inside", true}, {"monotone", true}, {"interpolated", 379.0}}};
        QJsonObject summary{
            {"name", "not-monotone"},
            {"criterion", QJsonObject{{"kind", "paired"}, {"from", 8}, {"to", 16}}},
            {"runs", runs},
            {"sizes", QJsonArray{QJsonObject{{"state_size", 1079296}, {"t_forget", 0}, {"seeds", seeds}}}}};
        writeJson(dir.filePath("summary.json"), summary);
        ForgetThresholdData data;
        QString error;
        QVERIFY2(ForgetThresholdData::fromSummary(dir.filePath("summary.json"), &data, &error),
                 qPrintable(error));
        QCOMPARE(data.notMonotone, QStringList{"N_S 1.08 M, seed 0"});
        ForgetThresholdView view;
        show(view, data);
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QCOMPARE(view.seedThresholdGraph()->data()->size(), 1);
        QCOMPARE(view.seedThresholdGraph()->data()->at(0)->value, 379.0 / 1024);
        QVERIFY(view.seedThresholdGraph()->data()->at(0)->key > 1079296 / 1e6);
        const QString eq = view.equationLabel()->text();
        QVERIFY2(eq.endsWith("\nnot monotone in T_train, no threshold: N_S 1.08 M, seed 0"), qPrintable(eq));
        QVERIFY2(eq.startsWith("no fit:"), qPrintable(eq));
        const auto axisTop = [&] { return view.plot()->axisRect(0)->axis(QCPAxis::atLeft)->range().upper; };
        const double top = axisTop();

        // The summary with other sizes, read again.
        const auto reload = [&](const QJsonArray& sizes) {
            summary["sizes"] = sizes;
            writeJson(dir.filePath("summary.json"), summary);
            return ForgetThresholdData::fromSummary(dir.filePath("summary.json"), &data, &error);
        };

        // A size whose seeds lie more than a grid step apart is named on a line of its own, with room.
        QJsonArray sizes = summary.value("sizes").toArray();
        sizes.append(QJsonObject{
            {"state_size", 1618944},
            {"t_forget", 511.1},
            {"seeds_agree", false},
            {"seeds", QJsonArray{QJsonObject{{"seed", 0}, {"inside", true}, {"interpolated", 511.1}}}}});
        QVERIFY2(reload(sizes), qPrintable(error));
        QCOMPARE(data.seedsDisagree, QStringList{"N_S 1.62 M"});
        show(view, data);
        const QString eq2 = view.equationLabel()->text();
        QVERIFY2(eq2.endsWith("\nnot monotone in T_train, no threshold: N_S 1.08 M, seed 0"
                              "\nseeds more than one grid step apart: N_S 1.62 M"),
                 qPrintable(eq2));
        QVERIFY2(axisTop() > top * 1.4, qPrintable(QString::number(axisTop())));

        // A smaller state that needs a longer T_train than the next size (the eleventh round's 2 layers
        // against 4): the heading names the pair, on a line of its own, with room for it.
        const double top2 = axisTop();
        sizes.prepend(QJsonObject{{"state_size", 269824}, {"t_forget", 412.0}});
        sizes.insert(1, QJsonObject{{"state_size", 539648}, {"t_forget", 181.0}});
        QVERIFY2(reload(sizes), qPrintable(error));
        QCOMPARE(data.fallsWithStateSize, QStringList{"N_S 0.27 → 0.54 M"});
        show(view, data);
        const QString eq3 = view.equationLabel()->text();
        QVERIFY2(eq3.endsWith("\nseeds more than one grid step apart: N_S 1.62 M"
                              "\nT_forget falls as N_S grows, not monotone:\n  N_S 0.27 → 0.54 M"),
                 qPrintable(eq3));
        QVERIFY2(axisTop() > top2 * 1.4, qPrintable(QString::number(axisTop())));
        // Sizes that rise give no such line.
        sizes.removeAt(0);
        QVERIFY2(reload(sizes), qPrintable(error));
        QVERIFY(data.fallsWithStateSize.isEmpty());

        // Jobs trained on two texts (a corpus rebuilt between sessions): a line of their own, with room.
        show(view, data);
        const double top3 = axisTop();
        summary["training_texts"] = QJsonArray{
            QJsonObject{{"data", "train-head.txt, 62716635 bytes, fnv1a64 0123456789abcdef"}, {"jobs", 14}},
            QJsonObject{{"data", "train-head.txt, 62718645 bytes, fnv1a64 fedcba9876543210"}, {"jobs", 2}}};
        QVERIFY2(reload(sizes), qPrintable(error));
        QCOMPARE(data.trainingTexts,
                 QStringList({"train-head.txt, 62716635 bytes, fnv1a64 0123456789abcdef",
                              "train-head.txt, 62718645 bytes, fnv1a64 fedcba9876543210"}));
        QCOMPARE(data.trainingTextJobs, QVector<int>({14, 2}));
        show(view, data);
        const QString eq4 = view.equationLabel()->text();
        QVERIFY2(eq4.endsWith("\njobs trained on 2 different texts (14 + 2 jobs), not comparable"),
                 qPrintable(eq4));
        QVERIFY2(axisTop() > top3 * 1.4, qPrintable(QString::number(axisTop())));
        // One text (what every sweep of one session has) says nothing.
        summary["training_texts"] = QJsonArray{QJsonObject{{"data", "train-head.txt"}, {"jobs", 16}}};
        QVERIFY2(reload(sizes), qPrintable(error));
        QVERIFY(data.trainingTexts.isEmpty());
    }

    // The heading (fit, criterion, the notes on seeds) lies over the data area's top left: the axis
    // rises until no dot is under it, however many lines it has, in the window and in the figure.
    // The nineteenth round's figure had d_model 1024's runs at T 1024-2048 under seven lines.
    void headingCoversNoDot()
    {
        QTemporaryDir dir;
        QJsonArray runs, sizes;
        const double stateSizes[] = {9344, 18304, 36224, 72064, 143744};
        const double forgetsFrom[] = {32, 64, 64, 128, 1024};
        for (int s = 0; s < 5; ++s) {
            QJsonArray seeds;
            for (int seed = 0; seed < 4; ++seed) {
                for (double t = 8; t <= (s == 4 ? 2048 : 512); t *= 2) {
                    // The largest size's seeds 1 and 2 collapse again at 2048.
                    const bool forgets =
                        t >= forgetsFrom[s] && !(s == 4 && t == 2048 && (seed == 1 || seed == 2));
                    runs.append(widthRun(s, stateSizes[s], t, seed, forgets));
                }
                const bool monotone = !(s == 4 && (seed == 1 || seed == 2));
                seeds.append(QJsonObject{{"seed", seed},
                                         {"inside", true},
                                         {"monotone", monotone},
                                         {"interpolated", 0.75 * forgetsFrom[s]}});
            }
            sizes.append(QJsonObject{{"state_size", stateSizes[s]},
                                     {"t_forget", s == 4 ? 0.0 : 0.75 * forgetsFrom[s]},
                                     {"seeds_agree", s >= 2},
                                     {"seeds", seeds}});
        }
        const QString summary = writePairedSummary(
            dir, "heading", runs, sizes,
            {{"slope", 1.236}, {"intercept", 0.018}, {"r2", 0.989}, {"slope_ci95", QJsonArray{-0.427, 2.9}}});
        ForgetThresholdData data;
        QString error;
        QVERIFY2(ForgetThresholdData::fromSummary(summary, &data, &error), qPrintable(error));
        QCOMPARE(data.notMonotone.size(), 2);
        QCOMPARE(data.seedsDisagree.size(), 2);
        ForgetThresholdView view;
        view.resize(1280, 720);
        view.show();
        view.setData(data);
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QVERIFY2(view.equationLabel()->text().count(QLatin1Char('\n')) >= 6,
                 qPrintable(view.equationLabel()->text()));
        const auto covered = [&] {
            const QRectF box = QRectF(view.equationLabel()->topLeft->pixelPosition(),
                                      view.equationLabel()->bottomRight->pixelPosition())
                                   .normalized();
            QStringList ids;
            for (int i = 0; i < data.runs.size(); ++i)
                if (box.contains(view.runPixel(i)))
                    ids.push_back(data.runs[i].id);
            return ids.join(' ');
        };
        QVERIFY2(covered().isEmpty(), qPrintable(covered()));
        // Every dot still inside the data area, under the raised top.
        for (int i = 0; i < data.runs.size(); ++i)
            QVERIFY(view.plot()->axisRect(0)->rect().contains(view.runPixel(i).toPoint()));
        {
            ExportScope scope(view.plot(), ExportStyle::paperPreset());
            scope.layout();
            const QImage figure = scope.render(1.0);
            QVERIFY(!figure.isNull());
            QVERIFY2(covered().isEmpty(), qPrintable(covered()));
        }
        // Back in the window, once it is drawn again.
        view.plot()->replot();
        QVERIFY2(covered().isEmpty(), qPrintable(covered()));
    }

    void eightSeedsOfSizesTwiceApart()
    {
        // The twentieth round's shape: widths whose state doubles from 9,344 to 143,744 numbers, 8 seeds
        // each. On a linear axis the smallest sizes' columns of dots ran into each other; each size's
        // dots must stay in a column of their own, and no dot may hide its neighbour's.
        QTemporaryDir dir;
        QJsonArray runs, sizes;
        const double stateSizes[] = {9344, 18304, 36224, 72064, 143744};
        for (int s = 0; s < 5; ++s) {
            for (int seed = 0; seed < 8; ++seed)
                for (double t = 8; t <= (s == 4 ? 2048 : 512); t *= 2)
                    runs.append(widthRun(s, stateSizes[s], t, seed, t >= (16 << s) * (1 + seed % 2)));
            sizes.append(QJsonObject{{"state_size", stateSizes[s]}, {"t_forget", 24.0 * (1 << s)}});
        }
        const QString summary = writePairedSummary(
            dir, "eight seeds", runs, sizes,
            {{"slope", 2.5}, {"intercept", 0.01}, {"r2", 0.95}, {"slope_ci95", QJsonArray{1.0, 4.0}}});
        ForgetThresholdData data;
        QString error;
        QVERIFY2(ForgetThresholdData::fromSummary(summary, &data, &error), qPrintable(error));
        QCOMPARE(data.seedCount, 8);
        ForgetThresholdView view;
        view.resize(1280, 720);
        view.show();
        view.setData(data);
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        // Sizes 15 times apart: a log axis, ticked at the sizes as the heading names them.
        QVERIFY(view.stateSizeAxisIsLog());
        QCPAxis* x = view.plot()->axisRect(0)->axis(QCPAxis::atBottom);
        auto* ticker = dynamic_cast<QCPAxisTickerText*>(x->ticker().data());
        QVERIFY(ticker);
        QCOMPARE(QStringList(ticker->ticks().values()),
                 (QStringList{"0.0093", "0.018", "0.036", "0.072", "0.14"}));
        // The fitted line is still the linear law, only drawn on log axes.
        QVERIFY(view.fitGraph()->data()->size() > 100);
        for (auto it = view.fitGraph()->data()->constBegin(); it != view.fitGraph()->data()->constEnd(); ++it)
            QVERIFY(std::abs(it->value - (2.5 * it->key + 0.01)) < 1e-9);
        const auto overlaps = [&] {
            // The largest marker's size as drawn now: dots nearer than that cover each other.
            const double marker = std::max(view.forgetsGraph()->scatterStyle().size(),
                                           view.collapsesGraph()->scatterStyle().size());
            QStringList found;
            double left[5], right[5];
            std::fill(left, left + 5, 1e9);
            std::fill(right, right + 5, -1e9);
            for (int i = 0; i < data.runs.size(); ++i) {
                const auto& r = data.runs[i];
                const int s = int(std::lround(std::log2(r.stateSize / 9344)));
                const double px = view.runPixel(i).x();
                left[s] = std::min(left[s], px - marker / 2);
                right[s] = std::max(right[s], px + marker / 2);
                for (int j = 0; j < data.runs.size(); ++j) {
                    const auto& o = data.runs[j];
                    if (o.stateSize == r.stateSize && o.trainLength == r.trainLength &&
                        o.seed == r.seed + 1 && std::abs(view.runPixel(j).x() - px) < marker - 0.01)
                        found << QString("%1 covers %2 (%3 px apart, markers %4 px)")
                                     .arg(r.id, o.id)
                                     .arg(std::abs(view.runPixel(j).x() - px))
                                     .arg(marker);
                }
            }
            for (int s = 0; s + 1 < 5; ++s)
                if (right[s] + marker > left[s + 1])
                    found << QString("the columns of sizes %1 and %2 touch: %3 vs %4 px")
                                 .arg(s)
                                 .arg(s + 1)
                                 .arg(right[s])
                                 .arg(left[s + 1]);
            return found.join('\n');
        };
        QVERIFY2(overlaps().isEmpty(), qPrintable(overlaps()));
        for (int i = 0; i < data.runs.size(); ++i)
            QCOMPARE(view.runAt(view.runPixel(i)), i);
        {
            // The single-column paper figure has a quarter of the window's width for the same dots.
            ExportScope scope(view.plot(), ExportStyle::paperPreset());
            scope.layout();
            QVERIFY(!scope.render(1.0).isNull());
            QVERIFY2(view.forgetsGraph()->scatterStyle().size() < 8, "the markers shrank for the figure");
            QVERIFY2(overlaps().isEmpty(), qPrintable(overlaps()));
        }
        view.plot()->replot();
        QCOMPARE(view.forgetsGraph()->scatterStyle().size(), 8.0);
        QVERIFY2(overlaps().isEmpty(), qPrintable(overlaps()));
    }

    void badFilesNameThemselves()
    {
        QTemporaryDir dir;
        ForgetThresholdData data;
        QString error;
        QVERIFY(!ForgetThresholdData::fromSummary(dir.filePath("none.json"), &data, &error));
        QVERIFY2(error.contains("none.json: cannot open the file"), qPrintable(error));
        writeJson(dir.filePath("trace.json"), QJsonObject{{"model", "x"}});
        QVERIFY(!ForgetThresholdData::fromSummary(dir.filePath("trace.json"), &data, &error));
        QVERIFY2(error.contains("trace.json: runs: expected a sweep summary"), qPrintable(error));
        // A run whose job.json is gone: the click reports it and the view stays as it was.
        const QString path = writeSweep(dir);
        QVERIFY(ForgetThresholdData::fromSummary(path, &data, &error));
        QFile::remove(data.runs[0].evalPath);
        ForgetThresholdView view;
        view.setData(data);
        QVERIFY(!view.showRun(0, &error));
        QVERIFY2(error.contains("job.json: cannot open the file"), qPrintable(error));
        QCOMPARE(view.shownRun(), -1);
        // A run taken from an earlier report (sweep report --earlier): the click names that report.
        QJsonObject j = readJsonFile(path);
        QJsonArray runs = j.value("runs").toArray();
        QJsonObject r = runs[1].toObject();
        r.remove("eval");
        r["source"] = "docs/bench/earlier.json";
        runs[1] = r;
        j["runs"] = runs;
        writeJson(path, j);
        QVERIFY(ForgetThresholdData::fromSummary(path, &data, &error));
        QVERIFY(data.runs[1].evalPath.isEmpty());
        QCOMPARE(data.runs[1].source, QString("docs/bench/earlier.json"));
        view.setData(data);
        QVERIFY(!view.showRun(1, &error));
        QVERIFY2(error.contains(data.runs[1].id + ": taken from an earlier report, docs/bench/earlier.json"),
                 qPrintable(error));
        QCOMPARE(view.shownRun(), -1);
        QVERIFY(view.showRun(2, &error));
    }
};

QTEST_MAIN(TestForgetThresholdView)
#include "TestForgetThresholdView.moc"
