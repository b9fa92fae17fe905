#include "report/distribution_markdown.hpp"

#include <sstream>

#include "util/format.hpp"

namespace diffbench {

namespace {

std::string num(const nlohmann::json& v, int digits) { return v.is_number() ? fixed(v.get<double>(), digits) : "n/a"; }

std::string signed_num(const nlohmann::json& v, int digits) {
  return v.is_number() && v.get<double>() >= 0 ? "+" + num(v, digits) : num(v, digits);
}

// "KID mean ± std" from a kid_json object.
std::string kid_text(const nlohmann::json& k) { return num(k["mean"], 5) + " ± " + num(k["std"], 5); }

std::string threshold_text(const nlohmann::json& m, const char* key, const std::string& what, int digits) {
  if (!m.contains("threshold")) return "none";
  const auto& t = m["threshold"];
  return what + " ≤ " + num(t[key], digits) + " (" + t["option"].get<std::string>() +
         "): " + (t["passed"].get<bool>() ? "passed" : "**FAILED**");
}

}  // namespace

std::string render_distribution_markdown(const nlohmann::json& r) {
  if (!r.contains("metrics")) return "";
  const auto& m = r["metrics"];
  std::ostringstream o;
  if (m.contains("kid") || m.contains("fid")) {
    const auto& any = m.contains("kid") ? m["kid"] : m["fid"];
    const bool ref = any.contains("reference");
    o << "The image sets as distributions (Inception-v3 features of every image of every seed; lower is better):\n\n"
      << "| metric | candidate vs baseline |" << (ref ? " vs reference images: baseline / candidate (increase) |" : "")
      << " images (baseline / candidate" << (ref ? " / reference" : "") << ") | threshold |\n|---|---|"
      << (ref ? "---|" : "") << "---|---|\n";
    auto sizes = [&](const nlohmann::json& x) {
      return x["n_baseline"].dump() + " / " + x["n_candidate"].dump() + (ref ? " / " + x["reference"]["n"].dump() : "");
    };
    if (m.contains("kid")) {
      const auto& k = m["kid"];
      o << "| KID | " << kid_text(k["candidate_vs_baseline"]) << " |";
      if (ref)
        o << " " << kid_text(k["reference"]["baseline"]) << " / " << kid_text(k["reference"]["candidate"]) << " ("
          << signed_num(k["reference"]["increase"], 5) << ") |";
      o << " " << sizes(k) << " | " << threshold_text(k, "max_mean", "KID vs baseline", 5) << " |\n";
    }
    if (m.contains("fid")) {
      const auto& f = m["fid"];
      o << "| FID" << (f.value("reliable", true) ? "" : " (unreliable: too few images)") << " | "
        << num(f["candidate_vs_baseline"], 3) << " |";
      if (ref)
        o << " " << num(f["reference"]["baseline"], 3) << " / " << num(f["reference"]["candidate"], 3) << " ("
          << signed_num(f["reference"]["increase"], 3) << ") |";
      o << " " << sizes(f) << " | " << threshold_text(f, "max_increase", "increase", 3) << " |\n";
    }
    o << "\n";
    if (m.contains("fid") && m["fid"].contains("note")) o << m["fid"]["note"].get<std::string>() << ".\n\n";
  }
  for (const auto& [key, label] : {std::pair{"pickscore", "PickScore"}, std::pair{"hps", "HPS v2"}}) {
    if (!m.contains(key)) continue;
    const auto& p = m[key];
    o << label << " (higher is better; " << p["definition"].get<std::string>() << "): baseline " << num(p["baseline"], 4)
      << ", candidate " << num(p["candidate"], 4) << ", loss "
      << (p["loss_pct"].is_number() ? num(p["loss_pct"], 2) + " %" : std::string("undefined"))
      << "; paired per-prompt difference (baseline − candidate) " << num(p["paired"]["mean_diff"], 4) << " ["
      << num(p["paired"]["ci95"][0], 4) << ", " << num(p["paired"]["ci95"][1], 4) << "].\n\n";
  }
  std::string limits;
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (!it.value().is_object() || !it.value().contains("loss_threshold")) continue;
    const auto& t = it.value()["loss_threshold"];
    limits += "- " + it.key() + ": loss " + (it.value()["loss_pct"].is_number() ? num(it.value()["loss_pct"], 2) + " %" : "undefined") +
              ", limit " + num(t["max_loss_pct"], 2) + " %: " + (t["passed"].get<bool>() ? "passed" : "**FAILED**") + "\n";
  }
  if (!limits.empty()) o << "Loss relative to the baseline per metric (--max-metric-loss):\n\n" << limits << "\n";
  return o.str();
}

std::string render_distribution_summary(const nlohmann::json& r) {
  if (!r.contains("metrics")) return "";
  const auto& m = r["metrics"];
  std::string out;
  if (m.contains("kid")) out += "KID " + kid_text(m["kid"]["candidate_vs_baseline"]);
  if (m.contains("fid"))
    out += std::string(out.empty() ? "" : "  ") + "FID " + num(m["fid"]["candidate_vs_baseline"], 3) +
           (m["fid"].value("reliable", true) ? "" : " (unreliable below 2048 images; prefer KID)");
  std::string pref;
  for (const auto& [key, label] : {std::pair{"pickscore", "PickScore"}, std::pair{"hps", "HPS v2"}})
    if (m.contains(key))
      pref += (pref.empty() ? "" : "  ") + std::string(label) + " " + num(m[key]["baseline"], 4) + " -> " +
              num(m[key]["candidate"], 4);
  return (out.empty() ? "" : "distribution vs baseline: " + out + "\n") +
         (pref.empty() ? "" : "preference: " + pref + "\n");
}

}  // namespace diffbench
