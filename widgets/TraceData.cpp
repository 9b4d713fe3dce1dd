#include "TraceData.h"

#include "trace/TraceCheck.h"
#include "trace/TraceFile.h"
#include "util/Utf8.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QPointer>
#include <QThreadPool>
#include <QtDebug>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

namespace statescope {

namespace {

constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// The most bytes of input text a trace's recorded input path is read for (the CLI's own cap).
constexpr qint64 kMaxTextBytes = 2ll << 30;
// Floats read from a trace file per block (all probes together): bounds the memory of loadFile.
constexpr qint64 kLoadBlockFloats = 8ll << 20;

bool isSeriesShape(const ProbeDesc& p)
{
    return p.shape.size() == 2 && p.shape[0] > 0 && p.shape[1] > 0;
}

// One token's summary of n units (NaN skipped; NaN if none is finite).
float summarize(ProbeSummary summary, const float* v, int n)
{
    int count = 0;
    switch (summary) {
    case ProbeSummary::Mean: {
        double sum = 0;
        for (int i = 0; i < n; ++i)
            if (std::isfinite(v[i])) {
                sum += v[i];
                ++count;
            }
        return count ? float(sum / count) : kNaNf;
    }
    case ProbeSummary::GeoMean: {
        // exp(mean log x) as a product kept in range with frexp: a log per value would make loading a
        // long trace of a wide model several times slower. A zero gives zero; negatives are skipped.
        double product = 1;
        long exponent = 0;
        bool zero = false;
        for (int i = 0; i < n; ++i) {
            const float x = v[i];
            if (!std::isfinite(x) || x < 0)
                continue;
            ++count;
            if (x == 0) {
                zero = true;
                continue;
            }
            product *= x;
            if ((count & 3) == 0) { // four floats cannot leave double's range
                int e = 0;
                product = std::frexp(product, &e);
                exponent += e;
            }
        }
        if (!count)
            return kNaNf;
        if (zero)
            return 0.0f;
        return float(std::exp((std::log(product) + double(exponent) * std::log(2.0)) / count));
    }
    case ProbeSummary::RootSumSquare: {
        double sq = 0;
        for (int i = 0; i < n; ++i)
            if (std::isfinite(v[i])) {
                sq += double(v[i]) * v[i];
                ++count;
            }
        return count ? float(std::sqrt(sq)) : kNaNf;
    }
    }
    return kNaNf;
}

// Series kept per token: layers x units per [layer, unit] probe, plus each layer's two aggregates.
qint64 seriesCount(const std::vector<ProbeDesc>& probes)
{
    qint64 count = 0;
    for (const ProbeDesc& d : probes)
        if (isSeriesShape(d))
            count += d.shape[0] * (d.shape[1] + 2);
    return count;
}

QString fromStd(const std::string& s)
{
    return QString::fromStdString(s);
}

} // namespace

QString pluralUnitName(const QString& unitName)
{
    if (unitName.isEmpty())
        return QCoreApplication::translate("statescope::TraceData", "units");
    return unitName.endsWith(QLatin1Char('s')) ? unitName : unitName + QLatin1Char('s');
}

QString summaryText(ProbeSummary summary, const QString& unitName)
{
    const QString units = pluralUnitName(unitName);
    switch (summary) {
    case ProbeSummary::Mean:
        return QCoreApplication::translate("statescope::TraceData", "mean over %1").arg(units);
    case ProbeSummary::GeoMean:
        return QCoreApplication::translate("statescope::TraceData", "geometric mean over %1").arg(units);
    case ProbeSummary::RootSumSquare:
        return QCoreApplication::translate("statescope::TraceData", "root sum of squares over %1").arg(units);
    }
    return {};
}

TraceHeaderInfo TraceHeaderInfo::fromTraceHeader(const TraceHeader& h)
{
    TraceHeaderInfo info;
    info.architecture = fromStd(h.architecture);
    info.architectureName = h.architectureName.empty() ? info.architecture : fromStd(h.architectureName);
    info.probes = h.probes;
    info.layers = int(h.layers);
    info.units = int(h.units);
    info.unitName = fromStd(h.unitName);
    // A header that leaves the axes out: the decay probe's, which every architecture reports.
    if (info.layers <= 0 || info.units <= 0 || info.unitName.isEmpty())
        for (const ProbeDesc& p : h.probes)
            if (p.name == kDecayProbe && isSeriesShape(p)) {
                if (info.layers <= 0 || info.units <= 0) {
                    info.layers = int(p.shape[0]);
                    info.units = int(p.shape[1]);
                }
                if (info.unitName.isEmpty() && p.axes.size() == 2)
                    info.unitName = fromStd(p.axes[1]).replace(QLatin1Char('_'), QLatin1Char(' '));
            }
    if (h.trainingLength > 0)
        info.trainingLength = h.trainingLength;
    if (h.forgetThreshold >= 0)
        info.forgetThreshold = h.forgetThreshold;
    info.stateSize = h.stateSize;
    info.stateSizeDefinition = fromStd(h.stateSizeDefinition);
    info.vocabSize = h.vocabSize;
    info.inputKind = fromStd(h.inputSource.kind);
    info.inputPath = fromStd(h.inputSource.path);
    info.inputDescription = fromStd(h.input);
    info.tokenizer = fromStd(h.inputSource.tokenizer);
    info.tokenizerPath = fromStd(h.inputSource.tokenizerPath);
    info.passkey = fromStd(h.inputSource.passkey);
    if (h.inputSource.needleFirst >= 0 && h.inputSource.needleLast >= h.inputSource.needleFirst)
        info.needle = QPair<qint64, qint64>(h.inputSource.needleFirst, h.inputSource.needleLast);
    return info;
}

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
    m_series.clear();
    m_series.shrink_to_fit();
    // Every series of the trace shares one cap, from the budget: 12 bytes per bucket (min, max, mean
    // as floats), layers x units per probe plus the summary and the minimum of each layer.
    const qint64 count = seriesCount(header.probes);
    qint64 cap = SeriesPyramid::kDefaultCap;
    if (count > 0) {
        const qint64 fit = m_budget / qint64(count * 12);
        cap = kMinCap;
        while (cap * 2 <= fit && cap * 2 <= SeriesPyramid::kDefaultCap)
            cap *= 2;
    }
    m_cap = int(cap);
    m_series = makeSeries(m_cap);
    // A header made by hand may leave the axes out: those of the first probe with series.
    if (m_header.layers <= 0 || m_header.units <= 0) {
        const int first = seriesProbes().value(0, -1);
        const int decay = probeIndex(QString::fromLatin1(kDecayProbe));
        const int p = hasSeries(decay) ? decay : first;
        m_header.layers = p >= 0 ? m_series[size_t(p)].layers : 0;
        m_header.units = p >= 0 ? m_series[size_t(p)].units : 0;
    }
    if (m_header.architectureName.isEmpty())
        m_header.architectureName = m_header.architecture;

