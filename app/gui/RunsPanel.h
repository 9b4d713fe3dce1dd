#pragma once

#include <QWidget>

class QTreeWidget;
class QTreeWidgetItem;

namespace statescope {

// The traces in the data folder, newest first: name, tokens, complete or not, when. Double-click opens.
// Names are shown whole (the column fits them; where the panel is narrower they are elided in the
// middle, keeping the model and the time apart) and in full in the tooltip.
class RunsPanel : public QWidget {
    Q_OBJECT
public:
    explicit RunsPanel(const QString& folder, QWidget* parent = nullptr);

    QString folder() const { return m_folder; }
    void setFolder(const QString& folder);
    void refresh();
    int count() const;
    QString pathAt(int row) const;
    QString statusAt(int row) const; // "complete", "partial", "recording" or "unreadable"
    // The trace a run is writing now: listed as "recording" (its size on disk lags the run), or none.
    void setRecording(const QString& path);
    int rowOf(const QString& path) const; // -1 if not listed
    QTreeWidget* tree() const { return m_tree; }

signals:
    void openRequested(const QString& path);
    void overlayRequested(const QString& path);

private:
    void showContextMenu(const QPoint& pos);

    QString m_folder;
    QString m_recording;
    QTreeWidget* m_tree;
};

} // namespace statescope
