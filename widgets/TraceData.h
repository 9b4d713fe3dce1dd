#pragma once

// The data of one trace as the views need it, live or loaded from a file. It knows nothing of
// widgets (Sonic Visualiser's model/view split): views observe its signals and query it.
#include "SeriesPyramid.h"
#include "probes/Probes.h"

#include <QByteArray>
#include <QObject>
#include <QPointF>
#include <QString>
#include <QVector>

#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace statescope {

struct TraceHeaderInfo {
    QString label;        // legend text, e.g. "tiny-random fp32 2026-01-02 10:11"
    QString architecture; // "mamba2"
    int layers = 0;
    int heads = 0;
    std::vector<ProbeDesc> probes;         // the order of ChunkProbes::values
    std::optional<qint64> trainingLength;  // tokens
    std::optional<double> forgetThreshold; // tokens (the paper's predicted T_forget)
};

// What a series query asks for. Per-head quantities use (layer, head); layer aggregates ignore head.
enum class Quantity {
    Decay,          // alpha of one head
    DecayLayerMean, // mean over the layer's heads
    DecayLayerMin,  // min over the layer's heads
    StateNorm,      // ||S_h|| of one head
    StateNormLayer, // sqrt(sum_h ||S_h||^2)
    Dt,             // Delta of one head
};

// How layerHeatmap reduces the heads of a layer.
enum class HeadReduce {
    Mean, // mean over heads (for StateNorm*: the layer norm sqrt(sum_h ||S_h||^2) instead)
    Min,  // min over heads (cells show the min over their tokens)
    Head, // one chosen head
};

class TraceData : public QObject {
    Q_OBJECT
public:
    // Total bytes that the per-head pyramids of one trace may take; their cap shrinks (to a power of
    // two, at least kMinCap) for models with many layers x heads.
    static constexpr qint64 kDefaultPyramidBudget = 256ll << 20;
    static constexpr int kMinCap = 1024;

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
    // On failure returns false with a one-line message in *error and leaves the data reset to empty.
    // progress, if set, is called after each block; returning false cancels (an error "cancelled").
    bool loadFile(const QString& path, QString* error,
                  const std::function<bool(qint64 done, qint64 total)>& progress = {});
    // Reads the header of a trace file into a TraceHeaderInfo (layers/heads from the probes' shape,
    // training length and T_forget from the recorded model config). Throws statescope::Error.
    static TraceHeaderInfo headerFromFile(const QString& path);

    const TraceHeaderInfo& header() const { return m_header; }
    QString label() const { return m_header.label; }
    void setLabel(const QString& label);
    std::optional<qint64> trainingLength() const { return m_header.trainingLength; }
    std::optional<double> forgetThreshold() const { return m_header.forgetThreshold; }
    void setTrainingLength(std::optional<qint64> tokens);  // emits markersChanged()
    void setForgetThreshold(std::optional<double> tokens); // emits markersChanged()
    QString filePath() const { return m_filePath; }        // the file loadFile read, or setFilePath

    qint64 tokens() const { return m_tokens; }
    int layers() const { return m_header.layers; }
    int heads() const { return m_header.heads; }
    bool hasQuantity(Quantity q) const;
    const QVector<qint32>& ids() const { return m_ids; }
    const QVector<qint64>& offsets() const { return m_offsets; } // 2 per token, or empty
    const QVector<float>& nllValues() const { return m_nll; }    // full resolution

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

    // Series of a probe quantity; empty if the trace lacks it or layer/head is out of range.
    Envelope series(Quantity q, int layer, int head, qint64 begin, qint64 end, int columns) const;
    Envelope seriesEdges(Quantity q, int layer, int head, const QVector<qint64>& edges) const;
    // The value at token (the bucket's mean when the series is decimated there); NaN if unknown.
    float valueAt(Quantity q, int layer, int head, qint64 token) const;
    // Tokens per stored bucket of the per-head series (1 until the pyramids first merge).
    qint64 seriesResolution() const;

    // layers() x columns values, row-major by layer: cell (l, c) aggregates tokens of column c.
    // q picks the probe (Decay*, StateNorm*, Dt; the reduce decides which aggregate); head is used
    // for HeadReduce::Head. Columns past the data are NaN.
    QVector<float> layerHeatmap(Quantity q, HeadReduce reduce, qint64 begin, qint64 end, int columns,
                                int head = 0) const;
    QVector<float> layerHeatmapEdges(Quantity q, HeadReduce reduce, const QVector<qint64>& edges,
                                     int head = 0) const;

    // Bytes held (pyramids, NLL, ids, offsets, prefix sums; text excluded).
    size_t memoryBytes() const;
    // Bytes held by the pyramids alone: bounded by pyramidCap() whatever the length.
    size_t pyramidBytes() const;
    // The pyramid behind a quantity (nullptr if none), for tests and diagnostics.
    const SeriesPyramid* pyramid(Quantity q, int layer, int head) const;
    // The cap used for every pyramid of this trace (set from the budget at reset()).
    int pyramidCap() const { return m_cap; }
    void setPyramidBudget(qint64 bytes) { m_budget = bytes; } // takes effect at the next reset()
    void setFilePath(const QString& path) { m_filePath = path; }

signals:
    void traceReset();
    void appended(qint64 newTokenCount);
    void markersChanged();
    void labelChanged();

private:
    void appendBlock(const ChunkProbes& chunk);
    QVector<qint64> uniformEdges(qint64 begin, qint64 end, int columns) const;

    TraceHeaderInfo m_header;
    QString m_filePath;
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
    // Indexed by probe: -1 if the trace lacks it.
    int m_dtProbe = -1, m_decayProbe = -1, m_normProbe = -1;
    // layers * heads each.
    std::vector<SeriesPyramid> m_dt, m_decay, m_norm;
    // layers each.
    std::vector<SeriesPyramid> m_decayMean, m_decayMin, m_normLayer;
};

} // namespace statescope
