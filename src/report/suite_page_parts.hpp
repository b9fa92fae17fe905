// What suite.html and sweep.html share: numbers for people, sort keys, a point's parameters as
// text, the link to a candidate's report, the pages' CSS and the script that marks a page ready.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "diffbench/report/html.hpp"
#include "util/format.hpp"

namespace diffbench::suite_page {

// A number of suite.json / sweep.json for people, or "–" where it is null or absent.
inline std::string num(const nlohmann::json& v, int digits) { return v.is_number() ? fixed(v.get<double>(), digits) : "–"; }

inline std::string str_at(const nlohmann::json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && obj[key].is_string() ? obj[key].get<std::string>() : std::string();
}

// A data- attribute's sort key: the full number, or "" (sorted last) when there is none.
inline std::string sort_key(const nlohmann::json& v) {
  if (!v.is_number() || !std::isfinite(v.get<double>())) return "";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v.get<double>());
  return buf;
}

// "key=value key=value" of a sweep point's parameters ("" for none).
inline std::string params_text(const nlohmann::json& params) {
  if (!params.is_object()) return "";
  std::string out;
  for (const auto& [k, v] : params.items()) out += (out.empty() ? "" : " ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

// "2.31× [2.20, 2.45]" from a row's speedup and speedup_ci ("–" when not measured).
inline std::string speedup_text(const nlohmann::json& row) {
  const nlohmann::json& s = row.value("speedup", nlohmann::json());
  if (!s.is_number()) return "–";
  std::string out = num(s, 2) + "×";
  const nlohmann::json& ci = row.value("speedup_ci", nlohmann::json());
  if (ci.is_array() && ci.size() == 2) out += " [" + num(ci[0], 2) + ", " + num(ci[1], 2) + "]";
  return out;
}

// A metric's name usable in a data- attribute: lower-case letters and digits only.
inline bool plain_name(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

// The link to a candidate's page: "NAME/report.json" becomes NAME/report.html (beside it), an
// error.json is linked as it is. Only a relative path inside the suite's folder becomes a link;
// anything else (absolute, a scheme, "..") is shown as text.
inline void report_link(html::Writer& w, const nlohmann::json& report) {
  if (!report.is_string()) {
    w.text("–");
    return;
  }
  std::string target = report.get<std::string>();
  const std::string json_name = "/report.json";
  const bool evaluated = target.size() > json_name.size() &&
                         target.compare(target.size() - json_name.size(), json_name.size(), json_name) == 0;
  if (evaluated) target = target.substr(0, target.size() - json_name.size()) + "/report.html";
  const bool relative = !target.empty() && target[0] != '/' && target.find(':') == std::string::npos &&
                        target.find("..") == std::string::npos && target.find('\\') == std::string::npos;
  if (!relative) {
    w.text(target);
    return;
  }
  w.element("a", {{"href", target}, {"class", evaluated ? "report" : "error"}}, evaluated ? "report" : "error.json");
}

inline constexpr const char* kCss = R"css(
td.bad { color: #b42318; font-weight: 600; } td.good { color: #1b7a35; }
td.name { max-width: 360px; overflow-wrap: anywhere; } td.reason { max-width: 420px; overflow-wrap: anywhere; }
div.params { font-family: ui-monospace, monospace; font-size: 12px; } div.file { font-size: 12px; }
div.message { font-size: 12px; color: #5f6b77; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; } figure.frontier { margin: 0; }
figure.frontier figcaption { font-size: 12px; color: #5f6b77; max-width: 560px; }
)css";

// Marks the body data-ready="1" once the page has loaded and its scripts ran to their end.
inline constexpr const char* kReadyScript =
    "\nwindow.addEventListener('load', function () { document.body.setAttribute('data-ready', '1'); });\n";

}  // namespace diffbench::suite_page
