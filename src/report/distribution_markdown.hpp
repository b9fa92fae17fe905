// The parts of report.md and of the terminal summary about the image sets as distributions (KID, FID against
// the baseline's set and against reference images), the preference scores (PickScore, HPS v2) and
// --max-metric-loss limits. Each reads only
// report.json fields and writes nothing for absent ones.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace diffbench {

// A KID/FID table (candidate vs baseline, each side vs the reference images, set sizes, threshold) with the
// note on FID's bias below 2,048 images, then one line per --max-metric-loss limit.
std::string render_distribution_markdown(const nlohmann::json& report);

// One terminal line: "distribution: KID ... FID ... (unreliable below 2048 images)". Empty without KID/FID.
std::string render_distribution_summary(const nlohmann::json& report);

}  // namespace diffbench
