// The widgets: TraceData's decimation and aggregates checked against values computed here by
// formula, the views' point counts and heatmap sizes, PlotGroup's shared axes and cursor, exports
// (file signatures and parsers), CSV of a zoomed range, and loading a trace file.
#include "LossView.h"
#include "PlotExporter.h"
#include "PlotGroup.h"
#include "ProbeView.h"
#include "SeriesPyramid.h"
#include "TokenStrip.h"
#include "TraceData.h"
#include "trace/TraceFile.h"

#include <QApplication>
#include <QComboBox>
#include <QElapsedTimer>
#include <QImage>
#include <QPainter>
#include <QScrollBar>
#include <QSignalSpy>
#include <QSvgRenderer>
#include <QTemporaryDir>
#include <QXmlStreamReader>
#include <QtTest>

#include <qcustomplot.h>

#include <cmath>

#include <limits>
#include <sys/stat.h>

using namespace statescope;

namespace {

constexpr int kLayers = 2;
constexpr int kHeads = 8;
constexpr qint64 kTokens = 300;

// ---- the synthetic trace, by formula (independent of the code under test)

float nllOf(qint64 t)
{
    return t == 0 ? std::numeric_limits<float>::quiet_NaN() : 1.0f + 0.1f * float(t % 10);
}
float dtOf(qint64 t, int l, int h)
{
    return 0.01f * float(h + 1) + 0.1f * float(l) + 1e-4f * float(t % 50);
}
float decayOf(qint64 t, int l, int h)
{
    return 0.5f + 0.03f * float(h) + 0.1f * float(l) + 0.001f * float(t % 7);
}
float normOf(qint64 t, int l, int h)
{
    return float(l + 1) * float(h + 1) * (1.0f + 0.01f * float(t));
}

// The probes of the synthetic trace: index 0 dt (mean), 1 decay (geometric mean), 2 state_norm (root
// sum of squares), each [layers, units]; the views know them only by these descriptors.
constexpr int kDt = 0, kDecay = 1, kNorm = 2;

ProbeDesc probeDesc(const char* name, const char* label, ProbeSummary summary, int layers, int units,
                    const char* unit = "")
{
    ProbeDesc d;
    d.name = name;
    d.description = std::string("synthetic ") + name;
    d.shape = {layers, units};
    d.axes = {"layer", "head"};
    d.headMeaning = "a synthetic head";
    d.unit = unit;
    d.summary = summary;
    d.label = label;
    return d;
}

std::vector<ProbeDesc> testProbes(int layers = kLayers, int units = kHeads)
{
    return {probeDesc("dt", "Δ", ProbeSummary::Mean, layers, units),
            probeDesc("decay", "α", ProbeSummary::GeoMean, layers, units),
            probeDesc("state_norm", "‖S‖", ProbeSummary::RootSumSquare, layers, units)};
}

// The summaries of layer l at token t, by formula.
double decayGeoMean(qint64 t, int l)
{
    double logs = 0;
    for (int h = 0; h < kHeads; ++h)
        logs += std::log(double(decayOf(t, l, h)));
    return std::exp(logs / kHeads);
}
double normRss(qint64 t, int l)
{
    double sq = 0;
    for (int h = 0; h < kHeads; ++h)
        sq += double(normOf(t, l, h)) * normOf(t, l, h);
    return std::sqrt(sq);
}
double dtMean(qint64 t, int l)
{
    double sum = 0;
    for (int h = 0; h < kHeads; ++h)
        sum += dtOf(t, l, h);
    return sum / kHeads;
}

ChunkProbes makeChunk(qint64 start, qint64 count, int layers = kLayers, int heads = kHeads)
{
    ChunkProbes c;
    c.start = start;
    c.values.resize(3);
    for (qint64 t = start; t < start + count; ++t) {
        c.ids.push_back(qint32(t % 256));
        c.offsets.push_back(t);
        c.offsets.push_back(t + 1);
        c.nll.push_back(nllOf(t));
        for (int l = 0; l < layers; ++l)
            for (int h = 0; h < heads; ++h) {
                c.values[0].push_back(dtOf(t, l, h));
                c.values[1].push_back(decayOf(t, l, h));
                c.values[2].push_back(normOf(t, l, h));
            }
    }
    return c;
}

TraceHeaderInfo header(const QString& label = QStringLiteral("synthetic"))
{
    TraceHeaderInfo h;
    h.label = label;
    h.architecture = QStringLiteral("synthetic");
    h.layers = kLayers;
    h.units = kHeads;
    h.unitName = QStringLiteral("head");
    h.probes = testProbes();
    h.trainingLength = 100;
    h.forgetThreshold = 250.0;
    return h;
}

const QVector<qint64> kChunks{1, 7, 64, 3, 100, 125}; // uneven, sums to 300

void fill(TraceData& d, qint64 tokens = kTokens)
{
    d.reset(header());
    qint64 at = 0;
    int i = 0;
    while (at < tokens) {
        const qint64 n = std::min(kChunks[i++ % kChunks.size()], tokens - at);
        d.append(makeChunk(at, n));
        at += n;
    }
    // Offsets index one byte per token into this text: token t is the letter 'a' + t % 26.
    QByteArray text;
    for (qint64 t = 0; t < tokens; ++t)
        text.append(char('a' + t % 26));
    d.setText(text);
}

QByteArray readAll(const QString& path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

bool nanEqual(double a, double b)
{
    return (std::isnan(a) && std::isnan(b)) || a == b;
}

bool sameEnvelope(const Envelope& a, const Envelope& b)
{
    if (a.size() != b.size() || a.decimated != b.decimated)
        return false;
    for (int i = 0; i < a.size(); ++i)
        if (!nanEqual(a.x[i], b.x[i]) || !nanEqual(a.min[i], b.min[i]) || !nanEqual(a.max[i], b.max[i]) ||
            !nanEqual(a.mean[i], b.mean[i]))
            return false;
    return true;
}

template <typename View> void showView(View& v, int w, int h)
{
    v.resize(w, h);
    v.show();
    QVERIFY(QTest::qWaitForWindowExposed(&v));
}

QPair<double, double> graphValueRange(QCPGraph* g)
{
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (auto it = g->data()->constBegin(); it != g->data()->constEnd(); ++it)
        if (std::isfinite(it->value)) {
            lo = std::min(lo, it->value);
            hi = std::max(hi, it->value);
        }
    return {lo, hi};
}

} // namespace

class TestWidgets : public QObject {
    Q_OBJECT

private slots:
    void pyramidExactSmall();
    void pyramidBoundedSawtooth();
    void traceDataBoundedTwoMillion();
    void traceAggregates();
    void bucketedPerplexity();
    void lossViewPoints();
    void probeViews();
    void genericProbe();
    void logAxisHeatmap();
    void plotGroupSync();
    void liveAppendsCoalesce();
    void overlays();
    void overlayOtherArchitecture();
    void exports();
    void csvZoomed();
    void loadFileMatchesAppend();
    void loadFileErrors();
    void tokenStrip();
    void probeYFitsEveryDrawnLine();
    void probeLegendExplainsEveryLine();
    void yZoomAndBoxZoom();
    void overlayTrainingLengthMarker();
    void fullResolutionZoomLive();
    void fullResolutionZoomFile();
    void followGrowingFile();
    void crosshairReadout();
    void arrowKeysStepTheCursor();
    void stripFollowsZoom();
    void recordedInputPathNotFollowedBlindly();
    void paperLegendOutsideTheData();
    void paperLegendWhereChosen();
    void exportLeavesOutTheCursor();
    void paperTickLabelsDoNotOverlap();
    void oneNumberFormatPerAxis();
    void shortLegendLabels();
    void paperDefaultsLogXAndAveragedNll();
};

void TestWidgets::pyramidExactSmall()
{
    SeriesPyramid p(8);
    const QVector<float> v{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4};
    p.append(v.constData(), v.size());
    QCOMPARE(p.count(), qint64(v.size()));
    QVERIFY(p.bucketCount() <= 8);
    // 20 values into at most 8 buckets: width 4 (after 8 -> 4 buckets of 2 -> 4 of 4).
    QCOMPARE(p.bucketWidth(), qint64(4));
    const Envelope e = p.query(0, 20, 100);
    QCOMPARE(e.size(), 5);
    QVERIFY(e.decimated);
    // Bucket k holds values 4k..4k+3: min/max/mean by hand.
    const double mins[] = {1, 2, 3, 3, 2}, maxs[] = {4, 9, 8, 9, 8};
    const double means[] = {9.0 / 4, 22.0 / 4, 21.0 / 4, 28.0 / 4, 17.0 / 4};
    for (int i = 0; i < 5; ++i) {
        QCOMPARE(e.min[i], mins[i]);
        QCOMPARE(e.max[i], maxs[i]);
        QVERIFY(std::abs(e.mean[i] - means[i]) < 1e-6);
        QCOMPARE(e.x[i], 4.0 * i + 1.5 + 1.0); // centre token 4i + 1.5, x = token + 1
    }
    // Two columns over everything: exact min/max of halves (tokens 0..9 and 10..19).
    const Envelope two = p.query(0, 20, 2);
    QCOMPARE(two.size(), 2);
    QCOMPARE(two.min[0], 1.0);
    QCOMPARE(two.max[0], 9.0);
    QCOMPARE(two.min[1], 2.0);
    QCOMPARE(two.max[1], 9.0);
    // NaN is skipped in min, max and mean.
    SeriesPyramid q(4);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (float x : {nan, 2.0f, 4.0f, nan, nan, nan, 6.0f, 8.0f})
        q.append(x);
    float mn, mx;
    double mean;
    QVERIFY(q.range(0, 8, &mn, &mx, &mean));
    QCOMPARE(mn, 2.0f);
    QCOMPARE(mx, 8.0f);
    QCOMPARE(mean, 5.0);
    QVERIFY(q.valueAt(0) == q.valueAt(1)); // one bucket of 2 after the merge
}

void TestWidgets::pyramidBoundedSawtooth()
{
    const int cap = 4096;
    SeriesPyramid p(cap);
    std::vector<float> chunk;
    qint64 t = 0;
    size_t maxBytes = 0;
    const qint64 total = 2'000'000;
    for (int i = 0; t < total; ++i) {
        const qint64 n = std::min<qint64>(1000 + 37 * (i % 50), total - t);
        chunk.resize(size_t(n));
        for (qint64 k = 0; k < n; ++k)
            chunk[size_t(k)] = float((t + k) % 1000);
        p.append(chunk.data(), n);
        t += n;
        QVERIFY2(p.bucketCount() <= cap, qPrintable(QString::number(p.bucketCount())));
        maxBytes = std::max(maxBytes, p.memoryBytes());
    }
    QCOMPARE(p.count(), total);
    QVERIFY(maxBytes < size_t(cap) * 16 + 1024);
    QCOMPARE(p.bucketWidth(), qint64(512)); // 2M / 4096 rounded up to a power of two
    // Every column spans about 10 periods of the sawtooth: min 0, max 999, mean near 499.5 (columns
    // end on bucket edges, so they hold a fraction of a period more or less).
    const Envelope e = p.query(0, total, 200);
    QCOMPARE(e.size(), 200);
    for (int i = 0; i < e.size(); ++i) {
        QCOMPARE(e.min[i], 0.0);
        QCOMPARE(e.max[i], 999.0);
        QVERIFY(std::abs(e.mean[i] - 499.5) < 30);
    }
    // The whole range is 2000 periods exactly.
    float mn, mx;
    double mean;
    QVERIFY(p.range(0, total, &mn, &mx, &mean));
    QCOMPARE(mn, 0.0f);
    QCOMPARE(mx, 999.0f);
    QVERIFY(std::abs(mean - 499.5) < 1e-6);
    // Per bucket (512 tokens from 1024 on: 1024..1535 is 24..535 of a tooth).
    const Envelope b = p.query(1024, 1536, 10);
    QCOMPARE(b.size(), 1);
    QCOMPARE(b.min[0], 24.0);
    QCOMPARE(b.max[0], 535.0);
    QCOMPARE(b.mean[0], (24.0 + 535.0) / 2);
}

void TestWidgets::traceDataBoundedTwoMillion()
{
    TraceData d;
    d.reset(header());
    const int cap = d.pyramidCap();
    QCOMPARE(cap, SeriesPyramid::kDefaultCap); // 2 x 8 fits the budget at the full cap
    const qint64 total = 2'000'000;
    qint64 t = 0;
    size_t bytesAtHalf = 0;
    const qint64 lh = kLayers * kHeads;
    while (t < total) {
        const qint64 n = std::min<qint64>(t % 3 ? 40'000 : 65'537, total - t);
        ChunkProbes c;
        c.start = t;
        c.ids.assign(size_t(n), 1);
        c.nll.assign(size_t(n), 2.0f);
        c.values.assign(3, std::vector<float>(size_t(n * lh)));
        for (qint64 k = 0; k < n; ++k)
            for (qint64 j = 0; j < lh; ++j) {
                c.values[kDt][size_t(k * lh + j)] = 0.1f;
                c.values[kDecay][size_t(k * lh + j)] = 0.9f;
                c.values[kNorm][size_t(k * lh + j)] = float((t + k) % 1000); // sawtooth state norm
            }
        d.append(c);
        t += n;
        for (int p : {kDt, kDecay, kNorm})
            for (int unit : {7, TraceData::kSummary, TraceData::kMinimum})
                QVERIFY(d.pyramid(p, 1, unit)->bucketCount() <= cap);
        if (!bytesAtHalf && t >= total / 2)
            bytesAtHalf = d.pyramidBytes();
    }
    QCOMPARE(d.tokens(), total);
    // The pyramids stop growing once they reach the cap: 1M and 2M tokens take the same.
    QVERIFY(d.pyramidBytes() <= bytesAtHalf + 1024);
    // Per probe: one series per unit, and the summary and the min of each layer.
    const size_t series = 3 * lh + 3 * 2 * kLayers;
    QVERIFY(d.pyramidBytes() < series * size_t(cap) * 12 * 11 / 10 + 64 * 1024);
    const Envelope e = d.series(kNorm, 1, 7, 0, total, 300);
    QCOMPARE(e.size(), 300);
    for (int i = 0; i < e.size(); ++i) {
        QCOMPARE(e.min[i], 0.0);
        QCOMPARE(e.max[i], 999.0);
    }
    // The root sum of squares of 8 equal heads is sqrt(8) times one head's; the geometric mean of
    // equal gates is the gate.
    const Envelope layer = d.series(QStringLiteral("state_norm"), 1, TraceData::kSummary, 0, total, 10);
    QVERIFY(std::abs(layer.max[0] - 999.0 * std::sqrt(8.0)) < 0.1);
    QVERIFY(std::abs(d.valueAt(kDecay, 0, TraceData::kSummary, 12345) - 0.9) < 1e-6);

    // A smaller budget gives a smaller cap for the same trace (at least kMinCap).
    TraceData small;
    small.setPyramidBudget(series * 12 * 2048);
    small.reset(header());
    QCOMPARE(small.pyramidCap(), 2048);
    small.setPyramidBudget(1);
    small.reset(header());
    QCOMPARE(small.pyramidCap(), TraceData::kMinCap);
}

void TestWidgets::traceAggregates()
{
    TraceData d;
    fill(d);
    QCOMPARE(d.tokens(), kTokens);
    QCOMPARE(d.layers(), kLayers);
    QCOMPARE(d.units(), kHeads);
    QCOMPARE(d.unitName(), QStringLiteral("head"));
    QCOMPARE(d.ids().size(), int(kTokens));
    QCOMPARE(d.offsets().size(), int(2 * kTokens));
    QCOMPARE(d.seriesResolution(), qint64(1));
    QCOMPARE(d.probeCount(), 3);
    QCOMPARE(d.seriesProbes(), (QVector<int>{kDt, kDecay, kNorm}));
    QCOMPARE(d.probeIndex(QStringLiteral("decay")), kDecay);
    QCOMPARE(d.probeIndex(QStringLiteral("nothing")), -1);
    QVERIFY(!d.hasSeries(QStringLiteral("nothing")));
    QCOMPARE(d.probeLayers(kNorm), kLayers);
    QCOMPARE(d.probeUnits(kNorm), kHeads);
    // Full resolution: per-token values, by index or by name.
    for (qint64 t : {0, 1, 77, 299}) {
        QCOMPARE(d.valueAt(kDecay, 1, 3, t), decayOf(t, 1, 3));
        QCOMPARE(d.valueAt(QStringLiteral("decay"), 1, 3, t), decayOf(t, 1, 3));
        QCOMPARE(d.valueAt(kNorm, 0, 5, t), normOf(t, 0, 5));
        QCOMPARE(d.valueAt(kDt, 1, 0, t), dtOf(t, 1, 0));
        float mn = 10;
        for (int h = 0; h < kHeads; ++h)
            mn = std::min(mn, decayOf(t, 1, h));
        // Each probe's own summary: geometric mean for decay, root sum of squares for the norm,
        // mean for dt.
        QVERIFY(std::abs(d.valueAt(kDecay, 1, TraceData::kSummary, t) - decayGeoMean(t, 1)) < 1e-6);
        QCOMPARE(d.valueAt(kDecay, 1, TraceData::kMinimum, t), mn);
        QVERIFY(std::abs(d.valueAt(kNorm, 1, TraceData::kSummary, t) - normRss(t, 1)) < 1e-5 * normRss(t, 1));
        QVERIFY(std::abs(d.valueAt(kDt, 0, TraceData::kSummary, t) - dtMean(t, 0)) < 1e-6);
    }
    QVERIFY(std::isnan(d.valueAt(kDecay, 2, 0, 0))); // layer out of range
    QVERIFY(std::isnan(d.valueAt(kDecay, 0, 8, 0))); // unit out of range
    QVERIFY(std::isnan(d.valueAt(7, 0, 0, 0)));      // no such probe
    QVERIFY(std::isnan(d.valueAt(QStringLiteral("nothing"), 0, 0, 0)));
    QCOMPARE(d.tokenText(3), QStringLiteral("d"));

    // Heatmap: layers x columns; column c of 50 holds tokens 6c .. 6c+5.
    const QVector<float> hm = d.layerHeatmap(kDecay, TraceData::kSummary, 0, kTokens, 50);
    QCOMPARE(hm.size(), kLayers * 50);
    for (int l = 0; l < kLayers; ++l)
        for (int c : {0, 17, 49}) {
            double sum = 0;
            for (qint64 t = 6 * c; t < 6 * c + 6; ++t)
                sum += decayGeoMean(t, l);
            QVERIFY(std::abs(hm[l * 50 + c] - sum / 6) < 1e-5);
        }
    const QVector<float> hmin = d.layerHeatmap(kDecay, TraceData::kMinimum, 0, kTokens, 50);
    QCOMPARE(hmin[1 * 50 + 3], decayOf(21, 1, 0)); // tokens 18..23: head 0, and t % 7 == 0 at 21
    const QVector<float> hhead = d.layerHeatmap(kNorm, 2, 0, kTokens, 3);
    QCOMPARE(hhead.size(), kLayers * 3);
    double s = 0;
    for (qint64 t = 100; t < 200; ++t)
        s += normOf(t, 1, 2);
    QVERIFY(std::abs(hhead[1 * 3 + 1] - s / 100) < 1e-3);
    // More columns than tokens: still layers x columns.
    QCOMPARE(d.layerHeatmap(kNorm, TraceData::kSummary, 0, 10, 40).size(), kLayers * 40);

    // NLL envelope: per token when wide, exact min/max when decimated.
    const Envelope wide = d.nll(0, kTokens, 1000);
    QCOMPARE(wide.size(), int(kTokens));
    QVERIFY(!wide.decimated);
    QCOMPARE(wide.x.front(), 1.0);
    QCOMPARE(wide.mean[57], double(nllOf(57)));
    const Envelope narrow = d.nll(0, kTokens, 30);
    QCOMPARE(narrow.size(), 30);
    QVERIFY(narrow.decimated);
    for (int i = 1; i < 30; ++i) {
        QVERIFY(std::abs(narrow.min[i] - 1.0) < 1e-6);
        QVERIFY(std::abs(narrow.max[i] - 1.9) < 1e-6);
    }
    // Moving average of 10 over a full period of the pattern: mean of 1.0 .. 1.9.
    QVERIFY(std::abs(d.movingAverageAt(150, 10) - 1.45) < 1e-6);
    QVERIFY(std::abs(d.movingAverageAt(1, 10) - 1.1) < 1e-6); // token 0 is NaN: token 1 alone

    // Summaries skip NaN; a zero gate makes the geometric mean zero.
    TraceData z;
    TraceHeaderInfo h = header();
    h.layers = h.units = 0; // left out: taken from the probes' shape
    h.probes = {probeDesc("decay", "α", ProbeSummary::GeoMean, 1, 4)};
    z.reset(h);
    ChunkProbes c;
    c.ids = {1, 2, 3};
    c.nll = {1, 1, 1};
    const float nan = std::numeric_limits<float>::quiet_NaN();
    c.values = {{0.25f, 1.0f, nan, 0.25f, /**/ 0.5f, 0.0f, 0.5f, 0.5f, /**/ nan, nan, nan, nan}};
    z.append(c);
    QCOMPARE(z.layers(), 1); // from the probe's shape
    QCOMPARE(z.units(), 4);
    QVERIFY(std::abs(z.valueAt(0, 0, TraceData::kSummary, 0) - std::pow(0.25 * 1.0 * 0.25, 1.0 / 3)) < 1e-6);
    QCOMPARE(z.valueAt(0, 0, TraceData::kSummary, 1), 0.0f);
    QCOMPARE(z.valueAt(0, 0, TraceData::kMinimum, 1), 0.0f);
    QVERIFY(std::isnan(z.valueAt(0, 0, TraceData::kSummary, 2)));
}

void TestWidgets::bucketedPerplexity()
{
    TraceData d;
    fill(d);
    for (int bucket : {128, 256, 1024}) {
        const QVector<QPointF> pts = d.bucketedPerplexity(bucket);
        QCOMPARE(pts.size(), int((kTokens + bucket - 1) / bucket));
        for (int b = 0; b < pts.size(); ++b) {
            const qint64 t0 = qint64(b) * bucket, t1 = std::min<qint64>(kTokens, t0 + bucket);
            double sum = 0;
            int n = 0;
            for (qint64 t = t0; t < t1; ++t)
                if (!std::isnan(nllOf(t))) {
                    sum += nllOf(t);
                    ++n;
                }
            QVERIFY(std::abs(pts[b].y() - std::exp(sum / n)) < 1e-9 * std::exp(sum / n) + 1e-9);
            QCOMPARE(pts[b].x(), 0.5 * double(t0 + t1 - 1) + 1.0);
        }
    }
    // By hand: tokens 128..247 are 12 full periods of the pattern (mean 1.45); t % 10 for 248..255 is
    // 8, 9, 0, .., 5, so those 8 values are 1.8, 1.9, 1.0, .., 1.5.
    const double extra = 1.8 + 1.9 + 1.0 + 1.1 + 1.2 + 1.3 + 1.4 + 1.5;
    const double expected = std::exp((120 * 1.45 + extra) / 128);
    QVERIFY(std::abs(d.bucketedPerplexity(128)[1].y() - expected) < 1e-4);
}

void TestWidgets::lossViewPoints()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    LossView v;
    v.setTrace(&d);
    g.setTrace(&d);
    g.addView(&v);
    showView(v, 1400, 400);
    g.showAll();
    v.setBucketSize(128);
    v.refresh();
    QVERIFY(v.plot()->xAxis->axisRect()->width() > int(kTokens));
    QCOMPARE(v.nllGraph()->dataCount(), int(kTokens));
    QCOMPARE(v.averageGraph()->dataCount(), int(kTokens));
    QCOMPARE(v.perplexityGraph()->dataCount(), 3); // buckets of 128 over 300 tokens
    QCOMPARE(v.bucketBox()->currentText(), QStringLiteral("128"));
    QCOMPARE(v.plot()->yAxis2->scaleType(), QCPAxis::stLogarithmic);
    // The bucket control covers 128 .. 8192 and rounds to a power of two.
    QCOMPARE(v.bucketBox()->count(), 7);
    v.setBucketSize(3000);
    QCOMPARE(v.bucketSize(), 2048);
    QCOMPARE(v.perplexityGraph()->dataCount(), 1);
    v.setBucketSize(1 << 20);
    QCOMPARE(v.bucketSize(), 8192);

