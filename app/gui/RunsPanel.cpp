#include "RunsPanel.h"

#include "trace/TraceFile.h"

#include <QDesktopServices>
#include <QDir>
#include <QFileInfo>
#include <QHeaderView>
#include <QLocale>
#include <QMenu>
#include <QPushButton>
#include <QTreeWidget>
#include <QUrl>
#include <QVBoxLayout>

namespace statescope {

RunsPanel::RunsPanel(const QString& folder, QWidget* parent)
    : QWidget(parent), m_folder(folder), m_tree(new QTreeWidget(this))
{
    setObjectName("runsPanel");
    m_tree->setObjectName("runsList");
    m_tree->setHeaderLabels({tr("Trace"), tr("Tokens"), tr("Status"), tr("Modified")});
    m_tree->setRootIsDecorated(false);
    m_tree->setUniformRowHeights(true);
    m_tree->setContextMenuPolicy(Qt::CustomContextMenu);
    m_tree->setTextElideMode(Qt::ElideMiddle);
    // A stretched first column cut names ("tiny-collapse-20…") to leave room for the others: the
    // name, which says which model and when, gets its width first; the rest scroll if they must.
    m_tree->header()->setStretchLastSection(false);
    m_tree->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
    connect(m_tree, &QTreeWidget::itemActivated, this,
            [this](QTreeWidgetItem* item) { emit openRequested(item->data(0, Qt::UserRole).toString()); });
    connect(m_tree, &QTreeWidget::customContextMenuRequested, this, &RunsPanel::showContextMenu);

    auto* refreshButton = new QPushButton(tr("Refresh"), this);
    auto* openFolder = new QPushButton(tr("Show folder"), this);
    connect(refreshButton, &QPushButton::clicked, this, &RunsPanel::refresh);
    connect(openFolder, &QPushButton::clicked, this,
            [this] { QDesktopServices::openUrl(QUrl::fromLocalFile(m_folder)); });
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(refreshButton);
    buttons->addWidget(openFolder);
    buttons->addStretch(1);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addWidget(m_tree, 1);
    layout->addLayout(buttons);
    refresh();
}

void RunsPanel::setFolder(const QString& folder)
{
    m_folder = folder;
    refresh();
}

void RunsPanel::setRecording(const QString& path)
{
    m_recording = path.isEmpty() ? QString() : QFileInfo(path).absoluteFilePath();
    refresh();
}

void RunsPanel::refresh()
{
    m_tree->clear();
    const QFileInfoList files = QDir(m_folder).entryInfoList({"*.h5"}, QDir::Files, QDir::Time);
    for (const QFileInfo& fi : files) {
        auto* item = new QTreeWidgetItem(m_tree);
        item->setText(0, fi.completeBaseName());
        item->setData(0, Qt::UserRole, fi.absoluteFilePath());
        item->setText(3, QLocale().toString(fi.lastModified(), QLocale::ShortFormat));
        // Only the header and the dataset sizes are read, not the data.
        try {
            const TraceReader reader(fi.absoluteFilePath().toStdString());
            const bool recording = fi.absoluteFilePath() == m_recording;
            item->setText(1, recording ? QString::fromUtf8("…")
                                       : QLocale().toString(static_cast<qint64>(reader.tokens())));
            item->setText(2, recording            ? tr("recording")
                             : reader.completed() ? tr("complete")
                                                  : tr("partial"));
            item->setToolTip(
                0, fi.completeBaseName() + "\n" +
                       QString::fromStdString(reader.header().modelPath + "\n" + reader.header().input));
        } catch (const std::exception& e) {
            item->setText(2, tr("unreadable"));
            item->setToolTip(0, fi.completeBaseName() + "\n" + QString::fromUtf8(e.what()));
        }
        item->setTextAlignment(1, Qt::AlignRight | Qt::AlignVCenter);
    }
}

int RunsPanel::count() const
{
    return m_tree->topLevelItemCount();
}

QString RunsPanel::pathAt(int row) const
{
    const QTreeWidgetItem* item = m_tree->topLevelItem(row);
    return item ? item->data(0, Qt::UserRole).toString() : QString();
}

QString RunsPanel::statusAt(int row) const
{
    const QTreeWidgetItem* item = m_tree->topLevelItem(row);
    return item ? item->text(2) : QString();
}

int RunsPanel::rowOf(const QString& path) const
{
    for (int i = 0; i < count(); ++i)
        if (pathAt(i) == path)
            return i;
    return -1;
}

void RunsPanel::showContextMenu(const QPoint& pos)
{
    QTreeWidgetItem* item = m_tree->itemAt(pos);
    if (!item)
        return;
    const QString path = item->data(0, Qt::UserRole).toString();
    QMenu menu(this);
    menu.addAction(tr("Open"), this, [this, path] { emit openRequested(path); });
    menu.addAction(tr("Overlay on the current trace"), this, [this, path] { emit overlayRequested(path); });
    menu.exec(m_tree->viewport()->mapToGlobal(pos));
}

} // namespace statescope
