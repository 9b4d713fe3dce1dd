// util/Allocator.h: freed engine-sized blocks are reused instead of being faulted in again.
#include "util/Allocator.h"

#include <QtTest>

#include <cstdlib>
#include <sys/resource.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STATESCOPE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define STATESCOPE_ASAN 1
#endif

namespace {

long minorFaults()
{
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

// Allocates, touches every page of and frees blocks the size of a chunk's tensors; returns the page
// faults that took.
long faultsOfChunkLikeAllocations()
{
    constexpr size_t kSizes[] = {24u << 20, 6u << 20, 16u << 20, 3u << 20};
    long faults = 0;
    for (int round = 0; round < 2; ++round) {
        const long before = minorFaults();
        for (int i = 0; i < 4; ++i) {
            void* blocks[4];
            for (int k = 0; k < 4; ++k) {
                blocks[k] = std::malloc(kSizes[k]);
                auto* bytes = static_cast<volatile char*>(blocks[k]);
                for (size_t b = 0; b < kSizes[k]; b += 4096)
                    bytes[b] = 1;
            }
            for (void* p : blocks)
                std::free(p);
        }
        faults = minorFaults() - before; // the second round: after the first has warmed the heap
    }
    return faults;
}

} // namespace

class TestAllocator : public QObject {
    Q_OBJECT
private slots:
    void freedBlocksAreReused()
    {
#if defined(STATESCOPE_ASAN)
        QSKIP("AddressSanitizer brings its own allocator");
#elif !defined(__GLIBC__)
        QSKIP("glibc's allocator only");
#else
        if (qEnvironmentVariableIsSet("MALLOC_MMAP_THRESHOLD_") ||
            qEnvironmentVariableIsSet("MALLOC_TRIM_THRESHOLD_"))
            QSKIP("the environment sets glibc's thresholds");
        QVERIFY(statescope::keepFreedMemoryForReuse());
        // Without reuse every round faults in all 49 MB again: 4 x 12,544 pages.
        const long faults = faultsOfChunkLikeAllocations();
        qInfo("page faults of 4 x 49 MB allocated, touched and freed, after a warm-up: %ld", faults);
        QVERIFY2(faults < 1000, qPrintable(QString::number(faults)));
#endif
    }
};

QTEST_GUILESS_MAIN(TestAllocator)
#include "TestAllocator.moc"
