#pragma once

// Turning what the user gave (a text file, typed text, a file of ids, a prompt generator) into the
// token ids of a run: the one place that decides the tokenizer and describes the input, for the
// CLI and the window alike. Torch-free.
#include "trace/TraceFile.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace statescope {

class Tokenizer;

struct InputRequest {
    // Exactly one of these four.
    std::string textFile;
    std::string idsFile;             // whitespace-separated decimal ids
    std::string prompt;              // "newlines:N", "capitals:N", "passkey:BLOCKS[:DEPTH[:SEED]]"
    std::optional<std::string> text; // typed or pasted text (UTF-8)
    std::string textLabel;           // for typed text: where it came from, e.g. "demo text"

    std::string tokenizer; // a tokenizer.json asked for; "" = the model's own, else the built-in one
};

struct PreparedInput {
    std::vector<int32_t> ids;
    std::vector<int64_t> offsets; // 2 per token into text; empty for ids
    std::string text;             // the UTF-8 text the offsets index; empty for ids
    TraceInput source;            // machine-readable, for the trace
    std::string description; // one line, e.g. "text: book.txt (12345 bytes, tokenizer gpt-neox-20b.json)"
};

// The tokenizer policy: the one asked for, else the model folder's own, else the built-in GPT-NeoX-20B.
std::string chooseTokenizerPath(const std::string& requested,
                                const std::optional<std::string>& modelTokenizer);

using TokenizerLoader = std::function<std::shared_ptr<const Tokenizer>(const std::string& path)>;

// Reads and tokenizes the input. Throws Error naming the file (or the field: "input", "prompt") for a
// missing, unreadable or empty input, or none/several given. loadTokenizer, if set, replaces
// Tokenizer::fromFile (the window caches tokenizers).
PreparedInput prepareInput(const InputRequest& request, const std::optional<std::string>& modelTokenizer,
                           const TokenizerLoader& loadTokenizer = {});

// Finds a passkey prompt's needle sentence in the text (once, whole) and records the key and the
// tokens it spans in in->source; leaves them unset otherwise. prepareInput calls it.
void locateNeedle(PreparedInput* in);

// Reads a file of whitespace-separated ids. Throws Error naming the file and the bad word.
std::vector<int32_t> readIdsFile(const std::string& path);

// A whole regular file. Throws Error naming it ("what" says what it is: "text file") if it is
// missing, a folder or unreadable.
std::string readWholeFile(const std::string& path, const char* what);

} // namespace statescope
