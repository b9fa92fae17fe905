// The suite and sweep commands: their own arguments here, the evaluation options shared with eval
// (main.cpp's add_eval_options).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "diffbench/dist/world.hpp"
#include "diffbench/eval/evaluator.hpp"

namespace diffbench {

struct SuiteArgs {
  std::vector<std::string> candidates;  // suite: files and folders
  std::string spec;                     // sweep: the spec
  std::vector<std::string> grid;        // sweep: KEY=V1,V2,...
  bool sweep = false;
};

CLI::App* add_suite(CLI::App& app, SuiteArgs& a);
CLI::App* add_sweep(CLI::App& app, SuiteArgs& a);

// Exit code: 0 every candidate passed, 1 any failed; errors of the suite itself are thrown (exit 2).
// Under a launcher every rank runs it (docs/distributed.md); rank 0 prints and returns the result.
int run_suite_command(const SuiteArgs& a, EvalOptions options, const std::string& baseline,
                      const std::string& baseline_cache, bool json, bool quiet, const World& world);

}  // namespace diffbench
