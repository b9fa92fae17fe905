// `diffbench suite`: every candidate evaluated against its baseline, one baseline run per distinct
// (baseline spec, protocol), failures recorded with a reason from a fixed vocabulary.
#include "diffbench/eval/suite.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include <c10/util/Exception.h>

#include "diffbench/accel/method.hpp"
#include "diffbench/error.hpp"
#include "diffbench/eval/baseline_cache.hpp"
#include "diffbench/eval/pyimport.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/io/diffusers_folder.hpp"
#include "diffbench/pipeline/model_source.hpp"
#include "diffbench/io/prompts.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "diffbench/pipeline/device.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

fs::path default_suite_out() {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::localtime_r(&now, &tm);
  std::ostringstream o;
  o << "runs/suite-" << std::put_time(&tm, "%Y%m%d-%H%M%S");
  return o.str();
}

// A folder name from a candidate's name: letters, digits and . _ = - , kept; the rest become _.
std::string folder_name(const std::string& name) {
  std::string out;
  for (char c : name)
    out += (std::isalnum(static_cast<unsigned char>(c)) || std::string("._=-,").find(c) != std::string::npos) ? c : '_';
  if (out.empty() || out[0] == '.') out = "_" + out;
  return out;
}

// Each candidate's sub-folder: its name made safe (folder_name) and unique ("-2", "-3", ...). A sweep
// point's name carries its grid values, which may hold any character ('/', "..", markup).
std::vector<std::string> folder_names(const std::vector<SuiteCandidate>& candidates) {
  std::vector<std::string> out;
  std::set<std::string> used;
  for (const auto& c : candidates) {
    const std::string base = folder_name(c.name);
    std::string name = base;
    for (int k = 2; used.count(name); ++k) name = base + "-" + std::to_string(k);
    used.insert(name);
    out.push_back(name);
  }
  return out;
}

// The reason for an error thrown at `stage` (the vocabulary of suite_reasons()).
std::string classify(const std::string& stage, const Error& e) {
  if (e.kind() == ErrorKind::OutOfMemory) return "out_of_memory";
  if (e.kind() == ErrorKind::Numeric) return "nonfinite";
  if (stage != "run") return stage;
  switch (e.kind()) {
    case ErrorKind::Model:
    case ErrorKind::Input: return "load_error";
    case ErrorKind::Usage: return "config_mismatch";
    default: return "error";
  }
}

nlohmann::json number_or_null(const nlohmann::json& j, const nlohmann::json::json_pointer& p) {
  return j.contains(p) && j.at(p).is_number() ? j.at(p) : nlohmann::json();
}

// The row's numbers from a candidate's report.json.
void fill_from_report(nlohmann::json& row, const nlohmann::json& r) {
  using P = nlohmann::json::json_pointer;
  row["speedup"] = number_or_null(r, P("/speedup"));
  row["speedup_ci"] = r.value("speedup_ci", nlohmann::json());
  row["quality_loss_pct"] = number_or_null(r, P("/quality_loss_pct"));
  row["clip_score"] = {{"baseline", number_or_null(r, P("/baseline/clip_score"))},
                       {"candidate", number_or_null(r, P("/candidate/clip_score"))}};
  row["psnr_db"] = number_or_null(r, P("/metrics/psnr/mean"));
  row["ssim"] = number_or_null(r, P("/metrics/ssim/mean"));
  row["lpips"] = number_or_null(r, P("/metrics/lpips/mean"));
  row["seconds_per_image"] = {{"baseline", number_or_null(r, P("/baseline/seconds_per_image"))},
                              {"candidate", number_or_null(r, P("/candidate/seconds_per_image"))}};
  row["noisy_timing"] = r.contains(P("/timing/noisy")) ? r.at(P("/timing/noisy")) : nlohmann::json(false);
  // Every metric's relative loss vs the baseline where the report has one (clip, ssim, pickscore, hps, kid, fid).
  nlohmann::json losses = nlohmann::json::object();
  const nlohmann::json metrics = r.value("metrics", nlohmann::json::object());
  for (const auto& [name, m] : metrics.items())
    if (m.is_object() && m.contains("loss_pct")) losses[name] = m["loss_pct"].is_number() ? m["loss_pct"] : nlohmann::json();
  row["metric_loss_pct"] = losses;
}

struct BaselineGroup {
  std::string key;
  nlohmann::json material;
  std::shared_ptr<const BaselineResult> result;
  std::string source;  // run | cache
  std::string ran_with;
  std::vector<std::string> candidates;
};

}  // namespace

const std::vector<std::string>& suite_reasons() {
  static const std::vector<std::string> reasons = {"invalid_spec", "config_mismatch", "load_error", "quality_loss",
                                                   "fidelity",     "too_slow",        "latency",    "nonfinite",
                                                   "out_of_memory", "error"};
  return reasons;
}

