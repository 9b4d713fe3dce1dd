#pragma once

// The data of one trace as the views need it, live or loaded from a file. It knows nothing of
// widgets (Sonic Visualiser's model/view split): views observe its signals and query it. It knows
// nothing of architectures either: probes are known by their descriptors (probes/Probes.h), and
// everything else it shows comes from the trace's own header.
#include "SeriesPyramid.h"
#include "probes/Probes.h"

#include <QByteArray>
#include <QColor>
#include <QObject>
#include <QPair>
#include <QPointF>
#include <QString>
#include <QVector>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace statescope {

struct TraceHeader;
class TraceReader;

struct TraceHeaderInfo {
    QString label;            // legend text, e.g. "tiny-random fp32 2026-01-02 10:11"
    QString architecture;     // registry name (Architecture::name())
    QString architectureName; // display name (Architecture::displayName()); the registry name if unknown
    int layers = 0;           // the [layer, unit] axes of the probes every architecture reports
    int units = 0;
    QString unitName;                      // "head", "channel group"
    std::vector<ProbeDesc> probes;         // the order of ChunkProbes::values
    std::optional<qint64> trainingLength;  // tokens
    std::optional<double> forgetThreshold; // tokens (the paper's predicted T_forget)
    qint64 stateSize = 0;                  // N_S (0: unknown)
    QString stateSizeDefinition;
    qint64 vocabSize = 0;     // rows of the output layer (0: unknown)
    QString inputKind;        // "text", "ids", "prompt"
    QString inputPath;        // the file the run read, absolute; empty for typed text and prompts
    QString inputDescription; // one line
    QString tokenizer;        // identity of the tokenizer, for people
    QString tokenizerPath;    // the tokenizer.json the run used (it may be gone since)
    QString passkey;          // a passkey prompt's key, and the tokens its needle spans (inclusive)
    std::optional<QPair<qint64, qint64>> needle;

    // Everything the trace says about itself (schema 2; the reader derives it for schema 1).
    static TraceHeaderInfo fromTraceHeader(const TraceHeader& header);
};

class TraceData : public QObject {
    Q_OBJECT
public:
    // Total bytes that the pyramids of one trace may take; their cap shrinks (to a power of two, at
    // least kMinCap) for models with many layers x units.
    static constexpr qint64 kDefaultPyramidBudget = 256ll << 20;
    static constexpr int kMinCap = 1024;
    // Besides its own units (0 .. units - 1), a layer of a probe has two aggregate series, asked for
    // as these units: the probe's ProbeSummary over the units, and their minimum.
    static constexpr int kSummary = -1;
    static constexpr int kMinimum = -2;
    // Bytes that the full-resolution window of one probe (see ensureFullResolution) may take, and the
    // most tokens it ever spans.
    static constexpr qint64 kDefaultFineBudget = 64ll << 20;
    static constexpr qint64 kMaxFineTokens = 1 << 16;

    explicit TraceData(QObject* parent = nullptr);
    ~TraceData() override;

    // Plot x of a token: its 1-based position, so that log axes can show the first token.
    static double tokenToX(qint64 token) { return double(token) + 1.0; }
    static qint64 xToToken(double x);

    // Forgets all data and starts a trace with this header. Emits traceReset().
    void reset(const TraceHeaderInfo& header);
    // Appends the next tokens (chunk.start must equal tokens(); a gap or overlap is refused with a
    // qWarning and ignored). Emits appended(tokens()).
    void append(const ChunkProbes& chunk);
    // Reads a saved trace in blocks of tokens (a 1M-token trace never has all its probes in memory).
    // Files the trace names (its input text, its tokenizer) are not opened: see readNamedInput(). On failure returns false with a one-line
    // message in *error and leaves the data reset to empty. progress, if set, is called after each
    // block; returning false cancels (an error "cancelled").
    bool loadFile(const QString& path, QString* error,
                  const std::function<bool(qint64 done, qint64 total)>& progress = {});
    // The input text file the trace says it was made from (resolved next to the trace for a schema-1
    // relative path); "" if it names none or has no offsets to show it with.
    QString namedInputPath() const;
    // Reads that file, when the user asks (a trace is a colleague's file too: what it names is not
    // opened on its own): a regular file only, and only the bytes the offsets span. False with a
    // one-line *error otherwise.
    bool readNamedInput(QString* error = nullptr);
    // Reads the header of a trace file (labelled with the file's name). Throws statescope::Error.
    static TraceHeaderInfo headerFromFile(const QString& path);
    // Opens the file that holds these data (a run the window recorded, once its writer has closed
    // it) so that zooming in reads exact values from it. False with *error if it cannot be read or
    // does not match.
    bool attachFile(const QString& path, QString* error = nullptr);

