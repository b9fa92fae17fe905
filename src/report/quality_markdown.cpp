#include "report/quality_markdown.hpp"

#include <cstdio>
#include <sstream>

namespace diffbench {

namespace {

std::string fmt(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

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
    << fmt(m["mean"].get<double>(), digits) << " [" << fmt(m["ci95"][0].get<double>(), digits) << ", "
    << fmt(m["ci95"][1].get<double>(), digits) << "] | " << fmt(m["median"].get<double>(), digits) << " | "
    << fmt(m["worst"].get<double>(), digits) << " (#" << m["worst_index"].get<long>() << ") | ";
  if (m.contains("threshold")) {
    const auto& t = m["threshold"];
    o << (t.contains("max_mean") ? "mean ≤ " : "mean ≥ ")
      << fmt(t.contains("max_mean") ? t["max_mean"].get<double>() : t["min_mean"].get<double>(), digits) << " ("
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
  o << "Quality per metric (mean over prompts with a 95 % bootstrap interval of the mean):\n\n";
  o << "| metric | direction | compares | mean [95 % CI] | median | worst (prompt #) | threshold |\n"
       "|---|---|---|---|---|---|---|\n";
  if (m.contains("clip")) {
    const auto& c = m["clip"];
    o << "| CLIP score | " << direction(c) << " | " << cell(c.value("compares", "")) << " | baseline "
      << fmt(c["baseline"].get<double>(), 3) << ", candidate " << fmt(c["candidate"].get<double>(), 3) << " (loss "
      << fmt(c["loss_pct"].get<double>(), 2) << " %; paired difference above) | | | loss ≤ "
      << fmt(r["thresholds"].value("max_quality_loss_pct", 0.0), 2) << " % (--max-quality-loss) |\n";
  }
  if (m.contains("psnr")) fidelity_row(o, m["psnr"], "PSNR (dB)", 2);
  if (m.contains("ssim")) fidelity_row(o, m["ssim"], "SSIM", 4);
  if (m.contains("lpips")) fidelity_row(o, m["lpips"], "LPIPS", 4);
  o << "\n";
  if (m.contains("psnr") && m["psnr"]["capped"].get<size_t>() > 0)
    o << "PSNR is capped at " << fmt(m["psnr"]["cap_db"].get<double>(), 0) << " dB: " << m["psnr"]["capped"]
      << " of " << m["psnr"]["n"] << " images were capped, " << m["psnr"]["identical"]
      << " of them identical to the baseline's (infinite PSNR).\n\n";
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
  std::ostringstream o;
  if (r.contains("per_prompt_order") && r["per_prompt_order"] != "index")
    o << "Per prompt, worst first (" << r["per_prompt_order"].get<std::string>() << "):\n\n";
  o << "| # | prompt | baseline | candidate | CLIP baseline / candidate |" << (psnr ? " PSNR (dB) |" : "")
    << (ssim ? " SSIM |" : "") << (lpips ? " LPIPS |" : "") << "\n|---|---|---|---|---|" << (psnr ? "---|" : "")
    << (ssim ? "---|" : "") << (lpips ? "---|" : "") << "\n";
  for (const auto& row : rows) {
    const size_t i = row["index"].get<size_t>();
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.png", i);
    o << "| " << i << " | " << cell(prompts[i].get<std::string>()) << " | ![](baseline/" << name
      << ") | ![](candidate/" << name << ") | ";
    if (i < bs.size() && i < cs.size()) o << fmt(bs[i].get<double>(), 2) << " / " << fmt(cs[i].get<double>(), 2);
    o << " |";
    if (psnr) o << " " << fmt(row["psnr_db"].get<double>(), 2) << (row.value("psnr_capped", false) ? " (capped)" : "") << " |";
    if (ssim) o << " " << fmt(row["ssim"].get<double>(), 4) << " |";
    if (lpips) o << " " << fmt(row["lpips"].get<double>(), 4) << " |";
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
    out += (out.empty() ? "" : "  ") + label + " " + fmt(x["mean"].get<double>(), digits) + unit + " [" +
           fmt(x["ci95"][0].get<double>(), digits) + ", " + fmt(x["ci95"][1].get<double>(), digits) + "] (worst " +
           fmt(x["worst"].get<double>(), digits) + ", #" + std::to_string(x["worst_index"].get<long>()) + ")";
  };
  part("psnr", "PSNR", 2, " dB");
  part("ssim", "SSIM", 4, "");
  part("lpips", "LPIPS (lower is better)", 4, "");
  return out.empty() ? "" : "fidelity to baseline: " + out + "\n";
}

}  // namespace diffbench
