// Fuzz harness: zip archives as torch.save writes them (io/ZipArchive.h): open, list, and read every
// entry; then the same bytes as a whole checkpoint (io/TorchCheckpoint.h), which adds the pickle
// and the storage bounds of each tensor.
#include "Error.h"
#include "FuzzInput.h"
#include "io/TorchCheckpoint.h"
#include "io/ZipArchive.h"

#include <string>

using statescope::fuzz::keep;
using statescope::fuzz::touchBytes;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string& path = statescope::fuzz::writeInputFile(data, size, "pytorch_model.bin");
    try {
        const statescope::ZipArchive zip = statescope::ZipArchive::open(path);
        for (const std::string& name : zip.names()) {
            keep(zip.contains(name));
            try {
                const statescope::ZipArchive::Entry e = zip.entry(name);
                keep(touchBytes(e.data, static_cast<size_t>(e.size)));
            } catch (const statescope::Error&) {
                // One bad entry (compressed, truncated) says nothing about the others.
            }
        }
        keep(zip.contains("archive/data.pkl"));
    } catch (const statescope::Error&) {
    }
    try {
        for (const statescope::RawTensor& t : statescope::readTorchCheckpoint(path)) {
            statescope::fuzz::checkRawTensor(t);
            keep(t.numel());
            keep(touchBytes(t.data, t.bytesAvailable));
        }
    } catch (const statescope::Error&) {
    }
    return 0;
}