    // Narrow: decimated to at most two points per pixel column, keeping the exact extremes.
    v.resize(240, 400);
    QApplication::processEvents();
    v.refresh();
    const int cols = v.plot()->xAxis->axisRect()->width();
    QVERIFY2(cols > 10 && cols < 150, qPrintable(QString::number(cols)));
    QVERIFY(v.nllGraph()->dataCount() <= 2 * cols);
    QVERIFY(v.nllGraph()->dataCount() < int(kTokens));
    QVERIFY(v.averageGraph()->dataCount() <= cols);
    const auto [lo, hi] = graphValueRange(v.nllGraph());
    QVERIFY(std::abs(lo - 1.0) < 1e-6);
    QVERIFY(std::abs(hi - 1.9) < 1e-6);
    // Markers from the trace: training length and T_forget.
    QCOMPARE(g.markerCount(v.plot()), 2);
    g.setTrainingLength(std::nullopt);
    QCOMPARE(g.markerCount(v.plot()), 1);
    g.useTraceMarkers();
    QCOMPARE(g.markerCount(v.plot()), 2);
}

void TestWidgets::probeViews()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    g.setTrace(&d);
    ProbeView gate(QStringLiteral("decay"));
    ProbeView norm(QStringLiteral("state_norm"));
    gate.setTrace(&d);
    norm.setTrace(&d);
    g.addView(&gate);
    g.addView(&norm);
    showView(gate, 1400, 500);
    showView(norm, 1400, 500);
    g.showAll();
    gate.refresh();
    norm.refresh();

    QCOMPARE(gate.probeIndex(), kDecay);
    QCOMPARE(gate.unitGraphs().size(), kHeads);
    QCOMPARE(gate.layerBox()->count(), kLayers);
    QCOMPARE(gate.unitBox()->count(), kHeads);
    QCOMPARE(gate.probeBox()->count(), 3);
    QCOMPARE(gate.probeBox()->currentData().toString(), QStringLiteral("decay"));
    for (QCPGraph* h : gate.unitGraphs())
        QCOMPARE(h->dataCount(), int(kTokens));
    QCOMPARE(gate.summaryGraph()->dataCount(), int(kTokens));
    gate.setLayer(1);
    QCOMPARE(gate.unitGraphs()[4]->data()->at(10)->value, double(decayOf(10, 1, 4)));
    QVERIFY(std::abs(gate.summaryGraph()->data()->at(10)->value - decayGeoMean(10, 1)) < 1e-6);
    // Labels from the descriptor: its label on the axis, its summary and unit name in the legend.
    QCOMPARE(gate.linesRect()->axis(QCPAxis::atLeft)->label(), QStringLiteral("α"));
    QCOMPARE(gate.summaryGraph()->name(), QStringLiteral("layer 1: geometric mean over heads"));
    QCOMPARE(gate.unitGraphs()[0]->name(), QStringLiteral("head 0"));
    QCOMPARE(gate.reduceBox()->itemText(0), QStringLiteral("geometric mean over heads"));
    QCOMPARE(gate.colorScale()->axis()->label(), QStringLiteral("α, geomean"));
    QVERIFY(gate.plot()->toolTip().contains(QStringLiteral("synthetic decay")));
    QCOMPARE(gate.title(), QStringLiteral("decay (α)"));
    // Heatmap: layers x pixel columns of the data span (2 px each).
    QCPColorMapData* hm = gate.heatmap()->data();
    QCOMPARE(hm->valueSize(), kLayers);
    const int w = gate.heatmapRect()->width();
    QVERIFY(hm->keySize() >= w / 2 - 2 && hm->keySize() <= w / 2 + 2);
    // The cells hold the layer's summary of their tokens: the first cell has token 0 only.
    QVERIFY(std::abs(hm->cell(0, 1) - decayGeoMean(0, 1)) < 1e-5);
    gate.setReduce(ProbeView::Reduce::Min);
    QVERIFY(std::abs(gate.heatmap()->data()->cell(0, 1) - decayOf(0, 1, 0)) < 1e-6);
    QCOMPARE(gate.colorScale()->axis()->label(), QStringLiteral("α, min"));
    gate.setUnit(5);
    gate.setReduce(ProbeView::Reduce::Unit);
    QVERIFY(std::abs(gate.heatmap()->data()->cell(0, 0) - decayOf(0, 0, 5)) < 1e-6);
    QCOMPARE(gate.unitBox()->currentIndex(), 5);
    QCOMPARE(gate.colorScale()->axis()->label(), QStringLiteral("α, head 5"));

    QCOMPARE(norm.unitGraphs().size(), kHeads);
    for (QCPGraph* h : norm.unitGraphs())
        QCOMPARE(h->dataCount(), int(kTokens));
    QCOMPARE(norm.heatmap()->data()->valueSize(), kLayers);
    QVERIFY(norm.heatmap()->data()->keySize() >= w / 2 - 2);
    norm.setLayer(1);
    QCOMPARE(norm.unitGraphs()[7]->data()->at(299)->value, double(normOf(299, 1, 7)));
    // The default heatmap is the layer's state norm: the root sum of squares of its units.
    QVERIFY(std::abs(norm.heatmap()->data()->cell(0, 1) - normRss(0, 1)) < 1e-4 * normRss(0, 1));
    QCOMPARE(norm.summaryGraph()->name(), QStringLiteral("layer 1: root sum of squares over heads"));
    // A magnitude's axis starts at zero.
    QCOMPARE(norm.linesRect()->axis(QCPAxis::atLeft)->range().lower, 0.0);
    norm.setLogY(true);
    QCOMPARE(norm.linesRect()->axis(QCPAxis::atLeft)->scaleType(), QCPAxis::stLogarithmic);
    QCOMPARE(norm.colorScale()->axis()->scaleType(), QCPAxis::stLogarithmic);
    QVERIFY(norm.logBox()->isChecked());
    QVERIFY(norm.linesRect()->axis(QCPAxis::atLeft)->range().lower > 0);

    // Narrow: decimated per pixel column.
    norm.resize(300, 500);
    QApplication::processEvents();
    norm.refresh();
    const int cols = norm.linesRect()->width();
    for (QCPGraph* h : norm.unitGraphs())
        QVERIFY(h->dataCount() <= 2 * cols);

    // A trace without the probe: the view stays empty and says so, and keeps the probe for the next.
    TraceData other;
    TraceHeaderInfo h = header();
    h.probes = {testProbes()[kDt]};
    other.reset(h);
    ChunkProbes dtOnly = makeChunk(0, 10);
    dtOnly.values.resize(1);
    other.append(dtOnly);
    gate.setTrace(&other);
    gate.refresh();
    QCOMPARE(gate.probeIndex(), -1);
    QCOMPARE(gate.probeName(), QStringLiteral("decay"));
    QCOMPARE(gate.unitGraphs().size(), 0);
    QCOMPARE(gate.summaryGraph()->dataCount(), 0);
    QCOMPARE(gate.probeBox()->currentIndex(), -1);
    QVERIFY(gate.plot()->toolTip().contains(QStringLiteral("no probe decay")));
    gate.setTrace(&d);
    QCOMPARE(gate.probeIndex(), kDecay);
}

