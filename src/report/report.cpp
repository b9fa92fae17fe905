#include "diffbench/report/report.hpp"

#include <cstdio>
#include <sstream>

#include "report/quality_markdown.hpp"

namespace diffbench {

namespace {

std::string fmt(double v, int digits = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string mib(int64_t bytes) { return bytes < 0 ? "n/a" : fmt(static_cast<double>(bytes) / (1024.0 * 1024.0), 1) + " MiB"; }

std::string methods_text(const nlohmann::json& methods) {
  if (methods.empty()) return "none";
  std::string out;
  for (const auto& m : methods) {
    if (!out.empty()) out += " + ";
    out += m["method"].get<std::string>();
    std::string params;
    for (auto it = m["params"].begin(); it != m["params"].end(); ++it)
      params += (params.empty() ? "" : ", ") + it.key() + "=" + it.value().dump();
    if (!params.empty()) out += " (" + params + ")";
  }
  return out;
}

// "deepcache: full_calls 136, partial_calls 272; tome: ..." from each method's counters.
std::string counters_text(const nlohmann::json& methods) {
  std::string out;
  for (const auto& m : methods) {
    if (!m.contains("stats") || !m["stats"].is_object() || m["stats"].empty()) continue;
    std::string counters;
    for (auto it = m["stats"].begin(); it != m["stats"].end(); ++it)
      counters += (counters.empty() ? "" : ", ") + it.key() + " " + it.value().dump();
    out += (out.empty() ? "" : "; ") + m["method"].get<std::string>() + ": " + counters;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

std::string render_markdown(const nlohmann::json& r) {
  std::ostringstream o;
  const auto& b = r["baseline"];
  const auto& c = r["candidate"];
  o << "# diffbench evaluation: " << c["spec"]["name"].get<std::string>() << "\n\n";
  o << "**" << (r["passed"].get<bool>() ? "PASSED" : "FAILED") << "**: speedup " << fmt(r["speedup"].get<double>(), 2)
    << "x, quality loss " << fmt(r["quality_loss_pct"].get<double>(), 2) << " % (CLIP "
    << fmt(b["clip_score"].get<double>(), 2) << " -> " << fmt(c["clip_score"].get<double>(), 2) << ")\n\n";
  o << "| | baseline | candidate |\n|---|---|---|\n";
  o << "| methods | " << methods_text(b["methods"]) << " | " << methods_text(c["methods"]) << " |\n";
  o << "| scheduler / steps | " << b["spec"]["scheduler"].get<std::string>() << " / " << b["spec"]["steps"] << " | "
    << c["spec"]["scheduler"].get<std::string>() << " / " << c["spec"]["steps"] << " |\n";
  o << "| seconds per image | " << fmt(b["seconds_per_image"].get<double>(), 4) << " | "
    << fmt(c["seconds_per_image"].get<double>(), 4) << " |\n";
  o << "| batch seconds min / median / max | " << fmt(b["batch_seconds_summary"]["min"].get<double>()) << " / "
    << fmt(b["batch_seconds_summary"]["median"].get<double>()) << " / " << fmt(b["batch_seconds_summary"]["max"].get<double>())
    << " | " << fmt(c["batch_seconds_summary"]["min"].get<double>()) << " / "
    << fmt(c["batch_seconds_summary"]["median"].get<double>()) << " / " << fmt(c["batch_seconds_summary"]["max"].get<double>())
    << " |\n";
  for (const char* stage : {"text_encoder_s", "denoise_s", "vae_decode_s"})
    o << "| " << stage << " (total) | " << fmt(b["stages"][stage].get<double>()) << " | "
      << fmt(c["stages"][stage].get<double>()) << " |\n";
  o << "| UNet calls per image | " << fmt(b["unet_calls_per_image"].get<double>(), 1) << " | "
    << fmt(c["unet_calls_per_image"].get<double>(), 1) << " |\n";
  o << "| skipped UNet modules | " << fmt(100.0 * b.value("skipped_module_fraction", 0.0), 1) << " % | "
    << fmt(100.0 * c.value("skipped_module_fraction", 0.0), 1) << " % |\n";
  o << "| method counters | " << counters_text(b["methods"]) << " | " << counters_text(c["methods"]) << " |\n";
  o << "| peak memory (" << c["peak_memory_kind"].get<std::string>() << ") | " << mib(b["peak_memory_bytes"].get<int64_t>())
    << " | " << mib(c["peak_memory_bytes"].get<int64_t>()) << " |\n";
  o << "| CLIP score (" << r["protocol"]["clip_score"].get<std::string>() << ") | " << fmt(b["clip_score"].get<double>())
    << " | " << fmt(c["clip_score"].get<double>()) << " |\n\n";
  const auto& p = r["paired"];
  o << "Paired per-prompt CLIP difference (baseline − candidate): mean " << fmt(p["mean_diff"].get<double>())
    << ", 95 % bootstrap CI [" << fmt(p["ci95"][0].get<double>()) << ", " << fmt(p["ci95"][1].get<double>()) << "] over "
    << r["protocol"]["num_samples"] << " prompts.\n\n";
  o << render_quality_markdown(r);
  o << "Protocol: " << r["protocol"]["num_samples"] << " prompts from `" << r["protocol"]["prompts_source"].get<std::string>()
    << "`, batch " << r["protocol"]["batch_size"] << ", seed " << r["protocol"]["seed"] << ", noise "
    << r["protocol"]["noise"].get<std::string>() << ", warm-up " << r["protocol"]["warmup"] << " batch(es); CLIP scorer `"
    << r["protocol"]["clip"].get<std::string>() << "`.\n\n";
  const auto& diffs = r["consistency"]["differences"];
  o << "Consistency: same model: " << (r["consistency"]["same_model"].get<bool>() ? "yes" : "NO");
  if (!diffs.empty()) {
    o << "; differences:";
    for (const auto& d : diffs) o << " " << d.get<std::string>() << ";";
  }
  o << "\n\n";
  if (!r["failures"].empty()) {
    o << "Failed thresholds:\n";
    for (const auto& f : r["failures"]) o << "- " << f.get<std::string>() << "\n";
    o << "\n";
  }
  o << "Images: `baseline/NNNNNN.png` and `candidate/NNNNNN.png`, in prompt order.\n\n";
  // Side by side, with each prompt's scores, worst first (paths relative to this file).
  o << render_per_prompt_markdown(r);
  return o.str();
}

std::string render_summary(const nlohmann::json& r) {
  std::ostringstream o;
  const auto& b = r["baseline"];
  const auto& c = r["candidate"];
  o << "baseline:  " << fmt(b["seconds_per_image"].get<double>(), 4) << " s/image  CLIP " << fmt(b["clip_score"].get<double>())
    << "  UNet calls/image " << fmt(b["unet_calls_per_image"].get<double>(), 1) << "\n";
  o << "candidate: " << fmt(c["seconds_per_image"].get<double>(), 4) << " s/image  CLIP " << fmt(c["clip_score"].get<double>())
    << "  UNet calls/image " << fmt(c["unet_calls_per_image"].get<double>(), 1) << "\n";
  o << "speedup " << fmt(r["speedup"].get<double>(), 2) << "x   quality loss " << fmt(r["quality_loss_pct"].get<double>(), 2)
    << " %   paired diff " << fmt(r["paired"]["mean_diff"].get<double>()) << " [" << fmt(r["paired"]["ci95"][0].get<double>())
    << ", " << fmt(r["paired"]["ci95"][1].get<double>()) << "]\n";
  o << render_quality_summary(r);
  o << (r["passed"].get<bool>() ? "PASSED" : "FAILED");
  for (const auto& f : r["failures"]) o << "\n  " << f.get<std::string>();
  o << "\n";
  return o.str();
}

}  // namespace diffbench
