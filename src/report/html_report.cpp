// report.html's page (the images and heat maps come from html_report_images.cpp).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>
#include <tuple>

#include "diffbench/report/html.hpp"
#include "diffbench/report/html_report.hpp"
#include "diffbench/report/svg.hpp"
#include "report/heatmap.hpp"
#include "util/format.hpp"

namespace diffbench {

namespace {

using nlohmann::json;
using html::Writer;

constexpr const char* kBaselineColour = "#1f77b4";
constexpr const char* kCandidateColour = "#e8590c";

// A number of the report for people, or "n/a" where it is null or absent.
std::string num(const json& v, int digits) { return v.is_number() ? fixed(v.get<double>(), digits) : "n/a"; }
std::string num_at(const json& obj, const char* key, int digits) { return obj.contains(key) ? num(obj[key], digits) : "n/a"; }
std::string str_at(const json& obj, const char* key) {
  return obj.contains(key) && obj[key].is_string() ? obj[key].get<std::string>() : std::string();
}
double dbl(const json& v) { return v.is_number() ? v.get<double>() : std::nan(""); }
// A sort key in a data- attribute: the full number (missing: empty, sorted last).
std::string key(double v) {
  if (!std::isfinite(v)) return "";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string speedup_text(const json& r) {
  std::string out = num(r["speedup"], 2) + "×";
  if (r.contains("speedup_ci")) out += " [" + num(r["speedup_ci"][0], 2) + ", " + num(r["speedup_ci"][1], 2) + "]";
  return out;
}

std::string methods_text(const json& methods) {
  if (!methods.is_array() || methods.empty()) return "none";
  std::string out;
  for (const auto& m : methods) {
    std::string params;
    for (auto it = m["params"].begin(); it != m["params"].end(); ++it)
      params += (params.empty() ? "" : ", ") + it.key() + "=" + it.value().dump();
    out += (out.empty() ? "" : " + ") + m["method"].get<std::string>() + (params.empty() ? "" : " (" + params + ")");
  }
  return out;
}

// "pass" / "warn" / "fail", and the word shown.
std::pair<std::string, std::string> verdict(const json& r) {
  if (!r.value("passed", false)) return {"fail", "FAILED"};
  for (const auto& w : r.value("warnings", json::array()))
    if (w["code"] == "timing_noise" || w["code"] == "min_speedup_uncertain") return {"warn", "PASSED (timing noisy)"};
  return {"pass", "PASSED"};
}

// One row of the verdict table: what, value, threshold, result.
void check_row(Writer& w, const std::string& what, const std::string& value, const std::string& threshold,
               const std::string& result) {
  w.open("tr").element("th", {}, what).element("td", {}, value).element("td", {}, threshold);
  w.element("td", {{"class", result == "failed" ? "bad" : result == "passed" ? "good" : ""}}, result).close();
}

// KID/FID thresholds and --max-metric-loss limits, as rows of the verdict table.
void distribution_check_rows(Writer& w, const json& m) {
  auto result = [](const json& th) { return th.value("passed", false) ? "passed" : "failed"; };
  if (m.contains("kid") && m["kid"].contains("threshold")) {
    const json& th = m["kid"]["threshold"];
    check_row(w, "KID vs baseline (lower is better)", num(m["kid"]["candidate_vs_baseline"]["mean"], 5),
              "≤ " + num(th["max_mean"], 5) + " (--max-kid)", result(th));
  }
  if (m.contains("fid") && m["fid"].contains("threshold")) {
    const json& th = m["fid"]["threshold"];
    check_row(w, std::string("FID increase") + (m["fid"].value("reliable", true) ? "" : " (unreliable: too few images)"),
              num(m["fid"]["increase"], 3), "≤ " + num(th["max_increase"], 3) + " (--max-fid-increase)", result(th));
  }
  for (auto it = m.begin(); it != m.end(); ++it)
    if (it.value().is_object() && it.value().contains("loss_threshold")) {
      const json& th = it.value()["loss_threshold"];
      check_row(w, it.key() + " loss vs baseline",
                it.value()["loss_pct"].is_number() ? num(it.value()["loss_pct"], 2) + " %" : std::string("undefined"),
                "≤ " + num(th["max_loss_pct"], 2) + " % (--max-metric-loss)", result(th));
    }
}

void verdict_section(Writer& w, const json& r) {
  const auto [klass, word] = verdict(r);
  const json& b = r["baseline"];
  const json& c = r["candidate"];
  const json& t = r.value("thresholds", json::object());
  w.open("div", {{"class", "verdict " + klass}, {"id", "verdict"}});
  w.element("span", {{"class", "word"}}, word);
  const bool clip = r.contains("paired");  // eval --metrics without clip: no CLIP score, no quality loss
  w.text("speedup " + speedup_text(r) + " (95 % interval)" +
         (clip ? " · quality loss " +
                     (r["quality_loss_pct"].is_number() ? num(r["quality_loss_pct"], 2) + " %" : std::string("undefined")) +
                     " (CLIP " + num(b["clip_score"], 2) + " → " + num(c["clip_score"], 2) + ")"
               : std::string()));
  w.close();
  for (const auto& f : r.value("failures", json::array())) w.element("div", {{"class", "failure"}}, f.get<std::string>());
  for (const auto& x : r.value("warnings", json::array()))
    w.element("div", {{"class", "warning"}}, "warning (" + x["code"].get<std::string>() + "): " + x["message"].get<std::string>());
  if (r.contains("quality_loss_undefined"))
    w.element("div", {{"class", "warning"}}, "quality loss undefined: " + r["quality_loss_undefined"].get<std::string>());

  w.open("table", {{"class", "checks"}}).open("thead").open("tr");
  for (const char* h : {"check", "value", "threshold", "result"}) w.element("th", {}, h);
  w.close().close().open("tbody");
  std::string speed_result = "no threshold", speed_threshold = "none";
  if (t.contains("min_speedup")) {
    speed_threshold = "whole interval ≥ " + num(t["min_speedup"], 2) + "× (--min-speedup)";
    speed_result = t.contains("min_speedup_check") ? t["min_speedup_check"].value("result", "") : "";
  }
  check_row(w, "speedup", speedup_text(r), speed_threshold, speed_result);
  const bool loss_failed = !r["quality_loss_pct"].is_number() || dbl(r["quality_loss_pct"]) > dbl(t.value("max_quality_loss_pct", json()));
  if (clip)
    check_row(w, "CLIP quality loss",
              (r["quality_loss_pct"].is_number() ? num(r["quality_loss_pct"], 2) + " %" : std::string("undefined")) +
                  " (CLIP " + num(b["clip_score"], 3) + " → " + num(c["clip_score"], 3) + ")",
              "≤ " + num_at(t, "max_quality_loss_pct", 2) + " % (--max-quality-loss)", loss_failed ? "failed" : "passed");
  const json& m = r.value("metrics", json::object());
  for (const auto& [name, label, digits, unit] :
       {std::tuple{"psnr", "PSNR vs baseline", 2, " dB"}, std::tuple{"ssim", "SSIM vs baseline", 4, ""},
        std::tuple{"lpips", "LPIPS vs baseline (lower is better)", 4, ""}}) {
    if (!m.contains(name)) continue;
    const json& x = m[name];
    std::string threshold = "none", result = "no threshold";
    if (x.contains("threshold")) {
      const json& th = x["threshold"];
      threshold = std::string(th.contains("max_mean") ? "mean ≤ " : "mean ≥ ") +
                  num(th.contains("max_mean") ? th["max_mean"] : th["min_mean"], digits) + unit + " (" +
                  th.value("option", "") + ")";
      result = th.value("passed", false) ? "passed" : "failed";
    }
    check_row(w, label,
              "mean " + num(x["mean"], digits) + unit + " [" + num(x["ci95"][0], digits) + ", " + num(x["ci95"][1], digits) +
                  "], worst " + num(x["worst"], digits) + unit + " (#" + std::to_string(x.value("worst_index", -1L)) + ")",
              threshold, result);
  }
  distribution_check_rows(w, m);
  if (t.contains("max_latency_s")) {
    const bool slow = dbl(c["seconds_per_image"]) > dbl(t["max_latency_s"]);
    check_row(w, "candidate latency", num(c["seconds_per_image"], 4) + " s/image",
              "≤ " + num(t["max_latency_s"], 4) + " s (--max-latency)", slow ? "failed" : "passed");
  }
  w.close().close();
}

void summary_table(Writer& w, const json& r) {
  const json& b = r["baseline"];
  const json& c = r["candidate"];
  w.element("h2", {}, "Baseline and candidate");
  w.open("table", {{"class", "summary"}}).open("thead").open("tr");
  w.element("th", {}, "").element("th", {}, "baseline").element("th", {}, "candidate").close().close().open("tbody");
  auto row = [&](const std::string& what, const std::string& bv, const std::string& cv) {
    w.open("tr").element("th", {}, what).element("td", {}, bv).element("td", {}, cv).close();
  };
  row("methods", methods_text(b["methods"]), methods_text(c["methods"]));
  row("scheduler / steps", str_at(b["spec"], "scheduler") + " / " + b["spec"].value("steps", json()).dump(),
      str_at(c["spec"], "scheduler") + " / " + c["spec"].value("steps", json()).dump());
  row("seconds per image", num(b["seconds_per_image"], 4), num(c["seconds_per_image"], 4));
  if (b.value("device_seconds_per_image", json()).is_number() || c.value("device_seconds_per_image", json()).is_number())
    row("seconds per image, device clock (CUDA events)", num(b.value("device_seconds_per_image", json()), 4),
        num(c.value("device_seconds_per_image", json()), 4));
  row("UNet calls per image", num(b["unet_calls_per_image"], 1), num(c["unet_calls_per_image"], 1));
  row("skipped UNet modules", fixed(100.0 * b.value("skipped_module_fraction", 0.0), 1) + " %",
      fixed(100.0 * c.value("skipped_module_fraction", 0.0), 1) + " %");
  auto mib = [](const json& v) {
    return v.is_number() && v.get<double>() >= 0 ? fixed(v.get<double>() / (1024.0 * 1024.0), 1) + " MiB" : std::string("n/a");
  };
  row("peak memory (" + str_at(c, "peak_memory_kind") + ")", mib(b["peak_memory_bytes"]), mib(c["peak_memory_bytes"]));
  row("CLIP score (" + str_at(r["protocol"], "clip_score") + ")", num(b["clip_score"], 3), num(c["clip_score"], 3));
  w.close().close();
  const json& p = r.value("paired", json::object());
  if (p.contains("mean_diff"))
    w.element("p", {}, "Paired per-prompt CLIP difference (baseline − candidate): mean " + num(p["mean_diff"], 3) +
                           ", 95 % bootstrap interval [" + num(p["ci95"][0], 3) + ", " + num(p["ci95"][1], 3) + "].");
}

void plots_section(Writer& w, const json& r) {
  const json& b = r["baseline"];
  const json& c = r["candidate"];
  const json& prompts = r["protocol"]["prompts"];
  w.element("h2", {}, "Plots");
  w.open("div", {{"class", "plots"}});
  // CLIP per prompt: a point below the diagonal is a prompt the candidate scores worse on. Without
  // CLIP (eval --metrics without clip) there is no such plot rather than an empty one.
  svg::Series clip{"prompts", kCandidateColour, {}, {}, {}, false, true, {}, ""};
  const json& bs = b.value("per_sample_clip", json::array());
  const json& cs = c.value("per_sample_clip", json::array());
  for (size_t i = 0; i < bs.size() && i < cs.size(); ++i) {
    if (!bs[i].is_number() || !cs[i].is_number()) continue;
    clip.x.push_back(dbl(bs[i]));
    clip.y.push_back(dbl(cs[i]));
    clip.tips.push_back("#" + std::to_string(i) + " " + (i < prompts.size() ? prompts[i].get<std::string>() : "") + " — " +
                        num(bs[i], 2) + " → " + num(cs[i], 2));
  }
  svg::PlotOptions po;
  if (r.contains("paired") && !clip.x.empty()) {
    po.title = "CLIP score per prompt (below the diagonal: worse)";
    po.x_label = "baseline";
    po.y_label = "candidate";
    po.diagonal = true;
    w.trusted(svg::plot({clip}, po));
  }
  // Per-batch seconds per image of both sides over the run: noise, drift and the interleaving.
  std::vector<svg::Series> times;
  for (const auto& [label, side, colour] : {std::tuple{"baseline", &b, kBaselineColour}, std::tuple{"candidate", &c, kCandidateColour}}) {
    svg::Series s{label, colour, {}, {}, {}, true, true, {}, ""};
    const json& secs = side->value("batch_seconds", json::array());
    const json& starts = side->value("batch_start_s", json::array());
    const json& imgs = side->value("batch_images", json::array());
    for (size_t k = 0; k < secs.size(); ++k) {
      const double n = k < imgs.size() ? dbl(imgs[k]) : 1.0;
      s.x.push_back(k < starts.size() ? dbl(starts[k]) : static_cast<double>(k));
      s.y.push_back(dbl(secs[k]) / n);
      s.tips.push_back(std::string(label) + " batch " + std::to_string(k + 1) + ": " + num(secs[k], 4) + " s, " +
                       fixed(n, 0) + " images");
    }
    times.push_back(s);
  }
  po = {};
  po.title = "Seconds per image of each timed batch";
  po.x_label = r["baseline"].contains("batch_start_s") ? "seconds into the timed run" : "batch";
  po.y_label = "s / image";
  po.y_from_zero = true;
  w.trusted(svg::plot(times, po));
  // Stage split per image (first pass).
  const double n = std::max(1.0, dbl(r["protocol"].value("num_samples", json(1))));
  std::vector<std::vector<double>> stages;
  for (const json* side : {&b, &c}) {
    const json& st = side->value("stages", json::object());
    stages.push_back({dbl(st.value("text_encoder_s", json(0))) / n, dbl(st.value("denoise_s", json(0))) / n,
                      dbl(st.value("vae_decode_s", json(0))) / n});
  }
  po = {};
  po.title = "Stage split (seconds per image, first pass)";
  po.y_label = "s / image";
  po.y_from_zero = true;
  w.trusted(svg::stacked_bars({"baseline", "candidate"},
                              {{"text encoder", "#f4a259"}, {"denoise (UNet)", "#2b8cbe"}, {"VAE decode", "#7bb87f"}},
                              stages, po));
  w.close();
}

// The preference scores (PickScore, HPS v2) that per_prompt rows carry: the field prefix, the header, digits.
struct Preference {
  std::string name, label;
  int digits;
};
std::vector<Preference> preference_columns(const json& rows) {
  std::vector<Preference> out;
  for (const auto& p : {Preference{"pickscore", "PickScore", 2}, Preference{"hps", "HPS v2", 4}})
    if (std::any_of(rows.begin(), rows.end(), [&](const json& row) { return row.contains(p.name + "_drop"); }))
      out.push_back(p);
  return out;
}

// The per-prompt grid: one row per prompt in report["per_prompt"]'s order (worst first).
void grid_section(Writer& w, const json& r, const ReportImages& images) {
  const json& prompts = r["protocol"]["prompts"];
  json rows = r.value("per_prompt", json::array());
  if (rows.empty())
    for (size_t i = 0; i < prompts.size(); ++i) rows.push_back({{"index", i}});
  const bool has_clip = !rows.empty() && rows[0].contains("clip_drop");
  const bool psnr = !rows.empty() && rows[0].contains("psnr_db");
  const bool ssim = !rows.empty() && rows[0].contains("ssim");
  const bool lpips = !rows.empty() && rows[0].contains("lpips");
  const std::vector<Preference> preference = preference_columns(rows);
  const std::string order = r.value("per_prompt_order", std::string("index"));
  w.element("h2", {}, "Per prompt");
  w.open("p").text(order == "index" ? "In prompt order. " : "Worst first (" + order + "). ");
  w.text("Click a column to sort by it (worst first, again to reverse); click an image for full size. "
         "|Δ|: the mean over R, G and B of the absolute difference per pixel, one colour scale for every prompt:").close();
  w.trusted(svg::colour_bar(heat_colours(), images.scale_max, "|Δ| per pixel (0–255)"));
  // Sortable columns: key, header, direction of "worst first", shown.
  struct Col { std::string key, label, worst; bool shown; };
  const std::vector<Col> cols = {{"index", "#", "asc", true},
                                 {"clip-baseline", "CLIP baseline", "asc", has_clip},
                                 {"clip-candidate", "CLIP candidate", "asc", has_clip},
                                 {"clip-drop", "CLIP drop", "desc", has_clip},
                                 {"psnr", "PSNR (dB)", "asc", psnr},
                                 {"ssim", "SSIM", "asc", ssim},
                                 {"lpips", "LPIPS", "desc", lpips}};
  const std::string initial = order.rfind("psnr", 0) == 0   ? "psnr"
                              : order.rfind("ssim", 0) == 0  ? "ssim"
                              : order.rfind("lpips", 0) == 0 ? "lpips"
                              : order.rfind("clip", 0) == 0  ? "clip-drop"
                                                             : "index";
  w.open("table", {{"class", "grid"}, {"id", "per-prompt"}}).open("thead").open("tr");
  w.element("th", {}, "prompt").element("th", {}, "baseline").element("th", {}, "candidate").element("th", {}, "|Δ|");
  for (const auto& col : cols) {
    if (!col.shown) continue;
    std::string klass = "num";
    if (col.key == initial) klass += col.worst == "asc" ? " sorted-asc" : " sorted-desc";
    w.element("th", {{"class", klass}, {"data-sort", col.key}, {"data-worst", col.worst}}, col.label);
  }
  for (const auto& p : preference) {
    w.element("th", {{"class", "num"}, {"data-sort", p.name + "-candidate"}, {"data-worst", "asc"}},
              p.label + " baseline → candidate");
    w.element("th", {{"class", "num"}, {"data-sort", p.name + "-drop"}, {"data-worst", "desc"}}, p.label + " drop");
  }
  w.element("th", {{"class", "num"}, {"data-sort", "diff"}, {"data-worst", "desc"}}, "mean |Δ|");
  w.close().close().open("tbody");
  auto image = [&](const std::string& src, const std::string& alt, int width) {
    w.open("td", {{"class", "img"}});
    if (src.empty()) {
      w.element("span", {{"class", "muted"}}, "n/a");
    } else {
      html::Attrs a = {{"class", "zoom"}};
      if (src.rfind("data:", 0) != 0) a.push_back({"href", src});  // without the script, the file itself
      w.open("a", a).leaf("img", {{"src", src}, {"alt", alt},
                                  {"class", width > 0 && width < 128 ? "thumb pixelated" : "thumb"}}).close();
    }
    w.close();
  };
  for (const auto& row : rows) {
    const size_t i = row["index"].get<size_t>();
    const PromptImages none;
    const PromptImages& im = i < images.prompts.size() ? images.prompts[i] : none;
    html::Attrs attrs = {{"class", "prompt-row"}, {"data-index", std::to_string(i)}, {"data-diff", key(im.mean_abs_diff)}};
    if (has_clip) {
      attrs.push_back({"data-clip-baseline", key(dbl(row["clip_baseline"]))});
      attrs.push_back({"data-clip-candidate", key(dbl(row["clip_candidate"]))});
      attrs.push_back({"data-clip-drop", key(dbl(row["clip_drop"]))});
    }
    if (psnr) attrs.push_back({"data-psnr", key(dbl(row["psnr_db"]))});
    if (ssim) attrs.push_back({"data-ssim", key(dbl(row["ssim"]))});
    if (lpips) attrs.push_back({"data-lpips", key(dbl(row["lpips"]))});
    for (const auto& p : preference) {
      attrs.push_back({"data-" + p.name + "-candidate", key(dbl(row.value(p.name + "_candidate", json())))});
      attrs.push_back({"data-" + p.name + "-drop", key(dbl(row.value(p.name + "_drop", json())))});
    }
    w.open("tr", attrs);
    w.element("td", {{"class", "prompt"}}, i < prompts.size() ? prompts[i].get<std::string>() : "");
    image(im.baseline, "baseline #" + std::to_string(i), im.width);
    image(im.candidate, "candidate #" + std::to_string(i), im.width);
    image(im.diff, "|Δ| #" + std::to_string(i), im.width);
    w.element("td", {{"class", "num"}}, std::to_string(i));
    if (has_clip) {
      w.element("td", {{"class", "num"}}, num(row["clip_baseline"], 2));
      w.element("td", {{"class", "num"}}, num(row["clip_candidate"], 2));
      w.element("td", {{"class", "num"}}, num(row["clip_drop"], 2));
    }
    if (psnr) w.element("td", {{"class", "num"}}, num(row["psnr_db"], 2) + (row.value("psnr_capped", false) ? " (capped)" : ""));
    if (ssim) w.element("td", {{"class", "num"}}, num(row["ssim"], 4));
    if (lpips) w.element("td", {{"class", "num"}}, num(row["lpips"], 4));
    for (const auto& p : preference) {
      w.element("td", {{"class", "num"}}, num(row.value(p.name + "_baseline", json()), p.digits) + " → " +
                                              num(row.value(p.name + "_candidate", json()), p.digits));
      w.element("td", {{"class", "num"}}, num(row.value(p.name + "_drop", json()), p.digits));
    }
    w.element("td", {{"class", "num"}}, std::isfinite(im.mean_abs_diff) ? fixed(im.mean_abs_diff, 2) : "n/a");
    w.close();
  }
  w.close().close();
}

void details_section(Writer& w, const json& r) {
  const json& p = r["protocol"];
  w.element("h2", {}, "Protocol");
  w.open("table", {{"class", "protocol"}}).open("tbody");
  auto row = [&](const std::string& what, const std::string& value) {
    w.open("tr").element("th", {}, what).element("td", {}, value).close();
  };
  row("prompts", std::to_string(p.value("num_samples", 0)) + " from " + str_at(p, "prompts_source"));
  row("batch size", p.value("batch_size", json()).dump());
  row("seeds", p.contains("seeds") ? p["seeds"].dump() : p.value("seed", json()).dump());
  row("noise", str_at(p, "noise"));
  row("warm-up batches", p.value("warmup", json()).dump());
  row("timed passes per seed", p.value("repeats", json(1)).dump());
  const json automatic = r.contains("timing") ? r["timing"].value("automatic_passes", json::object()) : json::object();
  if (automatic.value("passes", 0) > 0) {
    std::string why;
    for (const auto& reason : automatic["reasons"]) why += (why.empty() ? "" : "; then ") + reason.get<std::string>();
    row("automatic timed passes", automatic["passes"].dump() + " (--repeats not given): " + why);
  }
  row("CLIP scorer", str_at(p, "clip") + " (" + str_at(p, "clip_layout") + ", " + str_at(p, "clip_score") + ")");
  row("metrics", str_at(p, "metrics"));
  if (r.contains("schedule")) row("schedule", str_at(r["schedule"], "reason") + " Order: " + str_at(r["schedule"], "order"));
  if (r.contains("timing")) {
    const json& t = r["timing"];
    row("timing", std::to_string(t.value("pairs", 0)) + " batch pairs; batch-time CV baseline " +
                      fixed(100.0 * t.value("cv_baseline", 0.0), 1) + " %, candidate " +
                      fixed(100.0 * t.value("cv_candidate", 0.0), 1) + " %");
  }
  if (r.contains("distributed")) {  // a multi-process run (docs/distributed.md)
    const json& d = r["distributed"];
    std::string text = d.value("world_size", json()).dump() + " (" + str_at(d, "launcher") + ", " + str_at(d, "backend") +
                       "), " + fixed(d.value("images_per_second", 0.0), 2) + " images/s together";
    for (const auto& k : d.value("ranks", json::array()))
      text += "; rank " + k.value("rank", json()).dump() + " on " + str_at(k, "device") + ": prompts " +
              k["prompts"][0].dump() + "-" + std::to_string(k["prompts"][1].get<int64_t>() - 1) + ", " +
              fixed(k.value("baseline_seconds_per_image", 0.0), 3) + " / " +
              fixed(k.value("candidate_seconds_per_image", 0.0), 3) + " s per image";
    row("processes", text);
  }
  std::string defaults;
  for (const auto& d : p.value("defaults_used", json::array())) defaults += (defaults.empty() ? "" : ", ") + d.get<std::string>();
  if (!defaults.empty()) row("defaults used", defaults);
  w.close().close();
  if (r.contains("per_seed")) {
    w.element("h2", {}, "Per seed");
    w.open("table").open("thead").open("tr");
    for (const char* h : {"seed", "CLIP baseline", "CLIP candidate", "quality loss", "paired diff [95 % CI]"}) w.element("th", {}, h);
    w.close().close().open("tbody");
    for (const auto& s : r["per_seed"])
      w.open("tr")
          .element("td", {}, s["seed"].dump())
          .element("td", {{"class", "num"}}, num(s["baseline_clip_score"], 3))
          .element("td", {{"class", "num"}}, num(s["candidate_clip_score"], 3))
          .element("td", {{"class", "num"}}, s["quality_loss_pct"].is_number() ? num(s["quality_loss_pct"], 2) + " %" : "undefined")
          .element("td", {{"class", "num"}}, num(s["paired"]["mean_diff"], 3) + " [" + num(s["paired"]["ci95"][0], 3) + ", " +
                                                 num(s["paired"]["ci95"][1], 3) + "]")
          .close();
    w.close().close();
  }
  const json& cons = r.value("consistency", json::object());
  w.element("h2", {}, "Consistency");
  w.open("ul").element("li", {}, std::string("same model: ") + (cons.value("same_model", false) ? "yes" : "NO"));
  for (const auto& d : cons.value("differences", json::array())) w.element("li", {}, d.is_string() ? d.get<std::string>() : d.dump());
  w.close();
  // A pipeline read from a Python file: what each statement became.
  for (const char* side : {"candidate", "baseline"}) {
    const json origin = r[side]["spec"].value("origin", json());
    if (origin.is_null() || (std::string(side) == "baseline" && r["candidate"]["spec"].value("origin", json()) == origin)) continue;
    w.element("p", {}, std::string("The ") + side + " pipeline was read from " + str_at(origin, "python") + " (" +
                           str_at(origin, "pipeline_class") + "; the file was not run):");
    w.open("table").open("thead").open("tr").element("th", {}, "line").element("th", {}, "statement").element("th", {}, "became");
    w.close().close().open("tbody");
    for (const auto& st : origin.value("statements", json::array()))
      w.open("tr").element("td", {}, st.value("line", json()).dump()).open("td").element("code", {}, str_at(st, "text")).close()
          .element("td", {}, str_at(st, "became")).close();
    w.close().close();
  }
  w.element("h2", {}, "Environment");
  w.open("table", {{"class", "environment"}}).open("tbody");
  const json env = r.value("environment", json::object());
  for (const auto& [k, v] : env.items()) row(k, v.is_string() ? v.get<std::string>() : v.dump());
  w.close().close();
  w.element("p", {{"class", "muted"}}, "Every number above, at full precision: report.json beside this page.");
}

const char* const kPageCss = R"css(
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
td.bad { color: #b42318; font-weight: 600; } td.good { color: #1b7a35; }
table.grid td.prompt { max-width: 260px; overflow-wrap: anywhere; }
table.grid td.img { padding: 2px; }
img.thumb { width: 128px; height: auto; display: block; cursor: zoom-in; }
img.pixelated, #lightbox img { image-rendering: pixelated; }
#lightbox { position: fixed; inset: 0; background: rgba(20, 24, 28, 0.85); display: flex; align-items: center;
            justify-content: center; cursor: zoom-out; z-index: 10; }
#lightbox[hidden] { display: none; }
#lightbox img { min-width: min(512px, 90vw); max-width: 95vw; max-height: 95vh; object-fit: contain; background: #fff; }
)css";

const char* const kPageScript = R"js(
(function () {
  var box = document.getElementById('lightbox'), big = box.querySelector('img');
  document.querySelectorAll('a.zoom').forEach(function (a) {
    a.addEventListener('click', function (e) {
      e.preventDefault();
      big.src = a.querySelector('img').src;
      box.hidden = false;
    });
  });
  function hide() { box.hidden = true; big.removeAttribute('src'); }
  box.addEventListener('click', hide);
  document.addEventListener('keydown', function (e) { if (e.key === 'Escape') hide(); });
  window.addEventListener('load', function () {
    var broken = Array.prototype.filter.call(document.querySelectorAll('img.thumb'), function (img) {
      return !(img.complete && img.naturalWidth > 0);
    }).length;
    document.body.setAttribute('data-broken-images', String(broken));
    if (broken > 0) {
      var note = document.createElement('div');
      note.className = 'warning';
      note.textContent = broken + ' images could not be loaded: keep report.html beside its image folders, ' +
                         'or write it with --embed-images';
      document.getElementById('verdict').after(note);
    }
    document.body.setAttribute('data-ready', '1');
  });
})();
)js";

}  // namespace

std::string render_html(const json& r, const ReportImages& images) {
  const std::string name = r["candidate"]["spec"].value("name", std::string("candidate"));
  Writer w;
  w.element("h1", {}, "diffbench evaluation: " + name);
  verdict_section(w, r);
  grid_section(w, r, images);
  plots_section(w, r);
  summary_table(w, r);
  details_section(w, r);
  w.open("div", {{"id", "lightbox"}, {"hidden", "hidden"}}).leaf("img", {{"alt", "full size"}}).close();
  return html::page("diffbench: " + name, w.str(), kPageCss, std::string(html::kSortScript) + kPageScript);
}

}  // namespace diffbench
