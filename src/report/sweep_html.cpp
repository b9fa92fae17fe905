// sweep.html: the speed/quality frontier of a sweep's points, one plot per quality metric, drawn
// from sweep.json's own `pareto` flags and `frontier` order (so the page and the JSON agree).
#include <algorithm>
#include <map>

#include "diffbench/report/html.hpp"
#include "diffbench/report/suite_html.hpp"
#include "diffbench/report/svg.hpp"
#include "report/suite_page_parts.hpp"

namespace diffbench {

namespace {

using nlohmann::json;
using html::Writer;

constexpr const char* kOptimalColour = "#e8590c";
constexpr const char* kOtherColour = "#8c96a0";

// The metrics in the order the page shows them (sweep.json's keys are sorted by name); others last.
std::vector<std::string> metric_order(const json& frontiers) {
  std::vector<std::string> out;
  for (const char* m : {"quality_loss_pct", "psnr_db", "ssim", "lpips"})
    if (frontiers.contains(m)) out.push_back(m);
  for (const auto& [k, v] : frontiers.items())
    if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
  return out;
}

int digits(const std::string& field) { return field == "ssim" || field == "lpips" ? 4 : 2; }

// A point's grid values in the grid's order (sweep.json's params are sorted by key): "2, 0" as a
// label on the plot (the point's name when it has none), "key=value key=value" in the tables.
std::string grid_values(const json& point, const json& grid, bool with_keys) {
  const json& params = point.value("params", json::object());
  std::string out;
  for (const auto& axis : grid) {
    const std::string key = suite_page::str_at(axis, "key");
    if (!params.is_object() || !params.contains(key)) continue;
    const json& v = params[key];
    out += (out.empty() ? "" : with_keys ? " " : ", ") + (with_keys ? key + "=" : "") +
           (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}
std::string short_label(const json& point, const json& grid) {
  const std::string out = grid_values(point, grid, false);
  return out.empty() ? suite_page::str_at(point, "name") : out;
}
std::string grid_params(const json& point, const json& grid) { return grid_values(point, grid, true); }

// The grid's keys as text, "deepcache.cache_interval, deepcache.cache_branch_id".
std::string grid_keys(const json& grid) {
  std::string out;
  for (const auto& axis : grid) out += (out.empty() ? "" : ", ") + suite_page::str_at(axis, "key");
  return out;
}

void frontier_plot(Writer& w, const std::string& field, const json& f, const json& points, const json& grid) {
  std::map<std::string, const json*> by_name;
  for (const auto& p : points) by_name[suite_page::str_at(p, "name")] = &p;
  const std::string label = suite_page::str_at(f, "label");
  const bool higher = suite_page::str_at(f, "direction") == "higher-is-better";
  svg::Series other{"other points", kOtherColour, {}, {}, {}, false, true, {}, "point"};
  svg::Series optimal{"Pareto-optimal", kOptimalColour, {}, {}, {}, false, true, {}, "point pareto"};
  std::vector<std::string> not_plotted;
  size_t plotted = 0;
  for (const auto& p : f.value("points", json::array())) {
    const std::string name = suite_page::str_at(p, "name");
    const auto it = by_name.find(name);
    const json& point = it == by_name.end() ? p : *it->second;
    if (!p.value("x", json()).is_number() || !p.value("y", json()).is_number()) {
      not_plotted.push_back(short_label(point, grid) + (point.value("reason", json()).is_string()
                                                            ? " (" + point["reason"].get<std::string>() + ")"
                                                            : std::string(" (no value)")));
      continue;
    }
    const bool on = p.value("pareto", false);
    svg::Series& s = on ? optimal : other;
    s.x.push_back(p["x"].get<double>());
    s.y.push_back(p["y"].get<double>());
    s.labels.push_back(short_label(point, grid));
    s.tips.push_back(grid_params(point, grid) + ": speedup " + suite_page::speedup_text(point) +
                     ", " + label + " " + suite_page::num(p["y"], digits(field)) + (on ? " (Pareto-optimal)" : ""));
    ++plotted;
  }
  // The frontier line, through the optimal points in sweep.json's `frontier` order (increasing speedup).
  svg::Series line{"", kOptimalColour, {}, {}, {}, true, false, {}, ""};
  for (const auto& name : f.value("frontier", json::array()))
    for (const auto& p : f.value("points", json::array()))
      if (p.value("name", json()) == name && p.value("x", json()).is_number() && p.value("y", json()).is_number()) {
        line.x.push_back(p["x"].get<double>());
        line.y.push_back(p["y"].get<double>());
        break;
      }
  std::vector<svg::Series> series = {other, optimal};
  if (line.x.size() >= 2) series.insert(series.begin(), line);
  svg::PlotOptions po;
  po.title = "Speedup vs " + label;
  po.x_label = "speedup (×, right is faster)";
  po.y_label = label + (higher ? " (higher is better)" : " (lower is better)");
  po.width = 560;
  po.height = 400;
  w.open("figure", {{"class", "frontier"}, {"data-metric", field}, {"data-points", std::to_string(plotted)},
                    {"data-pareto", std::to_string(optimal.x.size())}});
  w.trusted(svg::plot(series, po));
  std::string caption = "Each point is a candidate labelled with its values of " + grid_keys(grid) +
                        "; the line joins the Pareto-optimal ones (no other point is at least as fast and at least as "
                        "good, and better in one).";
  if (!not_plotted.empty()) {
    caption += " Not plotted (no speedup or no " + label + "):";
    for (const auto& n : not_plotted) caption += " " + n + ";";
  }
  w.element("figcaption", {}, caption);
  w.close();
}

void points_table(Writer& w, const json& s) {
  const json& points = s.value("points", json::array());
  const json& frontiers = s.value("frontiers", json::object());
  const std::vector<std::string> metrics = metric_order(frontiers);
  w.element("h2", {}, "Points");
  w.element("p", {}, "★: on that metric's frontier. Click a column to sort by it (worst first, again to reverse).");
  w.open("table", {{"class", "points"}, {"id", "points"}}).open("thead").open("tr");
  w.element("th", {{"class", "num"}, {"data-sort", "index"}, {"data-worst", "asc"}}, "#");
  w.element("th", {}, "parameters").element("th", {}, "result");
  w.element("th", {{"class", "num"}, {"data-sort", "speedup"}, {"data-worst", "asc"}}, "speedup [95 % CI]");
  for (size_t k = 0; k < metrics.size(); ++k) {
    const json& f = frontiers[metrics[k]];
    w.element("th", {{"class", "num"}, {"data-sort", "m-" + std::to_string(k)},
                     {"data-worst", suite_page::str_at(f, "direction") == "higher-is-better" ? "asc" : "desc"}},
              suite_page::str_at(f, "label"));
  }
  w.element("th", {}, "report").close().close().open("tbody");
  for (size_t i = 0; i < points.size(); ++i) {
    const json& p = points[i];
    html::Attrs attrs = {{"class", "point-row"}, {"data-index", std::to_string(i)},
                         {"data-speedup", suite_page::sort_key(p.value("speedup", json()))}};
    for (size_t k = 0; k < metrics.size(); ++k)
      attrs.push_back({"data-m-" + std::to_string(k), suite_page::sort_key(p.value(metrics[k], json()))});
    w.open("tr", attrs).element("td", {{"class", "num"}}, std::to_string(i));
    w.open("td").element("div", {{"class", "params"}}, grid_params(p, s.value("grid", json::array())));
    w.element("div", {{"class", "muted"}}, suite_page::str_at(p, "name")).close();
    const bool passed = suite_page::str_at(p, "status") == "passed";
    w.element("td", {{"class", passed ? "good" : "bad"}},
              passed ? std::string("PASSED") : "FAILED" + (p.value("reason", json()).is_string()
                                                               ? ": " + p["reason"].get<std::string>()
                                                               : std::string()));
    w.element("td", {{"class", "num"}}, suite_page::speedup_text(p));
    for (const auto& m : metrics) {
      bool star = false;
      for (const auto& q : frontiers[m].value("points", json::array()))
        if (q.value("name", json()) == p.value("name", json())) star = q.value("pareto", false);
      w.element("td", {{"class", "num"}}, suite_page::num(p.value(m, json()), digits(m)) + (star ? " ★" : ""));
    }
    w.open("td");
    suite_page::report_link(w, p.value("report", json()));
    w.close().close();
  }
  w.close().close();
}

}  // namespace

std::string render_sweep_html(const json& s) {
  const json& grid = s.value("grid", json::array());
  const json& points = s.value("points", json::array());
  const json& frontiers = s.value("frontiers", json::object());
  const std::string name = s.contains("spec") ? suite_page::str_at(s["spec"], "name") : std::string();
  Writer w;
  w.element("h1", {}, "diffbench sweep: " + name);
  std::string g;
  for (const auto& axis : grid) {
    std::string values;
    for (const auto& v : axis.value("values", json::array())) values += (values.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : v.dump());
    g += (g.empty() ? "" : "; ") + suite_page::str_at(axis, "key") + " = " + values;
  }
  w.element("p", {}, "Grid: " + g + ". " + std::to_string(points.size()) +
                         " points against one baseline (the spec without its accelerations, unless --baseline).");
  std::string tally;
  const json results = s.value("tally", json::object());
  for (const auto& [k, v] : results.items()) tally += (tally.empty() ? "" : ", ") + k + " " + v.dump();
  const json& b = s.value("baseline_runs", json::object());
  w.element("p", {}, "Results: " + tally + ". Baselines generated: " + b.value("generated", json(0)).dump() +
                         ", taken from the cache: " + b.value("from_cache", json(0)).dump() + ".");
  w.element("h2", {}, "Speed/quality frontier");
  w.open("div", {{"class", "plots"}});
  for (const auto& m : metric_order(frontiers)) frontier_plot(w, m, frontiers[m], points, grid);
  w.close();
  if (frontiers.empty()) w.element("p", {{"class", "warning"}}, "No point has both a speedup and a quality metric: no frontier.");
  points_table(w, s);
  w.element("p", {{"class", "muted"}},
            "Every number at full precision: sweep.json beside this page; suite.html has every candidate's reasons.");
  return html::page("diffbench sweep: " + name, w.str(), suite_page::kCss,
                    std::string(html::kSortScript) + suite_page::kReadyScript);
}

}  // namespace diffbench
