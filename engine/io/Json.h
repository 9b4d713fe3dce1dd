#pragma once

#include <nlohmann/json.hpp>

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

// Standard JSON only (no NaN extension), for headers of binary formats: rejects duplicate object
// keys and nesting deeper than maxDepth, and reports errors with the byte position.
nlohmann::json parseStrictJson(const char* data, size_t size, const std::string& sourceName, int maxDepth);

} // namespace statescope