    m_tokens = 0;
    m_reader.reset();
    m_growing = false;
    m_recent.clear();
    m_recentTokens = 0;
    dropFine();
    m_ids.clear();
    m_offsets.clear();
    m_nll.clear();
    m_ids.squeeze();
    m_offsets.squeeze();
    m_nll.squeeze();
    m_nllPrefix = {0.0};
    m_nllPrefixCount = {0};
    m_text.clear();
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
    for (size_t p = 0; p < m_series.size(); ++p) {
        const ProbeSeries& s = m_series[p];
        if (s.perUnit.empty())
            continue;
        if (p >= chunk.values.size() || qint64(chunk.values[p].size()) != n * s.layers * s.units) {
            qWarning("TraceData::append: a chunk's probe sizes do not match the header; ignored");
            return;
        }
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

    appendSeries(m_series, chunk, n);
    // A live run (no file yet): keep its recent tokens for full-resolution zoom, and extend a fine
    // window that ends at the last token.
    if (!m_reader) {
        for (size_t p = 0; p < m_fine.size(); ++p) {
            auto& [fb, fe] = m_fineRange[p];
            if (!m_fine[p].perUnit.empty() && fe == m_tokens && fe + n - fb <= fineTokens(int(p))) {
                appendProbe(m_fine[p], int(p), chunk.values[p].data(), n);
                fe += n;
            }
        }
        qint64 keep = 0;
        for (int p : seriesProbes())
            keep = std::max(keep, fineTokens(p));
        if (keep > 0 && !m_series.empty()) {
            ChunkProbes c;
            c.start = chunk.start;
            c.ids = chunk.ids; // count() is the token count
            c.values = chunk.values;
            m_recent.push_back(std::move(c));
            m_recentTokens += n;
            while (!m_recent.empty() && m_recentTokens - m_recent.front().count() >= keep) {
                m_recentTokens -= m_recent.front().count();
                m_recent.pop_front();
            }
        }
    }
    m_tokens += n;
}

TraceData::ProbeSeries TraceData::makeProbeSeries(int probe, int cap) const
{
    return makeProbeSeries(m_header.probes[size_t(probe)], cap);
}

TraceData::ProbeSeries TraceData::makeProbeSeries(const ProbeDesc& d, int cap)
{
    ProbeSeries s;
    if (!isSeriesShape(d))
        return s;
    s.layers = int(d.shape[0]);
    s.units = int(d.shape[1]);
    s.perUnit.assign(size_t(s.layers) * size_t(s.units), SeriesPyramid(cap));
    s.summary.assign(size_t(s.layers), SeriesPyramid(cap));
    s.minimum.assign(size_t(s.layers), SeriesPyramid(cap));
    return s;
}

std::vector<TraceData::ProbeSeries> TraceData::makeSeries(int cap) const
{
    std::vector<ProbeSeries> out(m_header.probes.size());
    for (size_t p = 0; p < m_header.probes.size(); ++p)
        out[p] = makeProbeSeries(int(p), cap);
    return out;
}

void TraceData::appendSeries(std::vector<ProbeSeries>& series, const ChunkProbes& chunk, qint64 n) const
{
    for (size_t p = 0; p < series.size(); ++p)
        if (!series[p].perUnit.empty())
            appendProbe(series[p], int(p), chunk.values[p].data(), n);
}

void TraceData::appendProbe(ProbeSeries& s, int probe, const float* values, qint64 n) const
{
    appendProbe(s, m_header.probes[size_t(probe)].summary, values, n);
}

void TraceData::appendProbe(ProbeSeries& s, ProbeSummary how, const float* values, qint64 n)
{
    const qint64 lu = qint64(s.layers) * s.units;
    // Values are token-major, series are per (layer, unit): walk tiles of tokens so that a tile stays
    // in cache while every series takes its column from it (3x faster than whole columns at 24 x 24).
    constexpr qint64 kTile = 64;
    for (qint64 t0 = 0; t0 < n; t0 += kTile) {
        const qint64 m = std::min(kTile, n - t0);
        for (qint64 k = 0; k < lu; ++k)
            s.perUnit[size_t(k)].append(values + t0 * lu + k, m, lu);
    }
    std::vector<float> summary(static_cast<size_t>(n)), minimum(static_cast<size_t>(n));
    for (int l = 0; l < s.layers; ++l) {
        for (qint64 t = 0; t < n; ++t) {
            const float* v = values + t * lu + qint64(l) * s.units;
            summary[size_t(t)] = summarize(how, v, s.units);
            float lo = kNaNf;
            for (int u = 0; u < s.units; ++u)
                if (std::isfinite(v[u]))
                    lo = std::isnan(lo) ? v[u] : std::min(lo, v[u]);
            minimum[size_t(t)] = lo;
        }
        s.summary[size_t(l)].append(summary.data(), n);
        s.minimum[size_t(l)].append(minimum.data(), n);
    }
}

TraceHeaderInfo TraceData::headerFromFile(const QString& path)
{
    checkTraceIsolated(path.toStdString(), TraceCheckDepth::Header);
    const TraceReader reader(path.toStdString());
    TraceHeaderInfo info = TraceHeaderInfo::fromTraceHeader(reader.header());
    info.label = QFileInfo(path).completeBaseName();
    return info;
}

namespace {

// The chunk of tokens [begin, end) of a trace file; only the probes with series (want[p]).
ChunkProbes readChunk(const TraceReader& reader, const std::vector<bool>& want, qint64 begin, qint64 end,
                      bool ids)
{
    ChunkProbes c;
    c.start = begin;
    if (ids) {
        c.ids = reader.ids(begin, end);
        if (reader.header().hasOffsets)
            c.offsets = reader.offsets(begin, end);
        c.nll = reader.nll(begin, end);
    }
    const auto& probes = reader.header().probes;
    c.values.resize(probes.size());
    for (size_t p = 0; p < probes.size(); ++p)
        if (want[p])
            c.values[p] = reader.probe(probes[p].name, begin, end);
    return c;
}

// Tokens per block when reading a trace: bounds the memory a read takes.
qint64 blockTokens(const std::vector<ProbeDesc>& probes)
{
    qint64 perToken = 1;
    for (const ProbeDesc& p : probes)
        perToken += p.valuesPerToken();
    return std::clamp<qint64>(kLoadBlockFloats / perToken, 256, 1 << 16);
}

} // namespace

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
        checkTraceIsolated(path.toStdString(), TraceCheckDepth::Full);
        auto reader = std::make_unique<TraceReader>(path.toStdString());
        TraceHeaderInfo info = TraceHeaderInfo::fromTraceHeader(reader->header());
        info.label = QFileInfo(path).completeBaseName();
        reset(info);
        m_filePath = path;
        const qint64 total = reader->tokens();
        const qint64 block = blockTokens(info.probes);
        const bool offsets = reader->header().hasOffsets;
        std::vector<bool> want(info.probes.size());
        for (size_t p = 0; p < want.size(); ++p)
            want[p] = hasSeries(int(p));
        for (qint64 begin = 0; begin < total; begin += block) {
            const qint64 end = std::min(total, begin + block);
            const ChunkProbes c = readChunk(*reader, want, begin, end, true);
            const qint64 before = m_tokens;
            appendBlock(c);
            if (m_tokens != end || before != begin)
                return fail(tr("%1: the trace's datasets do not match its header").arg(path));
            if (progress && !progress(end, total))
                return fail(tr("cancelled"));
        }
        m_growing = !reader->completed();
        m_reader = std::move(reader);
        m_recent.clear();
        m_recentTokens = 0;
        emit appended(m_tokens);
        return true;
    } catch (const std::exception& e) {
        return fail(QString::fromStdString(e.what()));
    }
}

