// Fuzz harness: .safetensors files (io/SafeTensors.h), from the 8-byte header size through the JSON
// header to the tensor table. Every tensor's bytes are read back, so a data pointer or size that
// escapes the file faults here.
#include "Error.h"
#include "FuzzInput.h"
#include "io/SafeTensors.h"

#include <map>
#include <string>

using statescope::fuzz::keep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string& path = statescope::fuzz::writeInputFile(data, size, "model.safetensors");
    try {
        std::map<std::string, std::string> metadata;
        const std::vector<statescope::RawTensor> tensors = statescope::readSafeTensors(path, &metadata);
        for (const statescope::RawTensor& t : tensors) {
            statescope::fuzz::checkRawTensor(t);
            keep(t.numel());
            keep(statescope::fuzz::touchBytes(t.data, t.bytesAvailable));
        }
    } catch (const statescope::Error&) {
    }
    return 0;
}
