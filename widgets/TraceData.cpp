#include "TraceData.h"

#include "Error.h"
#include "models/ModelConfig.h"
#include "trace/TraceFile.h"

#include <QFile>
#include <QFileInfo>
#include <QtDebug>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace statescope {

namespace {

constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Floats read from a trace file per block (all probes together): bounds the memory of loadFile.
constexpr qint64 kLoadBlockFloats = 8ll << 20;

int findProbe(const std::vector<ProbeDesc>& probes, const char* name, int layers, int heads)
{
    for (size_t i = 0; i < probes.size(); ++i)
        if (probes[i].name == name)
            return probes[i].valuesPerToken() == qint64(layers) * heads ? int(i) : -1;
    return -1;
}

bool isDecay(Quantity q)
{
    return q == Quantity::Decay || q == Quantity::DecayLayerMean || q == Quantity::DecayLayerMin;
}
bool isNorm(Quantity q)
{
    return q == Quantity::StateNorm || q == Quantity::StateNormLayer;
}

// N_S from a config.json, for traces whose model folder is gone. Mirrors Mamba2Config's defaults for
// the two dialects closely enough for a marker.
std::optional<double> forgetThresholdFromConfig(const std::string& json)
{
    try {
        const nlohmann::json j = nlohmann::json::parse(json);
        auto num = [&](std::initializer_list<const char*> keys, int64_t fallback) {
            for (const char* k : keys)
                if (j.contains(k) && j[k].is_number_integer())
                    return j[k].get<int64_t>();
            return fallback;
        };
        Mamba2Config c;
        c.dModel = num({"d_model", "hidden_size"}, 0);
        c.nLayer = num({"n_layer", "num_hidden_layers"}, 0);
        c.expand = num({"expand"}, 2);
        c.headdim = num({"headdim", "head_dim"}, 64);
        c.dState = num({"d_state", "state_size"}, 128);
        c.ngroups = num({"ngroups", "n_groups"}, 1);
        c.dConv = num({"d_conv", "conv_kernel"}, 4);
        if (j.contains("ssm_cfg") && j["ssm_cfg"].is_object()) {
            const auto& s = j["ssm_cfg"];
            auto sub = [&](const char* k, int64_t fallback) {
                return s.contains(k) && s[k].is_number_integer() ? s[k].get<int64_t>() : fallback;
            };
            c.expand = sub("expand", c.expand);
            c.headdim = sub("headdim", c.headdim);
            c.dState = sub("d_state", c.dState);
            c.ngroups = sub("ngroups", c.ngroups);
            c.dConv = sub("d_conv", c.dConv);
        }
        if (c.dModel <= 0 || c.nLayer <= 0 || c.headdim <= 0)
            return std::nullopt;
        return predictedForgetThreshold(c.stateSize());
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

} // namespace

TraceData::TraceData(QObject* parent) : QObject(parent)
{
    m_nllPrefix.push_back(0.0);
    m_nllPrefixCount.push_back(0);
}

TraceData::~TraceData() = default;

qint64 TraceData::xToToken(double x)
{
    if (!std::isfinite(x))
        return x > 0 ? std::numeric_limits<qint64>::max() / 2 : 0;
    return qint64(std::floor(x - 0.5));
}

void TraceData::reset(const TraceHeaderInfo& header)
{
    m_header = header;
    int layers = header.layers, heads = header.heads;
    if (layers <= 0 || heads <= 0) {
        for (const ProbeDesc& p : header.probes)
            if (p.shape.size() == 2 && (p.name == "decay" || p.name == "state_norm" || p.name == "dt")) {
                layers = int(p.shape[0]);
                heads = int(p.shape[1]);
                break;
            }
    }
    m_header.layers = std::max(0, layers);
    m_header.heads = std::max(0, heads);
    m_dtProbe = findProbe(header.probes, "dt", m_header.layers, m_header.heads);
    m_decayProbe = findProbe(header.probes, "decay", m_header.layers, m_header.heads);
    m_normProbe = findProbe(header.probes, "state_norm", m_header.layers, m_header.heads);

    const size_t lh = size_t(m_header.layers) * size_t(m_header.heads);
    const size_t l = size_t(m_header.layers);
    const size_t series =
        (m_dtProbe >= 0 ? lh : 0) + (m_decayProbe >= 0 ? lh + 2 * l : 0) + (m_normProbe >= 0 ? lh + l : 0);
    // 12 bytes per bucket (min, max, mean as floats).
    qint64 cap = SeriesPyramid::kDefaultCap;
    if (series > 0) {
        const qint64 fit = m_budget / qint64(series * 12);
        cap = kMinCap;
        while (cap * 2 <= fit && cap * 2 <= SeriesPyramid::kDefaultCap)
            cap *= 2;
    }
    m_cap = int(cap);

    m_tokens = 0;
    m_ids.clear();
    m_offsets.clear();
    m_nll.clear();
    m_ids.squeeze();
    m_offsets.squeeze();
    m_nll.squeeze();
    m_nllPrefix = {0.0};
    m_nllPrefixCount = {0};
    m_text.clear();
    auto make = [&](std::vector<SeriesPyramid>& v, bool on, size_t n) {
        v.clear();
        v.shrink_to_fit();
        if (on)
            v.assign(n, SeriesPyramid(m_cap));
    };
    make(m_dt, m_dtProbe >= 0, lh);
    make(m_decay, m_decayProbe >= 0, lh);
    make(m_norm, m_normProbe >= 0, lh);
    make(m_decayMean, m_decayProbe >= 0, l);
    make(m_decayMin, m_decayProbe >= 0, l);
    make(m_normLayer, m_normProbe >= 0, l);
    emit traceReset();
    emit markersChanged();
}

void TraceData::append(const ChunkProbes& chunk)
{
    if (chunk.count() == 0)
        return;
    if (chunk.start != m_tokens) {
        qWarning("TraceData::append: chunk starts at %lld, expected %lld; ignored", (long long)chunk.start,
                 (long long)m_tokens);
        return;
    }
    appendBlock(chunk);
    emit appended(m_tokens);
}

void TraceData::appendBlock(const ChunkProbes& chunk)
{
    const qint64 n = chunk.count();
    const int L = m_header.layers, H = m_header.heads;
    const qint64 lh = qint64(L) * H;
    auto probeData = [&](int p) -> const float* {
        if (p < 0 || size_t(p) >= chunk.values.size() || qint64(chunk.values[size_t(p)].size()) != n * lh)
            return nullptr;
        return chunk.values[size_t(p)].data();
    };
    const float* dt = probeData(m_dtProbe);
    const float* decay = probeData(m_decayProbe);
    const float* norm = probeData(m_normProbe);
    if ((m_dtProbe >= 0 && !dt) || (m_decayProbe >= 0 && !decay) || (m_normProbe >= 0 && !norm)) {
        qWarning("TraceData::append: a chunk's probe sizes do not match the header; ignored");
        return;
    }

    m_ids.reserve(int(m_tokens + n));
    for (qint32 id : chunk.ids)
        m_ids.push_back(id);
    // Offsets only while every chunk has them.
    if (qint64(chunk.offsets.size()) == 2 * n && qint64(m_offsets.size()) == 2 * m_tokens) {
        for (int64_t o : chunk.offsets)
            m_offsets.push_back(o);
    } else {
        m_offsets.clear();
    }
    for (qint64 i = 0; i < n; ++i) {
        const float v = i < qint64(chunk.nll.size()) ? chunk.nll[size_t(i)] : kNaNf;
        m_nll.push_back(v);
        const bool ok = std::isfinite(v);
        m_nllPrefix.push_back(m_nllPrefix.back() + (ok ? double(v) : 0.0));
        m_nllPrefixCount.push_back(m_nllPrefixCount.back() + (ok ? 1 : 0));
    }

    // Values are token-major, series are per (layer, head): walk tiles of tokens so that a tile stays
    // in cache while every series takes its column from it (3x faster than whole columns at 24 x 24).
    constexpr qint64 kTile = 64;
    for (qint64 t0 = 0; t0 < n; t0 += kTile) {
        const qint64 m = std::min(kTile, n - t0);
        for (qint64 k = 0; k < lh; ++k) {
            if (dt)
                m_dt[size_t(k)].append(dt + t0 * lh + k, m, lh);
            if (decay)
                m_decay[size_t(k)].append(decay + t0 * lh + k, m, lh);
            if (norm)
                m_norm[size_t(k)].append(norm + t0 * lh + k, m, lh);
        }
    }
    if (decay || norm) {
        std::vector<float> mean(static_cast<size_t>(n)), mn(static_cast<size_t>(n)),
            total(static_cast<size_t>(n));
        for (int l = 0; l < L; ++l) {
            for (qint64 t = 0; t < n; ++t) {
                const float* d = decay ? decay + t * lh + qint64(l) * H : nullptr;
                const float* s = norm ? norm + t * lh + qint64(l) * H : nullptr;
                double sum = 0, sq = 0;
                float lo = kNaNf;
                int cnt = 0;
                for (int h = 0; h < H; ++h) {
                    if (d && std::isfinite(d[h])) {
                        sum += d[h];
                        lo = std::isnan(lo) ? d[h] : std::min(lo, d[h]);
                        ++cnt;
                    }
                    if (s && std::isfinite(s[h]))
                        sq += double(s[h]) * s[h];
                }
                mean[size_t(t)] = cnt ? float(sum / cnt) : kNaNf;
                mn[size_t(t)] = lo;
                total[size_t(t)] = float(std::sqrt(sq));
            }
            if (decay) {
                m_decayMean[size_t(l)].append(mean.data(), n);
                m_decayMin[size_t(l)].append(mn.data(), n);
            }
            if (norm)
                m_normLayer[size_t(l)].append(total.data(), n);
        }
    }
    m_tokens += n;
}

TraceHeaderInfo TraceData::headerFromFile(const QString& path)
{
    TraceReader reader(path.toStdString());
    const TraceHeader& h = reader.header();
    TraceHeaderInfo info;
    info.architecture = QString::fromStdString(h.architecture);
    info.probes = h.probes;
    for (const ProbeDesc& p : h.probes)
        if (p.shape.size() == 2) {
            info.layers = int(p.shape[0]);
            info.heads = int(p.shape[1]);
            break;
        }
    info.label = QFileInfo(path).completeBaseName();
    if (!h.modelPath.empty()) {
        try {
            const ModelFolder folder = inspectModelFolder(h.modelPath);
            info.trainingLength = folder.trainingLength;
            info.forgetThreshold = predictedForgetThreshold(folder.mamba2.stateSize());
        } catch (const std::exception&) {
            // The model folder moved or is gone: fall back to the recorded config.
        }
    }
    if (!info.forgetThreshold)
        info.forgetThreshold = forgetThresholdFromConfig(h.modelConfigJson);
    return info;
}

bool TraceData::loadFile(const QString& path, QString* error,
                         const std::function<bool(qint64 done, qint64 total)>& progress)
{
    auto fail = [&](const QString& msg) {
        reset(TraceHeaderInfo{});
        if (error)
            *error = msg;
        return false;
    };
    try {
        TraceReader reader(path.toStdString());
        TraceHeaderInfo info = headerFromFile(path);
        reset(info);
        m_filePath = path;
        const qint64 total = reader.tokens();
        qint64 perToken = 1;
        for (const ProbeDesc& p : info.probes)
            perToken += p.valuesPerToken();
        const qint64 block = std::clamp<qint64>(kLoadBlockFloats / perToken, 256, 1 << 16);
        const bool offsets = reader.header().hasOffsets;
        for (qint64 begin = 0; begin < total; begin += block) {
            const qint64 end = std::min(total, begin + block);
            ChunkProbes c;
            c.start = begin;
            c.ids = reader.ids(begin, end);
            if (offsets)
                c.offsets = reader.offsets(begin, end);
            c.nll = reader.nll(begin, end);
            c.values.resize(info.probes.size());
            for (size_t p = 0; p < info.probes.size(); ++p)
                if (int(p) == m_dtProbe || int(p) == m_decayProbe || int(p) == m_normProbe)
                    c.values[p] = reader.probe(info.probes[p].name, begin, end);
            const qint64 before = m_tokens;
            appendBlock(c);
            if (m_tokens != end || before != begin)
                return fail(tr("%1: the trace's datasets do not match its header").arg(path));
            if (progress && !progress(end, total))
                return fail(tr("cancelled"));
        }
        // A trace recorded from a text file can show that text in the token strip.
        const std::string input = reader.header().input;
        if (offsets && input.rfind("text: ", 0) == 0) {
            QFile f(QString::fromStdString(input.substr(6)));
            if (f.open(QIODevice::ReadOnly)) {
                const QByteArray text = f.readAll();
                if (!m_offsets.isEmpty() && m_offsets.back() <= text.size())
                    m_text = text;
            }
        }
        emit appended(m_tokens);
        return true;
    } catch (const std::exception& e) {
        return fail(QString::fromStdString(e.what()));
    }
}

void TraceData::setLabel(const QString& label)
{
    m_header.label = label;
    emit labelChanged();
}

void TraceData::setTrainingLength(std::optional<qint64> tokens)
{
    m_header.trainingLength = tokens;
    emit markersChanged();
}

void TraceData::setForgetThreshold(std::optional<double> tokens)
{
    m_header.forgetThreshold = tokens;
    emit markersChanged();
}

bool TraceData::hasQuantity(Quantity q) const
{
    if (isDecay(q))
        return m_decayProbe >= 0;
    if (isNorm(q))
        return m_normProbe >= 0;
    return m_dtProbe >= 0;
}

void TraceData::setText(const QByteArray& utf8)
{
    m_text = utf8;
}

void TraceData::setTokenDecoder(std::function<QString(qint32 id)> decoder)
{
    m_decoder = std::move(decoder);
}

QString TraceData::tokenText(qint64 token) const
{
    if (token < 0 || token >= m_tokens)
        return {};
    if (!m_text.isEmpty() && m_offsets.size() == 2 * m_tokens) {
        const qint64 b = m_offsets[int(2 * token)], e = m_offsets[int(2 * token + 1)];
        if (b >= 0 && e >= b && e <= m_text.size())
            return QString::fromUtf8(m_text.constData() + b, int(e - b));
    }
    const qint32 id = m_ids[int(token)];
    if (m_decoder)
        return m_decoder(id);
    return QStringLiteral("#%1").arg(id);
}

QVector<qint64> TraceData::uniformEdges(qint64 begin, qint64 end, int columns) const
{
    begin = std::max<qint64>(0, begin);
    end = std::min(end, m_tokens);
    QVector<qint64> edges;
    if (end <= begin || columns < 1)
        return edges;
    const qint64 n = end - begin;
    const qint64 cols = std::min<qint64>(columns, n);
    edges.reserve(int(cols + 1));
    for (qint64 c = 0; c <= cols; ++c)
        edges.push_back(begin + n * c / cols);
    return edges;
}

Envelope TraceData::nll(qint64 begin, qint64 end, int columns) const
{
    return nllEdges(uniformEdges(begin, end, columns));
}

Envelope TraceData::nllEdges(const QVector<qint64>& edges) const
{
    Envelope env;
    if (edges.size() < 2)
        return env;
    env.reserve(edges.size() - 1);
    qint64 prev = 0;
    for (int c = 0; c + 1 < edges.size(); ++c) {
        const qint64 t0 = std::max(std::max<qint64>(0, edges[c]), prev);
        const qint64 t1 = std::min(edges[c + 1], m_tokens);
        if (t1 <= t0)
            continue;
        prev = t1;
        if (t1 - t0 == 1) {
            const double v = m_nll[int(t0)];
            env.push(tokenToX(t0), v, v, v);
            continue;
        }
        env.decimated = true;
        float mn = kNaNf, mx = kNaNf;
        for (qint64 t = t0; t < t1; ++t) {
            const float v = m_nll[int(t)];
            if (!std::isfinite(v))
                continue;
            mn = std::isnan(mn) ? v : std::min(mn, v);
            mx = std::isnan(mx) ? v : std::max(mx, v);
        }
        const qint32 cnt = m_nllPrefixCount[int(t1)] - m_nllPrefixCount[int(t0)];
        const double mean = cnt ? (m_nllPrefix[int(t1)] - m_nllPrefix[int(t0)]) / cnt : kNaN;
        env.push(0.5 * double(t0 + t1 - 1) + 1.0, mn, mx, mean);
    }
    return env;
}

float TraceData::nllAt(qint64 token) const
{
    return token >= 0 && token < m_tokens ? m_nll[int(token)] : kNaNf;
}

double TraceData::movingAverageAt(qint64 token, int window) const
{
    if (token < 0 || token >= m_tokens)
        return kNaN;
    window = std::max(1, window);
    const qint64 lo = std::max<qint64>(0, token + 1 - window);
    const qint32 cnt = m_nllPrefixCount[int(token + 1)] - m_nllPrefixCount[int(lo)];
    return cnt ? (m_nllPrefix[int(token + 1)] - m_nllPrefix[int(lo)]) / cnt : kNaN;
}

Envelope TraceData::movingAverage(qint64 begin, qint64 end, int columns, int window) const
{
    return movingAverageEdges(uniformEdges(begin, end, columns), window);
}

Envelope TraceData::movingAverageEdges(const QVector<qint64>& edges, int window) const
{
    Envelope env;
    if (edges.size() < 2)
        return env;
    env.reserve(edges.size() - 1);
    qint64 prev = 0;
    for (int c = 0; c + 1 < edges.size(); ++c) {
        const qint64 t0 = std::max(std::max<qint64>(0, edges[c]), prev);
        const qint64 t1 = std::min(edges[c + 1], m_tokens);
        if (t1 <= t0)
            continue;
        prev = t1;
        double mn = kNaN, mx = kNaN, sum = 0;
        int n = 0;
        for (qint64 t = t0; t < t1; ++t) {
            const double v = movingAverageAt(t, window);
            if (std::isnan(v))
                continue;
            mn = std::isnan(mn) ? v : std::min(mn, v);
            mx = std::isnan(mx) ? v : std::max(mx, v);
            sum += v;
            ++n;
        }
        if (t1 - t0 > 1)
            env.decimated = true;
        env.push(0.5 * double(t0 + t1 - 1) + 1.0, mn, mx, n ? sum / n : kNaN);
    }
    return env;
}

QVector<QPointF> TraceData::bucketedPerplexity(int bucketSize) const
{
    return bucketedPerplexity(bucketSize, 0, m_tokens);
}

QVector<QPointF> TraceData::bucketedPerplexity(int bucketSize, qint64 begin, qint64 end) const
{
    QVector<QPointF> out;
    bucketSize = std::max(1, bucketSize);
    begin = std::max<qint64>(0, begin);
    end = std::min(end, m_tokens);
    if (end <= begin)
        return out;
    for (qint64 b = begin / bucketSize * bucketSize; b < end; b += bucketSize) {
        const qint64 e = std::min(m_tokens, b + bucketSize);
        const qint32 cnt = m_nllPrefixCount[int(e)] - m_nllPrefixCount[int(b)];
        if (!cnt)
            continue;
        const double mean = (m_nllPrefix[int(e)] - m_nllPrefix[int(b)]) / cnt;
        out.push_back(QPointF(0.5 * double(b + e - 1) + 1.0, std::exp(mean)));
    }
    return out;
}

double TraceData::bucketedPerplexityAt(qint64 token, int bucketSize) const
{
    if (token < 0 || token >= m_tokens)
        return kNaN;
    bucketSize = std::max(1, bucketSize);
    const qint64 b = token / bucketSize * bucketSize, e = std::min(m_tokens, b + bucketSize);
    const qint32 cnt = m_nllPrefixCount[int(e)] - m_nllPrefixCount[int(b)];
    return cnt ? std::exp((m_nllPrefix[int(e)] - m_nllPrefix[int(b)]) / cnt) : kNaN;
}

const SeriesPyramid* TraceData::pyramid(Quantity q, int layer, int head) const
{
    const int L = m_header.layers, H = m_header.heads;
    if (layer < 0 || layer >= L)
        return nullptr;
    const bool perHead = q == Quantity::Decay || q == Quantity::StateNorm || q == Quantity::Dt;
    if (perHead && (head < 0 || head >= H))
        return nullptr;
    const size_t k = size_t(layer) * size_t(H) + size_t(std::max(0, head));
    auto pick = [&](const std::vector<SeriesPyramid>& v, size_t i) -> const SeriesPyramid* {
        return i < v.size() ? &v[i] : nullptr;
    };
    switch (q) {
    case Quantity::Decay:
        return pick(m_decay, k);
    case Quantity::DecayLayerMean:
        return pick(m_decayMean, size_t(layer));
    case Quantity::DecayLayerMin:
        return pick(m_decayMin, size_t(layer));
    case Quantity::StateNorm:
        return pick(m_norm, k);
    case Quantity::StateNormLayer:
        return pick(m_normLayer, size_t(layer));
    case Quantity::Dt:
        return pick(m_dt, k);
    }
    return nullptr;
}

Envelope TraceData::series(Quantity q, int layer, int head, qint64 begin, qint64 end, int columns) const
{
    const SeriesPyramid* p = pyramid(q, layer, head);
    return p ? p->query(begin, end, columns) : Envelope{};
}

Envelope TraceData::seriesEdges(Quantity q, int layer, int head, const QVector<qint64>& edges) const
{
    const SeriesPyramid* p = pyramid(q, layer, head);
    return p ? p->queryEdges(edges) : Envelope{};
}

float TraceData::valueAt(Quantity q, int layer, int head, qint64 token) const
{
    const SeriesPyramid* p = pyramid(q, layer, head);
    return p ? p->valueAt(token) : kNaNf;
}

qint64 TraceData::seriesResolution() const
{
    for (const auto* v : {&m_decay, &m_norm, &m_dt})
        if (!v->empty())
            return v->front().bucketWidth();
    return 1;
}

QVector<float> TraceData::layerHeatmap(Quantity q, HeadReduce reduce, qint64 begin, qint64 end, int columns,
                                       int head) const
{
    columns = std::max(1, columns);
    QVector<qint64> edges(columns + 1);
    const qint64 n = std::max<qint64>(0, end - begin);
    for (int c = 0; c <= columns; ++c)
        edges[c] = begin + n * c / columns;
    return layerHeatmapEdges(q, reduce, edges, head);
}

QVector<float> TraceData::layerHeatmapEdges(Quantity q, HeadReduce reduce, const QVector<qint64>& edges,
                                            int head) const
{
    const int L = m_header.layers, H = m_header.heads;
    const int columns = std::max(0, int(edges.size()) - 1);
    QVector<float> out(L * columns, kNaNf);
    if (!columns || !hasQuantity(q))
        return out;
    const Quantity perHead = isDecay(q) ? Quantity::Decay : isNorm(q) ? Quantity::StateNorm : Quantity::Dt;
    for (int l = 0; l < L; ++l) {
        // The pyramids to aggregate for this layer; with several (no stored aggregate), the cell is
        // the mean of the heads' means or the min of their mins, which equals the aggregate of the
        // per-token reduction exactly.
        QVector<const SeriesPyramid*> src;
        if (reduce == HeadReduce::Head)
            src = {pyramid(perHead, l, std::clamp(head, 0, std::max(0, H - 1)))};
        else if (isDecay(q))
            src = {pyramid(reduce == HeadReduce::Min ? Quantity::DecayLayerMin : Quantity::DecayLayerMean, l,
                           0)};
        else if (isNorm(q) && reduce == HeadReduce::Mean)
            src = {pyramid(Quantity::StateNormLayer, l, 0)};
        else
            for (int h = 0; h < H; ++h)
                src.push_back(pyramid(perHead, l, h));
        for (int c = 0; c < columns; ++c) {
            qint64 t0 = edges[c], t1 = std::max(edges[c + 1], t0 + 1);
            if (t0 >= m_tokens || t0 < 0)
                continue;
            double acc = reduce == HeadReduce::Min ? std::numeric_limits<double>::infinity() : 0.0;
            int n = 0;
            for (const SeriesPyramid* p : src) {
                float mn, mx;
                double mean;
                if (!p || !p->range(t0, t1, &mn, &mx, &mean))
                    continue;
                if (reduce == HeadReduce::Min)
                    acc = std::min(acc, double(mn));
                else
                    acc += mean;
                ++n;
            }
            if (n)
                out[l * columns + c] = float(reduce == HeadReduce::Min ? acc : acc / n);
        }
    }
    return out;
}

size_t TraceData::memoryBytes() const
{
    return sizeof(*this) + size_t(m_ids.capacity()) * sizeof(qint32) +
           size_t(m_offsets.capacity()) * sizeof(qint64) + size_t(m_nll.capacity()) * sizeof(float) +
           size_t(m_nllPrefix.capacity()) * sizeof(double) +
           size_t(m_nllPrefixCount.capacity()) * sizeof(qint32) + pyramidBytes();
}

size_t TraceData::pyramidBytes() const
{
    size_t b = 0;
    for (const auto* v : {&m_dt, &m_decay, &m_norm, &m_decayMean, &m_decayMin, &m_normLayer})
        for (const SeriesPyramid& p : *v)
            b += p.memoryBytes();
    return b;
}

} // namespace statescope
