// Turning an evaluation's report.json into what a person reads.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace diffbench {

// report.md: a verdict line, a table a person reads in ten seconds, the stage split, the
// consistency notes and the thresholds.
std::string render_markdown(const nlohmann::json& report);

// A few lines for the terminal: speedup, both CLIP scores, quality loss with its CI, verdict.
std::string render_summary(const nlohmann::json& report);

}  // namespace diffbench
