#include "models/ModelCard.h"

#include "Error.h"
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
    // Written aside and renamed, so that a crash never leaves half a card.
    const std::string tmp = path + ".tmp";
    std::ofstream out(tmp);
    out << card.json.dump(2) << "\n";
    out.close();
    std::error_code ec;
    if (out)
        std::filesystem::rename(tmp, path, ec);
    if (!out || ec)
        throw Error(path, "cannot write the model card");
}

} // namespace statescope