QString TraceData::namedInputPath() const
{
    if (m_header.inputPath.isEmpty() || m_offsets.isEmpty())
        return {};
    // Schema 1 kept the path as typed: look next to the trace, where a run written into the folder
    // it ran in finds it.
    if (QFileInfo(m_header.inputPath).isRelative() && !m_filePath.isEmpty())
        return QFileInfo(m_filePath).dir().filePath(m_header.inputPath);
    return m_header.inputPath;
}

bool TraceData::readNamedInput(QString* error)
{
    const QString input = namedInputPath();
    auto fail = [&](const QString& msg) {
        if (error)
            *error = msg;
        return false;
    };
    if (input.isEmpty())
        return fail(tr("the trace names no input file"));
    // Even asked for, a path written inside a file is read only if it is a regular file, and only
    // as much as the offsets need (a FIFO would hang the window, /dev/zero fill its memory).
    std::error_code ec;
    const qint64 needed = m_offsets.back();
    if (!std::filesystem::is_regular_file(std::filesystem::path(input.toStdString()), ec))
        return fail(tr("%1: not a regular file (only those are read)").arg(input));
    QFile f(input);
    if (f.size() < needed)
        return fail(tr("%1: %2 bytes, but the trace's tokens span %3: not the file it was made from")
                        .arg(input)
                        .arg(f.size())
                        .arg(needed));
    if (f.size() > kMaxTextBytes)
        return fail(tr("%1: larger than 2 GiB").arg(input));
    if (!f.open(QIODevice::ReadOnly))
        return fail(tr("%1: %2").arg(input, f.errorString()));
    m_text = f.read(needed);
    emit appended(m_tokens); // the strip redraws with the text
    return true;
}