void TestWidgets::genericProbe()
{
    // A view shows a probe it has no code for, from its descriptor alone: dt, and a probe of a
    // made-up architecture with its own shape, summary and unit.
    const int layers = 3, units = 5;
    TraceHeaderInfo h;
    h.label = QStringLiteral("made-up");
    h.architecture = QStringLiteral("madeup");
    h.layers = kLayers;
    h.units = kHeads;
    h.unitName = QStringLiteral("channel group");
    h.probes = testProbes();
    ProbeDesc zeta = probeDesc("zeta", "ζ", ProbeSummary::RootSumSquare, layers, units, "nats");
    zeta.axes = {"layer", "channel_group"};
    ProbeDesc flat;
    flat.name = "flat";
    flat.shape = {4};
    flat.axes = {"slot"};
    h.probes.push_back(zeta);
    h.probes.push_back(flat);
    TraceData d;
    d.reset(h);
    auto zetaOf = [](qint64 t, int l, int u) { return float(l * 10 + u) + 0.5f * float(t % 3); };
    for (qint64 start = 0; start < kTokens; start += 100) {
        ChunkProbes c = makeChunk(start, 100);
        c.values.resize(5);
        for (qint64 t = start; t < start + 100; ++t) {
            for (int l = 0; l < layers; ++l)
                for (int u = 0; u < units; ++u)
                    c.values[3].push_back(zetaOf(t, l, u));
            for (int i = 0; i < 4; ++i)
                c.values[4].push_back(float(i));
        }
        d.append(c);
    }
    QCOMPARE(d.tokens(), kTokens);
    QCOMPARE(d.seriesProbes(), (QVector<int>{0, 1, 2, 3})); // not the rank-1 probe
    QVERIFY(!d.hasSeries(QStringLiteral("flat")));

    PlotGroup g;
    g.setTrace(&d);
    ProbeView v(QStringLiteral("dt"));
    v.setTrace(&d);
    g.addView(&v);
    showView(v, 1400, 500);
    g.showAll();
    v.refresh();
    QCOMPARE(v.unitGraphs().size(), kHeads);
    for (int u = 0; u < kHeads; ++u)
        QCOMPARE(v.unitGraphs()[u]->data()->at(42)->value, double(dtOf(42, 0, u)));
    QVERIFY(std::abs(v.summaryGraph()->data()->at(42)->value - dtMean(42, 0)) < 1e-6);
    QCOMPARE(v.linesRect()->axis(QCPAxis::atLeft)->label(), QStringLiteral("Δ"));
    QCOMPARE(v.summaryGraph()->name(), QStringLiteral("layer 0: mean over channel groups"));
    QCOMPARE(v.unitGraphs()[2]->name(), QStringLiteral("channel group 2"));
    QVERIFY(std::abs(v.heatmap()->data()->cell(0, 1) - dtMean(0, 1)) < 1e-6);

    // The picker offers every probe with series; picking one is reported and redraws the view.
    QCOMPARE(v.probeBox()->count(), 4);
    QCOMPARE(v.probeBox()->itemText(3), QStringLiteral("zeta (ζ)"));
    QSignalSpy picked(&v, &ProbeView::probePicked);
    QSignalSpy changed(&v, &ProbeView::probeChanged);
    v.probeBox()->setCurrentIndex(3);
    emit v.probeBox()->activated(3);
    QCOMPARE(picked.count(), 1);
    QCOMPARE(changed.count(), 1);
    QCOMPARE(v.probeName(), QStringLiteral("zeta"));
    v.setLayer(2);
    v.refresh();
    QCOMPARE(v.unitGraphs().size(), units);
    QCOMPARE(v.layerBox()->count(), layers);
    QCOMPARE(v.heatmap()->data()->valueSize(), layers);
    QCOMPARE(v.unitGraphs()[4]->data()->at(100)->value, double(zetaOf(100, 2, 4)));
    double sq = 0;
    for (int u = 0; u < units; ++u)
        sq += std::pow(double(zetaOf(100, 2, u)), 2);
    QVERIFY(std::abs(v.summaryGraph()->data()->at(100)->value - std::sqrt(sq)) < 1e-4);
    QCOMPARE(v.linesRect()->axis(QCPAxis::atLeft)->label(), QStringLiteral("ζ (nats)"));
    QCOMPARE(v.summaryGraph()->name(), QStringLiteral("layer 2: root sum of squares over channel groups"));
    // setProbe() is not a pick.
    v.setProbe(QStringLiteral("decay"));
    QCOMPARE(picked.count(), 1);
    QCOMPARE(changed.count(), 2);
    QCOMPARE(v.layer(), kLayers - 1); // clamped to decay's layers
    // CSV of any probe: its units in the selected layer, then each layer's summary.
    QTemporaryDir dir;
    QString error;
    v.setProbe(QStringLiteral("zeta"));
    QVERIFY2(PlotExporter::saveCsv(&v, dir.filePath("zeta.csv"), &error), qPrintable(error));
    const QList<QByteArray> lines = readAll(dir.filePath("zeta.csv")).trimmed().split('\n');
    QCOMPARE(lines.size(), int(kTokens) + 1);
    QCOMPARE(lines[0], QByteArray("token,zeta_L1_U0,zeta_L1_U1,zeta_L1_U2,zeta_L1_U3,zeta_L1_U4,"
                                  "zeta_rss_L0,zeta_rss_L1,zeta_rss_L2"));
    QVERIFY(std::abs(lines[8].split(',')[3].toDouble() - zetaOf(7, 1, 2)) < 1e-5);
}

void TestWidgets::logAxisHeatmap()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    g.setTrace(&d);
    ProbeView gate(QStringLiteral("decay"));
    gate.setTrace(&d);
    g.addView(&gate);
    showView(gate, 1400, 500);
    g.setLogX(true);
    g.showAll();
    gate.refresh();
    for (QCPAxis* x : gate.tokenAxes())
        QCOMPARE(x->scaleType(), QCPAxis::stLogarithmic);
    QVERIFY(g.range().lower > 0);
    // The first tokens get many pixels each and keep their own points; towards the end a pixel holds
    // more than one token and columns merge.
    QCPGraphDataContainer* summary = gate.summaryGraph()->data().data();
    QVERIFY(summary->size() > 200 && summary->size() <= int(kTokens));
    for (int i = 0; i < 50; ++i)
        QCOMPARE(summary->at(i)->key, double(i + 1));
    QCOMPARE(gate.heatmap()->data()->valueSize(), kLayers);
    // Columns are equal in pixels: the first column holds token 0 alone.
    QVERIFY(std::abs(gate.heatmap()->data()->cell(0, 0) - decayGeoMean(0, 0)) < 1e-5);
    g.setLogX(false);
    QCOMPARE(gate.tokenAxes().front()->scaleType(), QCPAxis::stLinear);
}

void TestWidgets::plotGroupSync()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView gate(QStringLiteral("decay"));
    ProbeView norm(QStringLiteral("state_norm"));
    for (TraceView* v :
         {static_cast<TraceView*>(&loss), static_cast<TraceView*>(&gate), static_cast<TraceView*>(&norm)}) {
        v->setTrace(&d);
        g.addView(v);
        v->resize(1000, 400);
        v->show();
        QVERIFY(QTest::qWaitForWindowExposed(v));
    }
    QCOMPARE(g.plots().size(), 3);
    g.setRange(QCPRange(50, 150));
    for (TraceView* v :
         {static_cast<TraceView*>(&loss), static_cast<TraceView*>(&gate), static_cast<TraceView*>(&norm)})
        for (QCPAxis* x : v->tokenAxes()) {
            QCOMPARE(x->range().lower, 50.0);
            QCOMPARE(x->range().upper, 150.0);
        }
    // A zoom on one axis (as a wheel or drag does) moves all of them.
    QSignalSpy rangeSpy(&g, &PlotGroup::rangeChanged);
    gate.heatmapRect()->axis(QCPAxis::atBottom)->setRange(QCPRange(20, 120));
    QCOMPARE(rangeSpy.count(), 1);
    QCOMPARE(loss.plot()->xAxis->range().lower, 20.0);
    QCOMPARE(norm.tokenAxes().front()->range().upper, 120.0);
    QCOMPARE(gate.tokenAxes().front()->range().lower, 20.0);
    // The range stays within the trace.
    g.setRange(QCPRange(-500, 10000));
    QVERIFY(g.range().lower >= 0.4 && g.range().upper <= kTokens + 0.6);

    QSignalSpy cursorSpy(&g, &PlotGroup::cursorMoved);
    g.setRange(QCPRange(0.5, kTokens + 0.5));
    g.setCursor(123);
    QCOMPARE(cursorSpy.count(), 1);
    QCOMPARE(cursorSpy.at(0).at(0).toLongLong(), 123ll);
    int lines = 0;
    for (QCustomPlot* p : g.plots())
        for (QCPAxisRect* r : p->axisRects()) {
            QCPItemStraightLine* line = g.cursorLine(r);
            if (!line)
                continue;
            ++lines;
            QVERIFY(line->visible());
            QCOMPARE(line->point1->coords().x(), 124.0);
        }
    QCOMPARE(lines, 5); // loss 1 rect, gate 2, norm 2
    g.setCursor(123);
    QCOMPARE(cursorSpy.count(), 1); // unchanged: no signal

    // A click in a plot moves the cursor to the token under the mouse.
    loss.refresh();
    QCustomPlot* p = loss.plot();
    p->replot();
    const int px = int(std::lround(p->xAxis->coordToPixel(TraceData::tokenToX(200))));
    const int py = p->xAxis->axisRect()->center().y();
    QTest::mouseClick(p, Qt::LeftButton, Qt::NoModifier, QPoint(px, py));
    QVERIFY(std::abs(g.cursor() - 200) <= 1);
    // Moving the cursor outside the view pans the view to it.
    g.setRange(QCPRange(10, 60));
    g.setCursor(250);
    QVERIFY(g.range().contains(251.0));
}

void TestWidgets::liveAppendsCoalesce()
{
    TraceData d;
    d.reset(header());
    PlotGroup g;
    g.setTrace(&d);
    LossView v;
    v.setTrace(&d);
    g.addView(&v);
    showView(v, 800, 300);
    QTRY_VERIFY(!v.refreshPending());
    const qint64 before = v.refreshCount();
    for (int i = 0; i < 100; ++i)
        d.append(makeChunk(qint64(i) * 3, 3));
    QVERIFY(v.refreshPending());
    QTRY_VERIFY(!v.refreshPending());
    // 100 appends between two event loop turns: one refresh, not 100.
    QVERIFY(v.refreshCount() - before <= 2);
    QCOMPARE(v.nllGraph()->dataCount(), 300);
    // The range followed the growing trace.
    QVERIFY(g.range().upper >= 300);
    // Appends every few ms for a second: the plot follows at least 10 times a second and at most
    // ~30 (the refresh timer), however many appends arrive.
    QElapsedTimer timer;
    timer.start();
    const qint64 c0 = v.refreshCount();
    qint64 at = 300;
    int appends = 0;
    while (timer.elapsed() < 1000) {
        d.append(makeChunk(at, 2));
        at += 2;
        ++appends;
        QTest::qWait(2);
    }
    const double perSecond = (v.refreshCount() - c0) * 1000.0 / timer.elapsed();
    QVERIFY2(perSecond >= 10 && perSecond <= 35,
             qPrintable(QStringLiteral("%1 refreshes/s for %2 appends").arg(perSecond).arg(appends)));
    QVERIFY(appends > 2 * (v.refreshCount() - c0));
}

void TestWidgets::overlays()
{
    TraceData a, b;
    fill(a);
    b.reset(header(QStringLiteral("second")));
    for (qint64 t = 0; t < 200; t += 50)
        b.append(makeChunk(t, 50));
    PlotGroup g;
    g.setTrace(&a);
    LossView loss;
    ProbeView norm(QStringLiteral("state_norm"));
    ProbeView gate(QStringLiteral("decay"));
    for (TraceView* v : QList<TraceView*>{&loss, &norm, &gate}) {
        v->setTrace(&a);
        v->setOverlay(&b);
        g.addView(v);
        showView(*v, 1400, 400);
        v->refresh();
    }
    // The probe views show the overlay as its layer summary, one point per token of the overlay.
    for (ProbeView* v : {&gate, &norm}) {
        QVERIFY(v->overlaySummaryGraph());
        QCOMPARE(v->overlaySummaryGraph()->dataCount(), 200);
        QVERIFY(v->overlaySummaryGraph()->pen().color() != v->summaryGraph()->pen().color());
        QVERIFY(v->overlaySummaryGraph()->name().contains(QStringLiteral("second")));
        QCOMPARE(v->unitGraphs().size(), kHeads); // the trace's units only
    }
    QVERIFY(std::abs(norm.overlaySummaryGraph()->data()->at(150)->value - normRss(150, 0)) < 1e-3);
    QVERIFY(loss.overlayNllGraph());
    QCOMPARE(loss.overlayNllGraph()->dataCount(), 200);
    QCOMPARE(loss.nllGraph()->dataCount(), int(kTokens));
    QVERIFY(loss.overlayAverageGraph()->pen().color() != loss.averageGraph()->pen().color());
    // The legend names both traces.
    QStringList names;
    for (int i = 0; i < loss.plot()->legend->itemCount(); ++i)
        if (auto* item = qobject_cast<QCPPlottableLegendItem*>(loss.plot()->legend->item(i)))
            names << item->plottable()->name();
    QVERIFY(names.join('|').contains(QStringLiteral("synthetic")));
    QVERIFY(names.join('|').contains(QStringLiteral("second")));
    loss.setOverlay(nullptr);
    norm.setOverlay(nullptr);
    gate.setOverlay(nullptr);
    QVERIFY(!gate.overlaySummaryGraph());
    QVERIFY(!norm.overlaySummaryGraph());
    QVERIFY(!loss.overlayNllGraph());
}

