// `diffbench sweep SPEC --grid KEY=V1,V2,... [--grid ...]`: the cartesian product of the grid's
// values applied to a spec becomes a suite (eval/suite.hpp) against one baseline, the spec without
// its accelerations (steps and scheduler as the spec has them), and the speed/quality frontier.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/eval/evaluator.hpp"  // PipelineSpec, wherever the spec header lives
#include "diffbench/eval/suite.hpp"

namespace diffbench {

// One --grid: a key addressing the spec and its values as typed.
//   steps, scheduler, guidance, height, width      [pipeline] fields
//   METHOD.param, e.g. deepcache.cache_interval    the spec's one [[accelerate]] entry of METHOD
//   accelerate[N].param                            entry N (from 0), when a spec has two of a method
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
};

// "KEY=V1,V2,..." (UsageError naming --grid when malformed or a value is empty).
GridAxis parse_grid(const std::string& text);

// Sets `key` of `spec` to `value`: integers for steps, height and width, a number for guidance, a
// method parameter typed as the method declares it (true/false, integer, number or text for a
// plugin's). UsageError naming --grid for a key the spec has no place for or a mistyped value.
void apply_grid_value(PipelineSpec& spec, const std::string& key, const std::string& value);

// The grid's points in order (the last axis varies fastest), each a candidate named
// "<spec>-key=value-..." with its parameters; every key is checked on the spec first. A point equal to
// its baseline is allowed (SuiteCandidate::allow_identical).
std::vector<SuiteCandidate> sweep_candidates(const PipelineSpec& spec, const std::vector<GridAxis>& grid);

// Pareto-optimal points of (x = speedup, higher is better; y = a quality metric): a point is
// optimal when no other point is at least as good in both and better in one. A point without a y
// (null: not computed, undefined) or without an x is never optimal and does not dominate.
struct FrontierPoint {
  std::optional<double> x, y;
};
std::vector<bool> pareto_front(const std::vector<FrontierPoint>& points, bool y_higher_is_better);

// sweep.json from the suite's summary: the grid, one point per candidate with its parameters, and
// per quality metric (quality_loss_pct, psnr_db, ssim, lpips when computed) the frontier: each
// point's x, y and `pareto`, and the optimal points in order of speedup.
nlohmann::json sweep_json(const PipelineSpec& spec, const std::vector<GridAxis>& grid, const nlohmann::json& suite);

// sweep.md: the table of points and each metric's frontier.
std::string render_sweep_markdown(const nlohmann::json& sweep);

}  // namespace diffbench
