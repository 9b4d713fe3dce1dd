#pragma once

// The sweep's result as the paper draws it (Stuffed Mamba Fig. 11): every training run a dot on
// (N_S, T_train), green where it learned to forget and red where it collapsed, each state size's
// interpolated T_forget, the fitted line with its equation and the paper's line for reference. A
// click on a dot draws that run's evaluation curves underneath. It reads the files `statescope-cli
// sweep report` writes (summary.json and the jobs' job.json) and nothing else.
#include <QString>
#include <QStringList>
#include <QVector>
#include <QWidget>

class QCustomPlot;
class QCPAxisRect;
class QCPGraph;
class QCPItemText;
class QCPLegend;
class QLabel;

namespace statescope {

struct ForgetThresholdRun {
    QString id;
    double stateSize = 0;   // elements
    double trainLength = 0; // tokens
    bool forgets = false;
    double score = 0;
    QString reason;
    QString evalPath; // its job.json, absolute; "" if unknown
    QString source;   // the earlier report it was taken from (sweep report --earlier); "" if this sweep's
    // The slowest head's half-life in tokens (the worst text's; summary.json's half_life.max): a head
    // that remembers for several training lengths is one training never asked to forget. -1: unknown.
    double slowestHalfLife = -1;
    qint64 seed = 0;
    int seedIndex = 0; // its seed's rank among the sweep's seeds: the dots of one cell sit side by side
};

// The threshold of one state size and one seed, where that seed's bracket lies inside the grid.
struct ForgetThresholdSeed {
    double stateSize = 0; // elements
    double threshold = 0; // tokens, interpolated
    int seedIndex = 0;
};

struct ForgetThresholdData {
    QString name;
    QString criterion;                            // one line
    QVector<ForgetThresholdRun> runs;             // finished runs only
    QVector<double> sizeStateSize, sizeThreshold; // sizes whose T_forget lies inside the grid (tokens)
    QVector<ForgetThresholdSeed> seedThresholds;  // each seed's, also before the other seeds finished
    // Seeds whose verdicts are not monotone in T_train ("N_S 1.08 M, seed 0"): their bracket is no
    // threshold, and the figure says so instead of drawing one.
    QStringList notMonotone;
    // Sizes whose seeds' brackets lie more than one grid step apart ("N_S 1.62 M"): a threshold drawn
    // for such a size rests on one seed, which the heading says.
    QStringList seedsDisagree;
    // Neighbouring sizes whose T_forget falls as N_S grows ("N_S 0.27 → 0.54 M"): the law says it
    // rises, and the fit drawn over such sizes is no line of the law, which the heading says.
    QStringList fallsWithStateSize;
    // The training texts of the finished jobs ("train-head.txt, 62716635 bytes, fnv1a64 …", or "not
    // recorded") where there is more than one: their thresholds are not comparable, which the heading
    // says.
    QStringList trainingTexts;
    QVector<int> trainingTextJobs; // how many jobs read each
    int seedCount = 1;
    bool hasFit = false;
    // sweep report --provisional where it shows: runs unfinished, or a size's T_forget from part of its
    // seeds.
    bool provisional = false;
    int plannedRuns = 0, finishedRuns = 0;
    double slope = 0, intercept = 0, r2 = 0; // T_forget[K = 1024] = slope · N_S[M] + intercept
    double slopeLow = 0, slopeHigh = 0;
    // False where the summary has no interval (null: a fit through two sizes), which must not read as
    // [0, 0].
    bool hasSlopeInterval = false;

