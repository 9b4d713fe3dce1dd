#include "FlowLayout.h"

#include <QWidget>

#include <algorithm>

namespace statescope {

FlowLayout::FlowLayout(QWidget* parent, int spacing) : QLayout(parent), m_spacing(spacing) {}

FlowLayout::~FlowLayout()
{
    while (QLayoutItem* item = takeAt(0))
        delete item;
}

void FlowLayout::addItem(QLayoutItem* item)
{
    m_items.append(item);
}

void FlowLayout::insertWidget(int index, QWidget* widget)
{
    addChildWidget(widget);
    m_items.insert(std::clamp(index, 0, int(m_items.size())), new QWidgetItem(widget));
    invalidate();
}

int FlowLayout::count() const
{
    return int(m_items.size());
}

QLayoutItem* FlowLayout::itemAt(int index) const
{
    return index >= 0 && index < m_items.size() ? m_items[index] : nullptr;
}

QLayoutItem* FlowLayout::takeAt(int index)
{
    return index >= 0 && index < m_items.size() ? m_items.takeAt(index) : nullptr;
}

Qt::Orientations FlowLayout::expandingDirections() const
{
    return {};
}

bool FlowLayout::hasHeightForWidth() const
{
    return true;
}

int FlowLayout::heightForWidth(int width) const
{
    return arrange(QRect(0, 0, width, 0), false);
}

QSize FlowLayout::minimumSize() const
{
    // As narrow as the widest item: everything else wraps.
    QSize size;
    for (const QLayoutItem* item : m_items)
        if (!item->isEmpty())
            size = size.expandedTo(item->minimumSize());
    const QMargins m = contentsMargins();
    return size + QSize(m.left() + m.right(), m.top() + m.bottom());
}

QSize FlowLayout::sizeHint() const
{
    // One row.
    int width = 0, height = 0;
    for (const QLayoutItem* item : m_items) {
        if (item->isEmpty())
            continue;
        const QSize s = item->sizeHint();
        width += s.width() + (width > 0 ? m_spacing : 0);
        height = std::max(height, s.height());
    }
    const QMargins m = contentsMargins();
    return QSize(width + m.left() + m.right(), height + m.top() + m.bottom());
}

void FlowLayout::setGeometry(const QRect& rect)
{
    QLayout::setGeometry(rect);
    arrange(rect, true);
}

int FlowLayout::arrange(const QRect& rect, bool apply) const
{
    const QRect area = rect.marginsRemoved(contentsMargins());
    // Rows first, so that each row's items can be centred on its height.
    QList<QList<QLayoutItem*>> rows(1);
    int x = 0;
    for (QLayoutItem* item : m_items) {
        if (item->isEmpty())
            continue;
        const int w = std::min(item->sizeHint().width(), std::max(1, area.width()));
        if (x > 0 && x + m_spacing + w > area.width()) {
            rows.append(QList<QLayoutItem*>());
            x = 0;
        }
        x += (x > 0 ? m_spacing : 0) + w;
        rows.back().append(item);
    }
    int y = area.y();
    for (const auto& row : rows) {
        if (row.isEmpty())
            continue;
        int h = 0;
        for (QLayoutItem* item : row)
            h = std::max(h, item->sizeHint().height());
        int left = area.x();
        for (QLayoutItem* item : row) {
            const QSize s = item->sizeHint();
            const int w = std::min(s.width(), std::max(1, area.width()));
            if (apply)
                item->setGeometry(QRect(left, y + (h - s.height()) / 2, w, s.height()));
            left += w + m_spacing;
        }
        y += h + m_spacing / 2;
    }
    return y - area.y() - (rows.isEmpty() ? 0 : m_spacing / 2) + contentsMargins().top() +
           contentsMargins().bottom();
}

} // namespace statescope