    // A file still being written (by the CLI, or a run that was killed): whether loadFile() or
    // attachFile() left it incomplete, and, polled, what its writer added since (SWMR, as tail -f
    // does). pollFile() appends the new tokens (emitting appended()) and returns how many; it turns
    // fileGrowing() off once the writer has finished or the file went away.
    bool fileGrowing() const { return m_growing; }
    // Whether a trace file backs the data (full-resolution reads come from it).
    bool hasFile() const { return bool(m_reader); }
    qint64 pollFile(QString* error = nullptr);

    // Series are kept at a resolution that halves whenever the trace outgrows the pyramids' cap; to
    // show every token when zoomed in, this loads the series of a window of tokens around [begin,
    // end) at full resolution, from the trace file or the recent tokens of a live run. Its size is
    // bounded by fineBudget(); a range wider than that keeps the coarse data. Returns true when the
    // window changed (the caller should redraw). series(), seriesEdges(), valueAt() and
    // layerHeatmap*() use the window for every request inside it.
    // probes: those to load (e.g. the one a view shows); empty: every probe with series. Each probe
    // has its own window.
    bool ensureFullResolution(qint64 begin, qint64 end, const QVector<int>& probes = {});
    // Tokens per value that series(probe, ..., begin, end, ...) draws from now: 1 inside the probe's
    // window; probe -1: the most over the probes.
    qint64 resolutionFor(qint64 begin, qint64 end, int probe = -1) const;
    // The window of a probe (-1: the first probe with series); begin == end when it has none.
    qint64 fineBegin(int probe = -1) const;
    qint64 fineEnd(int probe = -1) const;
    // The most tokens a full-resolution window of the probe may span (fineBudget() bytes for it);
    // -1: the least over the probes. 0 without series.
    qint64 fineTokens(int probe = -1) const;
    void setFineBudget(qint64 bytes) { m_fineBudget = bytes; }
    // With a trace file, windows are read in a worker thread (on by default) and fineChanged() says
    // when one arrived; off, ensureFullResolution() reads before it returns (tests).
    void setAsyncLoads(bool async) { m_asyncLoads = async; }
    bool fineLoading() const;

    const TraceHeaderInfo& header() const { return m_header; }
    QString label() const { return m_header.label; }
    void setLabel(const QString& label);
    // The colour views draw this trace in (invalid: theirs by position). Emits colorChanged().
    QColor color() const { return m_color; }
    void setColor(const QColor& color);
    std::optional<qint64> trainingLength() const { return m_header.trainingLength; }
    std::optional<double> forgetThreshold() const { return m_header.forgetThreshold; }
    void setTrainingLength(std::optional<qint64> tokens);  // emits markersChanged()
    void setForgetThreshold(std::optional<double> tokens); // emits markersChanged()
    QString filePath() const { return m_filePath; }        // the file loadFile read, or setFilePath

    qint64 tokens() const { return m_tokens; }
    int layers() const { return m_header.layers; }
    int units() const { return m_header.units; }
    QString unitName() const { return m_header.unitName; }
    const QVector<qint32>& ids() const { return m_ids; }
    const QVector<qint64>& offsets() const { return m_offsets; } // 2 per token, or empty
    const QVector<float>& nllValues() const { return m_nll; }    // full resolution

