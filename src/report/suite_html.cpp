// suite.html: the suite's tally and one row per candidate (sweep.html is in sweep_html.cpp).
#include "diffbench/report/suite_html.hpp"

#include <algorithm>
#include <set>

#include "diffbench/io/staging_dir.hpp"
#include "diffbench/report/html.hpp"
#include "report/suite_page_parts.hpp"

namespace diffbench {

namespace {

using nlohmann::json;
using html::Writer;

// The fixed metric columns: the row's field, header, sort key, digits, worst-first direction.
struct MetricColumn {
  const char* field;
  const char* label;
  const char* sort;
  int digits;
  const char* worst;
};
const MetricColumn kColumns[] = {{"quality_loss_pct", "CLIP loss %", "clip-loss", 2, "desc"},
                                 {"psnr_db", "PSNR dB", "psnr", 2, "asc"},
                                 {"ssim", "SSIM", "ssim", 4, "asc"},
                                 {"lpips", "LPIPS", "lpips", 4, "desc"}};

bool any_number(const json& rows, const std::string& field) {
  for (const auto& r : rows)
    if (r.value(field, json()).is_number()) return true;
  return false;
}

// Metrics with a relative loss beyond those of kColumns (PickScore, HPS, KID, FID): their names.
std::vector<std::string> extra_losses(const json& rows) {
  std::set<std::string> names;
  for (const auto& r : rows) {
    const json losses = r.value("metric_loss_pct", json::object());
    for (const auto& [name, v] : losses.items())
      if (name != "clip" && name != "ssim" && suite_page::plain_name(name)) names.insert(name);
  }
  return {names.begin(), names.end()};
}

void tally_section(Writer& w, const json& s) {
  const size_t n = s.value("candidates", size_t{0}), passed = s.value("passed_count", size_t{0});
  const bool all = s.value("passed", false);
  w.open("div", {{"class", std::string("verdict ") + (all ? "pass" : "fail")}, {"id", "verdict"}});
  w.element("span", {{"class", "word"}}, all ? "PASSED" : "FAILED");
  w.text(std::to_string(passed) + " of " + std::to_string(n) + " candidates passed").close();
  // passed first, then the reasons in the vocabulary's order, then any other key.
  const json& tally = s.value("tally", json::object());
  std::vector<std::string> order = {"passed"};
  for (const auto& r : s.value("reasons_vocabulary", json::array())) order.push_back(r.get<std::string>());
  for (const auto& [k, v] : tally.items())
    if (std::find(order.begin(), order.end(), k) == order.end()) order.push_back(k);
  w.open("table", {{"class", "tally"}, {"id", "tally"}}).open("thead").open("tr");
  w.element("th", {}, "result").element("th", {{"class", "num"}}, "candidates").close().close().open("tbody");
  for (const auto& k : order) {
    if (!tally.contains(k)) continue;
    w.open("tr", {{"data-reason", k}}).open("td").element("code", {}, k).close();
    w.element("td", {{"class", "num"}}, tally[k].dump()).close();
  }
  w.close().close();
  const json& b = s.value("baseline_runs", json::object());
  w.element("p", {}, "Baselines generated: " + b.value("generated", json(0)).dump() + ", taken from the cache: " +
                         b.value("from_cache", json(0)).dump() + ", timed again beside a candidate: " +
                         b.value("retimed_with_candidate", json(0)).dump() + ". Rule: " +
                         suite_page::str_at(s, "baseline_reuse_rule") + ".");
  std::string th;
  const json thresholds = s.value("thresholds", json::object());
  for (const auto& [k, v] : thresholds.items())
    th += (th.empty() ? "" : ", ") + k + " " + (v.is_number() ? suite_page::num(v, 3) : v.dump());
  w.element("p", {}, "Thresholds: " + (th.empty() ? std::string("none") : th) + ".");
}

void candidates_table(Writer& w, const json& rows) {
  std::vector<const MetricColumn*> metrics;
  for (const auto& c : kColumns)
    if (any_number(rows, c.field)) metrics.push_back(&c);
  const std::vector<std::string> extra = extra_losses(rows);
  w.element("h2", {}, "Candidates");
  w.element("p", {}, "Click a column to sort by it (worst first, again to reverse).");
  w.open("table", {{"class", "candidates"}, {"id", "candidates"}}).open("thead").open("tr");
  w.element("th", {{"class", "num"}, {"data-sort", "index"}, {"data-worst", "asc"}}, "#");
  w.element("th", {}, "candidate").element("th", {}, "result").element("th", {}, "reason");
  w.element("th", {{"class", "num"}, {"data-sort", "speedup"}, {"data-worst", "asc"}}, "speedup [95 % CI]");
  for (const auto* c : metrics) w.element("th", {{"class", "num"}, {"data-sort", c->sort}, {"data-worst", c->worst}}, c->label);
  for (const auto& e : extra)
    w.element("th", {{"class", "num"}, {"data-sort", "loss-" + e}, {"data-worst", "desc"}}, e + " loss %");
  w.element("th", {{"class", "num"}}, "s / image (baseline → candidate)").element("th", {}, "baseline").element("th", {}, "report");
  w.close().close().open("tbody");
  for (size_t i = 0; i < rows.size(); ++i) {
    const json& r = rows[i];
    const bool passed = r.value("status", "") == "passed";
    html::Attrs attrs = {{"class", "candidate-row"}, {"data-index", std::to_string(i)},
                         {"data-status", passed ? "passed" : "failed"},
                         {"data-speedup", suite_page::sort_key(r.value("speedup", json()))}};
    for (const auto* c : metrics) attrs.push_back({std::string("data-") + c->sort, suite_page::sort_key(r.value(c->field, json()))});
    const json& losses = r.value("metric_loss_pct", json::object());
    for (const auto& e : extra) attrs.push_back({"data-loss-" + e, suite_page::sort_key(losses.value(e, json()))});
    w.open("tr", attrs);
    w.element("td", {{"class", "num"}}, std::to_string(i));
    w.open("td", {{"class", "name"}}).element("strong", {}, suite_page::str_at(r, "name"));
    const std::string params = suite_page::params_text(r.value("params", json()));
    if (!params.empty()) w.element("div", {{"class", "params"}}, params);
    if (!suite_page::str_at(r, "file").empty()) w.element("div", {{"class", "muted file"}}, suite_page::str_at(r, "file"));
    w.close();
    w.element("td", {{"class", passed ? "good" : "bad"}}, passed ? "PASSED" : "FAILED");
    w.open("td", {{"class", "reason"}});
    if (r.value("reason", json()).is_string()) w.element("code", {}, r["reason"].get<std::string>());
    for (const auto& m : r.value("messages", json::array()))
      if (m.is_string()) w.element("div", {{"class", "message"}}, m.get<std::string>());
    w.close();
    w.element("td", {{"class", "num"}}, suite_page::speedup_text(r));
    for (const auto* c : metrics) w.element("td", {{"class", "num"}}, suite_page::num(r.value(c->field, json()), c->digits));
    for (const auto& e : extra) w.element("td", {{"class", "num"}}, suite_page::num(losses.value(e, json()), 2));
    const json& spi = r.value("seconds_per_image", json::object());
    w.element("td", {{"class", "num"}},
              suite_page::num(spi.value("baseline", json()), 4) + " → " + suite_page::num(spi.value("candidate", json()), 4));
    const json& base = r.value("baseline", json::object());
    w.element("td", {}, base.empty() ? "–" : suite_page::str_at(base, "source") + ", times " + suite_page::str_at(base, "timing"));
    w.open("td");
    suite_page::report_link(w, r.value("report", json()));
    w.close();
    w.close();
  }
  w.close().close();
}

void protocol_section(Writer& w, const json& s) {
  const json& p = s.value("protocol", json::object());
  w.element("h2", {}, "Protocol");
  w.open("table", {{"class", "protocol"}}).open("tbody");
  for (const auto& [k, v] : p.items())
    w.open("tr").element("th", {}, k).element("td", {}, v.is_string() ? v.get<std::string>() : v.dump()).close();
  w.close().close();
  w.element("p", {{"class", "muted"}}, "Every number at full precision: suite.json beside this page (suite.csv for a spreadsheet).");
}

}  // namespace

std::string render_suite_html(const json& s) {
  Writer w;
  w.element("h1", {}, "diffbench suite");
  tally_section(w, s);
  candidates_table(w, s.value("rows", json::array()));
  protocol_section(w, s);
  return html::page("diffbench suite", w.str(), suite_page::kCss, std::string(html::kSortScript) + suite_page::kReadyScript);
}

void write_suite_pages(const std::filesystem::path& dir, const json& suite, const json& sweep) {
  write_file_atomic(dir / "suite.html", render_suite_html(suite));
  if (!sweep.is_null()) write_file_atomic(dir / "sweep.html", render_sweep_html(sweep));
}

}  // namespace diffbench
