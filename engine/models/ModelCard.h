#pragma once

// model_card.json: what StateScope knows of a model beyond its config. The one reader and writer.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace statescope {

struct ModelCard {
    nlohmann::ordered_json json = nlohmann::ordered_json::object(); // every key, in file order

    // "training_length": the context length the model was trained at, in tokens.
    std::optional<int64_t> trainingLength() const;
};

// Throws Error naming the file for unreadable JSON, a top level that is not an object, or a
// training_length that is not a positive integer.
ModelCard readModelCard(const std::string& path);
// Throws Error naming the file if it cannot be written.
void writeModelCard(const std::string& path, const ModelCard& card);

} // namespace statescope