void TestWidgets::overlayOtherArchitecture()
{
    // An overlay of another architecture: 3 layers of 4 channel groups under a trace of 2 x 8 heads.
    // It shows as its own summary of the selected layer, named with its own units.
    TraceData a, b;
    fill(a);
    TraceHeaderInfo h;
    h.label = QStringLiteral("other");
    h.architecture = QStringLiteral("other-arch");
    h.layers = 3;
    h.units = 4;
    h.unitName = QStringLiteral("channel group");
    h.probes = {probeDesc("decay", "α", ProbeSummary::GeoMean, 3, 4),
                probeDesc("state_norm", "‖S‖", ProbeSummary::RootSumSquare, 3, 4)};
    b.reset(h);
    ChunkProbes c;
    for (qint64 t = 0; t < 120; ++t) {
        c.ids.push_back(1);
        c.nll.push_back(1.0f);
    }
    c.values.resize(2);
    for (qint64 t = 0; t < 120; ++t)
        for (int l = 0; l < 3; ++l)
            for (int u = 0; u < 4; ++u) {
                c.values[0].push_back(0.25f * float(u + 1)); // geometric mean of .25 .5 .75 1
                c.values[1].push_back(float(u + l));
            }
    b.append(c);
    PlotGroup g;
    g.setTrace(&a);
    ProbeView gate(QStringLiteral("decay"));
    gate.setTrace(&a);
    gate.setOverlay(&b);
    g.addView(&gate);
    showView(gate, 1400, 400);
    gate.setLayer(1);
    gate.refresh();
    QCOMPARE(gate.unitGraphs().size(), kHeads);
    QCOMPARE(gate.overlaySummaryGraph()->dataCount(), 120);
    const double geo = std::pow(0.25 * 0.5 * 0.75 * 1.0, 0.25);
    QVERIFY(std::abs(gate.overlaySummaryGraph()->data()->at(60)->value - geo) < 1e-6);
    QCOMPARE(gate.overlaySummaryGraph()->name(),
             QStringLiteral("other: layer 1 geometric mean over channel groups"));
    QCOMPARE(gate.summaryGraph()->name(), QStringLiteral("layer 1: geometric mean over heads"));
    // The overlay's layer 2 has no counterpart in the trace: the view keeps to the trace's layers.
    gate.setLayer(2);
    QCOMPARE(gate.layer(), kLayers - 1);
    // Swapped, the overlay lacks layer 2 and draws nothing there.
    gate.setTrace(&b);
    gate.setOverlay(&a);
    gate.setLayer(2);
    gate.refresh();
    QCOMPARE(gate.layer(), 2);
    QCOMPARE(gate.unitGraphs().size(), 4);
    QCOMPARE(gate.overlaySummaryGraph()->dataCount(), 0);
    gate.setLayer(0);
    gate.refresh();
    QCOMPARE(gate.overlaySummaryGraph()->dataCount(), int(kTokens));
}

void TestWidgets::exports()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView gate(QStringLiteral("decay"));
    ProbeView norm(QStringLiteral("state_norm"));
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QList<TraceView*> views{&loss, &gate, &norm};
    for (TraceView* v : views) {
        v->setTrace(&d);
        g.addView(v);
        v->resize(900, 450);
        v->show();
        QVERIFY(QTest::qWaitForWindowExposed(v));
        v->refresh();
    }
    gate.setDarkTheme(true); // a dark view exports too (paper: light)
    int n = 0;
    for (TraceView* v : views) {
        for (const ExportStyle& style : {ExportStyle::screen(), ExportStyle::paperPreset()}) {
            const QString base = dir.filePath(QStringLiteral("plot%1").arg(n++));
            QString error;
            QVERIFY2(PlotExporter::save(v, base + ".png", style, &error), qPrintable(error));
            QVERIFY2(PlotExporter::save(v, base + ".svg", style, &error), qPrintable(error));
            QVERIFY2(PlotExporter::save(v, base + ".pdf", style, &error), qPrintable(error));

            const QByteArray png = readAll(base + ".png");
            QVERIFY(png.startsWith(QByteArray("\x89PNG\r\n\x1a\n", 8)));
            QImage img;
            QVERIFY(img.loadFromData(png, "PNG"));
            if (style.paper) {
                // 89 mm at 300 dpi.
                QVERIFY(std::abs(img.width() - 1051) <= 2);
                QVERIFY(std::abs(img.height() - 709) <= 2);
            } else {
                QCOMPARE(img.size(), v->plot()->size());
            }
            // Non-trivial: many colours, not a blank canvas.
            QSet<QRgb> colours;
            for (int y = 0; y < img.height(); y += 3)
                for (int x = 0; x < img.width(); x += 3)
                    colours.insert(img.pixel(x, y));
            QVERIFY2(colours.size() > 20, qPrintable(QString::number(colours.size())));

            const QByteArray svg = readAll(base + ".svg");
            QVERIFY(svg.size() > 2000);
            QXmlStreamReader xml(svg);
            QString root;
            int paths = 0;
            while (!xml.atEnd()) {
                if (xml.readNext() == QXmlStreamReader::StartElement) {
                    if (root.isEmpty())
                        root = xml.name().toString();
                    if (xml.name() == QLatin1String("path") || xml.name() == QLatin1String("polyline"))
                        ++paths;
                }
            }
            QVERIFY2(!xml.hasError(), qPrintable(xml.errorString()));
            QCOMPARE(root, QStringLiteral("svg"));
            QVERIFY(paths > 5);
            QSvgRenderer renderer(svg);
            QVERIFY(renderer.isValid());
            if (style.paper)
                QVERIFY(svg.contains("width=\"89") || svg.contains("width=\"88.9")); // mm

            const QByteArray pdf = readAll(base + ".pdf");
            QVERIFY(pdf.startsWith("%PDF-"));
            QVERIFY(pdf.size() > 2000);
            QVERIFY(pdf.trimmed().endsWith("%%EOF"));
            if (qEnvironmentVariableIsSet("KEEP_EXPORTS"))
                for (const char* ext : {".png", ".svg", ".pdf"})
                    QFile::copy(base + ext, qEnvironmentVariable("KEEP_EXPORTS") + "/" +
                                                QFileInfo(base).fileName() + ext);
        }
    }
    // The screen look comes back after a paper export.
    QCOMPARE(loss.plot()->xAxis->tickLabelFont(), QCustomPlot().xAxis->tickLabelFont());
    QVERIFY(gate.darkTheme());
    QString error;
    QVERIFY(!PlotExporter::save(&loss, dir.filePath("x.bmp"), ExportStyle::screen(), &error));
    QVERIFY(error.contains(QStringLiteral("unknown export format")));
    QVERIFY(
        !PlotExporter::save(&loss, QStringLiteral("/nonexistent-dir/x.svg"), ExportStyle::screen(), &error));
    QVERIFY(!error.isEmpty());
}

void TestWidgets::csvZoomed()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView norm(QStringLiteral("state_norm"));
    loss.setTrace(&d);
    norm.setTrace(&d);
    g.addView(&loss);
    g.addView(&norm);
    showView(loss, 900, 300);
    norm.resize(900, 400);
    // Tokens 50 .. 99 visible (x = token + 1).
    g.setRange(QCPRange(50.6, 100.4));
    QCOMPARE(loss.visibleTokens(), std::make_pair(qint64(50), qint64(100)));
    QTemporaryDir dir;
    const QString path = dir.filePath("loss.csv");
    QString error;
    qint64 rows = 0;
    QVERIFY2(PlotExporter::saveCsv(&loss, path, &error, &rows), qPrintable(error));
    QCOMPARE(rows, qint64(50));
    const QList<QByteArray> lines = readAll(path).trimmed().split('\n');
    QCOMPARE(lines.size(), 51);
    const QList<QByteArray> head = lines[0].split(',');
    QCOMPARE(head[0], QByteArray("token"));
    QCOMPARE(head[1], QByteArray("nll"));
    QCOMPARE(head.size(), 4);
    for (int i = 1; i < lines.size(); ++i) {
        const QList<QByteArray> f = lines[i].split(',');
        QCOMPARE(f[0].toLongLong(), qint64(49 + i));
        QVERIFY(std::abs(f[1].toDouble() - nllOf(49 + i)) < 1e-6);
    }
    const QString npath = dir.filePath("norm.csv");
    QVERIFY(PlotExporter::save(&norm, npath, ExportStyle::screen(), &error));
    const QList<QByteArray> nl = readAll(npath).trimmed().split('\n');
    QCOMPARE(nl.size(), 51);
    QCOMPARE(nl[0].split(',').size(), 1 + kHeads + kLayers);
    QCOMPARE(nl[0].split(',')[3], QByteArray("state_norm_L0_U2"));
    QCOMPARE(nl[0].split(',').last(), QByteArray("state_norm_rss_L1"));
    QVERIFY(std::abs(nl[1].split(',')[3].toDouble() - normOf(50, 0, 2)) < 1e-3);
}

void TestWidgets::loadFileMatchesAppend()
{
    // Long enough that the pyramids merge (cap 65536) and loading takes two blocks.
    const qint64 total = 70'000;
    QTemporaryDir dir;
    const QString path = dir.filePath("t.h5");
    TraceData appended;
    appended.reset(header());
    {
        TraceHeader h;
        h.architecture = "synthetic";
        h.architectureName = "Synthetic";
        h.modelConfigJson = R"({"d_model": 64, "n_layer": 2})";
        h.modelPath = "/nonexistent/model";
        h.dtype = "float32";
        h.device = "cpu";
        h.input = "synthetic";
        h.hasOffsets = true;
        h.probes = testProbes();
        // Everything the window shows comes from the header: the model folder does not exist.
        h.layers = kLayers;
        h.units = kHeads;
        h.unitName = "head";
        h.stateSize = 5056;
        h.forgetThreshold = 12345.5;
        h.trainingLength = 0; // unknown
        h.vocabSize = 256;
        h.inputSource.kind = "text";
        h.inputSource.path = dir.filePath("input.txt").toStdString();
        h.inputSource.tokenizerPath = "/nonexistent/tokenizer.json";
        TraceWriter w(path.toStdString(), h);
        qint64 at = 0;
        for (int i = 0; at < total; ++i) {
            const qint64 n = std::min<qint64>(kChunks[i % kChunks.size()] * 37, total - at);
            const ChunkProbes c = makeChunk(at, n);
            w.append(c);
            appended.append(c);
            at += n;
        }
        w.finish();
    }
    TraceData loaded;
    QSignalSpy spy(&loaded, &TraceData::appended);
    QString error;
    qint64 lastProgress = 0;
    QVERIFY2(loaded.loadFile(path, &error,
                             [&](qint64 done, qint64 all) {
                                 lastProgress = done;
                                 return all == total;
                             }),
             qPrintable(error));
    QCOMPARE(lastProgress, total);
    QCOMPARE(spy.count(), 1);
    QCOMPARE(loaded.tokens(), total);
    QCOMPARE(loaded.layers(), kLayers);
    QCOMPARE(loaded.units(), kHeads);
    QCOMPARE(loaded.unitName(), QStringLiteral("head"));
    QCOMPARE(loaded.header().architecture, QStringLiteral("synthetic"));
    QCOMPARE(loaded.header().architectureName, QStringLiteral("Synthetic"));
    QCOMPARE(loaded.header().vocabSize, qint64(256));
    QCOMPARE(loaded.header().stateSize, qint64(5056));
    QCOMPARE(loaded.header().inputPath, dir.filePath("input.txt"));
    QCOMPARE(loaded.header().tokenizerPath, QStringLiteral("/nonexistent/tokenizer.json"));
    QCOMPARE(loaded.label(), QStringLiteral("t"));
    QCOMPARE(loaded.filePath(), path);
    QCOMPARE(loaded.seriesResolution(), qint64(2));
    QCOMPARE(loaded.ids(), appended.ids());
    QCOMPARE(loaded.offsets(), appended.offsets());
    // The markers as the header recorded them.
    QCOMPARE(loaded.forgetThreshold(), std::optional<double>(12345.5));
    QVERIFY(!loaded.trainingLength().has_value());
    // The input file is gone: no text, the strip falls back to ids.
    QVERIFY(loaded.text().isEmpty());
    for (int cols : {100, 5000, 100000}) {
        QVERIFY(sameEnvelope(loaded.nll(0, total, cols), appended.nll(0, total, cols)));
        for (int p : {kDt, kDecay, kNorm})
            for (int unit : {3, TraceData::kSummary, TraceData::kMinimum})
                for (int l = 0; l < kLayers; ++l)
                    QVERIFY(sameEnvelope(loaded.series(p, l, unit, 1000, 60000, cols),
                                         appended.series(p, l, unit, 1000, 60000, cols)));
        QCOMPARE(loaded.layerHeatmap(kDecay, TraceData::kMinimum, 0, total, cols % 1000 + 7),
                 appended.layerHeatmap(kDecay, TraceData::kMinimum, 0, total, cols % 1000 + 7));
    }
    QCOMPARE(loaded.bucketedPerplexity(512), appended.bucketedPerplexity(512));
    // And against the formula: min/max of a decimated column are exact.
    const Envelope e = loaded.series(kNorm, 1, 2, 0, total, 7);
    QCOMPARE(e.min.front(), double(normOf(0, 1, 2)));
    QCOMPARE(e.max.back(), double(normOf(total - 1, 1, 2)));

    // With its input file back, a trace shows the text it read once asked to (issue 10: a file a
    // trace names is not opened on its own), and only the bytes its offsets span.
    {
        QFile f(dir.filePath("input.txt"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray(int(total + 10), 'x'));
    }
    TraceData withText;
    QVERIFY2(withText.loadFile(path, &error), qPrintable(error));
    QVERIFY(withText.text().isEmpty());
    QVERIFY2(withText.readNamedInput(&error), qPrintable(error));
    QCOMPARE(withText.text().size(), int(total));
    QCOMPARE(withText.tokenText(5), QStringLiteral("x"));
    // A path recorded relative (as schema 1 kept it) is looked for next to the trace.
    {
        TraceHeader h;
        h.architecture = "synthetic";
        h.hasOffsets = true;
        h.probes = testProbes();
        h.inputSource.kind = "text";
        h.inputSource.path = "input.txt";
        TraceWriter w(dir.filePath("relative.h5").toStdString(), h);
        w.append(makeChunk(0, 5));
        w.finish();
    }
    QVERIFY2(withText.loadFile(dir.filePath("relative.h5"), &error), qPrintable(error));
    QCOMPARE(withText.tokens(), qint64(5));
    QCOMPARE(withText.namedInputPath(), dir.filePath("input.txt"));
    QVERIFY2(withText.readNamedInput(&error), qPrintable(error));
    QCOMPARE(withText.text().size(), 5);

    // A cancelled load leaves an empty trace and says so.
    TraceData cancelled;
    QVERIFY(!cancelled.loadFile(path, &error, [](qint64, qint64) { return false; }));
    QCOMPARE(error, QStringLiteral("cancelled"));
    QCOMPARE(cancelled.tokens(), qint64(0));
}

void TestWidgets::loadFileErrors()
{
    QTemporaryDir dir;
    const QString junk = dir.filePath("junk.h5");
    {
        QFile f(junk);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("this is not an HDF5 file at all");
    }
    TraceData d;
    fill(d);
    QString error;
    QVERIFY(!d.loadFile(junk, &error));
    QVERIFY(error.contains(QStringLiteral("junk.h5")));
    QCOMPARE(d.tokens(), qint64(0));
    QVERIFY(!d.loadFile(dir.filePath("missing.h5"), &error));
    QVERIFY(!error.isEmpty());
}

void TestWidgets::tokenStrip()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    g.setTrace(&d);
    TokenStrip strip;
    strip.setTrace(&d);
    strip.setGroup(&g);
    strip.setLayer(1);
    showView(strip, 600, 200);
    QCOMPARE(strip.windowBegin(), qint64(0));
    QCOMPARE(strip.windowEnd(), kTokens);
    // Moving the cursor scrolls the strip to the token.
    g.setCursor(290);
    QCOMPARE(strip.cursorToken(), qint64(290));
    QRect r = strip.tokenRect(290);
    QVERIFY(!r.isEmpty());
    QVERIFY(strip.viewport()->rect().intersects(r));
    QCOMPARE(strip.tokenAt(r.center()), qint64(290));
    // The tooltip: text, id, position, NLL, alpha and state norm in the selected layer.
    const QString tip = strip.toolTipFor(57);
    QVERIFY(tip.contains(QStringLiteral("<b>f</b>"))); // 'a' + 57 % 26
    QVERIFY(tip.contains(QStringLiteral("id 57")));
    QVERIFY(tip.contains(QStringLiteral("position 57")));
    QVERIFY(tip.contains(QStringLiteral("NLL 1.7 ")));
    // Each probe's summary over the layer's units, as its descriptor says, and their min.
    float mn = 10;
    for (int h = 0; h < kHeads; ++h)
        mn = std::min(mn, decayOf(57, 1, h));
    QVERIFY2(tip.contains(QStringLiteral("α geomean %1, min %2")
                              .arg(QString::number(float(decayGeoMean(57, 1)), 'g', 4))
                              .arg(QString::number(mn, 'g', 4))),
             qPrintable(tip));
    QVERIFY(tip.contains(QStringLiteral("layer 1")));
    QVERIFY(tip.contains(QStringLiteral("‖S‖ rss %1").arg(QString::number(float(normRss(57, 1)), 'g', 4))));
    QVERIFY(tip.contains(QStringLiteral("Δ mean ")));
    // Higher NLL, stronger shade.
    QVERIFY(strip.shadeFor(1.9f).alphaF() > strip.shadeFor(1.0f).alphaF());
    // A click moves the shared cursor.
    g.setCursor(10);
    r = strip.tokenRect(10);
    const QRect r11 = strip.tokenRect(11);
    QVERIFY(!r11.isEmpty());
    QSignalSpy spy(&strip, &TokenStrip::tokenClicked);
    QTest::mouseClick(strip.viewport(), Qt::LeftButton, Qt::NoModifier, r11.center());
    QCOMPARE(spy.count(), 1);
    QCOMPARE(g.cursor(), qint64(11));

    // A long trace lays out only a window around the cursor, and no text: ids decoded.
    TraceData big;
    big.reset(header());
    for (qint64 t = 0; t < 20000; t += 5000)
        big.append(makeChunk(t, 5000));
    big.setTokenDecoder([](qint32 id) { return QStringLiteral("<%1>").arg(id); });
    PlotGroup g2;
    g2.setTrace(&big);
    strip.setGroup(&g2);
    strip.setTrace(&big);
    g2.setCursor(15000);
    QVERIFY(strip.windowBegin() <= 15000 && strip.windowEnd() > 15000);
    QCOMPARE(strip.windowEnd() - strip.windowBegin(), TokenStrip::kWindowTokens);
    QVERIFY(strip.toolTipFor(15000).contains(QStringLiteral("&lt;%1&gt;").arg(15000 % 256)));
    QVERIFY(!strip.tokenRect(15000).isEmpty());
}

