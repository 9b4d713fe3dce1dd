#include "SeriesPyramid.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace statescope {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// min/max that ignore a NaN operand (a bucket with no finite value stores NaN).
inline float nanMin(float a, float b)
{
    return std::isnan(a) ? b : (std::isnan(b) ? a : std::min(a, b));
}
inline float nanMax(float a, float b)
{
    return std::isnan(a) ? b : (std::isnan(b) ? a : std::max(a, b));
}

} // namespace

void Envelope::clear()
{
    x.clear();
    min.clear();
    max.clear();
    mean.clear();
    decimated = false;
}

void Envelope::reserve(int n)
{
    x.reserve(n);
    min.reserve(n);
    max.reserve(n);
    mean.reserve(n);
}

void Envelope::push(double xv, double mn, double mx, double mv)
{
    x.push_back(xv);
    min.push_back(mn);
    max.push_back(mx);
    mean.push_back(mv);
}

SeriesPyramid::SeriesPyramid(int cap) : m_cap(std::max(2, cap + (cap & 1)))
{
    clear();
}

void SeriesPyramid::clear()
{
    m_width = 1;
    m_count = 0;
    m_min.clear();
    m_max.clear();
    m_mean.clear();
    m_n.clear();
    m_min.shrink_to_fit();
    m_max.shrink_to_fit();
    m_mean.shrink_to_fit();
    m_n.shrink_to_fit();
    m_counted = false;
    m_partial = Acc{kNaN, kNaN, 0.0, 0};
    m_partialTokens = 0;
}

void SeriesPyramid::reserve(int buckets)
{
    const size_t n = size_t(std::clamp(buckets, 0, m_cap));
    m_min.reserve(n);
    m_max.reserve(n);
    m_mean.reserve(n);
}

int SeriesPyramid::bucketCount() const
{
    return int(m_min.size()) + (m_partialTokens > 0 ? 1 : 0);
}

size_t SeriesPyramid::memoryBytes() const
{
    return sizeof(*this) + (m_min.capacity() + m_max.capacity() + m_mean.capacity()) * sizeof(float) +
           m_n.capacity() * sizeof(qint32);
}

void SeriesPyramid::append(float value)
{
    append(&value, 1, 1);
}

void SeriesPyramid::append(const float* values, qint64 count, qint64 stride)
{
    qint64 i = 0;
    while (i < count) {
        // Fill the partial bucket with as many values as it takes, in one tight loop.
        const qint64 take = std::min(count - i, m_width - m_partialTokens);
        float mn = m_partial.min, mx = m_partial.max;
        double sum = 0;
        qint64 n = 0;
        const float* p = values + i * stride;
        for (qint64 k = 0; k < take; ++k, p += stride) {
            const float v = *p;
            if (!std::isfinite(v))
                continue;
            if (m_partial.n + n == 0) {
                mn = mx = v;
            } else {
                mn = std::min(mn, v);
                mx = std::max(mx, v);
            }
            sum += v;
            ++n;
        }
        m_partial.min = mn;
        m_partial.max = mx;
        m_partial.sum += sum;
        m_partial.n += n;
        m_partialTokens += take;
        m_count += take;
        i += take;
        if (m_partialTokens == m_width) {
            const Acc done = m_partial;
            m_partial = Acc{kNaN, kNaN, 0.0, 0};
            m_partialTokens = 0;
            pushBucket(done);
        }
    }
}

void SeriesPyramid::pushBucket(const Acc& a)
{
    if (a.n != m_width && !m_counted) {
        m_n.assign(m_min.size(), qint32(m_width));
        m_counted = true;
    }
    m_min.push_back(a.n ? a.min : kNaN);
    m_max.push_back(a.n ? a.max : kNaN);
    m_mean.push_back(a.n ? float(a.sum / double(a.n)) : kNaN);
    if (m_counted)
        m_n.push_back(qint32(a.n));
    // The partial bucket is empty here, so merging now keeps complete + partial <= cap.
    if (int(m_min.size()) >= m_cap)
        mergePairs();
}

void SeriesPyramid::mergePairs()
{
    const size_t half = m_min.size() / 2;
    for (size_t i = 0; i < half; ++i) {
        const size_t a = 2 * i, b = 2 * i + 1;
        m_min[i] = nanMin(m_min[a], m_min[b]);
        m_max[i] = nanMax(m_max[a], m_max[b]);
        if (!m_counted) {
            m_mean[i] = 0.5f * (m_mean[a] + m_mean[b]);
        } else {
            const qint32 n = m_n[a] + m_n[b];
            const double s =
                (m_n[a] ? double(m_mean[a]) * m_n[a] : 0.0) + (m_n[b] ? double(m_mean[b]) * m_n[b] : 0.0);
            m_mean[i] = n ? float(s / n) : kNaN;
            m_n[i] = n;
        }
    }
    m_min.resize(half);
    m_max.resize(half);
    m_mean.resize(half);
    if (m_counted)
        m_n.resize(half);
    m_width *= 2;
}

