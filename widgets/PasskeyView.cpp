#include "PasskeyView.h"

#include <QLabel>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include <cmath>

namespace statescope {

namespace {

// ColorBrewer's RdYlGn, red (0) through yellow to green (1), as the paper's Fig. 2.
QCPColorGradient rdYlGn()
{
    QCPColorGradient g;
    g.setColorStopAt(0.0, QColor(0xa5, 0x00, 0x26));
    g.setColorStopAt(0.2, QColor(0xf4, 0x6d, 0x43));
    g.setColorStopAt(0.4, QColor(0xfe, 0xe0, 0x8b));
    g.setColorStopAt(0.6, QColor(0xd9, 0xef, 0x8b));
    g.setColorStopAt(0.8, QColor(0x66, 0xbd, 0x63));
    g.setColorStopAt(1.0, QColor(0x00, 0x68, 0x37));
    g.setNanHandling(QCPColorGradient::nhTransparent);
    return g;
}

QString lengthLabel(qint64 tokens)
{
    if (tokens >= 1024 * 1024 && tokens % (1024 * 1024) == 0)
        return QStringLiteral("%1M").arg(tokens / (1024 * 1024));
    if (tokens >= 1024 && tokens % 1024 == 0)
        return QStringLiteral("%1K").arg(tokens / 1024);
    return QString::number(tokens);
}

// Distinct colours for the k curves, light (small k) to dark (large k).
QColor curveColor(int i, int n)
{
    const double t = n > 1 ? double(i) / (n - 1) : 1.0;
    return QColor::fromHsvF(0.6, 0.35 + 0.6 * t, 0.95 - 0.55 * t);
}

} // namespace

PasskeyView::PasskeyView(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_plot = new QCustomPlot(this);
    m_plot->setMinimumHeight(320);
    layout->addWidget(m_plot, 1);
    m_hint = new QLabel(tr("Click a cell to run one of its samples with the needle marked."), this);
    layout->addWidget(m_hint);

    m_plot->plotLayout()->clear();
    m_heatRect = new QCPAxisRect(m_plot);
    m_curveRect = new QCPAxisRect(m_plot);
    m_plot->plotLayout()->addElement(0, 0, m_heatRect);
    m_plot->plotLayout()->addElement(1, 0, m_curveRect);
    m_plot->plotLayout()->setRowStretchFactor(0, 3);
    m_plot->plotLayout()->setRowStretchFactor(1, 2);

    QCPAxis* hx = m_heatRect->axis(QCPAxis::atBottom);
    QCPAxis* hy = m_heatRect->axis(QCPAxis::atLeft);
    hx->setLabel(tr("context length (tokens)"));
    hy->setLabel(tr("needle depth"));
    hy->setRange(0, 1);
    hy->setRangeReversed(true); // depth 0 (the start of the prompt) at the top, as the paper
    m_map = new QCPColorMap(hx, hy);
    m_map->setInterpolate(false);
    m_map->setTightBoundary(false); // each cell spans its whole column and depth bin
    m_scale = new QCPColorScale(m_plot);
    m_plot->plotLayout()->addElement(0, 1, m_scale);
    m_scale->setLabel(tr("accuracy"));
    m_scale->setDataRange(QCPRange(0, 1));
    m_scale->setGradient(rdYlGn());
    m_map->setColorScale(m_scale);
    auto* margins = new QCPMarginGroup(m_plot);
    m_heatRect->setMarginGroup(QCP::msLeft | QCP::msRight, margins);
    m_curveRect->setMarginGroup(QCP::msLeft | QCP::msRight, margins);
    m_scale->setMarginGroup(QCP::msTop | QCP::msBottom, margins);

    QCPAxis* cx = m_curveRect->axis(QCPAxis::atBottom);
    QCPAxis* cy = m_curveRect->axis(QCPAxis::atLeft);
    cx->setScaleType(QCPAxis::stLogarithmic);
    cx->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    cx->setLabel(tr("context length (tokens, log)"));
    cy->setLabel(tr("accuracy, needle in the last k"));
    cy->setRange(-0.05, 1.05);
    m_trainLine = new QCPItemStraightLine(m_plot);
    m_trainLine->setClipAxisRect(m_curveRect);
    m_trainLine->point1->setAxes(cx, cy);
    m_trainLine->point2->setAxes(cx, cy);
    m_trainLine->setPen(QPen(QColor(0x55, 0x55, 0x55), 1.5, Qt::DashLine));
    m_trainLine->setVisible(false);
    m_plot->legend = new QCPLegend;
    m_curveRect->insetLayout()->addElement(m_plot->legend, Qt::AlignTop | Qt::AlignRight);
    m_plot->legend->setBrush(QColor(255, 255, 255, 200));
    m_plot->legend->setVisible(true);
    m_plot->legend->setFont(QFont(font().family(), std::max(7, font().pointSize() - 2)));

    connect(m_plot, &QCustomPlot::mousePress, this, [this](QMouseEvent* e) { onPress(e->position()); });
    setData(PasskeyViewData{});
}

void PasskeyView::setData(const PasskeyViewData& data)
{
    m_data = data;
    const int L = static_cast<int>(data.lengths.size()), bins = std::max(1, data.bins);
    QCPAxis* hx = m_heatRect->axis(QCPAxis::atBottom);
    QSharedPointer<QCPAxisTickerText> ticks(new QCPAxisTickerText);
    // At most ~12 labels: every n-th length when there are many.
    const int every = std::max(1, (L + 11) / 12);
    for (int i = 0; i < L; i += every)
        ticks->addTick(i, lengthLabel(data.lengths[i]));
    hx->setTicker(ticks);
    hx->setRange(-0.5, std::max(0, L - 1) + 0.5);
    m_map->data()->setSize(std::max(1, L), bins);
    m_map->data()->setRange(QCPRange(0, std::max(0, L - 1)), QCPRange(0.5 / bins, 1 - 0.5 / bins));
    for (int c = 0; c < std::max(1, L); ++c)
        for (int b = 0; b < bins; ++b) {
            const int k = c * bins + b;
            m_map->data()->setCell(c, b,
                                   c < L && k < data.accuracy.size()
                                       ? data.accuracy[k]
                                       : std::numeric_limits<double>::quiet_NaN());
        }
    m_map->setDataRange(QCPRange(0, 1));

    for (QCPGraph* g : m_curves)
        m_plot->removeGraph(g);
    m_curves.clear();
    QCPAxis* cx = m_curveRect->axis(QCPAxis::atBottom);
    QCPAxis* cy = m_curveRect->axis(QCPAxis::atLeft);
    for (int i = 0; i < data.lastK.size(); ++i) {
        QCPGraph* g = m_plot->addGraph(cx, cy);
        g->setName(tr("last %1").arg(lengthLabel(data.lastK[i])));
        g->setPen(QPen(curveColor(i, data.lastK.size()), 2));
        g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 5));
        QVector<double> x, y;
        for (int c = 0; c < L && c < data.lastKAccuracy[i].size(); ++c)
            if (!std::isnan(data.lastKAccuracy[i][c])) {
                x << double(data.lengths[c]);
                y << data.lastKAccuracy[i][c];
            }
        g->setData(x, y, true);
        m_curves << g;
    }
    if (L > 0)
        cx->setRange(data.lengths.first() / 1.3, data.lengths.last() * 1.3);
    if (data.trainingLength > 0) {
        m_trainLine->point1->setCoords(double(data.trainingLength), 0);
        m_trainLine->point2->setCoords(double(data.trainingLength), 1);
        m_trainLine->setVisible(true);
        cx->setRange(std::min(cx->range().lower, data.trainingLength / 1.3),
                     std::max(cx->range().upper, data.trainingLength * 1.3));
    } else {
        m_trainLine->setVisible(false);
    }
    m_plot->legend->setVisible(!m_curves.isEmpty());
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