namespace {

// The synthetic trace over n tokens, its decay scaled by `scale`, where unit `dipUnit` of layer 0
// drops to `dipValue` at one token.
void fillWithDip(TraceData& d, qint64 n, int dipUnit, qint64 dipToken, float dipValue, const QString& label,
                 std::optional<qint64> trainingLength, float scale = 1.0f)
{
    TraceHeaderInfo h = header(label);
    h.trainingLength = trainingLength;
    d.reset(h);
    for (qint64 at = 0; at < n; at += 500) {
        ChunkProbes c = makeChunk(at, std::min<qint64>(500, n - at));
        for (float& v : c.values[kDecay])
            v *= scale;
        for (qint64 t = at; t < at + c.count(); ++t)
            if (t == dipToken)
                c.values[kDecay][size_t(((t - at) * kLayers + 0) * kHeads + dipUnit)] = dipValue;
        d.append(c);
    }
}

// The smallest finite value the graph draws.
double drawnMin(QCPGraph* g)
{
    return graphValueRange(g).first;
}

} // namespace

void TestWidgets::probeYFitsEveryDrawnLine()
{
    // 20,000 tokens on ~1000 pixels: decimated. Head 2 dips to 0.05 at one token; the overlay's layer
    // summary lies lower than every line of the trace.
    TraceData d, o;
    fillWithDip(d, 20000, 2, 12345, 0.05f, QStringLiteral("dips"), 100);
    fillWithDip(o, 20000, 0, -1, 0, QStringLiteral("lower"), 200, 0.5f);
    PlotGroup g;
    g.setTrace(&d);
    ProbeView v(QStringLiteral("decay"));
    v.setTrace(&d);
    g.addView(&v);
    showView(v, 1100, 500);
    g.showAll();
    v.setUnit(2);
    v.refresh();
    QCPAxis* y = v.linesRect()->axis(QCPAxis::atLeft);
    // The selected unit keeps its extremes: the dip is drawn, and inside the axis with a margin.
    QVERIFY(drawnMin(v.unitGraphs()[2]) <= 0.05 + 1e-6);
    QVERIFY2(y->range().lower < 0.05 && y->range().lower > 0.0,
             qPrintable(QStringLiteral("y %1..%2").arg(y->range().lower).arg(y->range().upper)));
    const double top = graphValueRange(v.unitGraphs()[kHeads - 1]).second;
    QVERIFY(y->range().upper > top && y->range().upper < top + 0.1);
    // Zoomed in away from the dip, y fits what is visible there, not the whole trace.
    g.setRange(QCPRange(1000, 2000));
    v.refresh();
    QVERIFY(y->range().lower > 0.4);
    // An overlay below: y reaches down to it.
    v.setOverlay(&o);
    v.refresh();
    const double overlayMin = drawnMin(v.overlaySummaryGraph());
    QVERIFY(overlayMin < 0.4);
    QVERIFY(y->range().lower <= overlayMin);
    QVERIFY(y->range().lower >= overlayMin - 0.1 * y->range().size());
    for (QCPGraph* gr : v.unitGraphs())
        QVERIFY(y->range().contains(drawnMin(gr)) && y->range().contains(graphValueRange(gr).second));
    // On a log token axis (where the first columns hold no token) as well.
    v.setOverlay(nullptr);
    g.setLogX(true);
    g.showAll();
    v.refresh();
    QVERIFY(y->range().lower < 0.05);
    for (QCPGraph* gr : v.unitGraphs())
        QVERIFY(y->range().contains(drawnMin(gr)) && y->range().contains(graphValueRange(gr).second));
}

void TestWidgets::probeLegendExplainsEveryLine()
{
    TraceData d;
    fillWithDip(d, 20000, 3, 777, 0.1f, QStringLiteral("legend"), 100);
    PlotGroup g;
    g.setTrace(&d);
    ProbeView v(QStringLiteral("decay"));
    v.setTrace(&d);
    g.addView(&v);
    showView(v, 1100, 500);
    g.showAll();
    v.setUnit(3);
    v.refresh();
    v.plot()->replot();
    // Decimated: only the selected unit is a min-max stroke (and the legend says so); the others are
    // lines, one point per pixel column, not bands.
    const int cols = v.linesRect()->width();
    for (int u = 0; u < kHeads; ++u)
        if (u != 3)
            QVERIFY2(v.unitGraphs()[u]->dataCount() <= cols + 1, qPrintable(QString::number(u)));
    QVERIFY(v.unitGraphs()[3]->dataCount() > cols + 1);
    // Every drawn line is in the legend: summary, selected unit, one entry for the units, nothing else.
    const QStringList legend = v.legendTexts();
    QCOMPARE(legend.size(), 3);
    QCOMPARE(legend[0], QStringLiteral("layer 0: geometric mean over heads"));
    QCOMPARE(legend[1], QStringLiteral("head 3, min–max per pixel"));
    QCOMPARE(legend[2], QStringLiteral("heads 0–7 of layer 0"));
    QVERIFY(v.unitsLegendItem());
    QVERIFY(v.unitsLegendItem()->visible());
    // Each legend entry names a line that is drawn.
    for (int i = 0; i < v.plot()->legend->itemCount(); ++i)
        if (auto* item = qobject_cast<QCPPlottableLegendItem*>(v.plot()->legend->item(i))) {
            QVERIFY(item->plottable()->visible());
            QVERIFY(static_cast<QCPGraph*>(item->plottable())->dataCount() > 0);
        }
    // The selected unit is drawn thicker than the others, and above them.
    QCPGraph* sel = v.unitGraphs()[3];
    for (int u = 0; u < kHeads; ++u) {
        if (u == 3)
            continue;
        QVERIFY(sel->pen().widthF() > v.unitGraphs()[u]->pen().widthF());
        QVERIFY(sel->layer()->index() > v.unitGraphs()[u]->layer()->index());
    }
    QVERIFY(sel->layer()->index() > v.summaryGraph()->layer()->index());
    // Another unit and layer: the legend follows.
    v.setLayer(1);
    v.setUnit(0);
    const QStringList again = v.legendTexts();
    QCOMPARE(again[0], QStringLiteral("layer 1: geometric mean over heads"));
    QVERIFY(again[1].startsWith(QStringLiteral("head 0")));
    QCOMPARE(again[2], QStringLiteral("heads 0–7 of layer 1"));
    QVERIFY(v.unitGraphs()[0]->pen().widthF() > v.unitGraphs()[3]->pen().widthF());
}

void TestWidgets::yZoomAndBoxZoom()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView gate(QStringLiteral("decay"));
    for (TraceView* v : QList<TraceView*>{&loss, &gate}) {
        v->setTrace(&d);
        g.addView(v);
        showView(*v, 1000, 400);
    }
    g.showAll();
    loss.refresh();
    gate.refresh();
    loss.plot()->replot();
    gate.plot()->replot();
    auto wheel = [](QCustomPlot* p, QPoint pos, Qt::KeyboardModifiers mods) {
        QWheelEvent ev(QPointF(pos), QPointF(p->mapToGlobal(pos)), QPoint(), QPoint(0, 120), Qt::NoButton,
                       mods, Qt::NoScrollPhase, false);
        QCoreApplication::sendEvent(p, &ev);
    };
    for (TraceView* v : QList<TraceView*>{&loss, &gate}) {
        QCPAxisRect* rect = v->tokenAxes().front()->axisRect();
        QCPAxis* y = rect->axis(QCPAxis::atLeft);
        const QCPRange x0 = g.range(), y0 = y->range();
        // Ctrl+wheel in the plot zooms y only.
        wheel(v->plot(), rect->center(), Qt::ControlModifier);
        QVERIFY2(y->range().size() < 0.95 * y0.size(), qPrintable(v->title()));
        QCOMPARE(g.range().lower, x0.lower);
        QCOMPARE(g.range().upper, x0.upper);
        QVERIFY(!v->yAutoFit());
        // A refresh keeps the zoomed y.
        const QCPRange zoomed = y->range();
        v->refresh();
        QCOMPARE(y->range().lower, zoomed.lower);
        QCOMPARE(y->range().upper, zoomed.upper);
        // A double-click gives y back to the data.
        QTest::mouseDClick(v->plot(), Qt::LeftButton, Qt::NoModifier, rect->center());
        QVERIFY(v->yAutoFit());
        QVERIFY(std::abs(y->range().size() - y0.size()) < 1e-9 * std::max(1.0, y0.size()));
        // The wheel over the y axis zooms y too; the plain wheel inside still zooms the shared x.
        wheel(v->plot(), QPoint(rect->left() - 10, rect->center().y()), Qt::NoModifier);
        QVERIFY(y->range().size() < 0.95 * y0.size());
        g.showAll();
        QVERIFY(v->yAutoFit());
        wheel(v->plot(), rect->center(), Qt::NoModifier);
        QVERIFY(g.range().size() < 0.95 * x0.size());
        g.showAll();
    }
    // Shift+drag draws a box; releasing zooms x of every plot and y of this one to it.
    g.setCursor(-1);
    gate.refresh();
    gate.plot()->replot();
    QCPAxisRect* rect = gate.linesRect();
    QCPAxis* x = rect->axis(QCPAxis::atBottom);
    QCPAxis* y = rect->axis(QCPAxis::atLeft);
    const QPoint a(rect->left() + rect->width() / 4, rect->top() + rect->height() / 4);
    const QPoint b(rect->left() + rect->width() / 2, rect->top() + 3 * rect->height() / 4);
    const double wantX0 = x->pixelToCoord(a.x()), wantX1 = x->pixelToCoord(b.x());
    const double wantY0 = y->pixelToCoord(b.y()), wantY1 = y->pixelToCoord(a.y());
    QCustomPlot* p = gate.plot();
    QMouseEvent press(QEvent::MouseButtonPress, QPointF(a), QPointF(p->mapToGlobal(a)), Qt::LeftButton,
                      Qt::LeftButton, Qt::ShiftModifier);
    QCoreApplication::sendEvent(p, &press);
    QMouseEvent move(QEvent::MouseMove, QPointF(b), QPointF(p->mapToGlobal(b)), Qt::NoButton, Qt::LeftButton,
                     Qt::ShiftModifier);
    QCoreApplication::sendEvent(p, &move);
    QVERIFY(p->selectionRect()->isActive()); // the rectangle is drawn while dragging
    QMouseEvent release(QEvent::MouseButtonRelease, QPointF(b), QPointF(p->mapToGlobal(b)), Qt::LeftButton,
                        Qt::NoButton, Qt::ShiftModifier);
    QCoreApplication::sendEvent(p, &release);
    QVERIFY(!p->selectionRect()->isActive());
    QVERIFY(std::abs(g.range().lower - wantX0) < 1e-6 && std::abs(g.range().upper - wantX1) < 1e-6);
    QCOMPARE(loss.plot()->xAxis->range().lower, g.range().lower); // the token axis stays shared
    QCOMPARE(loss.plot()->xAxis->range().upper, g.range().upper);
    QVERIFY(std::abs(y->range().lower - wantY0) < 1e-9 && std::abs(y->range().upper - wantY1) < 1e-9);
    gate.refresh();
    QVERIFY(std::abs(y->range().lower - wantY0) < 1e-9); // kept
    QVERIFY(loss.yAutoFit());                            // the other plot's y is its own
    QVERIFY(g.cursor() < 0);                             // a box is not a click
}

