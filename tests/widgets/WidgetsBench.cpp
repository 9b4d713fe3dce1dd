// Pan/zoom redraw time and memory of the views on a synthetic trace (default 1M tokens, 24 x 24).
// Run by hand: QT_QPA_PLATFORM=offscreen ./WidgetsBench [--tokens N] [--layers L] [--heads H]
#include "LossView.h"
#include "PlotGroup.h"
#include "ProbeView.h"
#include "TokenStrip.h"
#include "TraceData.h"
#include "trace/TraceFile.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

using namespace statescope;

namespace {

double peakRssMb()
{
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss / 1024.0;
}

ChunkProbes chunk(qint64 start, qint64 n, int L, int H, std::mt19937& rng)
{
    std::uniform_real_distribution<float> u(0.f, 1.f);
    ChunkProbes c;
    c.start = start;
    c.values.resize(3);
    const size_t lh = size_t(L) * size_t(H);
    c.ids.resize(size_t(n));
    c.nll.resize(size_t(n));
    for (auto& v : c.values)
        v.resize(size_t(n) * lh);
    for (qint64 k = 0; k < n; ++k) {
        const qint64 t = start + k;
        c.ids[size_t(k)] = qint32(t % 50000);
        // Loss that drifts up after 200K tokens, with noise.
        c.nll[size_t(k)] = 2.0f + (t > 200000 ? float(t - 200000) * 2e-6f : 0.f) + 1.5f * u(rng);
        for (size_t j = 0; j < lh; ++j) {
            const size_t i = size_t(k) * lh + j;
            c.values[0][i] = 0.05f + 0.1f * u(rng);
            c.values[1][i] = 0.9f + 0.099f * u(rng);
            c.values[2][i] = float(1 + j % H) * (1.f + float(t) * 1e-5f) * (0.9f + 0.2f * u(rng));
        }
    }
    return c;
}

struct Stats {
    double sum = 0, max = 0, min = 1e300;
    int n = 0;
    void add(double ms)
    {
        sum += ms;
        max = std::max(max, ms);
        min = std::min(min, ms);
        ++n;
    }
};

} // namespace

