// Layering: a method sees the model and the loop only through PipelineHooks; nothing here knows the
// evaluator or the command.
// Acceleration methods: created from a spec's [[accelerate]] table through one registry that
// built-ins and shared-library plugins fill alike, acting only through PipelineHooks.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/pipeline/spec.hpp"  // AccelEntry
#include "diffbench/pipeline/step_hooks.hpp"

namespace diffbench {

// A typed parameter with its default and allowed range or values.
struct ParamSpec {
  enum class Type { Int, Float, Bool, String };
  std::string name;
  Type type = Type::Int;
  nlohmann::json default_value;
  std::optional<double> min, max;     // numbers: inclusive range
  bool min_exclusive = false;         // min itself is not allowed (e.g. pow > 1)
  std::vector<std::string> choices;   // strings: allowed values (empty = any)
  std::string help;
};

// A declared parameter (what built-in methods and plugins list in MethodInfo::params).
inline ParamSpec make_param(std::string name, ParamSpec::Type type, nlohmann::json default_value,
                            std::optional<double> min, std::optional<double> max, std::string help) {
  ParamSpec s;
  s.name = std::move(name);
  s.type = type;
  s.default_value = std::move(default_value);
  s.min = min;
  s.max = max;
  s.help = std::move(help);
  return s;
}

// Validated parameters: every declared parameter present (defaults filled in), typed.
class MethodParams {
 public:
  MethodParams() = default;
  explicit MethodParams(nlohmann::json values) : values_(std::move(values)) {}
  int64_t get_int(const std::string& name) const { return values_.at(name).get<int64_t>(); }
  double get_float(const std::string& name) const { return values_.at(name).get<double>(); }
  bool get_bool(const std::string& name) const { return values_.at(name).get<bool>(); }
  std::string get_string(const std::string& name) const { return values_.at(name).get<std::string>(); }
  const nlohmann::json& json() const { return values_; }

 private:
  nlohmann::json values_ = nlohmann::json::object();
};

class Method : public PipelineHooks {
 public:
  virtual std::string name() const = 0;
  // Resolved parameters, for the report.
  virtual nlohmann::json params() const = 0;
  // Counters for the report (e.g. skipped modules); free-form.
  virtual nlohmann::json stats() const { return nlohmann::json::object(); }
  // Zeroes the counters (the evaluator calls it after warm-up, before the timed run).
  virtual void reset_stats() {}
};

struct MethodInfo {
  std::string name;
  std::string description;
  std::vector<ParamSpec> params;
  // Names of methods this one cannot be stacked with (checked in both directions).
  std::vector<std::string> incompatible;
  std::function<std::unique_ptr<Method>(const MethodParams&)> create;
};

// Parses a method given on the command line, "METHOD[:key=value,...]": values true/false are
// booleans, integers and numbers are numbers, anything else a string; key `plugin` sets the plugin
// path. Params' lines are 0. A malformed argument is a UsageError naming `option` and the text.
AccelEntry parse_accel_arg(const std::string& text, const std::string& option = "--accel");

class MethodRegistry {
 public:
  // A registry holding the built-in methods.
  static MethodRegistry with_builtins();

  // Registers a method; a second method of the same name is an error.
  void add(MethodInfo info);
  const MethodInfo* find(const std::string& name) const;
  std::vector<std::string> names() const;

  // Validates `entry` (unknown method, unknown parameter, wrong type, out of range: InputError
  // naming spec file, line and key), loading `entry.plugin` first when set.
  std::unique_ptr<Method> create(const AccelEntry& entry, const std::string& spec_file);
  // Creates every method of a spec in order, checking that the stack is compatible.
  std::vector<std::unique_ptr<Method>> create_all(const std::vector<AccelEntry>& entries, const std::string& spec_file);

 private:
  std::map<std::string, MethodInfo> methods_;
  std::vector<std::shared_ptr<void>> plugins_;  // keeps loaded shared libraries open
};

}  // namespace diffbench