    // Probes, indexed like header().probes. Those shaped [layer, unit] are kept as series (per unit,
    // plus the two aggregates per layer); the others are known by their descriptor only.
    int probeCount() const { return int(m_header.probes.size()); }
    const ProbeDesc* probe(int index) const;
    int probeIndex(const QString& name) const; // -1 if the trace has no such probe
    bool hasSeries(int probe) const;
    bool hasSeries(const QString& name) const { return hasSeries(probeIndex(name)); }
    QVector<int> seriesProbes() const; // in header order
    int probeLayers(int probe) const;  // 0 for probes without series
    int probeUnits(int probe) const;

    // The input text (UTF-8) that offsets index into, for the token strip.
    void setText(const QByteArray& utf8);
    const QByteArray& text() const { return m_text; }
    // Turns an id into text when there is no text/offsets (e.g. a trace opened without its input).
    void setTokenDecoder(std::function<QString(qint32 id)> decoder);
    // The token's text: from text() and offsets when known, else the decoder, else "#id".
    QString tokenText(qint64 token) const;

    // Per-token NLL envelope (exact: min/max over the full-resolution values).
    Envelope nll(qint64 begin, qint64 end, int columns) const;
    Envelope nllEdges(const QVector<qint64>& edges) const;
    float nllAt(qint64 token) const;
    // Moving average of NLL over `window` tokens ending at each token (NaN skipped), sampled like nll():
    // one point per token, or per column the min/max/mean of the average over the column's tokens.
    Envelope movingAverage(qint64 begin, qint64 end, int columns, int window) const;
    Envelope movingAverageEdges(const QVector<qint64>& edges, int window) const;
    double movingAverageAt(qint64 token, int window) const;
    // exp(mean NLL) over consecutive buckets of bucketSize tokens (the last may be partial; NaN
    // skipped; buckets with no finite NLL are left out), at the buckets' centres in plot x.
    QVector<QPointF> bucketedPerplexity(int bucketSize) const;
    QVector<QPointF> bucketedPerplexity(int bucketSize, qint64 begin, qint64 end) const;
    double bucketedPerplexityAt(qint64 token, int bucketSize) const;

    // The series of one unit of a layer of a probe, or (unit kSummary / kMinimum) of an aggregate
    // of the layer's units; empty if the probe has no series or layer/unit is out of range.
    Envelope series(int probe, int layer, int unit, qint64 begin, qint64 end, int columns) const;
    Envelope series(const QString& probe, int layer, int unit, qint64 begin, qint64 end, int columns) const
    {
        return series(probeIndex(probe), layer, unit, begin, end, columns);
    }
    Envelope seriesEdges(int probe, int layer, int unit, const QVector<qint64>& edges) const;
    // The value at token (the bucket's mean when the series is decimated there); NaN if unknown.
    float valueAt(int probe, int layer, int unit, qint64 token) const;
    float valueAt(const QString& probe, int layer, int unit, qint64 token) const
    {
        return valueAt(probeIndex(probe), layer, unit, token);
    }
    // Tokens per stored bucket of the series (1 until the pyramids first merge).
    qint64 seriesResolution() const;

    // probeLayers(probe) x columns values, row-major by layer: cell (l, c) aggregates the tokens of
    // column c: the mean of that unit, the mean of the layer's summary (kSummary), or the min over
    // the units and tokens (kMinimum). Columns past the data are NaN.
    QVector<float> layerHeatmap(int probe, int unit, qint64 begin, qint64 end, int columns) const;
    QVector<float> layerHeatmapEdges(int probe, int unit, const QVector<qint64>& edges) const;