void TestWidgets::overlayTrainingLengthMarker()
{
    TraceData a, b;
    fillWithDip(a, 600, 0, -1, 0, QStringLiteral("a"), 100);
    fillWithDip(b, 600, 0, -1, 0, QStringLiteral("b"), 400);
    PlotGroup g;
    g.setTrace(&a);
    LossView loss;
    loss.setTrace(&a);
    g.addView(&loss);
    showView(loss, 1000, 400);
    QCPAxisRect* rect = loss.plot()->axisRect();
    using M = PlotGroup::Marker;
    QVERIFY(g.markerLine(rect, M::TrainingLength)->visible());
    QCOMPARE(g.markerLine(rect, M::TrainingLength)->point1->coords().x(), 100.0);
    QVERIFY(!g.markerLine(rect, M::OverlayTrainingLength)->visible());
    loss.setOverlay(&b);
    g.setOverlay(&b);
    QCPItemStraightLine* line = g.markerLine(rect, M::OverlayTrainingLength);
    QVERIFY(line->visible());
    QCOMPARE(line->point1->coords().x(), 400.0);
    QCOMPARE(line->pen().color(), PlotExporter::traceColor(1, false));
    QCPItemText* label = g.markerLabel(loss.plot(), M::OverlayTrainingLength);
    QVERIFY(label->visible());
    QCOMPARE(label->text(), QStringLiteral("overlay: training length 400"));
    QCOMPARE(label->color(), PlotExporter::traceColor(1, false));
    QCOMPARE(g.markerLabel(loss.plot(), M::TrainingLength)->text(), QStringLiteral("training length 100"));
    // The trace's own marker still follows the trace, not the overlay.
    QCOMPARE(g.markerLine(rect, M::TrainingLength)->point1->coords().x(), 100.0);
    g.setOverlay(nullptr);
    QVERIFY(!g.markerLine(rect, M::OverlayTrainingLength)->visible());
    QVERIFY(!g.markerLabel(loss.plot(), M::OverlayTrainingLength)->visible());
}

namespace {

// A long trace of many layers whose NLL climbs from 0.3 to 0.3 + nllRise nats: perplexity over many
// decades, a layer axis that cannot label every layer in a paper figure, the trace named like a run's
// file.
void fillPaper(TraceData& d, qint64 n, int layers, const QString& label, float nllRise,
               std::optional<qint64> trainingLength = 256)
{
    TraceHeaderInfo h = header(label);
    h.layers = layers;
    h.probes = testProbes(layers, kHeads);
    h.trainingLength = trainingLength;
    h.forgetThreshold = std::nullopt;
    d.reset(h);
    for (qint64 at = 0; at < n; at += 1000) {
        ChunkProbes c = makeChunk(at, std::min<qint64>(1000, n - at), layers, kHeads);
        for (qint64 t = at; t < at + c.count(); ++t)
            c.nll[size_t(t - at)] = t == 0 ? std::numeric_limits<float>::quiet_NaN()
                                           : 0.3f + nllRise * float(t) / float(n) + 0.2f * float(t % 3);
        d.append(c);
    }
}

// Legend entries, left to right and top to bottom.
QList<QCPAbstractLegendItem*> legendEntries(QCPLegend* legend)
{
    QList<QCPAbstractLegendItem*> out;
    for (int i = 0; i < legend->elementCount(); ++i)
        if (auto* item = qobject_cast<QCPAbstractLegendItem*>(legend->elementAt(i)))
            out.push_back(item);
    return out;
}

QString rectText(const QRectF& r)
{
    return QStringLiteral("(%1,%2 %3x%4)").arg(r.x()).arg(r.y()).arg(r.width()).arg(r.height());
}

// Pixels of the cursor's red (PlotGroup draws it in 200,0,0; no graph of these views is that red).
int cursorPixels(const QImage& img)
{
    int n = 0;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) {
            const QColor c = img.pixelColor(x, y);
            n += c.red() > 150 && c.green() < 80 && c.blue() < 80 ? 1 : 0;
        }
    return n;
}

// Every drawn axis of the plot, colour scales' too.
QList<QCPAxis*> drawnAxes(QCustomPlot* plot)
{
    QList<QCPAxis*> out;
    for (QCPLayoutElement* el : plot->plotLayout()->elements(true)) {
        if (auto* r = qobject_cast<QCPAxisRect*>(el))
            for (QCPAxis* a : r->axes())
                if (a->visible() && a->tickLabels())
                    out.push_back(a);
        if (auto* s = qobject_cast<QCPColorScale*>(el))
            out.push_back(s->axis());
    }
    return out;
}

QString axisName(QCPAxis* a)
{
    return QStringLiteral("%1 axis '%2'").arg(int(a->axisType())).arg(a->label());
}

} // namespace

void TestWidgets::paperLegendOutsideTheData()
{
    TraceData d, o;
    fillPaper(d, 20000, 4, QStringLiteral("tiny-collapse-20261129-192634"), 6.0f);
    fillPaper(o, 20000, 4, QStringLiteral("tiny-forget-20261129-193012"), 1.0f);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView gate(QStringLiteral("decay"));
    ProbeView norm(QStringLiteral("state_norm"));
    for (TraceView* v : QList<TraceView*>{&loss, &gate, &norm}) {
        v->setTrace(&d);
        v->setOverlay(&o);
        g.addView(v);
        showView(*v, 900, 450);
        v->refresh();
    }
    for (const ExportStyle& style : {ExportStyle::paperPreset(), ExportStyle::paperWidePreset()})
        for (TraceView* v : QList<TraceView*>{&loss, &gate, &norm}) {
            QCPLegend* legend = v->plot()->legend;
            QCPAxisRect* rect = v->plot()->axisRect();
            QVERIFY(rect->insetLayout()->elements(false).contains(legend)); // on screen: inside the rect
            {
                ExportScope scope(v, style);
                scope.layout();
                const QRect figure(QPoint(0, 0), scope.size());
                QVERIFY(legend->visible());
                const QRect lr = legend->outerRect();
                const QString where = v->title() + QStringLiteral(" legend ") + rectText(lr);
                // Inside the figure, every entry whole (nothing cut off at the left edge).
                QVERIFY2(figure.contains(lr), qPrintable(where));
                const QList<QCPAbstractLegendItem*> entries = legendEntries(legend);
                QVERIFY(entries.size() >= 2);
                for (QCPAbstractLegendItem* item : entries) {
                    QVERIFY2(lr.contains(item->outerRect()), qPrintable(where + rectText(item->outerRect())));
                    QVERIFY(item->outerRect().width() >= item->minimumOuterSizeHint().width());
                }
                // Entries side by side in columns, not one per row.
                QVERIFY2(legend->columnCount() >= 2, qPrintable(where));
                // Above the data: no axis rect's data area and no tick label under it.
                for (QCPAxisRect* r : v->plot()->axisRects()) {
                    QVERIFY2(!lr.intersects(r->rect()), qPrintable(where + rectText(r->rect())));
                    for (QCPAxis* a : r->axes())
                        for (const QRectF& t : PlotExporter::tickLabelRects(a))
                            QVERIFY2(!QRectF(lr).intersects(t), qPrintable(where + rectText(t)));
                }
                QVERIFY(lr.bottom() <= rect->rect().top());
                // The figure as exported has the legend there too (its text is dark on white).
                const QImage img = scope.render(2.0);
                int dark = 0;
                for (int y = 2 * lr.top(); y < 2 * lr.bottom(); ++y)
                    for (int x = 2 * lr.left(); x < 2 * lr.right(); ++x)
                        dark += qGray(img.pixel(x, y)) < 100 ? 1 : 0;
                QVERIFY2(dark > 50, qPrintable(where));
            }
            // Back inside the rect on screen.
            QVERIFY(rect->insetLayout()->elements(false).contains(legend));
            QVERIFY(!v->plot()->plotLayout()->elements(false).contains(legend));
        }
}

void TestWidgets::paperLegendWhereChosen()
{
    TraceData d;
    fillPaper(d, 5000, 2, QStringLiteral("run-20261129-192634"), 2.0f);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView gate(QStringLiteral("decay"));
    for (TraceView* v : QList<TraceView*>{&loss, &gate}) {
        v->setTrace(&d);
        g.addView(v);
        showView(*v, 900, 450);
        v->refresh();
    }
    const Qt::Alignment screenAlignment = loss.plot()->axisRect()->insetLayout()->insetAlignment(0);
    for (TraceView* v : QList<TraceView*>{&loss, &gate})
        for (LegendPlace place : {LegendPlace::TopLeft, LegendPlace::TopRight, LegendPlace::BottomLeft,
                                  LegendPlace::BottomRight, LegendPlace::Hidden}) {
            ExportStyle style = ExportStyle::paperPreset();
            style.legend = place;
            ExportScope scope(v, style);
            scope.layout();
            QCPLegend* legend = v->plot()->legend;
            if (place == LegendPlace::Hidden) {
                QVERIFY(!legend->realVisibility());
                continue;
            }
            const QRect lr = legend->outerRect(), data = v->plot()->axisRect()->rect();
            const QString where = rectText(lr) + QStringLiteral(" in ") + rectText(data);
            QVERIFY2(data.contains(lr), qPrintable(where));
            const bool top = place == LegendPlace::TopLeft || place == LegendPlace::TopRight;
            const bool left = place == LegendPlace::TopLeft || place == LegendPlace::BottomLeft;
            QVERIFY2(top ? lr.top() - data.top() < 12 : data.bottom() - lr.bottom() < 12, qPrintable(where));
            QVERIFY2(left ? lr.left() - data.left() < 12 : data.right() - lr.right() < 12, qPrintable(where));
        }
    QCOMPARE(loss.plot()->axisRect()->insetLayout()->insetAlignment(0), screenAlignment);
    QVERIFY(loss.plot()->legend->visible());
}

void TestWidgets::exportLeavesOutTheCursor()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView norm(QStringLiteral("state_norm"));
    QTemporaryDir dir;
    for (TraceView* v : QList<TraceView*>{&loss, &norm}) {
        v->setTrace(&d);
        g.addView(v);
        showView(*v, 900, 450);
        v->refresh();
    }
    g.setCursor(150);
    int n = 0;
    for (TraceView* v : QList<TraceView*>{&loss, &norm}) {
        QCPItemStraightLine* cursor = g.cursorLine(v->tokenAxes().front()->axisRect());
        QVERIFY(cursor->visible());
        QVERIFY2(cursorPixels(v->plot()->toPixmap().toImage()) > 100, "the cursor shows on screen");
        for (const ExportStyle& style : {ExportStyle::screen(), ExportStyle::paperPreset()}) {
            for (const char* suffix : {".png", ".svg"}) {
                const QString path = dir.filePath(QStringLiteral("cursor%1%2").arg(n++).arg(suffix));
                QString error;
                QVERIFY2(PlotExporter::save(v, path, style, &error), qPrintable(error));
                QImage img;
                if (QByteArray(suffix) == ".png") {
                    QVERIFY(img.load(path));
                } else {
                    QSvgRenderer svg(path);
                    img = QImage(svg.defaultSize() * 3, QImage::Format_ARGB32);
                    img.fill(Qt::white);
                    QPainter p(&img);
                    svg.render(&p);
                }
                QVERIFY2(cursorPixels(img) < 5, qPrintable(path));
            }
            {
                // While exporting: the cursor's layer is hidden, the line itself untouched.
                ExportScope scope(v, style);
                QVERIFY(!v->plot()->layer(QString::fromLatin1(kCursorLayer))->visible());
                QVERIFY(cursor->visible());
                QVERIFY(cursorPixels(scope.render()) < 5);
            }
            // On screen it is back, where it was.
            QVERIFY(v->plot()->layer(QString::fromLatin1(kCursorLayer))->visible());
            QVERIFY(cursor->realVisibility());
            QCOMPARE(g.cursor(), qint64(150));
            QVERIFY2(cursorPixels(v->plot()->toPixmap().toImage()) > 100, "the cursor shows on screen again");
        }
    }
}

void TestWidgets::paperTickLabelsDoNotOverlap()
{
    // Perplexity over eight decades, positions over four, 24 layers in a heatmap 25 mm tall.
    TraceData d;
    fillPaper(d, 20000, 24, QStringLiteral("deep-20261129-192634"), 18.0f);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView gate(QStringLiteral("decay"));
    ProbeView norm(QStringLiteral("state_norm"));
    for (TraceView* v : QList<TraceView*>{&loss, &gate, &norm}) {
        v->setTrace(&d);
        g.addView(v);
        showView(*v, 900, 450);
        v->refresh();
    }
    norm.setLogY(true);
    ExportStyle linear = ExportStyle::paperPreset();
    linear.logX = false;
    for (const ExportStyle& style : {ExportStyle::paperPreset(), ExportStyle::paperWidePreset(), linear})
        for (TraceView* v : QList<TraceView*>{&loss, &gate, &norm}) {
            ExportScope scope(v, style);
            scope.layout();
            const QRectF figure(QPointF(0, 0), scope.size());
            for (QCPAxis* a : drawnAxes(v->plot())) {
                const QVector<QRectF> rects = PlotExporter::tickLabelRects(a);
                const QString what = v->title() + QStringLiteral(", ") + axisName(a) + QStringLiteral(": ") +
                                     a->tickVectorLabels().toList().join(QLatin1Char(' '));
                QVERIFY2(rects.size() >= 2, qPrintable(what));
                for (int i = 0; i < rects.size(); ++i) {
                    QVERIFY2(figure.contains(rects[i]), qPrintable(what + rectText(rects[i])));
                    for (int j = i + 1; j < rects.size(); ++j)
                        QVERIFY2(!rects[i].intersects(rects[j]),
                                 qPrintable(what + rectText(rects[i]) + rectText(rects[j])));
                }
            }
            if (auto* p = qobject_cast<ProbeView*>(v)) {
                // The heatmap's labels stay clear of the colour scale, and its token labels of the
                // layer axis' last label.
                const QRectF scale = p->colorScale()->outerRect();
                for (QCPAxis* a : p->heatmapRect()->axes())
                    for (const QRectF& t : PlotExporter::tickLabelRects(a))
                        QVERIFY2(!t.intersects(scale),
                                 qPrintable(axisName(a) + rectText(t) + QStringLiteral(" scale ") +
                                            rectText(scale)));
                for (const QRectF& t : PlotExporter::tickLabelRects(p->colorScale()->axis()))
                    QVERIFY2(!t.intersects(p->heatmapRect()->outerRect()), qPrintable(rectText(t)));
            }
        }
}

