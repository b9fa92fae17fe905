// Reading component config.json files: typed look-ups with diffusers' defaults, errors that
// name the file and the key.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/error.hpp"

namespace diffbench {

nlohmann::json read_json_file(const std::filesystem::path& file);

class JsonConfig {
 public:
  JsonConfig() = default;
  JsonConfig(nlohmann::json json, std::string source) : json_(std::move(json)), source_(std::move(source)) {}
  static JsonConfig load(const std::filesystem::path& file);

  // True when the key is present and not null.
  bool has(const std::string& key) const;

  // The value of `key`, or `fallback` when absent or null. A value of the wrong type is an
  // InputError naming the file and key.
  template <typename T>
  T get(const std::string& key, const T& fallback) const {
    if (!has(key)) return fallback;
    return convert<T>(key);
  }
  template <typename T>
  T require(const std::string& key) const {
    if (!has(key)) throw InputError("missing required key '" + key + "'", source_);
    return convert<T>(key);
  }

  const nlohmann::json& raw() const { return json_; }
  const std::string& source() const { return source_; }

 private:
  template <typename T>
  T convert(const std::string& key) const {
    try {
      return json_.at(key).get<T>();
    } catch (const nlohmann::json::exception&) {
      throw InputError("key '" + key + "' has the wrong type (" + std::string(json_.at(key).type_name()) + ")",
                       source_);
    }
  }
  nlohmann::json json_ = nlohmann::json::object();
  std::string source_;
};

}  // namespace diffbench
