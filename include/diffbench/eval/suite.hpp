// Many candidates against their baselines: `diffbench suite` (candidate files or folders of them)
// and, built on it, `diffbench sweep` (eval/sweep.hpp). Candidates whose baseline spec and
// protocol are the same share one baseline run (eval/baseline_cache.hpp says which numbers are
// reused). A candidate that cannot be evaluated is recorded with its reason and the suite goes on.
//
// Output folder: one sub-folder per candidate (its report.json / report.md, or error.json when it
// did not run), suite.json, suite.csv and suite.md: one row per candidate, the tally of reasons.
// The pages (suite.html, sweep.html: report/suite_html.hpp) are written by the caller through
// run_suite's `extra`, as the command does.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/eval/evaluator.hpp"
#include "diffbench/log.hpp"

namespace diffbench {

// Why a candidate failed, a fixed vocabulary (suite.json's `reason`, the tally's keys):
//   invalid_spec     the file cannot be read, parsed or translated; an unknown method or parameter
//   config_mismatch  other model weights than the baseline; a changed task (size, guidance); identical
//   load_error       a model or scorer that cannot be loaded
//   quality_loss     CLIP quality loss above --max-quality-loss (or undefined)
//   fidelity         PSNR / SSIM / LPIPS beyond --min-psnr / --min-ssim / --max-lpips
//   too_slow         the speedup's whole interval below --min-speedup
//   latency          seconds per image above --max-latency
//   nonfinite        NaN or inf latents or images
//   out_of_memory    the device or host ran out of memory
//   error            anything else (an internal error; the message says what)
const std::vector<std::string>& suite_reasons();

struct SuiteCandidate {
  std::string name;                  // its sub-folder (unique within the suite)
  std::filesystem::path file;        // the spec or .py file (empty for a sweep point)
  std::optional<PipelineSpec> spec;  // already built (a sweep point); else loaded from `file`
  nlohmann::json params;             // a sweep point's parameters (null otherwise)
  std::string error;                 // set when the point could not be built (an invalid_spec row)
  // A sweep point equal to its baseline (steps=50 on a 50-step spec without accelerations) is measured as
  // any other, the sweep's timing-noise floor, instead of failing as config_mismatch.
  bool allow_identical = false;
};

struct SuiteOptions {
  // The protocol and thresholds every candidate runs with; its candidate, baseline, out, force and
  // baseline_result are set per candidate.
  EvalOptions eval;
  std::optional<PipelineSpec> baseline;  // --baseline: one for all (else each candidate's derived one)
  std::filesystem::path baseline_cache;  // "" = no cache
  std::filesystem::path out;
  bool force = false;
};

struct SuiteResult {
  nlohmann::json summary;  // suite.json
  bool all_passed = false;
  std::filesystem::path out;
};

// Files and folders named on the command line: a folder contributes its *.toml and *.py files in
// name order. Sub-folder names are the file stems, made unique. UsageError when there is none.
std::vector<SuiteCandidate> expand_candidates(const std::vector<std::filesystem::path>& paths);

// Runs every candidate. `extra` (optional) writes more files into the output folder before it is
// committed (the sweep's). Throws only when the suite itself cannot run (options, prompts, --out).
// In a multi-process run (options.eval.group) the ranks split the candidates when there are more
// of them than ranks, else each candidate's prompts; rank 0 returns the result and alone writes the
// folder (and calls `extra`), the other ranks return an empty SuiteResult (docs/distributed.md).
SuiteResult run_suite(const SuiteOptions& options, const std::vector<SuiteCandidate>& candidates, const Logger& log,
                      const std::function<void(const std::filesystem::path& dir, const nlohmann::json& summary)>&
                          extra = {});

// suite.csv and suite.md from suite.json.
std::string render_suite_csv(const nlohmann::json& summary);
std::string render_suite_markdown(const nlohmann::json& summary);

}  // namespace diffbench
