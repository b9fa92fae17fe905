// Reading component config.json files: typed look-ups with diffusers' defaults, errors that
// name the file and the key.
#pragma once

#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/error.hpp"

namespace diffbench {

// Nesting limit of every JSON document a user supplies (configs, safetensors headers, prompt
// files): real ones nest a few levels, and deeper ones would overflow the stack when copied.
constexpr int kMaxJsonDepth = 64;

// Parses `text` with at most kMaxJsonDepth nested arrays and objects; with `unique_keys`, a key
// that repeats within one object is an error. InputError naming `where` otherwise.
nlohmann::json parse_json(const char* begin, const char* end, const std::string& where, bool unique_keys = false);
inline nlohmann::json parse_json(const std::string& text, const std::string& where, bool unique_keys = false) {
  return parse_json(text.data(), text.data() + text.size(), where, unique_keys);
}

// A regular file (not a FIFO or device; read_file.hpp) parsed with parse_json.
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

  // An integer in [lo, hi], or `fallback` when absent or null. A float, a string or a value out of
  // range is an InputError naming the file and key (sizes read from configs go through here, so
  // that 0 or 1e9 channels fail when read, not as a crash or an allocation later).
  int64_t get_int(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) const;
  // The same for a list of integers (at most `max_len` entries).
  std::vector<int64_t> get_int_list(const std::string& key, const std::vector<int64_t>& fallback, int64_t lo,
                                    int64_t hi, size_t max_len = 16) const;
  // A finite number in [lo, hi], or `fallback` when absent or null.
  double get_double(const std::string& key, double fallback, double lo, double hi) const;
  // InputError "key 'KEY' = VALUE is out of range [lo, hi]" naming the file.
  [[noreturn]] void out_of_range(const std::string& key, const std::string& value, const std::string& range) const;

  const nlohmann::json& raw() const { return json_; }
  const std::string& source() const { return source_; }

 private:
  template <typename T>
  T convert(const std::string& key) const {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (!json_.at(key).is_number_integer())
        throw InputError("key '" + key + "' must be an integer, not " + json_.at(key).dump(), source_);
    }
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