void TestWidgets::oneNumberFormatPerAxis()
{
    // Perplexity from 1.5 to e^18 (ten decades: 1, 10, ... 10⁸ on the axis), positions to 200,000.
    TraceData d;
    fillPaper(d, 200000, 2, QStringLiteral("long-20261129-192634"), 18.0f);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView norm(QStringLiteral("state_norm"));
    for (TraceView* v : QList<TraceView*>{&loss, &norm}) {
        v->setTrace(&d);
        g.addView(v);
        showView(*v, 900, 450);
        v->refresh();
    }
    norm.setLogY(true);
    ExportStyle linear = ExportStyle::paperWidePreset();
    linear.logX = false;
    for (const ExportStyle& style : {ExportStyle::paperPreset(), ExportStyle::paperWidePreset(), linear})
        for (TraceView* v : QList<TraceView*>{&loss, &norm}) {
            ExportScope scope(v, style);
            scope.layout();
            for (QCPAxis* a : drawnAxes(v->plot())) {
                const QStringList labels = a->tickVectorLabels().toList();
                const QString exponential = v->plot()->locale().exponential();
                const int powers = int(std::count_if(
                    labels.begin(), labels.end(), [&](const QString& l) { return l.contains(exponential); }));
                const QString what = axisName(a) + QStringLiteral(": ") + labels.join(QLatin1Char(' '));
                QVERIFY2(powers == 0 || powers == labels.size(), qPrintable(what));
                // Powers of ten are drawn as such (10ⁿ), not as "1e+06".
                if (powers > 0)
                    QVERIFY2(a->numberFormat().contains(QLatin1Char('b')), qPrintable(what));
            }
            // Perplexity spans decades up to 10⁸: written as powers, all of them.
            if (v == &loss) {
                const QStringList ppl = loss.plot()->yAxis2->tickVectorLabels().toList();
                QVERIFY2(ppl.size() >= 3, qPrintable(ppl.join(' ')));
                QVERIFY2(ppl.last().contains(v->plot()->locale().exponential()), qPrintable(ppl.join(' ')));
            }
        }
}

void TestWidgets::shortLegendLabels()
{
    QCOMPARE(ExportStyle::shortLabel(QStringLiteral("tiny-collapse-20261129-192634")),
             QStringLiteral("tiny-collapse"));
    QCOMPARE(ExportStyle::shortLabel(QStringLiteral("tiny-forget-20261129-192634-2 (Mamba, 2×8 heads)")),
             QStringLiteral("tiny-forget (Mamba, 2×8 heads)"));
    QCOMPARE(ExportStyle::shortLabel(QStringLiteral("my run")), QStringLiteral("my run"));

    TraceData d, o;
    fillPaper(d, 3000, 2, QStringLiteral("tiny-collapse-20261129-192634"), 2.0f);
    fillPaper(o, 3000, 2, QStringLiteral("tiny-forget-20261130-081500"), 1.0f);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView gate(QStringLiteral("decay"));
    for (TraceView* v : QList<TraceView*>{&loss, &gate}) {
        v->setTrace(&d);
        v->setOverlay(&o);
        g.addView(v);
        showView(*v, 900, 450);
        v->refresh();
    }
    auto lossNames = [&] {
        QStringList names;
        for (QCPAbstractLegendItem* item : legendEntries(loss.plot()->legend))
            if (auto* p = qobject_cast<QCPPlottableLegendItem*>(item))
                names << p->plottable()->name();
        return names;
    };
    QVERIFY(lossNames().join('|').contains(QStringLiteral("tiny-collapse-20261129-192634")));
    {
        ExportScope scope(&loss, ExportStyle::paperPreset());
        const QStringList names = lossNames();
        QCOMPARE(names.size(), 4); // mean and perplexity of each
        for (int i = 0; i < names.size(); ++i)
            QVERIFY2(names[i].startsWith(i < 2 ? QStringLiteral("tiny-collapse: ")
                                               : QStringLiteral("tiny-forget: ")),
                     qPrintable(names.join('|')));
        QVERIFY(!names.join('|').contains(QStringLiteral("2026")));
    }
    {
        ExportScope scope(&gate, ExportStyle::paperPreset());
        QVERIFY2(gate.overlaySummaryGraph()->name().startsWith(QStringLiteral("tiny-forget: ")),
                 qPrintable(gate.overlaySummaryGraph()->name()));
    }
    // The user's own names.
    ExportStyle named = ExportStyle::paperPreset();
    named.traceLabel = QStringLiteral("small state");
    named.overlayLabel = QStringLiteral("large state");
    {
        ExportScope scope(&loss, named);
        const QStringList names = lossNames();
        QVERIFY(names[0].startsWith(QStringLiteral("small state: ")));
        QVERIFY(names[2].startsWith(QStringLiteral("large state: ")));
    }
    // A screen export keeps the names on screen unless given others.
    {
        ExportScope scope(&loss, ExportStyle::screen());
        QVERIFY(lossNames()[0].startsWith(QStringLiteral("tiny-collapse-20261129-192634: ")));
    }
    // On screen, the run's whole name again.
    QVERIFY(lossNames()[0].startsWith(QStringLiteral("tiny-collapse-20261129-192634: ")));
    QVERIFY(gate.overlaySummaryGraph()->name().startsWith(QStringLiteral("tiny-forget-20261130-081500: ")));
}

void TestWidgets::paperDefaultsLogXAndAveragedNll()
{
    QCOMPARE(ExportStyle::paperPreset().widthMm, 89.0);
    QCOMPARE(ExportStyle::paperWidePreset().widthMm, 183.0);
    QCOMPARE(ExportStyle::paperPreset().fontPt, 7.0);
    QCOMPARE(ExportStyle::paperPreset().dpi, 300);
    TraceData d;
    fillPaper(d, 5000, 2, QStringLiteral("run"), 2.0f);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView gate(QStringLiteral("decay"));
    for (TraceView* v : QList<TraceView*>{&loss, &gate}) {
        v->setTrace(&d);
        g.addView(v);
        showView(*v, 900, 450);
        v->refresh();
    }
    QVERIFY(!g.logX());
    QVERIFY(loss.tokenNllVisible());
    const QCPRange range = g.range();
    {
        ExportScope scope(&loss, ExportStyle::paperPreset());
        QCOMPARE(loss.plot()->xAxis->scaleType(), QCPAxis::stLogarithmic);
        QVERIFY(!loss.nllGraph()->visible());
        QVERIFY(loss.averageGraph()->visible() && loss.averageGraph()->dataCount() > 0);
        // Only this view, not the group.
        QVERIFY(!g.logX());
        QCOMPARE(gate.tokenAxes().front()->scaleType(), QCPAxis::stLinear);
    }
    {
        ExportScope scope(&gate, ExportStyle::paperWidePreset());
        for (QCPAxis* x : gate.tokenAxes())
            QCOMPARE(x->scaleType(), QCPAxis::stLogarithmic);
    }
    // Asked otherwise: linear, every token.
    ExportStyle asked = ExportStyle::paperPreset();
    asked.logX = false;
    asked.tokenNll = true;
    {
        ExportScope scope(&loss, asked);
        QCOMPARE(loss.plot()->xAxis->scaleType(), QCPAxis::stLinear);
        QVERIFY(loss.nllGraph()->visible());
    }
    // The screen is as it was.
    QCOMPARE(loss.plot()->xAxis->scaleType(), QCPAxis::stLinear);
    QVERIFY(loss.tokenNllVisible());
    QVERIFY(loss.nllGraph()->visible());
    QCOMPARE(g.range().lower, range.lower);
    QCOMPARE(g.range().upper, range.upper);
    QCOMPARE(loss.plot()->xAxis->range().lower, range.lower);
    QCOMPARE(loss.plot()->xAxis->range().upper, range.upper);
    // A log axis on screen stays log in a screen export.
    g.setLogX(true);
    {
        ExportScope scope(&loss, ExportStyle::screen());
        QCOMPARE(loss.plot()->xAxis->scaleType(), QCPAxis::stLogarithmic);
        QVERIFY(loss.nllGraph()->visible());
    }
}

QTEST_MAIN(TestWidgets)
#include "TestWidgets.moc"

namespace {

TraceHeader fileHeader()
{
    TraceHeader h;
    h.architecture = "synthetic";
    h.modelConfigJson = "{}";
    h.dtype = "float32";
    h.device = "cpu";
    h.input = "synthetic";
    h.hasOffsets = true;
    h.probes = testProbes();
    h.layers = kLayers;
    h.units = kHeads;
    h.unitName = "head";
    return h;
}

// Every token of [begin, end) is its own point, with the value the formula gives.
void checkExact(const TraceData& d, qint64 begin, qint64 end)
{
    const Envelope e = d.series(kDecay, 1, 3, begin, end, 4000);
    QVERIFY(!e.decimated);
    QCOMPARE(e.size(), int(end - begin));
    for (qint64 t = begin; t < end; ++t) {
        const int i = int(t - begin);
        QCOMPARE(e.x[i], TraceData::tokenToX(t));
        QCOMPARE(e.mean[i], double(decayOf(t, 1, 3)));
        QCOMPARE(d.valueAt(kNorm, 0, 5, t), normOf(t, 0, 5));
    }
    const Envelope g = d.series(kDecay, 1, TraceData::kSummary, begin, end, 4000);
    QCOMPARE(g.size(), int(end - begin));
    for (int i = 0; i < g.size(); ++i)
        QVERIFY(std::abs(g.mean[i] - decayGeoMean(begin + i, 1)) < 1e-6);
    // Heatmap cells of one token each are that token's values too.
    QVector<qint64> edges;
    for (qint64 t = begin; t <= end; ++t)
        edges.push_back(t);
    const QVector<float> cells = d.layerHeatmapEdges(kNorm, 2, edges);
    for (int l = 0; l < kLayers; ++l)
        for (qint64 t = begin; t < end; ++t)
            QCOMPARE(cells[int(l * (end - begin) + (t - begin))], normOf(t, l, 2));
}

} // namespace

// Issue 9.3: a long live run decimates its series; zoomed in, every token is drawn exactly, from the
// recent tokens it keeps, within a bounded budget.
void TestWidgets::fullResolutionZoomLive()
{
    TraceData d;
    d.setPyramidBudget(1); // the smallest cap: 1024 buckets per series
    // Per probe and token: 20 series of 12 bytes and 16 values of 4: a window of 4096 tokens each.
    const qint64 budget = (20 * 12 + 16 * 4) * 4096;
    d.setFineBudget(budget);
    d.reset(header());
    QCOMPARE(d.fineTokens(), qint64(4096));
    const qint64 total = 20000;
    for (qint64 at = 0; at < total; at += 100)
        d.append(makeChunk(at, 100));
    QVERIFY(d.seriesResolution() >= 16);
    // Coarse before: 16 tokens inside one or two buckets.
    QVERIFY(d.series(kDecay, 1, 3, 19000, 19016, 4000).size() <= 2);
    QCOMPARE(d.resolutionFor(19000, 19016), d.seriesResolution());
    QVERIFY(d.ensureFullResolution(19000, 19016));
    QVERIFY(!d.ensureFullResolution(19001, 19010)); // inside the window already
    QCOMPARE(d.resolutionFor(19000, 19016), qint64(1));
    QVERIFY(d.fineBegin() <= 19000 && d.fineEnd() >= 19016);
    QVERIFY(d.fineEnd() - d.fineBegin() <= 4096);
    checkExact(d, 19000, 19016);
    // Appends past a window that ends at the last token extend it (while it has room).
    {
        TraceData s;
        s.setPyramidBudget(1);
        s.setFineBudget(budget);
        s.reset(header());
        s.append(makeChunk(0, 2000));
        QCOMPARE(s.seriesResolution(), qint64(2));
        QVERIFY(s.ensureFullResolution(1900, 1916));
        QCOMPARE(s.fineEnd(), qint64(2000));
        s.append(makeChunk(2000, 10));
        QCOMPARE(s.fineEnd(), qint64(2010));
        checkExact(s, 1990, 2010);
    }
    // Tokens older than the recent ones stay coarse: the memory is bounded.
    QVERIFY(!d.ensureFullResolution(1000, 1016));
    QCOMPARE(d.resolutionFor(1000, 1016), d.seriesResolution());
    // Three probes' windows and the recent values behind them.
    QVERIFY2(d.fineBytes() <= size_t(3 * budget + budget / 4), qPrintable(QString::number(d.fineBytes())));
    // Wider than the window: coarse.
    QVERIFY(!d.ensureFullResolution(0, 10000));
}

