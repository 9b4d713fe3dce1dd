// The lock that keeps two passkey sweeps off one results file (Try) and lets a sweep's shards wait for
// the one that tokenises the corpus (Wait).
#include "io/FileLock.h"

#include <QTemporaryDir>
#include <QtTest>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

using namespace statescope;

class TestFileLock : public QObject {
    Q_OBJECT

private slots:
    void tryRefusesWhileHeld()
    {
        QTemporaryDir dir;
        const std::string path = dir.filePath("results.h5.lock").toStdString();
        {
            const FileLock first(path, FileLock::Mode::Try);
            QVERIFY(first.locked());
            QVERIFY(std::filesystem::exists(path));
            const FileLock second(path, FileLock::Mode::Try);
            QVERIFY(!second.locked());
            QVERIFY(std::filesystem::exists(path)); // the refused one leaves the holder's file alone
        }
        QVERIFY(!std::filesystem::exists(path)); // released: removed
        const FileLock again(path, FileLock::Mode::Try);
        QVERIFY(again.locked());
    }

    void waitBlocksUntilReleased()
    {
        QTemporaryDir dir;
        const std::string path = dir.filePath("corpus.txt.tokens-0.lock").toStdString();
        auto holder = std::make_unique<FileLock>(path, FileLock::Mode::Wait);
        QVERIFY(holder->locked());
        std::atomic<bool> acquired{false};
        std::thread waiter([&] {
            const FileLock lock(path, FileLock::Mode::Wait);
            acquired = lock.locked();
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        QVERIFY(!acquired);
        holder.reset();
        waiter.join();
        QVERIFY(acquired);
    }

    void unwritableFolderThrowsNamingTheFile()
    {
        try {
            FileLock lock("/nonexistent-folder/x.lock", FileLock::Mode::Try);
            QFAIL("a lock file was made in a missing folder");
        } catch (const std::exception& e) {
            QVERIFY2(QString(e.what()).contains("/nonexistent-folder/x.lock"), e.what());
        }
    }
};

QTEST_GUILESS_MAIN(TestFileLock)
#include "TestFileLock.moc"