bool TraceData::attachFile(const QString& path, QString* error)
{
    try {
        checkTraceIsolated(path.toStdString(), TraceCheckDepth::Full);
        auto reader = std::make_unique<TraceReader>(path.toStdString());
        const TraceHeader& h = reader->header();
        bool same = h.probes.size() == m_header.probes.size() && reader->tokens() >= m_tokens;
        for (size_t p = 0; same && p < h.probes.size(); ++p)
            same =
                h.probes[p].name == m_header.probes[p].name && h.probes[p].shape == m_header.probes[p].shape;
        if (!same) {
            if (error)
                *error = tr("%1: not the trace shown (other probes or fewer tokens)").arg(path);
            return false;
        }
        m_reader = std::move(reader);
        m_filePath = path;
        m_growing = !m_reader->completed();
        m_recent.clear();
        m_recentTokens = 0;
        return true;
    } catch (const std::exception& e) {
        if (error)
            *error = QString::fromStdString(e.what());
        return false;
    }
}

qint64 TraceData::pollFile(QString* error)
{
    if (!m_reader || !m_growing)
        return 0;
    try {
        const qint64 total = m_reader->refresh();
        const qint64 first = m_tokens;
        const qint64 block = blockTokens(m_header.probes);
        std::vector<bool> want(m_header.probes.size());
        for (size_t p = 0; p < want.size(); ++p)
            want[p] = hasSeries(int(p));
        for (qint64 begin = m_tokens; begin < total; begin += block) {
            const qint64 end = std::min(total, begin + block);
            appendBlock(readChunk(*m_reader, want, begin, end, true));
        }
        // completed is written last, after every dataset has its final length.
        if (m_reader->completed() && m_reader->tokens() == m_tokens)
            m_growing = false;
        if (m_tokens > first)
            emit appended(m_tokens);
        return m_tokens - first;
    } catch (const std::exception& e) {
        m_growing = false;
        if (error)
            *error = QString::fromStdString(e.what());
        return 0;
    }
}

