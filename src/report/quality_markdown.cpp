#include "report/quality_markdown.hpp"

#include "report/distribution_markdown.hpp"

#include <cstdio>
#include <sstream>
#include <utility>
#include <vector>

#include "diffbench/io/image.hpp"
#include "util/format.hpp"

namespace diffbench {

namespace {

std::string fmt(double v, int digits) { return fixed(v, digits); }

// A number of the report, or "n/a" where it is null (undefined, or not finite when it was written).
std::string num(const nlohmann::json& v, int digits) { return v.is_number() ? fixed(v.get<double>(), digits) : "n/a"; }

// One table cell: no line breaks, pipes escaped.
std::string cell(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '|') out += '\\';
    out += (ch == '\n' || ch == '\r') ? ' ' : ch;
  }
  return out;
}

std::string direction(const nlohmann::json& m) {
  return m.value("direction", "") == "higher-is-better" ? "higher is better" : "lower is better";
}

void fidelity_row(std::ostringstream& o, const nlohmann::json& m, const std::string& name, int digits) {
  o << "| " << name << " | " << direction(m) << " | " << cell(m.value("compares", "")) << " | "
    << num(m["mean"], digits) << " [" << num(m["ci95"][0], digits) << ", "
    << num(m["ci95"][1], digits) << "] | " << num(m["median"], digits) << " | "
    << num(m["worst"], digits) << " (#" << m["worst_index"].get<long>() << ") | ";
  if (m.contains("threshold")) {
    const auto& t = m["threshold"];
    o << (t.contains("max_mean") ? "mean ≤ " : "mean ≥ ")
      << num(t.contains("max_mean") ? t["max_mean"] : t["min_mean"], digits) << " ("
      << t["option"].get<std::string>() << "): " << (t["passed"].get<bool>() ? "passed" : "**FAILED**");
  } else {
    o << "none";
  }
  o << " |\n";
}

}  // namespace

std::string render_quality_markdown(const nlohmann::json& r) {
  if (!r.contains("metrics")) return "";
  const auto& m = r["metrics"];
  std::ostringstream o;
  if (!m.contains("clip") && !m.contains("psnr") && !m.contains("ssim") && !m.contains("lpips"))
    return render_distribution_markdown(r);
  o << "Quality per metric (mean over prompts with a 95 % bootstrap interval of the mean):\n\n";
  o << "| metric | direction | compares | mean [95 % CI] | median | worst (prompt #) | threshold |\n"
       "|---|---|---|---|---|---|---|\n";
  if (m.contains("clip")) {
    const auto& c = m["clip"];
    o << "| CLIP score | " << direction(c) << " | " << cell(c.value("compares", "")) << " | baseline "
      << num(c["baseline"], 3) << ", candidate " << num(c["candidate"], 3) << " (loss "
      << (c["loss_pct"].is_number() ? num(c["loss_pct"], 2) + " %" : std::string("undefined")) << "; paired difference above) | | | loss ≤ "
      << fmt(r["thresholds"].value("max_quality_loss_pct", 0.0), 2) << " % (--max-quality-loss) |\n";
  }
  if (m.contains("psnr")) fidelity_row(o, m["psnr"], "PSNR (dB)", 2);
  if (m.contains("ssim")) fidelity_row(o, m["ssim"], "SSIM", 4);
  if (m.contains("lpips")) fidelity_row(o, m["lpips"], "LPIPS", 4);
  o << "\n";
  if (m.contains("psnr") && m["psnr"]["capped"].get<size_t>() > 0)
    o << "PSNR is capped at " << num(m["psnr"]["cap_db"], 0) << " dB: " << m["psnr"]["capped"]
      << " of " << m["psnr"]["n"] << " images were capped, " << m["psnr"]["identical"]
      << " of them identical to the baseline's (infinite PSNR).\n\n";
  o << render_distribution_markdown(r);
  return o.str();
}