// The same for a trace file, anywhere in it, and as a view draws it: zoomed to tokens 2-16, the gate
// lines start at token 2, one point per token (before, the first point sat at about 8.5).
void TestWidgets::fullResolutionZoomFile()
{
    QTemporaryDir dir;
    const QString path = dir.filePath("long.h5");
    const qint64 total = 30000;
    {
        TraceWriter w(path.toStdString(), fileHeader());
        for (qint64 at = 0; at < total; at += 1000)
            w.append(makeChunk(at, 1000));
        w.finish();
    }
    TraceData d;
    d.setPyramidBudget(1);
    d.setFineBudget((20 * 12 + 16 * 4) * 2048);
    d.setAsyncLoads(false); // the window is there when ensureFullResolution returns
    QString error;
    QVERIFY2(d.loadFile(path, &error), qPrintable(error));
    QVERIFY(!d.fileGrowing());
    QVERIFY(d.seriesResolution() >= 16);
    QVERIFY(d.ensureFullResolution(5000, 5100));
    checkExact(d, 5000, 5100);
    QVERIFY(d.ensureFullResolution(2, 16));
    QCOMPARE(d.fineBegin(), qint64(0));
    checkExact(d, 0, 16);

    PlotGroup group;
    ProbeView view(QStringLiteral("decay"));
    view.setTrace(&d);
    group.setTrace(&d);
    group.addView(&view);
    showView(view, 900, 500);
    view.setLayer(1);
    group.setFollow(false);
    // A window elsewhere first: the view must read the one it needs.
    QVERIFY(d.ensureFullResolution(25000, 25010));
    const qint64 dtBegin = d.fineBegin(kDt);
    group.setRange(QCPRange(TraceData::tokenToX(2) - 0.5, TraceData::tokenToX(16) + 0.5));
    view.refresh();
    QCOMPARE(d.fineBegin(kDecay), qint64(0));
    QCOMPARE(d.fineBegin(kDt), dtBegin); // the probe it does not draw is left alone
    QCPGraph* g = view.unitGraphs().at(3);
    QVERIFY(g->dataCount() >= 15);
    auto it = g->data()->findBegin(TraceData::tokenToX(2) - 0.4, false);
    QCOMPARE(it->key, TraceData::tokenToX(2));
    for (qint64 t = 2; t <= 16; ++t, ++it) {
        QCOMPARE(it->key, TraceData::tokenToX(t));
        QCOMPARE(it->value, double(decayOf(t, 1, 3)));
    }
    // Zoomed out again: coarse, and the window is not reloaded for nothing.
    const qint64 fb = d.fineBegin(kDecay);
    group.showAll();
    view.refresh();
    QCOMPARE(d.fineBegin(kDecay), fb);
    QVERIFY(view.unitGraphs().at(3)->dataCount() <= 2 * view.dataColumns() + 2);

    // As the window runs it: read in a worker, drawn coarse meanwhile, exact once it arrives.
    d.setAsyncLoads(true);
    QSignalSpy arrived(&d, &TraceData::fineChanged);
    group.setRange(QCPRange(TraceData::tokenToX(15000) - 0.5, TraceData::tokenToX(15016) + 0.5));
    view.refresh();
    QVERIFY(d.fineLoading() || arrived.count() == 1);
    QTRY_COMPARE(arrived.count(), 1);
    QVERIFY(!d.fineLoading());
    QVERIFY(d.fineBegin(kDecay) <= 15000 && d.fineEnd(kDecay) >= 15017);
    // The view redraws by itself.
    QTRY_VERIFY(view.unitGraphs().at(3)->dataCount() >= 17);
    it = view.unitGraphs().at(3)->data()->findBegin(TraceData::tokenToX(15000) - 0.4, false);
    for (qint64 t = 15000; t <= 15016; ++t, ++it) {
        QCOMPARE(it->key, TraceData::tokenToX(t));
        QCOMPARE(it->value, double(decayOf(t, 1, 3)));
    }
}

// Issue 9.11: a trace still being written (by the CLI) is followed as it grows, tail -f style.
void TestWidgets::followGrowingFile()
{
    QTemporaryDir dir;
    const QString path = dir.filePath("growing.h5");
    TraceWriter w(path.toStdString(), fileHeader());
    w.append(makeChunk(0, 300));
    TraceData d;
    QString error;
    QVERIFY2(d.loadFile(path, &error), qPrintable(error));
    QCOMPARE(d.tokens(), qint64(300));
    QVERIFY(d.fileGrowing());
    QCOMPARE(d.pollFile(&error), qint64(0));
    QSignalSpy spy(&d, &TraceData::appended);
    w.append(makeChunk(300, 200));
    w.append(makeChunk(500, 77));
    QCOMPARE(d.pollFile(&error), qint64(277));
    QCOMPARE(spy.count(), 1);
    QCOMPARE(d.tokens(), qint64(577));
    QVERIFY(d.fileGrowing());
    QCOMPARE(d.nllAt(576), nllOf(576));
    QCOMPARE(d.valueAt(kNorm, 1, 7, 576), normOf(576, 1, 7));
    QCOMPARE(d.ids().back(), qint32(576 % 256));
    w.finish();
    QCOMPARE(d.pollFile(&error), qint64(0));
    QVERIFY2(!d.fileGrowing(), qPrintable(error));
    QCOMPARE(d.tokens(), qint64(577));
}

// Issue 9.6: hovering a plot shows, in every plot, a line at that token and the values of every
// series drawn there; with the mouse away the box shows the cursor's token.
void TestWidgets::crosshairReadout()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    ProbeView decay(QStringLiteral("decay"));
    for (TraceView* v : QList<TraceView*>{&loss, &decay}) {
        v->setTrace(&d);
        g.addView(v);
        showView(*v, 900, 420);
        v->refresh();
    }
    decay.setLayer(1);
    decay.setUnit(2);
    g.setRange(QCPRange(0.5, kTokens + 0.5));
    QCOMPARE(g.readoutToken(), qint64(-1));
    QVERIFY(!g.readoutItem(decay.linesRect())->visible());

    // The mouse over token 123 of the gates plot.
    QCPAxis* x = decay.tokenAxes().front();
    const QPoint at(int(x->coordToPixel(TraceData::tokenToX(123))), decay.linesRect()->center().y());
    QMouseEvent move(QEvent::MouseMove, QPointF(at), decay.plot()->mapToGlobal(QPointF(at)), Qt::NoButton,
                     Qt::NoButton, Qt::NoModifier);
    QApplication::sendEvent(decay.plot(), &move);
    QCOMPARE(g.hoverToken(), qint64(123));
    for (QCPAxisRect* r : {decay.linesRect(), decay.heatmapRect(), loss.plot()->axisRect()}) {
        QVERIFY(g.hoverLine(r)->visible());
        QCOMPARE(g.hoverLine(r)->point1->coords().x(), TraceData::tokenToX(123));
        QVERIFY(g.readoutItem(r)->visible());
    }
    const QString lines = g.readoutItem(decay.linesRect())->text();
    QVERIFY2(lines.contains(QStringLiteral("α at token 123")), qPrintable(lines));
    QVERIFY2(
        lines.contains(
            QStringLiteral("layer 1 geomean: %1").arg(QString::number(float(decayGeoMean(123, 1)), 'g', 5))),
        qPrintable(lines));
    QVERIFY2(lines.contains(
                 QStringLiteral("head 2 (selected): %1").arg(QString::number(decayOf(123, 1, 2), 'g', 5))),
             qPrintable(lines));
    for (int h = 0; h < kHeads; ++h)
        QVERIFY2(
            lines.contains(QStringLiteral("%1: %2").arg(h).arg(QString::number(decayOf(123, 1, h), 'g', 5))),
            qPrintable(lines));
    const QString lossLines = g.readoutItem(loss.plot()->axisRect())->text();
    QVERIFY2(lossLines.contains(QStringLiteral("NLL %1 nats").arg(QString::number(nllOf(123), 'g', 5))),
             qPrintable(lossLines));
    QVERIFY2(lossLines.contains(QStringLiteral("perplexity")), qPrintable(lossLines));
    // The heatmap's box reads the row under the pointer: layer 1 is the top row here.
    const QString heat = g.readoutItem(decay.heatmapRect())->text();
    QVERIFY2(heat.contains(QStringLiteral("layer 1, geomean: %1")
                               .arg(QString::number(float(decayGeoMean(123, 1)), 'g', 5))) ||
                 heat.contains(QStringLiteral("layer 0, geomean: %1")
                                   .arg(QString::number(float(decayGeoMean(123, 0)), 'g', 5))),
             qPrintable(heat));
    // The box sits on the side away from the pointer: token 123 of 300 is on the left, box right.
    QCOMPARE(g.readoutItem(decay.linesRect())->position->coords().x(), 1.0);

    // The mouse leaves: no hover line, no box (no cursor yet); then the cursor's values.
    QEvent leave(QEvent::Leave);
    QApplication::sendEvent(decay.plot(), &leave);
    QCOMPARE(g.hoverToken(), qint64(-1));
    QVERIFY(!g.hoverLine(decay.linesRect())->visible());
    QVERIFY(!g.readoutItem(decay.linesRect())->visible());
    g.setCursor(250);
    QVERIFY(g.readoutItem(decay.linesRect())->visible());
    QVERIFY(g.readoutItem(decay.linesRect())->text().contains(QStringLiteral("α at token 250")));
    QCOMPARE(g.readoutItem(decay.linesRect())->position->coords().x(), 0.0);
    // Another layer: the box says the new layer's values at once.
    decay.setLayer(0);
    decay.refresh();
    QVERIFY2(g.readoutItem(decay.linesRect())
                 ->text()
                 .contains(QStringLiteral("layer 0 geomean: %1")
                               .arg(QString::number(float(decayGeoMean(250, 0)), 'g', 5))),
             qPrintable(g.readoutItem(decay.linesRect())->text()));
    // What the user sees: the box is drawn (its pixels differ from the plot without it).
    const QImage with = decay.plot()->toPixmap().toImage();
    g.setCursor(-1);
    const QImage without = decay.plot()->toPixmap().toImage();
    QVERIFY(with != without);

    // A short plot: the box keeps to the rect, leaving out the units' rows first.
    decay.resize(900, 250);
    QCoreApplication::processEvents();
    decay.refresh();
    g.setCursor(200);
    QCPItemText* box = g.readoutItem(decay.linesRect());
    const QStringList shown = box->text().split('\n');
    QVERIFY2(
        shown.size() * QFontMetrics(box->font()).lineSpacing() <= decay.linesRect()->height(),
        qPrintable(QStringLiteral("%1 lines in %2 px: ").arg(shown.size()).arg(decay.linesRect()->height()) +
                   box->text()));
    QVERIFY2(shown.join('|').contains(QStringLiteral("α at token 200")), qPrintable(box->text()));
    QVERIFY2(!shown.join('|').contains(QChar(TraceView::kReadoutDetail)), qPrintable(box->text()));
}

void TestWidgets::arrowKeysStepTheCursor()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    g.setTrace(&d);
    LossView loss;
    loss.setTrace(&d);
    g.addView(&loss);
    showView(loss, 800, 300);
    g.setRange(QCPRange(100.5, 200.5)); // tokens 100..199
    loss.plot()->setFocus();
    QTest::keyClick(loss.plot(), Qt::Key_Right);
    const qint64 start = g.cursor();
    QCOMPARE(start, qint64(100)); // the first press puts the cursor on the first visible token
    QTest::keyClick(loss.plot(), Qt::Key_Right);
    QCOMPARE(g.cursor(), start + 1);
    QTest::keyClick(loss.plot(), Qt::Key_Right, Qt::ShiftModifier);
    QCOMPARE(g.cursor(), start + 11);
    QTest::keyClick(loss.plot(), Qt::Key_Left, Qt::ShiftModifier);
    QTest::keyClick(loss.plot(), Qt::Key_Left);
    QCOMPARE(g.cursor(), start);
    QTest::keyClick(loss.plot(), Qt::Key_End);
    QCOMPARE(g.cursor(), kTokens - 1);
    // The view went along with the cursor.
    QVERIFY(g.range().contains(TraceData::tokenToX(kTokens - 1)));
    QTest::keyClick(loss.plot(), Qt::Key_Right);
    QCOMPARE(g.cursor(), kTokens - 1);
    QTest::keyClick(loss.plot(), Qt::Key_Home);
    QCOMPARE(g.cursor(), qint64(0));
    QTest::keyClick(loss.plot(), Qt::Key_Left);
    QCOMPARE(g.cursor(), qint64(0));
    // jumpTo centres the range on the token, keeping its width.
    const double width = g.range().size();
    g.jumpTo(150);
    QCOMPARE(g.cursor(), qint64(150));
    QVERIFY(std::abs(g.range().center() - TraceData::tokenToX(150)) < 1.0);
    QVERIFY(std::abs(g.range().size() - width) < 1e-6);
}

void TestWidgets::stripFollowsZoom()
{
    TraceData d;
    fill(d);
    PlotGroup g;
    g.setTrace(&d);
    TokenStrip strip;
    strip.setTrace(&d);
    strip.setGroup(&g);
    showView(strip, 300, 60);
    QVERIFY(strip.verticalScrollBar()->maximum() > 0); // the 300 tokens do not fit: it scrolls
    const qint64 before = strip.firstVisibleToken();
    QVERIFY(before < 100);
    // Zoom the plots to tokens 240-270: the strip shows them.
    g.setRange(QCPRange(TraceData::tokenToX(240), TraceData::tokenToX(270)));
    const qint64 first = strip.firstVisibleToken();
    QVERIFY2(first > before && first <= 240, qPrintable(QString::number(first)));
    QVERIFY(strip.viewport()->rect().intersects(strip.tokenRect(240)));
    // A zoom around what the strip shows leaves it alone.
    g.setRange(QCPRange(TraceData::tokenToX(first - 10), TraceData::tokenToX(290)));
    QCOMPARE(strip.firstVisibleToken(), first);
    // Hovering a token in the plots outlines it in the strip and brings it into view.
    g.setHoverToken(30);
    QCOMPARE(strip.hoverToken(), qint64(30));
    QVERIFY(strip.viewport()->rect().intersects(strip.tokenRect(30)));
}

namespace {
// A 50-token trace whose header names `input` as the text it was made from.
void writeTraceNaming(const QString& path, const QString& input)
{
    TraceHeader h = fileHeader();
    h.inputSource.kind = "text";
    h.inputSource.path = input.toStdString();
    TraceWriter w(path.toStdString(), h);
    w.append(makeChunk(0, 50));
    w.finish();
}
} // namespace

// Issue 10.8: the input path a trace records is read only if it is a regular file of a plausible
// size: a FIFO there used to hang the window, /dev/zero to fill its memory.
void TestWidgets::recordedInputPathNotFollowedBlindly()
{
    QTemporaryDir dir;
    const QString fifo = dir.filePath("fifo");
    QCOMPARE(::mkfifo(fifo.toLocal8Bit().constData(), 0600), 0);
    for (const QString& input : {fifo, QStringLiteral("/dev/zero")}) {
        const QString path = dir.filePath("names-%1.h5").arg(QFileInfo(input).fileName());
        writeTraceNaming(path, input);
        QElapsedTimer clock;
        clock.start();
        TraceData d;
        QString error;
        QVERIFY2(d.loadFile(path, &error), qPrintable(error));
        QVERIFY2(clock.elapsed() < 5000, qPrintable(input));
        QVERIFY(d.text().isEmpty());
        QCOMPARE(d.tokens(), qint64(50));
        // Asked for, it is still refused: neither is a regular file.
        QString why;
        QVERIFY(!d.readNamedInput(&why));
        QVERIFY2(why.contains("not a regular file") && why.contains(input), qPrintable(why));
        QVERIFY(clock.elapsed() < 5000);
    }
    // Issue 10 (8): even a regular file the trace names is read only when asked, and then only the
    // bytes its offsets span.
    const QString textPath = dir.filePath("book.txt");
    {
        QFile f(textPath);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(QByteArray(5000, 'x'));
    }
    const QString path = dir.filePath("names-book.h5");
    writeTraceNaming(path, textPath);
    TraceData d;
    QString error;
    QVERIFY2(d.loadFile(path, &error), qPrintable(error));
    QVERIFY(d.text().isEmpty());
    QCOMPARE(d.namedInputPath(), textPath);
    QVERIFY2(d.readNamedInput(&error), qPrintable(error));
    QCOMPARE(d.text().size(), qsizetype(d.offsets().back()));
    QVERIFY(d.text().size() < 5000);
}
