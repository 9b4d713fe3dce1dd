#include "models/ModelCard.h"

#include "Error.h"
#include "io/AtomicFile.h"
#include "io/Json.h"

#include <filesystem>
#include <fstream>

namespace statescope {

std::optional<int64_t> ModelCard::trainingLength() const
{
    auto it = json.find("training_length");
    if (it == json.end() || it->is_null())
        return std::nullopt;
    return it->get<int64_t>();
}

ModelCard readModelCard(const std::string& path)
{
    const nlohmann::json j = loadPythonJson(path);
    if (!j.is_object())
        throw Error(path, "top level", "a JSON object", j.type_name());
    ModelCard card;
    card.json = nlohmann::ordered_json::parse(j.dump());
    auto it = j.find("training_length");
    if (it != j.end() && !it->is_null()) {
        if (!it->is_number_integer() || it->get<int64_t>() <= 0)
            throw Error(path, "training_length", "a positive integer (tokens)", it->dump());
    }
    return card;
}

void writeModelCard(const std::string& path, const ModelCard& card)
{
    writeFileAtomically(path, card.json.dump(2) + "\n");
}

} // namespace statescope