qint64 TraceData::fineTokens(int probe) const
{
    if (probe < 0) {
        qint64 least = 0;
        for (int p : seriesProbes())
            least = least ? std::min(least, fineTokens(p)) : fineTokens(p);
        return least;
    }
    if (!hasSeries(probe))
        return 0;
    const ProbeSeries& s = m_series[size_t(probe)];
    // The window (12 bytes per series and token, one token per bucket) and the raw values it is
    // built from (4 bytes per value; a live run keeps them for its recent tokens) fit the budget.
    const qint64 perToken = qint64(s.layers) * (s.units + 2) * 12 + qint64(s.layers) * s.units * 4;
    return std::clamp<qint64>(m_fineBudget / perToken, 64, kMaxFineTokens);
}

bool TraceData::readRaw(int probe, qint64 begin, qint64 end, std::vector<float>* out) const
{
    const size_t per = size_t(m_header.probes[size_t(probe)].valuesPerToken());
    if (m_reader) {
        *out = m_reader->probe(m_header.probes[size_t(probe)].name, begin, end);
        return out->size() == per * size_t(end - begin);
    }
    if (m_recent.empty() || m_recent.front().start > begin ||
        m_recent.back().start + m_recent.back().count() < end)
        return false;
    out->clear();
    out->reserve(per * size_t(end - begin));
    for (const ChunkProbes& c : m_recent) {
        const qint64 b = std::max(begin, qint64(c.start)), e = std::min(end, qint64(c.start + c.count()));
        if (e <= b)
            continue;
        const std::vector<float>& v = c.values[size_t(probe)];
        out->insert(out->end(), v.begin() + qint64(per) * (b - c.start),
                    v.begin() + qint64(per) * (e - c.start));
    }
    return out->size() == per * size_t(end - begin);
}

void TraceData::dropFine()
{
    ++m_generation; // loads under way are for other data now
    m_fine.clear();
    m_fine.shrink_to_fit();
    m_fine.resize(m_header.probes.size());
    m_fineRange.assign(m_header.probes.size(), {0, 0});
    m_fineLoading.assign(m_header.probes.size(), {0, 0});
}

