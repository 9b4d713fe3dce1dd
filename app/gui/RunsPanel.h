#pragma once

#include <QWidget>

class QTreeWidget;
class QTreeWidgetItem;

namespace statescope {

// The traces in the data folder, newest first: name, tokens, complete or not, when. Double-click opens.
class RunsPanel : public QWidget {
    Q_OBJECT
public:
    explicit RunsPanel(const QString& folder, QWidget* parent = nullptr);

    QString folder() const { return m_folder; }
    void setFolder(const QString& folder);
    void refresh();
    int count() const;
    QString pathAt(int row) const;
    QString statusAt(int row) const;      // "complete", "partial" or "unreadable"
    int rowOf(const QString& path) const; // -1 if not listed

signals:
    void openRequested(const QString& path);
    void overlayRequested(const QString& path);

private:
    void showContextMenu(const QPoint& pos);

    QString m_folder;
    QTreeWidget* m_tree;
};

} // namespace statescope
