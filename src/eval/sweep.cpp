// `diffbench sweep`: a grid over a spec's fields and method parameters, run as a suite, and the
// speed/quality frontier of its points.
#include "diffbench/eval/sweep.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "diffbench/accel/method.hpp"
#include "diffbench/error.hpp"
#include "diffbench/pipeline/device.hpp"

namespace diffbench {

namespace {

constexpr const char* kGrid = "--grid";

std::optional<int64_t> parse_int(const std::string& v) {
  if (v.empty()) return std::nullopt;
  size_t used = 0;
  try {
    const long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::optional<double> parse_double(const std::string& v) {
  if (v.empty()) return std::nullopt;
  size_t used = 0;
  try {
    const double x = std::stod(v, &used);
    if (used == v.size() && std::isfinite(x)) return x;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// The entry `key` addresses (METHOD.param or accelerate[N].param) and the parameter's name.
std::pair<AccelEntry*, std::string> method_param(PipelineSpec& spec, const std::string& key) {
  const auto dot = key.rfind('.');
  const std::string head = key.substr(0, dot), param = key.substr(dot + 1);
  if (param.empty()) throw UsageError("'" + key + "' names no parameter", kGrid);
  if (head.rfind("accelerate[", 0) == 0 && head.back() == ']') {
    const auto n = parse_int(head.substr(11, head.size() - 12));
    if (!n || *n < 0 || *n >= static_cast<int64_t>(spec.accelerate.size()))
      throw UsageError("'" + key + "': the spec has " + std::to_string(spec.accelerate.size()) +
                           " [[accelerate]] entries (accelerate[0] is the first)",
                       kGrid);
    return {&spec.accelerate[static_cast<size_t>(*n)], param};
  }
  AccelEntry* found = nullptr;
  int count = 0;
  for (auto& e : spec.accelerate)
    if (e.method == head) {
      found = &e;
      ++count;
    }
  if (count == 0) throw UsageError("'" + key + "': the spec has no [[accelerate]] entry of method '" + head + "'", kGrid);
  if (count > 1)
    throw UsageError("'" + key + "': the spec has " + std::to_string(count) + " entries of '" + head +
                         "'; name one as accelerate[N]." + param,
                     kGrid);
  return {found, param};
}

// A method parameter's value typed as the method declares it (a plugin's parameters: guessed).
nlohmann::json typed_param(const AccelEntry& e, const std::string& key, const std::string& param, const std::string& v) {
  const MethodRegistry registry = MethodRegistry::with_builtins();
  const MethodInfo* info = e.plugin.empty() ? registry.find(e.method) : nullptr;
  std::optional<ParamSpec::Type> type;
  if (info) {
    for (const auto& p : info->params)
      if (p.name == param) type = p.type;
    if (!type) {
      std::string names;
      for (const auto& p : info->params) names += (names.empty() ? "" : ", ") + p.name;
      throw UsageError("'" + key + "': method '" + e.method + "' has no parameter '" + param + "' (it has " + names + ")",
                       kGrid);
    }
  }
  auto bad = [&](const char* what) { return UsageError("'" + key + "=" + v + "': expected " + what, kGrid); };
  if (v == "true" || v == "false") {
    if (type && *type != ParamSpec::Type::Bool) throw bad("a number or text, not a boolean");
    return v == "true";
  }
  if (type == ParamSpec::Type::Bool) throw bad("true or false");
  if (type == ParamSpec::Type::String) return v;
  if (const auto i = parse_int(v); i && type != ParamSpec::Type::Float) return *i;
  if (const auto d = parse_double(v)) {
    if (type == ParamSpec::Type::Int) throw bad("an integer");
    return *d;
  }
  if (type) throw bad(*type == ParamSpec::Type::Int ? "an integer" : "a number");
  return v;
}

std::string fmt(const nlohmann::json& v, int digits) {
  if (!v.is_number()) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v.get<double>());
  return buf;
}

struct MetricAxis {
  const char* field;  // the suite row's field
  const char* label;
  bool higher_is_better;
};
const MetricAxis kMetrics[] = {{"quality_loss_pct", "CLIP quality loss %", false},
                               {"psnr_db", "PSNR dB", true},
                               {"ssim", "SSIM", true},
                               {"lpips", "LPIPS", false}};

}  // namespace

GridAxis parse_grid(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw UsageError("expected KEY=V1,V2,... (got '" + text + "')", kGrid);
  GridAxis axis;
  axis.key = text.substr(0, eq);
  std::stringstream values(text.substr(eq + 1));
  std::string v;
  while (std::getline(values, v, ',')) {
    if (v.empty()) throw UsageError("an empty value in '" + text + "'", kGrid);
    axis.values.push_back(v);
  }
  if (text.back() == ',') throw UsageError("an empty value in '" + text + "'", kGrid);
  return axis;
}

void apply_grid_value(PipelineSpec& spec, const std::string& key, const std::string& v) {
  if (key == "steps" || key == "height" || key == "width") {
    const auto i = parse_int(v);
    const int64_t min = key == "steps" ? 1 : 8;
    if (!i || *i < min || *i > (key == "steps" ? 100000 : kMaxImageSide))
      throw UsageError("'" + key + "=" + v + "': expected an integer >= " + std::to_string(min), kGrid);
    (key == "steps" ? spec.steps : key == "height" ? spec.height : spec.width) = static_cast<int>(*i);
  } else if (key == "guidance") {
    const auto d = parse_double(v);
    if (!d || *d < 0) throw UsageError("'guidance=" + v + "': expected a finite number >= 0", kGrid);
    spec.guidance = *d;
  } else if (key == "scheduler") {
    spec.scheduler = v;
  } else if (key == "dtype") {
    if (!is_dtype_name(v)) throw UsageError("'dtype=" + v + "': expected " + kDtypeNames, kGrid);
    spec.dtype = v;
  } else if (key.find('.') != std::string::npos) {
    auto [entry, param] = method_param(spec, key);
    if (param == "method" || param == "plugin") throw UsageError("'" + key + "': a method is not a grid value", kGrid);
    entry->params[param] = typed_param(*entry, key, param, v);
  } else {
    throw UsageError("unknown key '" + key +
                         "' (steps, scheduler, guidance, height, width, dtype, METHOD.param or accelerate[N].param)",
                     kGrid);
  }
}

std::vector<SuiteCandidate> sweep_candidates(const PipelineSpec& spec, const std::vector<GridAxis>& grid) {
  if (grid.empty()) throw UsageError("give at least one --grid KEY=V1,V2,...", kGrid);
  for (size_t a = 0; a < grid.size(); ++a)
    for (size_t b = 0; b < a; ++b)
      if (grid[a].key == grid[b].key) throw UsageError("'" + grid[a].key + "' is given twice", kGrid);
  // Every key and value is checked on the spec before anything runs.
  for (const auto& axis : grid)
    for (const auto& v : axis.values) {
      PipelineSpec probe = spec;
      apply_grid_value(probe, axis.key, v);
    }
  std::vector<SuiteCandidate> out;
  std::vector<size_t> at(grid.size(), 0);
  while (true) {
    SuiteCandidate c;
    PipelineSpec point = spec;
    c.params = nlohmann::json::object();
    c.name = spec.name;
    for (size_t a = 0; a < grid.size(); ++a) {
      const std::string& v = grid[a].values[at[a]];
      apply_grid_value(point, grid[a].key, v);
      c.params[grid[a].key] = v;
      c.name += "-" + grid[a].key + "=" + v;
    }
    point.name = c.name;
    try {  // a value out of a method's range fails this point only (invalid_spec)
      MethodRegistry::with_builtins().create_all(point.accelerate, spec.file.string());
    } catch (const Error& e) {
      c.error = e.message() + " (" + e.where() + ")";
    }
    c.spec = point;
    c.allow_identical = true;
    out.push_back(std::move(c));
    size_t a = grid.size();
    while (a > 0 && ++at[a - 1] == grid[a - 1].values.size()) at[--a] = 0;
    if (a == 0) break;
  }
  return out;
}

std::vector<bool> pareto_front(const std::vector<FrontierPoint>& points, bool higher) {
  auto better_or_equal = [&](double a, double b) { return higher ? a >= b : a <= b; };
  std::vector<bool> out(points.size(), false);
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    if (!p.x || !p.y) continue;
    bool dominated = false;
    for (size_t j = 0; j < points.size() && !dominated; ++j) {
      const auto& q = points[j];
      if (j == i || !q.x || !q.y) continue;
      dominated = *q.x >= *p.x && better_or_equal(*q.y, *p.y) && (*q.x > *p.x || *q.y != *p.y);
    }
    out[i] = !dominated;
  }
  return out;
}

nlohmann::json sweep_json(const PipelineSpec& spec, const std::vector<GridAxis>& grid, const nlohmann::json& suite) {
  nlohmann::json g = nlohmann::json::array();
  for (const auto& axis : grid) g.push_back({{"key", axis.key}, {"values", axis.values}});
  nlohmann::json points = nlohmann::json::array();
  for (const auto& row : suite["rows"]) {
    nlohmann::json p = {{"name", row["name"]},
                        {"params", row["params"]},
                        {"status", row["status"]},
                        {"reason", row["reason"]},
                        {"speedup", row.value("speedup", nlohmann::json())},
                        {"speedup_ci", row.value("speedup_ci", nlohmann::json())},
                        {"report", row["report"]}};
    for (const auto& m : kMetrics) p[m.field] = row.value(m.field, nlohmann::json());
    points.push_back(p);
  }
  nlohmann::json frontiers = nlohmann::json::object();
  for (const auto& m : kMetrics) {
    std::vector<FrontierPoint> fp;
    bool any = false;
    for (const auto& p : points) {
      FrontierPoint f;
      if (p["speedup"].is_number()) f.x = p["speedup"].get<double>();
      if (p[m.field].is_number()) {
        f.y = p[m.field].get<double>();
        any = true;
      }
      fp.push_back(f);
    }
    if (!any) continue;  // not computed in this sweep
    const std::vector<bool> optimal = pareto_front(fp, m.higher_is_better);
    nlohmann::json pts = nlohmann::json::array(), line = nlohmann::json::array();
    std::vector<std::pair<double, std::string>> on_front;
    for (size_t i = 0; i < points.size(); ++i) {
      pts.push_back({{"name", points[i]["name"]}, {"x", points[i]["speedup"]}, {"y", points[i][m.field]},
                     {"pareto", static_cast<bool>(optimal[i])}});
      if (optimal[i]) on_front.emplace_back(*fp[i].x, points[i]["name"].get<std::string>());
    }
    std::sort(on_front.begin(), on_front.end());
    for (const auto& [x, name] : on_front) line.push_back(name);
    frontiers[m.field] = {{"x", "speedup"},
                          {"y", m.field},
                          {"label", m.label},
                          {"direction", m.higher_is_better ? "higher-is-better" : "lower-is-better"},
                          {"points", pts},
                          {"frontier", line}};
  }
  return {{"schema", "diffbench.sweep/1"},
          {"spec", spec.to_json()},
          {"grid", g},
          {"baseline_runs", suite["baseline_runs"]},
          {"tally", suite["tally"]},
          {"points", points},
          {"frontiers", frontiers}};
}

std::string render_sweep_markdown(const nlohmann::json& s) {
  std::ostringstream o;
  o << "# diffbench sweep: " << s["spec"]["name"].get<std::string>() << "\n\nGrid:";
  for (const auto& a : s["grid"]) {
    std::string values;
    for (const auto& v : a["values"]) values += (values.empty() ? "" : ", ") + v.get<std::string>();
    o << " `" << a["key"].get<std::string>() << "` = " << values << ";";
  }
  o << " " << s["points"].size() << " points against one baseline (the spec without its accelerations).\n\n";
  o << "| point | result | speedup (95 % CI) |";
  for (const auto& m : kMetrics) o << " " << m.label << " |";
  o << "\n| --- | --- | --- |";
  for (size_t i = 0; i < std::size(kMetrics); ++i) o << " --- |";
  o << "\n";
  for (const auto& p : s["points"]) {
    std::string params;
    for (const auto& [k, v] : p["params"].items()) params += (params.empty() ? "" : " ") + k + "=" + v.get<std::string>();
    std::string speed = fmt(p["speedup"], 2);
    if (p["speedup_ci"].is_array() && p["speedup_ci"].size() == 2)
      speed += " (" + fmt(p["speedup_ci"][0], 2) + "–" + fmt(p["speedup_ci"][1], 2) + ")";
    o << "| " << params << " | " << (p["status"] == "passed" ? "PASSED" : "FAILED: " + p["reason"].get<std::string>())
      << " | " << speed << " |";
    for (const auto& m : kMetrics) {
      const auto& f = s["frontiers"].value(m.field, nlohmann::json());
      bool star = false;
      if (!f.is_null())
        for (const auto& pt : f["points"])
          if (pt["name"] == p["name"]) star = pt["pareto"].get<bool>();
      o << " " << fmt(p[m.field], m.field == std::string("ssim") || m.field == std::string("lpips") ? 4 : 2)
        << (star ? " ★" : "") << " |";
    }
    o << "\n";
  }
  o << "\n★ on the speed/quality frontier of that metric (no other point is both faster and better).\n";
  for (const auto& [field, f] : s["frontiers"].items()) {
    o << "\nFrontier, speedup vs " << f["label"].get<std::string>() << " (" << f["direction"].get<std::string>()
      << "), fastest last:";
    for (const auto& name : f["frontier"]) o << " " << name.get<std::string>() << ";";
    o << "\n";
  }
  return o.str();
}

}  // namespace diffbench
