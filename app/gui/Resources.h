#pragma once

#include <QString>
#include <QStringList>

#include <memory>

namespace statescope {

class Tokenizer;

// The built-in resource `relative` (e.g. "tokenizers/gpt-neox-20b.json") where the engine's
// findResource() finds it; empty if it finds none.
QString resourcePath(const QString& relative);

// Whether the config.json at configPath is one a registered architecture reads (parsed, not loaded).
bool canOpenModel(const QString& configPath);

// A model folder the Model panel can offer, and where it was found.
struct ModelEntry {
    QString name;   // what the list shows
    QString path;   // the folder
    QString origin; // "built-in", "Hugging Face cache", "recent"
};

// resources/models/* that canOpenModel().
QList<ModelEntry> builtInModels();
// $HF_HOME/hub (or ~/.cache/huggingface/hub) models--*/snapshots/* that canOpenModel().
QList<ModelEntry> huggingFaceCacheModels();

// A tokenizer from a file, loaded once per path and shared between threads (encode is const and
// thread-safe). Throws Error naming the file.
std::shared_ptr<const Tokenizer> cachedTokenizer(const QString& path);

// The per-user folder for run traces (AppDataLocation/traces), created if missing.
QString tracesFolder();
// <folder>/<model>-<yyyyMMdd-HHmmss>.h5, with -2, -3, ... appended if that name is taken.
QString newTracePath(const QString& folder, const QString& modelName);

// The process's resident memory now and at its peak (bytes; 0 where the platform does not say).
struct MemoryUse {
    qint64 rss = 0;
    qint64 peakRss = 0;
};
MemoryUse processMemory();

QString formatBytes(qint64 bytes);
QString formatCount(qint64 n); // 130M, 5.1K, ...
QString formatDuration(double seconds);

} // namespace statescope