bool TraceData::ensureFullResolution(qint64 begin, qint64 end, const QVector<int>& probes)
{
    begin = std::max<qint64>(0, begin);
    end = std::min(end, m_tokens);
    if (end <= begin || seriesResolution() == 1)
        return false;
    bool changed = false;
    for (int p : probes.isEmpty() ? seriesProbes() : probes) {
        if (!hasSeries(p))
            continue;
        auto& [fb, fe] = m_fineRange[size_t(p)];
        const qint64 span = fineTokens(p);
        if (end - begin > span)
            continue;
        // Room on both sides, so that panning a little does not read again.
        qint64 b = begin - (span - (end - begin)) / 2;
        b = std::clamp<qint64>(b, 0, std::max<qint64>(0, m_tokens - span));
        if (fe > fb && begin >= fb && end <= fe) {
            // Covered. Near an edge of the window (with more trace beyond it), read the next one in
            // the background already: a steady pan then never waits for it.
            const qint64 margin = (span - (end - begin)) / 4;
            const bool nearEdge = (begin - fb < margin && fb > 0) || (fe - end < margin && fe < m_tokens);
            if (nearEdge && m_reader && m_asyncLoads && b != fb)
                startFineLoad(p, b, std::min(m_tokens, b + span), span);
            continue;
        }
        const qint64 e = std::min(m_tokens, b + span);
        if (m_reader && m_asyncLoads) {
            // Read and summed up in a worker (HDF5 is built thread-safe): frames keep coming, drawn
            // from the coarse data, until the window is there (fineChanged()).
            startFineLoad(p, b, e, span);
            continue;
        }
        std::vector<float> raw;
        try {
            if (!readRaw(p, b, e, &raw))
                continue;
        } catch (const std::exception& ex) {
            qWarning("TraceData: full-resolution read of tokens %lld-%lld failed: %s", (long long)b,
                     (long long)e, ex.what());
            continue;
        }
        m_fine[size_t(p)] = ProbeSeries{};
        // Wide enough that the window stays one token per bucket, and a live run can extend it.
        ProbeSeries s = makeProbeSeries(p, int(2 * span + 2));
        for (auto* v : {&s.perUnit, &s.summary, &s.minimum})
            for (SeriesPyramid& pyramid : *v)
                pyramid.reserve(int(e - b));
        appendProbe(s, p, raw.data(), e - b);
        m_fine[size_t(p)] = std::move(s);
        fb = b;
        fe = e;
        changed = true;
    }
    return changed;
}

void TraceData::startFineLoad(int probe, qint64 begin, qint64 end, qint64 span)
{
    auto& pending = m_fineLoading[size_t(probe)];
    if (pending.second > pending.first)
        return; // one at a time per probe: the next refresh asks again if the view moved on
    pending = {begin, end};
    const ProbeDesc desc = m_header.probes[size_t(probe)];
    const std::string path = m_reader->path();
    const quint64 generation = m_generation;
    QPointer<TraceData> self(this);
    QThreadPool::globalInstance()->start([self, desc, path, probe, begin, end, span, generation] {
        auto result = std::make_shared<ProbeSeries>();
        QString error;
        try {
            const TraceReader reader(path);
            const std::vector<float> raw = reader.probe(desc.name, begin, end);
            if (raw.size() != size_t(desc.valuesPerToken()) * size_t(end - begin))
                throw std::runtime_error("short read");
            *result = makeProbeSeries(desc, int(2 * span + 2));
            for (auto* v : {&result->perUnit, &result->summary, &result->minimum})
                for (SeriesPyramid& pyramid : *v)
                    pyramid.reserve(int(end - begin));
            appendProbe(*result, desc.summary, raw.data(), end - begin);
        } catch (const std::exception& e) {
            error = QString::fromStdString(e.what());
        }
        // Back in the GUI thread; the data may be gone or another trace by then.
        QMetaObject::invokeMethod(
            qApp,
            [self, result, error, probe, begin, end, generation] {
                if (!self || self->m_generation != generation)
                    return;
                self->m_fineLoading[size_t(probe)] = {0, 0};
                if (!error.isEmpty()) {
                    qWarning("TraceData: full-resolution read of tokens %lld-%lld failed: %s",
                             (long long)begin, (long long)end, qPrintable(error));
                    return;
                }
                self->m_fine[size_t(probe)] = std::move(*result);
                self->m_fineRange[size_t(probe)] = {begin, end};
                emit self->fineChanged();
            },
            Qt::QueuedConnection);
    });
}