    // Reads a sweep's summary.json. Returns false with *error naming the file and the problem.
    static bool fromSummary(const QString& path, ForgetThresholdData* data, QString* error);
};

// One domain's mean NLL against position, read from a job.json.
struct EvalCurve {
    QString domain;
    QVector<double> position, nll; // bucket starts (tokens) and their mean NLL
};
bool readEvalCurves(const QString& jobJson, QVector<EvalCurve>* curves, qint64* trainLength, QString* error);

class ForgetThresholdView : public QWidget {
    Q_OBJECT
public:
    static constexpr double kPaperSlope = 5.172, kPaperIntercept = -4.469;
    // From this ratio of the largest state size to the smallest, N_S is drawn on a log axis: sizes that
    // double at each step then sit evenly apart, where on a linear one the smallest crowd at the left
    // and their seeds' dots overlap.
    static constexpr double kLogStateSizeRatio = 8;

    explicit ForgetThresholdView(QWidget* parent = nullptr);

    void setData(const ForgetThresholdData& data);
    const ForgetThresholdData& data() const { return m_data; }
    // Draws run i's evaluation curves (from its job.json) in the lower plot; false with *error if unreadable.
    bool showRun(int index, QString* error = nullptr);
    int shownRun() const { return m_shown; }
    // Whether the lower plot (a run's curves) is in the layout: only once a run was clicked.
    bool curvesShown() const;

    QCustomPlot* plot() const { return m_plot; }
    QCPGraph* forgetsGraph() const { return m_forgets; }
    QCPGraph* collapsesGraph() const { return m_collapses; }
    QCPGraph* thresholdGraph() const { return m_thresholds; }
    QCPGraph* seedThresholdGraph() const { return m_seedThresholds; }
    QCPGraph* fitGraph() const { return m_fit; }
    QCPGraph* paperGraph() const { return m_paper; }
    QCPItemText* equationLabel() const { return m_equation; }
    QCPItemText* curveTitle() const { return m_curveTitle; }
    QCPAxisRect* curveRect() const { return m_curveRect; }
    const QVector<QCPGraph*>& curveGraphs() const { return m_curves; }
    // The pixel of run i's dot, for tests; the run nearest a pixel (within 8 px), or -1.
    QPointF runPixel(int index) const;
    int runAt(const QPointF& pos) const;
    bool stateSizeAxisIsLog() const { return m_logX; }

signals:
    void runClicked(int index);
    void errorOccurred(const QString& message);

private:
    void onPress(const QPointF& pos);
    void setCurvesShown(bool shown);
    // Moves the legend to the corner of the dots' plot where it hides the fewest dots and thresholds
    // (the top left holds the equation); true if it moved. Where they are depends on the data and
    // the window's size, so it runs after each replot.
    bool placeLegend();
    // Raises the top of the T_train axis until no dot lies under the equation and its notes: their
    // height in pixels depends on the window or the figure, so it runs after each layout. True if the
    // range changed.
    bool fitHeadroom();
    // Shrinks the run and seed markers to nine tenths of the pixels between neighbouring seeds' dots
    // (at most their full size, at least 0.35 of it), so that no dot hides its neighbour's; the
    // pixels depend on the window or the figure, so it runs after each layout.
    void fitMarkers();
    // N_S in M moved sideways by seed, so that the seeds of one cell do not hide each other.
    double seedX(double stateSize, int seedIndex) const;

    QCustomPlot* m_plot;
    QCPAxisRect* m_mainRect;
    QCPAxisRect* m_curveRect;
    QCPGraph* m_forgets;
    QCPGraph* m_collapses;
    QCPGraph* m_thresholds;
    QCPGraph* m_seedThresholds;
    QCPGraph* m_fit;
    QCPGraph* m_paper;
    QCPItemText* m_equation;
    QCPItemText* m_curveTitle;
    QCPLegend* m_curveLegend;
    QVector<QCPGraph*> m_curves;
    QLabel* m_hint;
    ForgetThresholdData m_data;
    int m_shown = -1;
    // Between the dots of neighbouring seeds: M elements on a linear N_S axis, a factor's logarithm on
    // a log one.
    double m_seedStep = 0;
    bool m_logX = false;
    // K tokens: the T_train axis's least top (room for the heading as setData reckons it, before a
    // layout tells the heading's height in pixels)
    double m_yTopLeast = 0;
};

} // namespace statescope