QPointF PasskeyView::cellCenter(int column, int bin) const
{
    const int bins = std::max(1, m_data.bins);
    return QPointF(m_heatRect->axis(QCPAxis::atBottom)->coordToPixel(column),
                   m_heatRect->axis(QCPAxis::atLeft)->coordToPixel((bin + 0.5) / bins));
}

bool PasskeyView::cellAt(const QPointF& pos, int* column, int* bin) const
{
    if (!m_heatRect->rect().contains(pos.toPoint()))
        return false;
    const double x = m_heatRect->axis(QCPAxis::atBottom)->pixelToCoord(pos.x());
    const double y = m_heatRect->axis(QCPAxis::atLeft)->pixelToCoord(pos.y());
    const int c = static_cast<int>(std::lround(x));
    const int b = static_cast<int>(std::floor(y * std::max(1, m_data.bins)));
    if (c < 0 || c >= m_data.lengths.size() || b < 0 || b >= m_data.bins)
        return false;
    *column = c;
    *bin = b;
    return true;
}

void PasskeyView::onPress(const QPointF& pos)
{
    int c = 0, b = 0;
    if (!cellAt(pos, &c, &b))
        return;
    const int k = c * m_data.bins + b;
    if (k < m_data.cellSamples.size() && !m_data.cellSamples[k].isEmpty())
        emit sampleRequested(m_data.lengths[c], m_data.cellSamples[k].first());
}

} // namespace statescope