bool TraceData::fineLoading() const
{
    for (const auto& [b, e] : m_fineLoading)
        if (e > b)
            return true;
    return false;
}

qint64 TraceData::fineBegin(int probe) const
{
    if (probe < 0)
        probe = seriesProbes().value(0, -1);
    return probe >= 0 && size_t(probe) < m_fineRange.size() ? m_fineRange[size_t(probe)].first : 0;
}

qint64 TraceData::fineEnd(int probe) const
{
    if (probe < 0)
        probe = seriesProbes().value(0, -1);
    return probe >= 0 && size_t(probe) < m_fineRange.size() ? m_fineRange[size_t(probe)].second : 0;
}

qint64 TraceData::resolutionFor(qint64 begin, qint64 end, int probe) const
{
    qint64 worst = 1, offset = 0;
    for (int p : probe >= 0 ? QVector<int>{probe} : seriesProbes())
        if (const SeriesPyramid* s = pyramidFor(p, 0, kSummary, begin, end, &offset))
            worst = std::max(worst, s->bucketWidth());
    return worst;
}

void TraceData::setColor(const QColor& color)
{
    if (color == m_color)
        return;
    m_color = color;
    emit colorChanged();
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

const ProbeDesc* TraceData::probe(int index) const
{
    return index >= 0 && index < probeCount() ? &m_header.probes[size_t(index)] : nullptr;
}

int TraceData::probeIndex(const QString& name) const
{
    const std::string n = name.toStdString();
    for (size_t p = 0; p < m_header.probes.size(); ++p)
        if (m_header.probes[p].name == n)
            return int(p);
    return -1;
}

bool TraceData::hasSeries(int probe) const
{
    return probe >= 0 && size_t(probe) < m_series.size() && !m_series[size_t(probe)].perUnit.empty();
}

QVector<int> TraceData::seriesProbes() const
{
    QVector<int> out;
    for (int p = 0; p < int(m_series.size()); ++p)
        if (hasSeries(p))
            out.push_back(p);
    return out;
}

int TraceData::probeLayers(int probe) const
{
    return hasSeries(probe) ? m_series[size_t(probe)].layers : 0;
}

int TraceData::probeUnits(int probe) const
{
    return hasSeries(probe) ? m_series[size_t(probe)].units : 0;
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
            // A byte-level token may hold part of a character.
            return QString::fromStdString(repairUtf8(std::string(m_text.constData() + b, size_t(e - b))));
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

const SeriesPyramid* TraceData::pyramid(int probe, int layer, int unit) const
{
    if (!hasSeries(probe))
        return nullptr;
    const ProbeSeries& s = m_series[size_t(probe)];
    if (layer < 0 || layer >= s.layers)
        return nullptr;
    if (unit == kSummary)
        return &s.summary[size_t(layer)];
    if (unit == kMinimum)
        return &s.minimum[size_t(layer)];
    if (unit < 0 || unit >= s.units)
        return nullptr;
    return &s.perUnit[size_t(layer) * size_t(s.units) + size_t(unit)];
}

const SeriesPyramid* TraceData::pyramidFor(int probe, int layer, int unit, qint64 begin, qint64 end,
                                           qint64* offset) const
{
    *offset = 0;
    const SeriesPyramid* coarse = pyramid(probe, layer, unit);
    begin = std::max<qint64>(0, begin);
    end = std::min(end, m_tokens);
    if (!coarse || coarse->bucketWidth() == 1 || end <= begin)
        return coarse;
    if (size_t(probe) >= m_fineRange.size())
        return coarse;
    const auto [fb, fe] = m_fineRange[size_t(probe)];
    if (fe <= fb || begin < fb || end > fe)
        return coarse;
    const ProbeSeries& s = m_fine[size_t(probe)];
    *offset = fb;
    if (unit == kSummary)
        return &s.summary[size_t(layer)];
    if (unit == kMinimum)
        return &s.minimum[size_t(layer)];
    return &s.perUnit[size_t(layer) * size_t(s.units) + size_t(unit)];
}

namespace {

void shiftX(Envelope& env, qint64 offset)
{
    if (offset)
        for (double& x : env.x)
            x += double(offset);
}

} // namespace

Envelope TraceData::series(int probe, int layer, int unit, qint64 begin, qint64 end, int columns) const
{
    qint64 off = 0;
    const SeriesPyramid* p = pyramidFor(probe, layer, unit, begin, end, &off);
    if (!p)
        return {};
    Envelope env = p->query(begin - off, end - off, columns);
    shiftX(env, off);
    return env;
}

Envelope TraceData::seriesEdges(int probe, int layer, int unit, const QVector<qint64>& edges) const
{
    qint64 off = 0;
    const SeriesPyramid* p = edges.size() >= 2
                                 ? pyramidFor(probe, layer, unit, edges.front(), edges.back(), &off)
                                 : pyramid(probe, layer, unit);
    if (!p)
        return {};
    if (!off)
        return p->queryEdges(edges);
    QVector<qint64> local(edges);
    for (qint64& e : local)
        e -= off;
    Envelope env = p->queryEdges(local);
    shiftX(env, off);
    return env;
}

float TraceData::valueAt(int probe, int layer, int unit, qint64 token) const
{
    qint64 off = 0;
    const SeriesPyramid* p = pyramidFor(probe, layer, unit, token, token + 1, &off);
    return p ? p->valueAt(token - off) : kNaNf;
}

qint64 TraceData::seriesResolution() const
{
    for (const ProbeSeries& s : m_series)
        if (!s.perUnit.empty())
            return s.perUnit.front().bucketWidth();
    return 1;
}

QVector<float> TraceData::layerHeatmap(int probe, int unit, qint64 begin, qint64 end, int columns) const
{
    columns = std::max(1, columns);
    QVector<qint64> edges(columns + 1);
    const qint64 n = std::max<qint64>(0, end - begin);
    for (int c = 0; c <= columns; ++c)
        edges[c] = begin + n * c / columns;
    return layerHeatmapEdges(probe, unit, edges);
}

QVector<float> TraceData::layerHeatmapEdges(int probe, int unit, const QVector<qint64>& edges) const
{
    const int L = probeLayers(probe);
    const int columns = std::max(0, int(edges.size()) - 1);
    QVector<float> out(L * columns, kNaNf);
    if (!columns)
        return out;
    for (int l = 0; l < L; ++l) {
        qint64 off = 0;
        const SeriesPyramid* p = pyramidFor(probe, l, unit, edges.front(), edges.back(), &off);
        if (!p)
            continue;
        for (int c = 0; c < columns; ++c) {
            const qint64 t0 = edges[c], t1 = std::max(edges[c + 1], t0 + 1);
            if (t0 >= m_tokens || t0 < 0)
                continue;
            float mn, mx;
            double mean;
            if (p->range(t0 - off, t1 - off, &mn, &mx, &mean))
                out[l * columns + c] = unit == kMinimum ? mn : float(mean);
        }
    }
    return out;
}

size_t TraceData::memoryBytes() const
{
    return sizeof(*this) + size_t(m_ids.capacity()) * sizeof(qint32) +
           size_t(m_offsets.capacity()) * sizeof(qint64) + size_t(m_nll.capacity()) * sizeof(float) +
           size_t(m_nllPrefix.capacity()) * sizeof(double) +
           size_t(m_nllPrefixCount.capacity()) * sizeof(qint32) + pyramidBytes() + fineBytes();
}

size_t TraceData::pyramidBytes() const
{
    size_t b = 0;
    for (const ProbeSeries& s : m_series)
        for (const auto* v : {&s.perUnit, &s.summary, &s.minimum})
            for (const SeriesPyramid& p : *v)
                b += p.memoryBytes();
    return b;
}

size_t TraceData::fineBytes() const
{
    size_t b = 0;
    for (const ProbeSeries& s : m_fine)
        for (const auto* v : {&s.perUnit, &s.summary, &s.minimum})
            for (const SeriesPyramid& p : *v)
                b += p.memoryBytes();
    for (const ChunkProbes& c : m_recent)
        for (const auto& v : c.values)
            b += v.capacity() * sizeof(float);
    return b;
}

} // namespace statescope
