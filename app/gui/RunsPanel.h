#pragma once

#include <QColor>
#include <QHash>
#include <QStringList>
#include <QWidget>

class QTreeWidget;
class QTreeWidgetItem;

namespace statescope {

// The run table: the traces in the data folder, newest first, with name, tokens, complete or not,
// and when (TensorBoard's and W&B's run list). A checkbox per run draws it over the trace shown,
// any number at once, each in its colour (the swatch beside the name; Colour… in the context menu
// changes it). The context menu also renames a run's file, moves it to the trash and shows it in its
// folder. Double-click opens. Names are shown whole (the column fits them; where the panel is
// narrower they are elided in the middle, keeping the model and the time apart) and in full in the
// tooltip.
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

    // The runs checked for comparison, in the order they were checked (paths, absolute).
    QStringList comparedPaths() const { return m_compared; }
    bool isCompared(const QString& path) const { return m_compared.contains(path); }
    // Checks or unchecks a run (it need not be listed: a trace from elsewhere). Emits comparedChanged()
    // unless silent.
    void setCompared(const QString& path, bool compared, bool silent = false);
    void clearCompared(bool silent = false);
    // A compared run's colour (assigned when checked: the first of the palette no other run uses).
    QColor colorOf(const QString& path) const { return m_colors.value(path); }
    void setColor(const QString& path, const QColor& color);
    // The palette's colour i (1, 2, ...: 0 is the trace shown), for the theme.
    void setDarkTheme(bool dark);

    // File operations; each returns false with a one-line message naming the file in *error.
    // The new name is a file name without folder; ".h5" is added if missing.
    bool renameRun(const QString& path, const QString& newName, QString* newPath, QString* error);
    // *inTrash, if given, is where the file went (the trash renames files whose names it holds).
    bool trashRun(const QString& path, QString* error, QString* inTrash = nullptr);

signals:
    void openRequested(const QString& path);
    void overlayRequested(const QString& path);
    void comparedChanged();
    void colorChanged(const QString& path, const QColor& color);
    void renamed(const QString& oldPath, const QString& newPath);
    void trashed(const QString& path);
    void errorOccurred(const QString& message);

private:
    void showContextMenu(const QPoint& pos);
    void onItemChanged(QTreeWidgetItem* item, int column);
    QColor nextColor() const;
    void decorate(QTreeWidgetItem* item);

    QString m_folder;
    QString m_recording;
    QTreeWidget* m_tree;
    QStringList m_compared;
    QHash<QString, QColor> m_colors;
    bool m_dark = false;
    bool m_filling = false;
};

} // namespace statescope