    // Bytes held (pyramids, NLL, ids, offsets, prefix sums; text excluded).
    size_t memoryBytes() const;
    // Bytes held by the pyramids alone: bounded by pyramidCap() whatever the length.
    size_t pyramidBytes() const;
    // Bytes held by the full-resolution window and a live run's recent tokens: bounded by the fine
    // budget.
    size_t fineBytes() const;
    // The pyramid behind a series (nullptr if none), for tests and diagnostics.
    const SeriesPyramid* pyramid(int probe, int layer, int unit) const;
    // The cap used for every pyramid of this trace (set from the budget at reset()).
    int pyramidCap() const { return m_cap; }
    void setPyramidBudget(qint64 bytes) { m_budget = bytes; } // takes effect at the next reset()
    void setFilePath(const QString& path) { m_filePath = path; }

signals:
    void traceReset();
    void appended(qint64 newTokenCount);
    void markersChanged();
    void labelChanged();
    void colorChanged();
    // A full-resolution window read in the background is ready: views redraw.
    void fineChanged();

private:
    // The series of one probe shaped [layer, unit].
    struct ProbeSeries {
        int layers = 0, units = 0;
        std::vector<SeriesPyramid> perUnit; // layers * units, layer-major
        std::vector<SeriesPyramid> summary; // layers
        std::vector<SeriesPyramid> minimum; // layers
    };

    void appendBlock(const ChunkProbes& chunk);
    // Appends the chunk's [layer, unit] probes to the series that have pyramids (sizes checked by
    // the caller); appendProbe one probe's count tokens of values (token-major).
    void appendSeries(std::vector<ProbeSeries>& series, const ChunkProbes& chunk, qint64 count) const;
    void appendProbe(ProbeSeries& series, int probe, const float* values, qint64 count) const;
    ProbeSeries makeProbeSeries(int probe, int cap) const;
    static ProbeSeries makeProbeSeries(const ProbeDesc& desc, int cap);
    static void appendProbe(ProbeSeries& series, ProbeSummary how, const float* values, qint64 count);
    void startFineLoad(int probe, qint64 begin, qint64 end, qint64 span);
    std::vector<ProbeSeries> makeSeries(int cap) const;
    // Full-resolution values of a probe for tokens [begin, end) from the file or the recent chunks;
    // false if neither holds them.
    bool readRaw(int probe, qint64 begin, qint64 end, std::vector<float>* out) const;
    // The pyramid answering a request for tokens [begin, end): the fine window's when it covers the
    // range (*offset = its first token), else the coarse one (*offset = 0).
    const SeriesPyramid* pyramidFor(int probe, int layer, int unit, qint64 begin, qint64 end,
                                    qint64* offset) const;
    void dropFine();
    QVector<qint64> uniformEdges(qint64 begin, qint64 end, int columns) const;

    TraceHeaderInfo m_header;
    QString m_filePath;
    QColor m_color;
    qint64 m_budget = kDefaultPyramidBudget;
    int m_cap = SeriesPyramid::kDefaultCap;
    qint64 m_tokens = 0;
    QVector<qint32> m_ids;
    QVector<qint64> m_offsets;
    QVector<float> m_nll;
    // Prefix sums of finite NLL and their counts (size tokens + 1) for moving averages and buckets.
    QVector<double> m_nllPrefix;
    QVector<qint32> m_nllPrefixCount;
    QByteArray m_text;
    std::function<QString(qint32)> m_decoder;
    std::vector<ProbeSeries> m_series; // indexed like m_header.probes; empty for probes without series

    // The file behind the data (kept open for full-resolution reads and following a growing trace).
    std::unique_ptr<TraceReader> m_reader;
    bool m_growing = false;
    // The last fineTokens() tokens of a live run, as appended, for zooming in before there is a file.
    std::deque<ChunkProbes> m_recent;
    qint64 m_recentTokens = 0;
    // The full-resolution windows, one per probe: series of tokens [first, second) of m_fineRange.
    std::vector<ProbeSeries> m_fine;
    std::vector<std::pair<qint64, qint64>> m_fineRange;
    std::vector<std::pair<qint64, qint64>> m_fineLoading; // per probe, a window being read
    quint64 m_generation = 0;                             // bumped when the data change under loads
    bool m_asyncLoads = true;
    qint64 m_fineBudget = kDefaultFineBudget;
};

// "mean over heads", "geometric mean over channel groups", ...: what a ProbeSummary does to a layer.
QString summaryText(ProbeSummary summary, const QString& unitName);
// "heads" for "head": unit names are English nouns.
QString pluralUnitName(const QString& unitName);

} // namespace statescope
