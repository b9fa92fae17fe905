#include "diffbench/report/report.hpp"

#include <cstdio>
#include <sstream>

#include "report/quality_markdown.hpp"
#include "util/format.hpp"

namespace diffbench {

namespace {

std::string fmt(double v, int digits = 3) { return fixed(v, digits); }

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

// "2.31x [2.20, 2.45]": the speedup with its 95 % interval (schema 2; the bare number before).
std::string speedup_text(const nlohmann::json& r) {
  std::string out = fmt(r["speedup"].get<double>(), 2) + "×";
  if (r.contains("speedup_ci"))
    out += " [" + fmt(r["speedup_ci"][0].get<double>(), 2) + ", " + fmt(r["speedup_ci"][1].get<double>(), 2) + "]";
  return out;
}

std::string loss_text(const nlohmann::json& r) {
  const auto& loss = r["quality_loss_pct"];
  return loss.is_number() ? fmt(loss.get<double>(), 2) + " %" : "undefined";
}

std::string score_text(const nlohmann::json& v, int digits) { return v.is_number() ? fmt(v.get<double>(), digits) : "n/a"; }

// "PASSED", "PASSED (timing noisy)" or "FAILED".
std::string verdict_text(const nlohmann::json& r) {
  if (!r["passed"].get<bool>()) return "FAILED";
  for (const auto& w : r.value("warnings", nlohmann::json::array()))
    if (w["code"] == "timing_noise" || w["code"] == "min_speedup_uncertain") return "PASSED (timing noisy)";
  return "PASSED";
}

}  // namespace

std::string render_markdown(const nlohmann::json& r) {
  std::ostringstream o;
  const auto& b = r["baseline"];
  const auto& c = r["candidate"];
  const bool clip = r.contains("paired");  // eval --metrics without clip: no CLIP score, no quality loss
  o << "# diffbench evaluation: " << c["spec"]["name"].get<std::string>() << "\n\n";
  o << "**" << verdict_text(r) << "**: speedup " << speedup_text(r) << " (95 % interval)";
  if (clip)
    o << ", quality loss " << loss_text(r) << " (CLIP " << score_text(b["clip_score"], 2) << " -> "
      << score_text(c["clip_score"], 2) << ")";
  o << "\n\n";
  for (const auto& w : r.value("warnings", nlohmann::json::array()))
    o << "> **warning (" << w["code"].get<std::string>() << ")**: " << w["message"].get<std::string>() << "\n\n";
  if (r.contains("quality_loss_undefined"))
    o << "Quality loss undefined: " << r["quality_loss_undefined"].get<std::string>() << "\n\n";
  if (r.contains("timing")) {
    const auto& t = r["timing"];
    o << "Timing: " << r["schedule"]["reason"].get<std::string>() << "; " << r["protocol"]["repeats"]
      << " pass(es) per seed, " << t["pairs"] << " batch pairs; batch-time CV baseline "
      << fmt(100.0 * t["cv_baseline"].get<double>(), 1) << " %, candidate " << fmt(100.0 * t["cv_candidate"].get<double>(), 1)
      << " %.";
    const auto automatic = t.value("automatic_passes", nlohmann::json::object());
    if (automatic.value("passes", 0) > 0) {
      std::string why;
      for (const auto& reason : automatic["reasons"]) why += (why.empty() ? "" : "; then ") + reason.get<std::string>();
      o << " " << automatic["passes"] << " more pass(es) ran automatically (--repeats not given): " << why << ".";
    }
    o << "\n\n";
  }
  o << "| | baseline | candidate |\n|---|---|---|\n";
  o << "| methods | " << methods_text(b["methods"]) << " | " << methods_text(c["methods"]) << " |\n";
  o << "| scheduler / steps | " << b["spec"]["scheduler"].get<std::string>() << " / " << b["spec"]["steps"] << " | "
    << c["spec"]["scheduler"].get<std::string>() << " / " << c["spec"]["steps"] << " |\n";
  o << "| seconds per image | " << fmt(b["seconds_per_image"].get<double>(), 4) << " | "
    << fmt(c["seconds_per_image"].get<double>(), 4) << " |\n";
  if (b.value("device_seconds_per_image", nlohmann::json()).is_number() ||
      c.value("device_seconds_per_image", nlohmann::json()).is_number()) {
    auto dev = [&](const nlohmann::json& side) {
      const auto v = side.value("device_seconds_per_image", nlohmann::json());
      return v.is_number() ? fmt(v.get<double>(), 4) : std::string("-");
    };
    o << "| seconds per image, device clock (CUDA events) | " << dev(b) << " | " << dev(c) << " |\n";
  }
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
  if (clip)
    o << "| CLIP score (" << r["protocol"]["clip_score"].get<std::string>() << ") | " << score_text(b["clip_score"], 3)
      << " | " << score_text(c["clip_score"], 3) << " |\n";
  o << "\n";
  if (clip) {
    const auto& p = r["paired"];
    o << "Paired per-prompt CLIP difference (baseline − candidate): mean " << score_text(p["mean_diff"], 3)
      << ", 95 % bootstrap CI [" << score_text(p["ci95"][0], 3) << ", " << score_text(p["ci95"][1], 3) << "] over "
      << r["protocol"]["num_samples"] << " prompts.\n\n";
  }
  o << render_quality_markdown(r);
  o << "Protocol: " << r["protocol"]["num_samples"] << " prompts from `" << r["protocol"]["prompts_source"].get<std::string>()
    << "`, batch " << r["protocol"]["batch_size"] << ", seed(s) "
    << (r["protocol"].contains("seeds") ? r["protocol"]["seeds"].dump() : r["protocol"]["seed"].dump()) << ", noise "
    << r["protocol"]["noise"].get<std::string>() << ", warm-up " << r["protocol"]["warmup"] << " batch(es); "
    << (clip ? "CLIP scorer `" + r["protocol"]["clip"].get<std::string>() + "`" : "no CLIP score")
    << (r["protocol"].contains("clip_source") && r["protocol"]["clip_source"].contains("id")
            ? " (" + r["protocol"]["clip_source"]["id"].get<std::string>() + " @ " +
                  r["protocol"]["clip_source"]["commit"].get<std::string>().substr(0, 12) + ")"
            : std::string())
    << ".\n";
  if (r["protocol"].contains("defaults_used") && !r["protocol"]["defaults_used"].empty()) {
    o << "Defaults used:";
    for (const auto& d : r["protocol"]["defaults_used"]) o << " `" << d.get<std::string>() << "`";
    o << ".\n";
  }
  if (r.contains("wall_clock_s")) {  // where the command's time went
    const auto& w = r["wall_clock_s"];
    auto part = [&](const char* key) { return fmt(w.value(key, 0.0), 2); };
    o << "Wall clock: " << part("total") << " s in all: process set-up " << part("process_setup");
    if (w.contains("baseline_cache_key"))
      o << ", hashing files for the baseline cache's key " << part("baseline_cache_key");
    o << ", checks and inputs " << part("checks_and_inputs") << ", pipeline loads " << part("pipeline_loads")
      << ", warm-up " << part("warm_up")
      << ", timed generation " << part("timed_generation") << ", CLIP scorer load " << part("clip_scorer_load_on_thread")
      << " and warm-up " << part("clip_scorer_warm_up_on_thread") << " on a thread (waited " << part("clip_scorer_wait")
      << "), CLIP scoring " << part("clip_scoring")
      << ", fidelity metrics " << part("fidelity_metrics") << ", statistics and images " << part("statistics_and_images")
      << " (s).\n";
  }
  if (r.contains("distributed")) {  // a multi-process run (docs/distributed.md)
    const auto& d = r["distributed"];
    o << "Processes: " << d["world_size"] << " (" << d["launcher"].get<std::string>() << ", "
      << d["backend"].get<std::string>() << ")";
    for (const auto& k : d["ranks"])
      o << "; rank " << k["rank"] << " on " << k["device"].get<std::string>() << ", prompts " << k["prompts"][0] << "-"
        << k["prompts"][1].get<int64_t>() - 1 << ", " << fmt(k["baseline_seconds_per_image"].get<double>()) << " / "
        << fmt(k["candidate_seconds_per_image"].get<double>()) << " s per image (baseline / candidate)";
    o << "; together " << fmt(d["images_per_second"].get<double>(), 2) << " images/s over "
      << fmt(d["timed_wall_s"].get<double>(), 2) << " s of timed generation.\n";
  }
  o << "\n";
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
  // A pipeline read from a Python file (import-py): what each of its lines became.
  for (const char* run : {"candidate", "baseline"}) {
    const auto origin = r[run]["spec"].value("origin", nlohmann::json());
    if (origin.is_null() || (std::string(run) == "baseline" && r["candidate"]["spec"].value("origin", nlohmann::json()) == origin))
      continue;
    o << "The " << run << " pipeline was read from `" << origin["python"].get<std::string>() << "` ("
      << origin["pipeline_class"].get<std::string>() << "; the file was not run):\n\n| line | statement | became |\n|---|---|---|\n";
    for (const auto& st : origin["statements"]) {
      std::string text;
      for (char ch : st["text"].get<std::string>()) text += ch == '|' ? std::string("\\|") : std::string(1, ch);
      o << "| " << st["line"] << " | `" << text << "` | " << st["became"].get<std::string>() << " |\n";
    }
    o << "\n";
  }
  // Folders of the images shown (schema 2 names them: seed-S subfolders when there are several seeds).
  const std::string base_dir = r.contains("image_dirs") ? r["image_dirs"]["baseline"].get<std::string>() : "baseline";
  const std::string cand_dir = r.contains("image_dirs") ? r["image_dirs"]["candidate"].get<std::string>() : "candidate";
  if (r.contains("per_seed")) {
    o << "Per seed (pooled above: every prompt with every seed; the paired interval resamples prompts with their "
         "seeds):\n\n| seed | CLIP baseline | CLIP candidate | quality loss | paired diff [95 % CI] |\n|---|---|---|---|---|\n";
    for (const auto& s : r["per_seed"])
      o << "| " << s["seed"] << " | " << score_text(s["baseline_clip_score"], 3) << " | "
        << score_text(s["candidate_clip_score"], 3) << " | "
        << (s["quality_loss_pct"].is_number() ? fmt(s["quality_loss_pct"].get<double>(), 2) + " %" : "undefined") << " | "
        << score_text(s["paired"]["mean_diff"], 3) << " [" << score_text(s["paired"]["ci95"][0], 3) << ", "
        << score_text(s["paired"]["ci95"][1], 3) << "] |\n";
    o << "\nImages below: the first seed's; every seed's are in `baseline/seed-S/` and `candidate/seed-S/`.\n\n";
  }
  o << "Images: `" << base_dir << "/NNNNNN.png` and `" << cand_dir << "/NNNNNN.png`, in prompt order.\n\n";
  // Side by side, with each prompt's scores, worst first (paths relative to this file).
  o << render_per_prompt_markdown(r);
  return o.str();
}

std::string render_summary(const nlohmann::json& r) {
  std::ostringstream o;
  const auto& b = r["baseline"];
  const auto& c = r["candidate"];
  o << "baseline:  " << fmt(b["seconds_per_image"].get<double>(), 4) << " s/image  CLIP " << score_text(b["clip_score"], 3)
    << "  UNet calls/image " << fmt(b["unet_calls_per_image"].get<double>(), 1) << "\n";
  o << "candidate: " << fmt(c["seconds_per_image"].get<double>(), 4) << " s/image  CLIP " << score_text(c["clip_score"], 3)
    << "  UNet calls/image " << fmt(c["unet_calls_per_image"].get<double>(), 1) << "\n";
  o << "speedup " << speedup_text(r);
  if (r.contains("paired")) {
    const auto& p = r["paired"];
    o << "   quality loss " << loss_text(r) << "   paired diff " << score_text(p["mean_diff"], 3) << " ["
      << score_text(p["ci95"][0], 3) << ", " << score_text(p["ci95"][1], 3) << "]";
  }
  o << "\n";
  o << render_quality_summary(r);
  o << verdict_text(r);
  for (const auto& f : r["failures"]) o << "\n  " << f.get<std::string>();
  for (const auto& w : r.value("warnings", nlohmann::json::array()))
    o << "\n  warning (" << w["code"].get<std::string>() << "): " << w["message"].get<std::string>();
  o << "\n";
  return o.str();
}

}  // namespace diffbench