std::string render_per_prompt_markdown(const nlohmann::json& r) {
  const auto& prompts = r["protocol"]["prompts"];
  const auto& bs = r["baseline"]["per_sample_clip"];
  const auto& cs = r["candidate"]["per_sample_clip"];
  nlohmann::json rows = r.value("per_prompt", nlohmann::json::array());
  if (rows.empty())
    for (size_t i = 0; i < prompts.size(); ++i) rows.push_back({{"index", i}});
  const bool psnr = !rows.empty() && rows[0].contains("psnr_db");
  const bool ssim = !rows.empty() && rows[0].contains("ssim");
  const bool lpips = !rows.empty() && rows[0].contains("lpips");
  // CLIP only when it was scored (eval --metrics without clip has none); PickScore / HPS v2 when computed.
  const bool clip = r.contains("paired");
  std::vector<std::pair<std::string, std::string>> preference;  // field prefix, header
  for (const auto& [name, label] : {std::pair{"pickscore", "PickScore"}, std::pair{"hps", "HPS v2"}})
    for (const auto& row : rows)
      if (row.contains(std::string(name) + "_drop")) {
        preference.emplace_back(name, label);
        break;
      }
  // Folders of the images shown (schema 2 names them: seed-S subfolders when there are several seeds).
  const std::string base_dir = r.contains("image_dirs") ? r["image_dirs"]["baseline"].get<std::string>() : "baseline";
  const std::string cand_dir = r.contains("image_dirs") ? r["image_dirs"]["candidate"].get<std::string>() : "candidate";
  std::ostringstream o;
  if (r.contains("per_prompt_order") && r["per_prompt_order"] != "index")
    o << "Per prompt, worst first (" << r["per_prompt_order"].get<std::string>() << "):\n\n";
  o << "| # | prompt | baseline | candidate |" << (clip ? " CLIP baseline / candidate |" : "")
    << (psnr ? " PSNR (dB) |" : "") << (ssim ? " SSIM |" : "") << (lpips ? " LPIPS |" : "");
  for (const auto& p : preference) o << " " << p.second << " baseline / candidate |";
  o << "\n|---|---|---|---|" << (clip ? "---|" : "") << (psnr ? "---|" : "") << (ssim ? "---|" : "")
    << (lpips ? "---|" : "");
  for (size_t k = 0; k < preference.size(); ++k) o << "---|";
  o << "\n";
  for (const auto& row : rows) {
    const size_t i = row["index"].get<size_t>();
    const std::string name = png_sequence_name(i);
    o << "| " << i << " | " << cell(prompts[i].get<std::string>()) << " | ![](" << base_dir << "/" << name
      << ") | ![](" << cand_dir << "/" << name << ") |";
    if (clip) {
      if (i < bs.size() && i < cs.size() && bs[i].is_number() && cs[i].is_number())
        o << " " << num(bs[i], 2) << " / " << num(cs[i], 2);
      o << " |";
    }
    if (psnr) o << " " << num(row["psnr_db"], 2) << (row.value("psnr_capped", false) ? " (capped)" : "") << " |";
    if (ssim) o << " " << num(row["ssim"], 4) << " |";
    if (lpips) o << " " << num(row["lpips"], 4) << " |";
    for (const auto& [field, label] : preference) {
      const int digits = field == "hps" ? 4 : 2;
      o << " " << num(row.value(field + "_baseline", nlohmann::json()), digits) << " / "
        << num(row.value(field + "_candidate", nlohmann::json()), digits) << " |";
    }
    o << "\n";
  }
  return o.str();
}

std::string render_quality_summary(const nlohmann::json& r) {
  if (!r.contains("metrics")) return "";
  const auto& m = r["metrics"];
  std::string out;
  auto part = [&](const char* key, const std::string& label, int digits, const std::string& unit) {
    if (!m.contains(key)) return;
    const auto& x = m[key];
    out += (out.empty() ? "" : "  ") + label + " " + num(x["mean"], digits) + unit + " [" +
           num(x["ci95"][0], digits) + ", " + num(x["ci95"][1], digits) + "] (worst " +
           num(x["worst"], digits) + ", #" + std::to_string(x["worst_index"].get<long>()) + ")";
  };
  part("psnr", "PSNR", 2, " dB");
  part("ssim", "SSIM", 4, "");
  part("lpips", "LPIPS (lower is better)", 4, "");
  return (out.empty() ? "" : "fidelity to baseline: " + out + "\n") + render_distribution_summary(r);
}

}  // namespace diffbench
