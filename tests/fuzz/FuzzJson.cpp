// Fuzz harness: the two JSON readers of io/Json.h. parsePythonJson reads config.json and the
// safetensors index (Python's NaN/Infinity extension, depth limit, error positions mapped back to
// the original text); forEachStrictJsonMember streams binary-format headers (duplicate keys, depth limit).
#include "Error.h"
#include "FuzzInput.h"
#include "io/Json.h"

#include <nlohmann/json.hpp>

#include <string>

using statescope::fuzz::keep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        const nlohmann::json j = statescope::parsePythonJson(text, "config.json");
        // Messages dump parsed values, and configs read numbers through jsonNumber.
        keep(j.dump());
        if (j.is_object() || j.is_array()) {
            for (const auto& v : j) {
                try {
                    keep(statescope::jsonNumber(v, "config.json", "field"));
                } catch (const statescope::Error&) {
                }
            }
        } else {
            try {
                keep(statescope::jsonNumber(j, "config.json", "field"));
            } catch (const statescope::Error&) {
            }
        }
    } catch (const statescope::Error&) {
        // A malformed file is refused with an Error: the contract, not a finding.
    }
    try {
        statescope::forEachStrictJsonMember(reinterpret_cast<const char*>(data), size, "header", 64,
                                            [](const std::string& key, nlohmann::json& value) {
                                                keep(key);
                                                keep(value.dump());
                                            });
    } catch (const statescope::Error&) {
    }
    return 0;
}
