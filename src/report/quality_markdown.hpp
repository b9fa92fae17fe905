// The parts of report.md and of the terminal summary about quality beyond the CLIP score: the
// fidelity metrics (PSNR, SSIM) with their intervals and thresholds, and the per-prompt table,
// worst prompt first. Each reads only report.json fields and writes nothing for absent ones.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace diffbench {

// "Quality" table: one row per metric with its direction, mean and 95 % interval, median, worst
// prompt and threshold; then a note on capped PSNR values. Empty without report["metrics"].
std::string render_quality_markdown(const nlohmann::json& report);

// The images side by side, one row per prompt with the scores computed (CLIP, PSNR, SSIM, LPIPS,
// PickScore, HPS v2), in report["per_prompt"]'s order (worst first), or in prompt order for a report
// without it.
std::string render_per_prompt_markdown(const nlohmann::json& report);

// One terminal line: "fidelity to baseline: PSNR ... dB [lo, hi] (worst ..., #i)  SSIM ...". Empty
// when neither was computed.
std::string render_quality_summary(const nlohmann::json& report);

}  // namespace diffbench
