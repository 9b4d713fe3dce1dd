#include "RunsPanel.h"

#include "Error.h"
#include "PlotExporter.h"
#include "trace/TraceCheck.h"
#include "trace/TraceFile.h"

#include <QColorDialog>
#include <QFile>
#include <QInputDialog>
#include <QLineEdit>
#include <QMessageBox>
#include <QPainter>
#include <QPixmap>

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
    connect(m_tree, &QTreeWidget::itemChanged, this, &RunsPanel::onItemChanged);
    m_tree->setToolTip(tr("Check runs to draw them over the trace shown; right-click for more"));

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
    m_filling = true;
    m_tree->clear();
    const QFileInfoList files = QDir(m_folder).entryInfoList({"*.h5"}, QDir::Files, QDir::Time);
    for (const QFileInfo& fi : files) {
        auto* item = new QTreeWidgetItem(m_tree);
        item->setText(0, fi.completeBaseName());
        item->setData(0, Qt::UserRole, fi.absoluteFilePath());
        item->setText(3, QLocale().toString(fi.lastModified(), QLocale::ShortFormat));
        // Only the header and the dataset sizes are read, not the data.
        try {
            // A crafted file here used to crash the window at every start: each is first read in a
            // process of its own.
            checkTraceIsolated(fi.absoluteFilePath().toStdString(), TraceCheckDepth::Header);
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
            item->setToolTip(0, fi.completeBaseName() + "\n" + QString::fromStdString(errorLine(e)));
        }
        item->setTextAlignment(1, Qt::AlignRight | Qt::AlignVCenter);
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        decorate(item);
    }
    m_filling = false;
}

void RunsPanel::decorate(QTreeWidgetItem* item)
{
    const QString path = item->data(0, Qt::UserRole).toString();
    const bool on = m_compared.contains(path);
    const bool filling = m_filling;
    m_filling = true;
    item->setCheckState(0, on ? Qt::Checked : Qt::Unchecked);
    // The run's colour in the plots, as a swatch beside its name.
    QPixmap swatch(12, 12);
    swatch.fill(Qt::transparent);
    if (on) {
        QPainter p(&swatch);
        p.setPen(Qt::NoPen);
        p.setBrush(m_colors.value(path));
        p.drawRoundedRect(QRectF(1, 1, 10, 10), 2, 2);
    }
    item->setIcon(0, QIcon(swatch));
    m_filling = filling;
}

void RunsPanel::onItemChanged(QTreeWidgetItem* item, int column)
{
    if (m_filling || column != 0)
        return;
    setCompared(item->data(0, Qt::UserRole).toString(), item->checkState(0) == Qt::Checked);
}

QColor RunsPanel::nextColor() const
{
    for (int i = 1; i < 64; ++i) {
        const QColor c = PlotExporter::traceColor(i, m_dark);
        bool used = false;
        for (const QString& p : m_compared)
            used = used || m_colors.value(p) == c;
        if (!used)
            return c;
    }
    return PlotExporter::traceColor(1, m_dark);
}

void RunsPanel::setCompared(const QString& path, bool compared, bool silent)
{
    if (compared == m_compared.contains(path))
        return;
    if (compared) {
        if (!m_colors.value(path).isValid())
            m_colors.insert(path, nextColor());
        m_compared.push_back(path);
    } else {
        m_compared.removeAll(path);
        m_colors.remove(path);
    }
    const int row = rowOf(path);
    if (row >= 0)
        decorate(m_tree->topLevelItem(row));
    if (!silent)
        emit comparedChanged();
}

void RunsPanel::clearCompared(bool silent)
{
    const QStringList was = m_compared;
    for (const QString& p : was)
        setCompared(p, false, true);
    if (!silent && !was.isEmpty())
        emit comparedChanged();
}

void RunsPanel::setColor(const QString& path, const QColor& color)
{
    if (!m_compared.contains(path) || !color.isValid())
        return;
    m_colors.insert(path, color);
    const int row = rowOf(path);
    if (row >= 0)
        decorate(m_tree->topLevelItem(row));
    emit colorChanged(path, color);
}

void RunsPanel::setDarkTheme(bool dark)
{
    m_dark = dark;
}

bool RunsPanel::renameRun(const QString& path, const QString& newName, QString* newPath, QString* error)
{
    QString name = newName.trimmed();
    if (!name.endsWith(QLatin1String(".h5")))
        name += QLatin1String(".h5");
    if (name == QLatin1String(".h5") || name.contains(QLatin1Char('/'))) {
        *error = tr("%1: a file name without a folder is needed, got \"%2\"").arg(path, newName);
        return false;
    }
    if (path == m_recording) {
        *error = tr("%1: a run is writing it; rename it when the run is over").arg(path);
        return false;
    }
    const QString target = QFileInfo(path).dir().filePath(name);
    if (QFileInfo::exists(target)) {
        *error = tr("%1: already exists").arg(target);
        return false;
    }
    if (!QFile::rename(path, target)) {
        *error = tr("%1: cannot rename to %2").arg(path, name);
        return false;
    }
    if (m_compared.contains(path)) {
        m_compared.replace(m_compared.indexOf(path), target);
        m_colors.insert(target, m_colors.take(path));
    }
    *newPath = target;
    refresh();
    emit renamed(path, target);
    return true;
}

bool RunsPanel::trashRun(const QString& path, QString* error, QString* inTrash)
{
    if (path == m_recording) {
        *error = tr("%1: a run is writing it; cancel the run first").arg(path);
        return false;
    }
    // To the trash, not deleted: a click too many must not lose a run.
    QString where;
    if (!QFile::moveToTrash(path, &where)) {
        *error = tr("%1: cannot move it to the trash").arg(path);
        return false;
    }
    if (inTrash)
        *inTrash = where;
    const bool compared = m_compared.contains(path);
    m_compared.removeAll(path);
    m_colors.remove(path);
    refresh();
    emit trashed(path);
    if (compared)
        emit comparedChanged();
    return true;
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
    QAction* compare = menu.addAction(tr("Compare (draw over the trace shown)"), this,
                                      [this, path](bool on) { setCompared(path, on); });
    compare->setCheckable(true);
    compare->setChecked(isCompared(path));
    QAction* colour = menu.addAction(tr("Colour…"), this, [this, path] {
        const QColor c = QColorDialog::getColor(colorOf(path), this,
                                                tr("Colour of %1").arg(QFileInfo(path).completeBaseName()));
        if (c.isValid())
            setColor(path, c);
    });
    colour->setEnabled(isCompared(path));
    menu.addSeparator();
    menu.addAction(tr("Rename…"), this, [this, path] {
        bool ok = false;
        const QString name =
            QInputDialog::getText(this, tr("Rename run"), tr("New file name:"), QLineEdit::Normal,
                                  QFileInfo(path).completeBaseName(), &ok);
        QString target, error;
        if (ok && !name.isEmpty() && !renameRun(path, name, &target, &error))
            emit errorOccurred(error);
    });
    menu.addAction(tr("Move to trash"), this, [this, path] {
        if (QMessageBox::question(this, tr("Move to trash"),
                                  tr("Move %1 to the trash?").arg(QFileInfo(path).fileName())) !=
            QMessageBox::Yes)
            return;
        QString error;
        if (!trashRun(path, &error))
            emit errorOccurred(error);
    });
    menu.addAction(tr("Show in folder"), this, [path] {
        QDesktopServices::openUrl(QUrl::fromLocalFile(QFileInfo(path).absolutePath()));
    });
    menu.exec(m_tree->viewport()->mapToGlobal(pos));
}

} // namespace statescope