std::vector<SuiteCandidate> expand_candidates(const std::vector<fs::path>& paths) {
  std::vector<SuiteCandidate> out;
  for (const auto& p : paths) {
    if (fs::is_directory(p)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(p)) {
        const std::string ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".toml" || ext == ".py")) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      if (files.empty()) throw UsageError("the folder holds no .toml or .py candidate", p.string());
      for (const auto& f : files) out.push_back({f.stem().string(), f, std::nullopt, nullptr, ""});
    } else if (fs::exists(p)) {
      out.push_back({p.stem().string(), p, std::nullopt, nullptr, ""});
    } else {
      // A missing file is that candidate's failure (invalid_spec), not the suite's.
      out.push_back({p.stem().string(), p, std::nullopt, nullptr, ""});
    }
  }
  if (out.empty()) throw UsageError("give at least one candidate (a spec, a .py file or a folder of them)", "suite");
  const std::vector<std::string> names = folder_names(out);
  for (size_t i = 0; i < out.size(); ++i) out[i].name = names[i];
  return out;
}

SuiteResult run_suite(const SuiteOptions& so, const std::vector<SuiteCandidate>& candidates, const Logger& log,
                      const std::function<void(const fs::path&, const nlohmann::json&)>& extra) {
  // What the suite itself needs is checked first: a failure here is exit 2, before any candidate.
  EvalOptions common = so.eval;
  validate_eval_options(common);
  const PromptSet prompts = load_prompts(common.prompts, common.num_samples);
  folder_hashes(resolve_demo_alias(common.clip, "clip"));  // a missing scorer is the suite's error, not each candidate's
  if (candidates.empty()) throw UsageError("no candidates", "suite");
  const fs::path out = so.out.empty() ? default_suite_out() : so.out;
  StagingDir staging(out, so.force);
  const BaselineCache cache(so.baseline_cache);
  const std::vector<std::string> names = folder_names(candidates);
  std::vector<BaselineGroup> groups;
  nlohmann::json rows = nlohmann::json::array();
  int generated = 0, from_cache = 0, retimed = 0;

  for (size_t i = 0; i < candidates.size(); ++i) {
    const SuiteCandidate& c = candidates[i];
    const std::string& name = names[i];
    log.info("suite: candidate " + std::to_string(i + 1) + "/" + std::to_string(candidates.size()) + ": " + name);
    nlohmann::json row = {{"name", name}, {"file", c.file.string()}, {"params", c.params}, {"report", nullptr}};
    std::string stage = "invalid_spec";
    std::string reason, message;
    try {
      if (!c.error.empty()) throw InputError(c.error, name);
      const PipelineSpec spec = c.spec ? *c.spec : load_pipeline_file(c.file);
      MethodRegistry::with_builtins().create_all(spec.accelerate, spec.file.string());
      const PipelineSpec baseline = so.baseline ? *so.baseline : spec.baseline();
      stage = "load_error";
      for (const PipelineSpec* s : {&baseline, &spec})
        ModelSource::open(s->model, ModelSourceOptions{s->variant, s->prediction_type, s->model_config});
      stage = "config_mismatch";
      const nlohmann::json consistency = check_consistency(baseline, spec, common.allow_model_mismatch);
      check_comparable(baseline, spec, consistency, common);
      stage = "load_error";
      const nlohmann::json material = baseline_key_material(baseline, common, prompts.prompts);
      const std::string key = baseline_key(material);
      auto group = std::find_if(groups.begin(), groups.end(), [&](const BaselineGroup& g) { return g.key == key; });
      if (group == groups.end()) {
        BaselineGroup g;
        g.key = key;
        g.material = material;
        if (!so.baseline_cache.empty() && (g.result = cache.find(key, log))) g.source = "cache";
        groups.push_back(std::move(g));
        group = groups.end() - 1;
      }
      EvalOptions e = common;
      e.candidate = spec;
      e.baseline = baseline;
      e.out = staging.path() / name;
      e.force = false;
      e.baseline_result = group->result;
      stage = "run";
      const EvalResult r = run_eval(e, log);
      group->candidates.push_back(name);
      if (!group->result) {
        auto shared = std::make_shared<BaselineResult>(*r.baseline_result);
        shared->provenance = {{"source", "suite"}, {"ran_with", name}};
        group->result = std::move(shared);
        group->source = "run";
        group->ran_with = name;
        ++generated;
        if (!so.baseline_cache.empty()) cache.store(key, material, *r.baseline_result, log);
      } else if (group->source == "cache" && group->candidates.size() == 1) {
        ++from_cache;
      }
      const nlohmann::json& reuse = r.report.value("baseline_reuse", nlohmann::json());
      if (!reuse.is_null() && !reuse.value("measured_now", nlohmann::json::array()).empty()) ++retimed;
      fill_from_report(row, r.report);
      row["report"] = name + "/report.json";
      row["baseline"] = {{"group", group - groups.begin()},
                         {"source", reuse.is_null() ? "run" : reuse.value("source", "")},
                         {"timing", reuse.is_null() || !reuse["measured_now"].empty() ? "measured_now" : "reused"}};
      row["status"] = r.passed ? "passed" : "failed";
      row["reasons"] = r.failure_codes;
      row["messages"] = r.failures;
      row["reason"] = r.failure_codes.empty() ? nlohmann::json() : nlohmann::json(r.failure_codes.front());
    } catch (const Error& err) {
      reason = classify(stage, err);
      message = err.what();
    } catch (const c10::Error& err) {
      reason = is_out_of_memory(err) ? "out_of_memory" : "error";
      message = err.what_without_backtrace();
    } catch (const std::bad_alloc&) {
      reason = "out_of_memory";
      message = "out of host memory";
    } catch (const std::exception& err) {
      reason = "error";
      message = err.what();
    }
    if (!reason.empty()) {
      log.warn("suite: " + name + ": " + reason + ": " + message);
      row["status"] = "failed";
      row["reason"] = reason;
      row["reasons"] = {reason};
      row["messages"] = {message};
      const nlohmann::json error = {{"name", name}, {"file", c.file.string()}, {"reason", reason}, {"message", message}};
      std::error_code ec;
      remove_tree(staging.path() / name, ec);  // anything a failed run left
      fs::create_directories(staging.path() / name);
      write_file_atomic(staging.path() / name / "error.json", error.dump(2) + "\n");
      row["report"] = name + "/error.json";
    }
    rows.push_back(row);
  }

  nlohmann::json tally = nlohmann::json::object();
  size_t passed = 0;
  for (const auto& row : rows) {
    const std::string key = row["status"] == "passed" ? "passed" : row["reason"].get<std::string>();
    tally[key] = tally.value(key, 0) + 1;
    passed += row["status"] == "passed";
  }
  nlohmann::json baselines = nlohmann::json::array();
  for (size_t g = 0; g < groups.size(); ++g) {
    if (!groups[g].result) continue;  // its only candidates failed before a baseline ran
    baselines.push_back({{"group", g},
                         {"key", groups[g].key},
                         {"spec", groups[g].material["baseline"]},
                         {"source", groups[g].source},
                         {"ran_with", groups[g].ran_with},
                         {"candidates", groups[g].candidates}});
  }
  nlohmann::json thresholds = {{"max_quality_loss_pct", common.max_quality_loss}};
  if (common.min_speedup) thresholds["min_speedup"] = *common.min_speedup;
  if (common.max_latency) thresholds["max_latency_s"] = *common.max_latency;
  if (common.fidelity.min_psnr) thresholds["min_psnr_db"] = *common.fidelity.min_psnr;
  if (common.fidelity.min_ssim) thresholds["min_ssim"] = *common.fidelity.min_ssim;
  if (common.fidelity.max_lpips) thresholds["max_lpips"] = *common.fidelity.max_lpips;

  nlohmann::json s;
  s["schema"] = "diffbench.suite/1";
  s["passed"] = passed == rows.size();
  s["candidates"] = rows.size();
  s["passed_count"] = passed;
  s["failed_count"] = rows.size() - passed;
  s["tally"] = tally;
  s["reasons_vocabulary"] = suite_reasons();
  s["baseline_runs"] = {{"generated", generated}, {"from_cache", from_cache}, {"retimed_with_candidate", retimed}};
  s["baseline_reuse_rule"] =
      "one baseline run per distinct baseline spec and protocol: later candidates reuse its images and CLIP "
      "scores; under the interleaved schedule each candidate times the baseline again beside itself, under the "
      "sequential schedule the baseline's times are reused too";
  s["baselines"] = baselines;
  s["protocol"] = {{"prompts_source", prompts.source}, {"num_samples", prompts.prompts.size()},
                   {"batch_size", common.batch_size},   {"seeds", eval_seeds(common)},
                   {"noise", to_string(common.noise)},  {"repeats", common.repeats},
                   {"clip", common.clip.string()}};
  s["baseline_cache"] = so.baseline_cache.empty() ? nlohmann::json() : nlohmann::json(so.baseline_cache.string());
  s["thresholds"] = thresholds;
  s["rows"] = rows;
  write_file_atomic(staging.path() / "suite.json", s.dump(2) + "\n");
  write_file_atomic(staging.path() / "suite.csv", render_suite_csv(s));
  write_file_atomic(staging.path() / "suite.md", render_suite_markdown(s));
  if (extra) extra(staging.path(), s);
  staging.commit();
  SuiteResult res;
  res.summary = std::move(s);
  res.all_passed = passed == rows.size();
  res.out = out;
  return res;
}

}  // namespace diffbench