int main(int argc, char** argv)
{
    QApplication app(argc, argv);
    qint64 tokens = 1'000'000;
    int L = 24, H = 24;
    QString stages = QStringLiteral("zvcl"); // zoom/pan, per view, cursor, live
    for (int i = 1; i + 1 < argc; i += 2) {
        const QString a = QString::fromLocal8Bit(argv[i]);
        if (a == "--tokens")
            tokens = QString(argv[i + 1]).toLongLong();
        else if (a == "--layers")
            L = QString(argv[i + 1]).toInt();
        else if (a == "--heads")
            H = QString(argv[i + 1]).toInt();
        else if (a == "--stages")
            stages = QString(argv[i + 1]);
    }
    std::printf("trace: %lld tokens, %d layers x %d heads\n", (long long)tokens, L, H);

    TraceData d;
    TraceHeaderInfo h;
    h.label = "bench";
    h.layers = L;
    h.units = H;
    h.unitName = "head";
    // What the views need of a probe: its descriptor (dt, decay, state_norm as the engine reports
    // them for a model of heads).
    auto desc = [L, H](const char* name, const char* label, ProbeSummary summary) {
        ProbeDesc d;
        d.name = name;
        d.label = label;
        d.summary = summary;
        d.shape = {L, H};
        d.axes = {"layer", "head"};
        return d;
    };
    h.probes = {desc("dt", "Δ", ProbeSummary::Mean), desc("decay", "α", ProbeSummary::GeoMean),
                desc("state_norm", "‖S‖", ProbeSummary::RootSumSquare)};
    h.trainingLength = 2048;
    h.forgetThreshold = 250000;
    d.reset(h);
    std::mt19937 rng(1);
    QElapsedTimer timer;
    timer.start();
    double genMs = 0;
    for (qint64 t = 0; t < tokens; t += 4096) {
        QElapsedTimer g;
        g.start();
        const ChunkProbes c = chunk(t, std::min<qint64>(4096, tokens - t), L, H, rng);
        genMs += g.nsecsElapsed() / 1e6;
        d.append(c);
    }
    const double ingestMs = timer.nsecsElapsed() / 1e6 - genMs;
    std::printf(
        "ingest: %.0f ms (%.0f tokens/s, excluding generation %.0f ms); pyramid cap %d, resolution %lld "
        "tokens/bucket\n",
        ingestMs, tokens / (ingestMs / 1000), genMs, d.pyramidCap(), (long long)d.seriesResolution());
    std::printf("TraceData memory: %.1f MB (pyramids %.1f MB); peak RSS so far %.0f MB\n",
                d.memoryBytes() / 1048576.0, d.pyramidBytes() / 1048576.0, peakRssMb());

    QWidget window;
    auto* layout = new QVBoxLayout(&window);
    PlotGroup group;
    group.setTrace(&d);
    LossView loss;
    ProbeView gate(QStringLiteral("decay"));
    ProbeView norm(QStringLiteral("state_norm"));
    TokenStrip strip;
    QList<TraceView*> views{&loss, &gate, &norm};
    for (TraceView* v : views) {
        v->setTrace(&d);
        layout->addWidget(v, 1);
        group.addView(v);
    }
    strip.setTrace(&d);
    strip.setGroup(&group);
    layout->addWidget(&strip);
    if (qEnvironmentVariableIsSet("BENCH_FAST"))
        for (TraceView* v : views)
            v->plot()->setPlottingHint(QCP::phFastPolylines, true);
    if (qEnvironmentVariableIsSet("BENCH_THIN"))
        for (TraceView* v : views)
            for (int i = 0; i < v->plot()->graphCount(); ++i) {
                QPen p = v->plot()->graph(i)->pen();
                p.setWidthF(qEnvironmentVariableIntValue("BENCH_THIN") / 10.0);
                p.setStyle(Qt::SolidLine);
                v->plot()->graph(i)->setPen(p);
            }
    window.resize(1600, 1200);
    window.show();
    app.processEvents();

    auto frame = [&]() {
        QElapsedTimer f;
        f.start();
        // What the event loop does after a pan: the views' re-query, their queued replots, the repaint.
        for (TraceView* v : views)
            v->refresh();
        app.processEvents();
        app.processEvents();
        return f.nsecsElapsed() / 1e6;
    };
    frame(); // warm up
    if (qEnvironmentVariableIsSet("BENCH_GRAB")) {
        group.setCursor(tokens / 3);
        app.processEvents();
        for (TraceView* v : views)
            v->refresh();
        app.processEvents();
        window.grab().save(qEnvironmentVariable("BENCH_GRAB"));
        if (qEnvironmentVariableIsSet("BENCH_GRAB_DARK")) {
            for (TraceView* v : views)
                v->setDarkTheme(true);
            group.setDarkTheme(true);
            strip.setDarkTheme(true);
            for (TraceView* v : views)
                v->refresh();
            app.processEvents();
            window.grab().save(qEnvironmentVariable("BENCH_GRAB_DARK"));
        }
    }
    std::printf(
        "one frame = re-query of the loss, gate and norm views + their replots and repaint (event loop), "
        "window 1600 x 1200\n");
    const double fullX = double(tokens) + 0.5;
    for (double span : {fullX, 100000.0, 10000.0, 1000.0}) {
        if (!stages.contains('z'))
            break;
        Stats zoom, pan;
        group.setRange(QCPRange(0.5, 0.5 + span));
        zoom.add(frame());
        // Pan across the trace in 20 steps.
        for (int i = 0; i < 20; ++i) {
            const double lo = 0.5 + (fullX - span) * i / 19.0;
            group.setRange(QCPRange(lo, lo + span));
            pan.add(frame());
        }
        // Zoom in/out by 10 % steps around the middle.
        Stats wheel;
        for (int i = 0; i < 10; ++i) {
            const QCPRange r = group.range();
            const double c = r.center(), s = r.size() * (i % 2 ? 1.1 : 0.9);
            group.setRange(QCPRange(c - s / 2, c + s / 2));
            wheel.add(frame());
        }
        std::printf("visible %8.0f tokens: pan mean %6.1f ms max %6.1f ms; zoom mean %6.1f ms max %6.1f ms\n",
                    span, pan.sum / pan.n, pan.max, wheel.sum / wheel.n, wheel.max);
    }
    if (stages.contains('z')) {
        group.setLogX(true);
        group.showAll();
        Stats logx;
        for (int i = 0; i < 10; ++i)
            logx.add(frame());
        std::printf("log x, whole trace: mean %.1f ms max %.1f ms\n", logx.sum / logx.n, logx.max);
        group.setLogX(false);
    }

    // Per view, whole trace.
    group.showAll();
    for (TraceView* v : views) {
        if (!stages.contains('v'))
            break;
        Stats s, q;
        for (int i = 0; i < 10; ++i) {
            QElapsedTimer f;
            f.start();
            v->refresh();
            q.add(f.nsecsElapsed() / 1e6);
            app.processEvents();
            app.processEvents();
            s.add(f.nsecsElapsed() / 1e6);
        }
        std::printf("  %-14s whole trace: %.1f ms per frame, min %.1f (re-query %.1f ms)\n",
                    qPrintable(v->title()), s.sum / s.n, s.min, q.sum / q.n);
    }
    // Cursor moves (buffered cursor layer) and the strip's re-layout far away.
    if (stages.contains('c')) {
        {
            QElapsedTimer f;
            f.start();
            app.processEvents();
            std::printf("pending events before the cursor stage: %.1f ms\n", f.nsecsElapsed() / 1e6);
        }
        Stats s;
        for (int i = 0; i < 50; ++i) {
            QElapsedTimer f;
            f.start();
            group.setCursor(qint64(tokens) * i / 50);
            const double a = f.nsecsElapsed() / 1e6;
            app.processEvents();
            s.add(f.nsecsElapsed() / 1e6);
            if (f.nsecsElapsed() / 1e6 > 100)
                std::printf("  slow cursor move %d: setCursor %.1f ms, events %.1f ms\n", i, a,
                            f.nsecsElapsed() / 1e6 - a);
        }
        std::printf("cursor move (+ strip re-layout + paint): mean %.1f ms max %.1f ms\n", s.sum / s.n,
                    s.max);
    }

    // Live: the whole trace appended again in 2048-token chunks as fast as possible with the event loop
    // running: refreshes per second.
    if (stages.contains('l')) {
        TraceData live;
        live.reset(h);
        for (TraceView* v : views)
            v->setTrace(&live);
        group.setTrace(&live);
        strip.setTrace(&live);
        const qint64 before = loss.refreshCount();
        QElapsedTimer f;
        f.start();
        qint64 t = 0;
        const qint64 liveTokens = std::min<qint64>(tokens, 200000);
        while (t < liveTokens) {
            live.append(chunk(t, 2048, L, H, rng));
            t += 2048;
            app.processEvents();
        }
        const double s = f.nsecsElapsed() / 1e9;
        std::printf(
            "live: %lld tokens appended in %.1f s (incl. generating them), loss view refreshed %lld times "
            "(%.1f per s)\n",
            (long long)t, s, (long long)(loss.refreshCount() - before), (loss.refreshCount() - before) / s);
    }
    // A trace file of the same shape written and loaded back (TraceData::loadFile reads it in blocks).
    if (stages.contains('f')) {
        const std::string path = "/tmp/widgets-bench-trace.h5";
        QElapsedTimer f;
        f.start();
        {
            TraceHeader th;
            th.architecture = "mamba2";
            th.modelConfigJson = "{}";
            th.hasOffsets = false;
            th.probes = h.probes;
            TraceWriter w(path, th);
            for (qint64 t = 0; t < tokens; t += 8192)
                w.append(chunk(t, std::min<qint64>(8192, tokens - t), L, H, rng));
            w.finish();
        }
        std::printf("trace file written in %.1f s\n", f.nsecsElapsed() / 1e9);
        const double before = peakRssMb();
        TraceData loaded;
        QString error;
        f.restart();
        const bool ok = loaded.loadFile(QString::fromStdString(path), &error);
        std::printf("loadFile: %s in %.1f s, %lld tokens; peak RSS %.0f MB (was %.0f MB)\n",
                    ok ? "ok" : qPrintable(error), f.nsecsElapsed() / 1e9, (long long)loaded.tokens(),
                    peakRssMb(), before);
        std::remove(path.c_str());
    }
    std::printf("peak RSS: %.0f MB\n", peakRssMb());
    return 0;
}
