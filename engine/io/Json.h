#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace statescope {

// JSON as Python's json module writes it. Python emits bare NaN, Infinity and -Infinity for
// non-finite floats (older transformers configs contain them); transformers 5 writes
// {"__float__": "Infinity"} instead. Both parse here; bare ones become {"__float__": ...} objects so
// that jsonNumber() handles both spellings the same way.
nlohmann::json loadPythonJson(const std::string& path);
nlohmann::json parsePythonJson(const std::string& text, const std::string& sourceName);

// A number from a config: a JSON number, {"__float__": "Infinity"|"-Infinity"|"NaN"}, or one of
// those strings. Anything else throws an Error naming `file` and `field`.
double jsonNumber(const nlohmann::json& v, const std::string& file, const std::string& field);

// Throws Error(sourceName, ...) for JSON nested deeper than maxDepth, before any parser builds a tree
// (or a reader recurses) that deep. Linear; strings are skipped.
void checkJsonDepth(const char* data, size_t size, const std::string& sourceName, int maxDepth);

// Standard JSON only (no NaN extension), for the header of a binary format: a top-level object read
// member by member, because one too large to hold as one JSON tree (a safetensors header of a million
// tensors is 80 MB of JSON, which nlohmann's tree makes 1 GB) must still be read in linear memory.
// Calls onMember with each member's key and value as they are parsed, in file order, and keeps none.
// Rejects duplicate keys (at any depth) and nesting deeper than maxDepth, with the byte position.
void forEachStrictJsonMember(const char* data, size_t size, const std::string& sourceName, int maxDepth,
                             const std::function<void(const std::string&, nlohmann::json&)>& onMember);

} // namespace statescope
