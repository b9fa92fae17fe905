#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "diffbench/accel/method.hpp"
#include "diffbench/accel/plugin.hpp"
#include "diffbench/error.hpp"

namespace diffbench {

namespace {

std::string where_of(const std::string& file, const AccelEntry& e, const std::string& key = {}) {
  auto it = e.lines.find(key);
  const int line = it != e.lines.end() ? it->second : e.line;
  return line > 0 ? file + ":" + std::to_string(line) : file;  // 0: not from a file (--accel)
}

std::string number(double x) {
  std::ostringstream o;
  if (x == std::floor(x) && std::abs(x) < 1e15) o << static_cast<int64_t>(x);
  else o << x;
  return o.str();
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
    if ((p.min && (x < *p.min || (p.min_exclusive && x == *p.min))) || (p.max && x > *p.max)) {
      std::ostringstream range;
      range << (p.min_exclusive ? "(" : "[") << (p.min ? number(*p.min) : std::string("-inf")) << ", "
            << (p.max ? number(*p.max) : std::string("inf")) << "]";
      throw InputError(what + " = " + v.dump() + " is outside " + range.str(), where);
    }
  }
  return out;
}

}  // namespace

AccelEntry parse_accel_arg(const std::string& text, const std::string& option) {
  const std::string where = option + " " + text;
  auto bad = [&](const std::string& why) {
    return UsageError(why + " (expected METHOD[:key=value,...], e.g. deepcache:cache_interval=3)", where);
  };
  AccelEntry e;
  const auto colon = text.find(':');
  e.method = text.substr(0, colon);
  if (e.method.empty()) throw bad("no method name");
  if (e.method.find_first_of("=, ") != std::string::npos) throw bad("bad method name '" + e.method + "'");
  if (colon == std::string::npos) return e;
  const std::string rest = text.substr(colon + 1);
  if (rest.empty()) throw bad("nothing after ':'");
  size_t pos = 0;
  while (pos <= rest.size()) {
    const size_t comma = std::min(rest.find(',', pos), rest.size());
    const std::string item = rest.substr(pos, comma - pos);
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) throw bad("'" + item + "' is not key=value");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (value.empty()) throw bad("no value for '" + key + "'");
    if (e.params.contains(key) || (key == "plugin" && !e.plugin.empty())) throw bad("'" + key + "' given twice");
    if (key == "plugin") {
      e.plugin = value;
    } else if (value == "true" || value == "false") {
      e.params[key] = value == "true";
    } else {
      char* end = nullptr;
      errno = 0;
      const long long i = std::strtoll(value.c_str(), &end, 10);
      if (*end == '\0' && errno == 0) {
        e.params[key] = static_cast<int64_t>(i);
      } else {
        errno = 0;
        const double d = std::strtod(value.c_str(), &end);
        if (*end == '\0' && errno == 0 && std::isfinite(d) && value.find_first_of("0123456789") != std::string::npos)
          e.params[key] = d;
        else
          e.params[key] = value;
      }
    }
    e.lines[key] = 0;
    pos = comma + 1;
  }
  return e;
}

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
  if (!e.plugin.empty() && !find(e.method)) {
    try {
      plugins_.push_back(load_plugin(e.plugin, *this));
    } catch (const InputError& err) {
      throw InputError(err.message() + " (plugin " + err.where() + " for method '" + e.method + "')",
                       where_of(file, e, "plugin"));
    }
  }
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