SeriesPyramid::Acc SeriesPyramid::bucket(qint64 index) const
{
    if (index < qint64(m_min.size())) {
        const qint64 n = !m_counted ? m_width : m_n[size_t(index)];
        return Acc{m_min[size_t(index)], m_max[size_t(index)], n ? double(m_mean[size_t(index)]) * n : 0.0,
                   n};
    }
    return m_partial;
}

Envelope SeriesPyramid::query(qint64 begin, qint64 end, int columns) const
{
    begin = std::max<qint64>(0, begin);
    end = std::min(end, m_count);
    if (end <= begin || columns < 1)
        return {};
    const qint64 b0 = begin / m_width, b1 = (end + m_width - 1) / m_width;
    QVector<qint64> edges;
    if (b1 - b0 <= columns) {
        edges.reserve(int(b1 - b0 + 1));
        for (qint64 b = b0; b <= b1; ++b)
            edges.push_back(std::min(b * m_width, m_count));
        edges.front() = b0 * m_width;
    } else {
        edges.reserve(columns + 1);
        for (int c = 0; c <= columns; ++c)
            edges.push_back(begin + (end - begin) * c / columns);
    }
    return queryEdges(edges);
}

Envelope SeriesPyramid::queryEdges(const QVector<qint64>& edges) const
{
    Envelope env;
    if (edges.size() < 2 || m_count == 0)
        return env;
    env.reserve(edges.size() - 1);
    env.decimated = m_width > 1;
    const qint64 nb = bucketCount();
    qint64 prevEnd = 0; // buckets already drawn: a column finer than a bucket reuses none twice
    for (int c = 0; c + 1 < edges.size(); ++c) {
        const qint64 t0 = std::max<qint64>(0, edges[c]);
        const qint64 t1 = std::min(edges[c + 1], m_count);
        if (t1 <= t0)
            continue;
        const qint64 b0 = std::max(t0 / m_width, prevEnd);
        const qint64 b1 = std::min((t1 + m_width - 1) / m_width, nb);
        if (b1 <= b0)
            continue;
        prevEnd = b1;
        if (b1 - b0 > 1)
            env.decimated = true;
        float mn = kNaN, mx = kNaN;
        double sum = 0;
        qint64 n = 0;
        for (qint64 b = b0; b < b1; ++b) {
            const Acc a = bucket(b);
            if (!a.n)
                continue;
            mn = nanMin(mn, a.min);
            mx = nanMax(mx, a.max);
            sum += a.sum;
            n += a.n;
        }
        const qint64 firstToken = b0 * m_width;
        const qint64 lastToken = std::min(b1 * m_width, m_count) - 1;
        const double x = 0.5 * double(firstToken + lastToken) + 1.0;
        const double mean = n ? sum / double(n) : std::numeric_limits<double>::quiet_NaN();
        env.push(x, n ? double(mn) : mean, n ? double(mx) : mean, mean);
    }
    return env;
}

bool SeriesPyramid::range(qint64 begin, qint64 end, float* min, float* max, double* mean) const
{
    begin = std::max<qint64>(0, begin);
    end = std::min(end, m_count);
    float mn = kNaN, mx = kNaN;
    double sum = 0;
    qint64 n = 0;
    if (end > begin) {
        const qint64 b1 = std::min<qint64>((end + m_width - 1) / m_width, bucketCount());
        for (qint64 b = begin / m_width; b < b1; ++b) {
            const Acc a = bucket(b);
            if (!a.n)
                continue;
            mn = nanMin(mn, a.min);
            mx = nanMax(mx, a.max);
            sum += a.sum;
            n += a.n;
        }
    }
    if (min)
        *min = mn;
    if (max)
        *max = mx;
    if (mean)
        *mean = n ? sum / double(n) : std::numeric_limits<double>::quiet_NaN();
    return n > 0;
}

float SeriesPyramid::valueAt(qint64 token) const
{
    if (token < 0 || token >= m_count)
        return kNaN;
    const Acc a = bucket(token / m_width);
    return a.n ? float(a.sum / double(a.n)) : kNaN;
}

} // namespace statescope
