#include "diffbench/io/json_config.hpp"

#include <fstream>
#include <sstream>

namespace diffbench {

nlohmann::json read_json_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError("cannot open file", file.string());
  std::stringstream buf;
  buf << in.rdbuf();
  try {
    return nlohmann::json::parse(buf.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(std::string("invalid JSON: ") + e.what(), file.string());
  }
}

JsonConfig JsonConfig::load(const std::filesystem::path& file) {
  auto json = read_json_file(file);
  if (!json.is_object()) throw InputError("expected a JSON object at the top level", file.string());
  return JsonConfig(std::move(json), file.string());
}

bool JsonConfig::has(const std::string& key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

}  // namespace diffbench
