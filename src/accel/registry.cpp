#include <sstream>

#include "diffbench/accel/method.hpp"
#include "diffbench/accel/plugin.hpp"
#include "diffbench/error.hpp"

namespace diffbench {

namespace {

std::string where_of(const std::string& file, const AccelEntry& e, const std::string& key = {}) {
  auto it = e.lines.find(key);
  const int line = it != e.lines.end() ? it->second : e.line;
  return file + ":" + std::to_string(line);
}

const char* type_name(ParamSpec::Type t) {
  switch (t) {
    case ParamSpec::Type::Int: return "an integer";
    case ParamSpec::Type::Float: return "a number";
    case ParamSpec::Type::Bool: return "true or false";
    case ParamSpec::Type::String: return "a string";
  }
  return "?";
}

// Checks one value against its declaration; returns it in canonical type.
nlohmann::json check_value(const ParamSpec& p, const nlohmann::json& v, const std::string& where,
                           const std::string& method) {
  const std::string what = "parameter '" + p.name + "' of " + method;
  nlohmann::json out;
  switch (p.type) {
    case ParamSpec::Type::Int:
      if (!v.is_number_integer()) throw InputError(what + " must be " + type_name(p.type), where);
      out = v.get<int64_t>();
      break;
    case ParamSpec::Type::Float:
      if (!v.is_number()) throw InputError(what + " must be " + type_name(p.type), where);
      out = v.get<double>();
      break;
    case ParamSpec::Type::Bool:
      if (!v.is_boolean()) throw InputError(what + " must be " + type_name(p.type), where);
      out = v.get<bool>();
      break;
    case ParamSpec::Type::String:
      if (!v.is_string()) throw InputError(what + " must be " + type_name(p.type), where);
      out = v.get<std::string>();
      if (!p.choices.empty() && std::find(p.choices.begin(), p.choices.end(), out.get<std::string>()) == p.choices.end()) {
        std::string list;
        for (const auto& c : p.choices) list += (list.empty() ? "" : ", ") + c;
        throw InputError(what + " must be one of: " + list, where);
      }
      break;
  }
  if (out.is_number()) {
    const double x = out.get<double>();
    if ((p.min && x < *p.min) || (p.max && x > *p.max)) {
      std::ostringstream range;
      range << "[" << (p.min ? std::to_string(*p.min) : std::string("-inf")) << ", "
            << (p.max ? std::to_string(*p.max) : std::string("inf")) << "]";
      throw InputError(what + " = " + v.dump() + " is outside " + range.str(), where);
    }
  }
  return out;
}

}  // namespace

void MethodRegistry::add(MethodInfo info) {
  if (info.name.empty() || !info.create) throw InputError("a method needs a name and a factory", "method registry");
  if (methods_.count(info.name)) throw InputError("method '" + info.name + "' is registered twice", "method registry");
  methods_.emplace(info.name, std::move(info));
}

const MethodInfo* MethodRegistry::find(const std::string& name) const {
  auto it = methods_.find(name);
  return it == methods_.end() ? nullptr : &it->second;
}

std::vector<std::string> MethodRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : methods_) out.push_back(k);
  return out;
}

std::unique_ptr<Method> MethodRegistry::create(const AccelEntry& e, const std::string& file) {
  if (!e.plugin.empty() && !find(e.method)) plugins_.push_back(load_plugin(e.plugin, *this));
  const MethodInfo* info = find(e.method);
  if (!info) {
    std::string known;
    for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
    throw InputError("unknown acceleration method '" + e.method + "' (known: " + (known.empty() ? "none" : known) +
                         (e.plugin.empty() ? "; a plugin method needs plugin = \"path/lib.so\")" : ")"),
                     where_of(file, e, "method"));
  }
  nlohmann::json values = nlohmann::json::object();
  for (auto it = e.params.begin(); it != e.params.end(); ++it) {
    auto p = std::find_if(info->params.begin(), info->params.end(), [&](const ParamSpec& s) { return s.name == it.key(); });
    if (p == info->params.end()) {
      std::string known;
      for (const auto& s : info->params) known += (known.empty() ? "" : ", ") + s.name;
      throw InputError("unknown parameter '" + it.key() + "' for method " + e.method + " (parameters: " + known + ")",
                       where_of(file, e, it.key()));
    }
    values[it.key()] = check_value(*p, it.value(), where_of(file, e, it.key()), e.method);
  }
  for (const auto& p : info->params)
    if (!values.contains(p.name)) values[p.name] = p.default_value;
  return info->create(MethodParams(values));
}

std::vector<std::unique_ptr<Method>> MethodRegistry::create_all(const std::vector<AccelEntry>& entries,
                                                               const std::string& file) {
  std::vector<std::unique_ptr<Method>> out;
  for (size_t i = 0; i < entries.size(); ++i) {
    out.push_back(create(entries[i], file));
    for (size_t j = 0; j < i; ++j) {
      const MethodInfo* a = find(entries[i].method);
      const MethodInfo* b = find(entries[j].method);
      auto clash = [](const MethodInfo* x, const MethodInfo* y) {
        return std::find(x->incompatible.begin(), x->incompatible.end(), y->name) != x->incompatible.end();
      };
      if (entries[i].method == entries[j].method || clash(a, b) || clash(b, a))
        throw InputError("methods '" + entries[j].method + "' and '" + entries[i].method + "' cannot be stacked",
                         where_of(file, entries[i], "method"));
    }
  }
  return out;
}

}  // namespace diffbench
