#include "Resources.h"

#include "models/Architecture.h"
#include "tokenizers/Tokenizer.h"
#include "util/Resources.h"

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QRegularExpression>
#include <QStandardPaths>

#include <nlohmann/json.hpp>

#include <map>
#include <mutex>

namespace statescope {

QString resourcePath(const QString& relative)
{
    try {
        return QDir::cleanPath(QString::fromStdString(findResource(relative.toStdString())));
    } catch (const std::exception&) {
        return {};
    }
}

bool canOpenModel(const QString& configPath)
{
    QFile file(configPath);
    // Configs are a few KB; a bigger file is not one.
    if (!file.open(QIODevice::ReadOnly) || file.size() > (4 << 20))
        return false;
    const nlohmann::json config = nlohmann::json::parse(file.readAll().toStdString(), nullptr, false);
    if (config.is_discarded())
        return false;
    try {
        recogniseConfig(config, configPath.toStdString());
        return true;
    } catch (const std::exception&) {
        return false;
    }
}

QList<ModelEntry> builtInModels()
{
    QList<ModelEntry> out;
    const QString dir = resourcePath("models");
    if (dir.isEmpty())
        return out;
    const QDir models(dir);
    for (const QString& name : models.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name)) {
        const QString path = models.filePath(name);
        if (canOpenModel(path + "/config.json"))
            out.append({name, path, QStringLiteral("built-in")});
    }
    return out;
}

QList<ModelEntry> huggingFaceCacheModels()
{
    QList<ModelEntry> out;
    QString hub;
    const QString hfHome = qEnvironmentVariable("HF_HOME");
    if (!hfHome.isEmpty())
        hub = hfHome + "/hub";
    else
        hub = QDir::homePath() + "/.cache/huggingface/hub";
    const QDir cache(hub);
    if (!cache.exists())
        return out;
    for (const QString& repo :
         cache.entryList({"models--*"}, QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name)) {
        // models--ORG--NAME -> ORG/NAME
        const QString name = repo.mid(8).replace("--", "/");
        const QDir snapshots(cache.filePath(repo + "/snapshots"));
        const QStringList revs = snapshots.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Time);
        for (const QString& rev : revs) {
            const QString path = snapshots.filePath(rev);
            // Only what StateScope can open: a config one of the registered architectures reads.
            if (!canOpenModel(path + "/config.json"))
                continue;
            const QString label = revs.size() > 1 ? name + " @" + rev.left(7) : name;
            out.append({label, path, QStringLiteral("Hugging Face cache")});
        }
    }
    return out;
}

std::shared_ptr<const Tokenizer> cachedTokenizer(const QString& path)
{
    static std::mutex mutex;
    static std::map<QString, std::shared_ptr<const Tokenizer>> cache;
    {
        std::lock_guard<std::mutex> lock(mutex);
        auto it = cache.find(path);
        if (it != cache.end())
            return it->second;
    }
    // Loaded outside the lock: the GPT-NeoX tables take a moment and other paths need not wait.
    auto tok = std::make_shared<const Tokenizer>(Tokenizer::fromFile(path.toStdString()));
    std::lock_guard<std::mutex> lock(mutex);
    return cache.emplace(path, tok).first->second;
}

QString tracesFolder()
{
    const QString base = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
    const QString dir = base + "/traces";
    QDir().mkpath(dir);
    return dir;
}

QString newTracePath(const QString& folder, const QString& modelName)
{
    QString safe = modelName;
    safe.replace(QRegularExpression("[^A-Za-z0-9._-]+"), "_");
    if (safe.isEmpty())
        safe = "model";
    const QString stem = safe + "-" + QDateTime::currentDateTime().toString("yyyyMMdd-HHmmss");
    QString path = QDir(folder).filePath(stem + ".h5");
    for (int i = 2; QFileInfo::exists(path); ++i)
        path = QDir(folder).filePath(stem + "-" + QString::number(i) + ".h5");
    return path;
}

MemoryUse processMemory()
{
    MemoryUse m;
    QFile f("/proc/self/status");
    if (!f.open(QIODevice::ReadOnly | QIODevice::Text))
        return m;
    // "VmRSS:	  123456 kB"
    const QList<QByteArray> lines = f.readAll().split('\n');
    for (const QByteArray& line : lines) {
        const bool rss = line.startsWith("VmRSS:");
        const bool hwm = line.startsWith("VmHWM:");
        if (!rss && !hwm)
            continue;
        const QList<QByteArray> parts = line.mid(6).simplified().split(' ');
        const qint64 kb = parts.isEmpty() ? 0 : parts[0].toLongLong();
        (rss ? m.rss : m.peakRss) = kb * 1024;
    }
    return m;
}

QString formatBytes(qint64 bytes)
{
    const double b = static_cast<double>(bytes);
    if (b >= 1024.0 * 1024 * 1024)
        return QString::number(b / (1024.0 * 1024 * 1024), 'f', 2) + " GiB";
    if (b >= 1024.0 * 1024)
        return QString::number(b / (1024.0 * 1024), 'f', 0) + " MiB";
    return QString::number(b / 1024.0, 'f', 0) + " KiB";
}

QString formatCount(qint64 n)
{
    const double v = static_cast<double>(n);
    if (v >= 1e9)
        return QString::number(v / 1e9, 'g', 3) + "B";
    if (v >= 1e6)
        return QString::number(v / 1e6, 'g', 3) + "M";
    if (v >= 1e4)
        return QString::number(v / 1e3, 'g', 3) + "K";
    return QString::number(n);
}

QString formatDuration(double seconds)
{
    if (!(seconds >= 0) || seconds > 1e7)
        return QStringLiteral("--");
    const qint64 s = static_cast<qint64>(seconds + 0.5);
    if (s < 60)
        return QString::number(s) + " s";
    if (s < 3600)
        return QString("%1:%2").arg(s / 60).arg(s % 60, 2, 10, QChar('0'));
    return QString("%1:%2:%3")
        .arg(s / 3600)
        .arg((s / 60) % 60, 2, 10, QChar('0'))
        .arg(s % 60, 2, 10, QChar('0'));
}

} // namespace statescope
