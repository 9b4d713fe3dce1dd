#pragma once

#include <QVector>
#include <QtGlobal>

#include <cstddef>
#include <vector>

namespace statescope {

// What a plot needs of a stretch of a series: per column its x, min, max and mean. x is the 1-based
// token position of the column's centre (see TraceData::tokenToX).
struct Envelope {
    QVector<double> x, min, max, mean;
    // True when each point stands for more than one token (the plot should draw min/max bands).
    bool decimated = false;

    int size() const { return x.size(); }
    bool isEmpty() const { return x.isEmpty(); }
    void clear();
    void reserve(int n);
    void push(double xv, double mn, double mx, double mean);
};

// A per-token series kept as buckets of min, max and mean, so that memory stays bounded however long
// the trace gets: buckets start one token wide and, whenever there would be more than cap() of them,
// neighbouring pairs merge and the width doubles. Plots then ask for at most one point per pixel
// column, and the min/max they get are exact (the mean is exact too; NaN values are skipped).
class SeriesPyramid {
public:
    static constexpr int kDefaultCap = 1 << 16;

    // cap is rounded up to an even number >= 2.
    explicit SeriesPyramid(int cap = kDefaultCap);

    void append(float value);
    void append(const float* values, qint64 count, qint64 stride = 1);
    void clear();
    // Room for this many buckets without reallocating (a full-resolution window knows its size).
    void reserve(int buckets);

    qint64 count() const { return m_count; }       // tokens appended
    qint64 bucketWidth() const { return m_width; } // tokens per bucket, a power of two
    int bucketCount() const;                       // including a partly filled last bucket
    int cap() const { return m_cap; }
    size_t memoryBytes() const;

    // At most `columns` points for tokens [begin, end), clamped to [0, count()). When the range holds
    // no more buckets than columns, one point per bucket (per token while the width is 1).
    Envelope query(qint64 begin, qint64 end, int columns) const;
    // The same for explicit column edges (tokens, ascending, edges.size() - 1 columns): used for log
    // axes, where columns are equally wide in pixels but not in tokens. Empty columns are skipped.
    Envelope queryEdges(const QVector<qint64>& edges) const;
    // Aggregates of tokens [begin, end): false if none of them is finite.
    bool range(qint64 begin, qint64 end, float* min, float* max, double* mean) const;
    // The mean of the bucket holding token (the token's own value while the width is 1); NaN outside.
    float valueAt(qint64 token) const;

private:
    struct Acc {
        float min, max;
        double sum;
        qint64 n; // finite values
    };
    void pushBucket(const Acc& a);
    void mergePairs();
    Acc bucket(qint64 index) const;

    int m_cap;
    qint64 m_width = 1;
    qint64 m_count = 0;
    // Complete buckets, 12 bytes each. The count of finite values per bucket is only needed to merge
    // means correctly once a NaN has been seen, so m_n stays empty until then.
    std::vector<float> m_min, m_max, m_mean;
    std::vector<qint32> m_n;
    bool m_counted = false; // m_n in use
    Acc m_partial{};
    qint64 m_partialTokens = 0;
};

} // namespace statescope
