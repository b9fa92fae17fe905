#include "suite_commands.hpp"

#include "ranks.hpp"

#include <unistd.h>

#include <iostream>

#include "diffbench/eval/pyimport.hpp"
#include "diffbench/eval/suite.hpp"
#include "diffbench/eval/sweep.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "diffbench/report/suite_html.hpp"

namespace diffbench {

namespace {

int suite_on_this_rank(const SuiteArgs& a, EvalOptions options, const std::string& baseline,
                       const std::string& baseline_cache, bool json, const Logger& log, bool prints);

}  // namespace

CLI::App* add_suite(CLI::App& app, SuiteArgs& a) {
  auto* c = app.add_subcommand(
      "suite",
      "Evaluate many candidates (specs, .py files or folders of them), one baseline run per distinct baseline; "
      "writes a report per candidate and suite.json, suite.csv, suite.md, suite.html with a reason per failure");
  c->add_option("candidates", a.candidates, "candidate files (.toml, .py) and folders of them")->required();
  return c;
}

CLI::App* add_sweep(CLI::App& app, SuiteArgs& a) {
  auto* c = app.add_subcommand(
      "sweep",
      "Evaluate every combination of --grid values applied to a spec against one baseline (the spec without its "
      "accelerations); writes the suite's files plus sweep.json, sweep.md and sweep.html with the speed/quality frontier");
  c->add_option("spec", a.spec, "the pipeline spec (TOML) or .py file to vary")->required();
  c->add_option("--grid", a.grid,
                "KEY=V1,V2,... (repeatable; the cartesian product is run). Keys: steps, scheduler, guidance, height, "
                "width, dtype, METHOD.param (e.g. deepcache.cache_interval, tome.ratio) or accelerate[N].param")
      ->required()
      ->allow_extra_args(false);  // one KEY=VALUES per --grid: a spec after it stays the positional
  a.sweep = true;
  return c;
}

int run_suite_command(const SuiteArgs& a, EvalOptions options, const std::string& baseline,
                      const std::string& baseline_cache, bool json, bool quiet, const World& world) {
  // As eval: --json keeps stdout to the JSON, progress and log lines still go to stderr unless --quiet.
  const Logger log(quiet ? LogLevel::Error : LogLevel::Info, std::cerr, !quiet && ::isatty(2) && world.rank == 0);
  return run_on_ranks(world, log, [&](ProcessGroup* group) {
    options.group = group;
    return suite_on_this_rank(a, std::move(options), baseline, baseline_cache, json, log, world.rank == 0);
  });
}

namespace {

int suite_on_this_rank(const SuiteArgs& a, EvalOptions options, const std::string& baseline,
                       const std::string& baseline_cache, bool json, const Logger& log, bool prints) {
  SuiteOptions so;
  so.out = options.out;
  so.force = options.force;
  so.baseline_cache = baseline_cache;
  so.eval = std::move(options);
  if (!baseline.empty()) so.baseline = load_pipeline_file(baseline);

  SuiteResult r;
  if (a.sweep) {
    const PipelineSpec spec = load_pipeline_file(a.spec);  // a bad spec is the sweep's own error (exit 2)
    std::vector<GridAxis> grid;
    for (const auto& g : a.grid) grid.push_back(parse_grid(g));
    const auto candidates = sweep_candidates(spec, grid);
    if (!so.baseline) so.baseline = spec.baseline();
    nlohmann::json sweep;
    r = run_suite(so, candidates, log, [&](const std::filesystem::path& dir, const nlohmann::json& summary) {
      sweep = sweep_json(spec, grid, summary);
      write_file_atomic(dir / "sweep.json", sweep.dump(2) + "\n");
      write_file_atomic(dir / "sweep.md", render_sweep_markdown(sweep));
      write_suite_pages(dir, summary, sweep);
    });
    if (json && prints) std::cout << sweep.dump(2) << "\n";
  } else {
    std::vector<std::filesystem::path> paths(a.candidates.begin(), a.candidates.end());
    r = run_suite(so, expand_candidates(paths), log,
                  [](const std::filesystem::path& dir, const nlohmann::json& summary) { write_suite_pages(dir, summary); });
    if (json && prints) std::cout << r.summary.dump(2) << "\n";
  }
  if (!prints) return 0;  // rank 0 reports
  if (!json) {
    const auto& s = r.summary;
    std::cout << s["passed_count"].get<size_t>() << " of " << s["candidates"].get<size_t>() << " passed";
    for (const auto& [reason, count] : s["tally"].items())
      if (reason != "passed") std::cout << "; " << reason << ": " << count.get<int>();
    std::cout << "\n" << (a.sweep ? "sweep: " + (r.out / "sweep.md").string() : "suite: " + (r.out / "suite.md").string())
              << "\n";
  }
  return r.all_passed ? 0 : 1;
}

}  // namespace

}  // namespace diffbench
