#include "diffbench/io/json_config.hpp"

#include <cmath>
#include <cstdint>
#include <set>

#include "diffbench/io/read_file.hpp"

namespace diffbench {

namespace {

struct JsonLimitHit {
  std::string message;
};

}  // namespace

nlohmann::json parse_json(const char* begin, const char* end, const std::string& where, bool unique_keys) {
  using Event = nlohmann::json::parse_event_t;
  std::vector<std::set<std::string>> keys;  // per open container, when unique_keys
  auto callback = [&](int depth, Event event, nlohmann::json& parsed) {
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        if (depth >= kMaxJsonDepth)
          throw JsonLimitHit{"nested deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
        if (unique_keys) keys.emplace_back();
        break;
      case Event::object_end:
      case Event::array_end:
        if (unique_keys && !keys.empty()) keys.pop_back();
        break;
      case Event::key:
        if (unique_keys && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second)
          throw JsonLimitHit{"key '" + parsed.get<std::string>() + "' appears twice in one object"};
        break;
      case Event::value:
        break;
    }
    return true;
  };
  try {
    return nlohmann::json::parse(begin, end, callback);
  } catch (const JsonLimitHit& e) {
    throw InputError("not valid JSON: " + e.message, where);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for a number too large for a double ("1e999"), found by fuzz_json
    throw InputError(std::string("not valid JSON: ") + e.what(), where);
  }
}

nlohmann::json read_json_file(const std::filesystem::path& file) {
  return parse_json(read_regular_file(file), file.string());
}

JsonConfig JsonConfig::load(const std::filesystem::path& file) {
  auto json = read_json_file(file);
  if (!json.is_object()) throw InputError("expected a JSON object at the top level", file.string());
  return JsonConfig(std::move(json), file.string());
}

void JsonConfig::out_of_range(const std::string& key, const std::string& value, const std::string& range) const {
  throw InputError("key '" + key + "' = " + value + " is out of range " + range, source_);
}

namespace {

int64_t checked_int(const JsonConfig& c, const std::string& key, const nlohmann::json& v, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) throw InputError("key '" + key + "' must be an integer, not " + v.dump(), c.source());
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) c.out_of_range(key, v.dump(), range);
  const auto x = v.get<int64_t>();
  if (x < lo || x > hi) c.out_of_range(key, v.dump(), range);
  return x;
}

}  // namespace

int64_t JsonConfig::get_int(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) const {
  if (!has(key)) return fallback;
  return checked_int(*this, key, json_.at(key), lo, hi);
}

std::vector<int64_t> JsonConfig::get_int_list(const std::string& key, const std::vector<int64_t>& fallback,
                                              int64_t lo, int64_t hi, size_t max_len) const {
  if (!has(key)) return fallback;
  const auto& v = json_.at(key);
  if (!v.is_array()) throw InputError("key '" + key + "' must be a list of integers", source_);
  if (v.size() > max_len)
    throw InputError("key '" + key + "' has " + std::to_string(v.size()) + " entries, more than " +
                         std::to_string(max_len),
                     source_);
  std::vector<int64_t> out;
  for (const auto& e : v) out.push_back(checked_int(*this, key, e, lo, hi));
  return out;
}

double JsonConfig::get_double(const std::string& key, double fallback, double lo, double hi) const {
  if (!has(key)) return fallback;
  const auto& v = json_.at(key);
  if (!v.is_number()) throw InputError("key '" + key + "' must be a number, not " + v.dump(), source_);
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    out_of_range(key, v.dump(), "[" + nlohmann::json(lo).dump() + ", " + nlohmann::json(hi).dump() + "]");
  return x;
}

bool JsonConfig::has(const std::string& key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

}  // namespace diffbench
