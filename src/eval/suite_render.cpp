// suite.csv and suite.md: the suite's rows for a spreadsheet and for a person.
#include <cstdio>
#include <sstream>

#include "diffbench/eval/suite.hpp"

namespace diffbench {

namespace {

// A number with `digits` decimals, or "" (CSV) / "–" (Markdown) when null.
std::string num(const nlohmann::json& v, int digits, const char* missing) {
  if (!v.is_number()) return missing;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v.get<double>());
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string md_cell(std::string s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
  return out;
}

std::string params_text(const nlohmann::json& params) {
  if (!params.is_object()) return "";
  std::string out;
  for (const auto& [k, v] : params.items()) out += (out.empty() ? "" : " ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

// A candidate's report.html (beside its report.json), or its error.json.
std::string report_link(const std::string& report) {
  const std::string json = "/report.json";
  const bool evaluated = report.size() > json.size() && report.compare(report.size() - json.size(), json.size(), json) == 0;
  const std::string target = evaluated ? report.substr(0, report.size() - json.size()) + "/report.html" : report;
  return "[" + target + "](" + target + ")";
}

nlohmann::json ci(const nlohmann::json& row, size_t i) {
  const auto& c = row.value("speedup_ci", nlohmann::json());
  return c.is_array() && c.size() == 2 ? c[i] : nlohmann::json();
}

}  // namespace

std::string render_suite_csv(const nlohmann::json& s) {
  std::ostringstream o;
  o << "name,file,params,status,reason,reasons,speedup,speedup_ci_low,speedup_ci_high,quality_loss_pct,"
       "clip_baseline,clip_candidate,psnr_db,ssim,lpips,baseline_s_per_image,candidate_s_per_image,baseline_source,"
       "baseline_timing,message\n";
  for (const auto& r : s["rows"]) {
    std::string reasons;
    for (const auto& x : r.value("reasons", nlohmann::json::array())) reasons += (reasons.empty() ? "" : ";") + x.get<std::string>();
    const auto& messages = r.value("messages", nlohmann::json::array());
    const nlohmann::json none;
    const auto& base = r.value("baseline", nlohmann::json::object());
    const auto& clip = r.value("clip_score", nlohmann::json::object());
    const auto& spi = r.value("seconds_per_image", nlohmann::json::object());
    o << csv_field(r["name"].get<std::string>()) << ',' << csv_field(r.value("file", "")) << ','
      << csv_field(params_text(r.value("params", none))) << ',' << r["status"].get<std::string>() << ','
      << (r["reason"].is_string() ? r["reason"].get<std::string>() : "") << ',' << reasons << ','
      << num(r.value("speedup", none), 4, "") << ',' << num(ci(r, 0), 4, "") << ',' << num(ci(r, 1), 4, "") << ','
      << num(r.value("quality_loss_pct", none), 4, "") << ',' << num(clip.value("baseline", none), 4, "") << ','
      << num(clip.value("candidate", none), 4, "") << ',' << num(r.value("psnr_db", none), 3, "") << ','
      << num(r.value("ssim", none), 5, "") << ',' << num(r.value("lpips", none), 5, "") << ','
      << num(spi.value("baseline", none), 5, "") << ',' << num(spi.value("candidate", none), 5, "") << ','
      << base.value("source", "") << ',' << base.value("timing", "") << ','
      << csv_field(messages.empty() ? "" : messages[0].get<std::string>()) << '\n';
  }
  return o.str();
}

std::string render_suite_markdown(const nlohmann::json& s) {
  std::ostringstream o;
  const size_t n = s["candidates"].get<size_t>(), passed = s["passed_count"].get<size_t>();
  o << "# diffbench suite: " << passed << " of " << n << " candidates passed\n\n";
  o << "| result | candidates |\n| --- | --- |\n";
  for (const auto& [k, v] : s["tally"].items()) o << "| " << k << " | " << v.get<int>() << " |\n";
  const auto& b = s["baseline_runs"];
  o << "\nBaselines generated: " << b["generated"].get<int>() << ", taken from the cache: "
    << b["from_cache"].get<int>() << ", timed again beside a candidate: " << b["retimed_with_candidate"].get<int>()
    << ".\nRule: " << s["baseline_reuse_rule"].get<std::string>() << ".\n\n";
  o << "Thresholds: " << s["thresholds"].dump() << "\n\n";
  o << "| candidate | result | reason | speedup (95 % CI) | CLIP loss % | PSNR dB | SSIM | LPIPS | baseline | report |\n"
       "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  const nlohmann::json none;
  for (const auto& r : s["rows"]) {
    const std::string params = params_text(r.value("params", none));
    std::string speed = num(r.value("speedup", none), 2, "–");
    if (ci(r, 0).is_number()) speed += " (" + num(ci(r, 0), 2, "") + "–" + num(ci(r, 1), 2, "") + ")";
    const auto& base = r.value("baseline", nlohmann::json::object());
    std::string reason = r["reason"].is_string() ? r["reason"].get<std::string>() : "";
    const auto& messages = r.value("messages", nlohmann::json::array());
    if (!messages.empty()) reason += ": " + messages[0].get<std::string>();
    o << "| " << md_cell(r["name"].get<std::string>()) << (params.empty() ? "" : " (" + md_cell(params) + ")") << " | "
      << (r["status"] == "passed" ? "PASSED" : "FAILED") << " | " << md_cell(reason) << " | " << speed << " | "
      << num(r.value("quality_loss_pct", none), 2, "–") << " | " << num(r.value("psnr_db", none), 2, "–") << " | "
      << num(r.value("ssim", none), 4, "–") << " | " << num(r.value("lpips", none), 4, "–") << " | "
      << (base.empty() ? "–" : base.value("source", "") + ", times " + base.value("timing", "")) << " | "
      << report_link(r["report"].get<std::string>()) << " |\n";
  }
  return o.str();
}

}  // namespace diffbench
