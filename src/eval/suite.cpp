// `diffbench suite`: every candidate evaluated against its baseline, one baseline run per distinct
// (baseline spec, protocol), failures recorded with a reason from a fixed vocabulary.
#include "diffbench/eval/suite.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <ctime>
#include <iomanip>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <c10/util/Exception.h>

#include "diffbench/accel/method.hpp"
#include "diffbench/dist/process_group.hpp"
#include "diffbench/error.hpp"
#include "diffbench/eval/distributed.hpp"
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

// Every file under `dir` (path relative to it -> bytes), to send a rank's candidate folders to rank 0.
nlohmann::json folder_files(const fs::path& dir) {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    files[fs::relative(e.path(), dir).string()] = nlohmann::json::binary(bytes);
  }
  return files;
}

// A suite whose candidates are split over the ranks: each rank's rows, baseline groups, counts and
// candidate folders go to rank 0, which appends them (in rank order, so in candidate order) to its
// own and writes the folders into `dir`, its staging folder. The other ranks return false.
bool gather_shares(ProcessGroup& pg, const fs::path& dir, nlohmann::json& rows, std::vector<BaselineGroup>& groups,
                   std::array<int*, 3> counts) {
  nlohmann::json mine = {{"rows", rows}, {"counts", {*counts[0], *counts[1], *counts[2]}}};
  nlohmann::json gs = nlohmann::json::array();
  for (const auto& g : groups)
    gs.push_back({{"key", g.key}, {"material", g.material}, {"source", g.source}, {"ran_with", g.ran_with},
                  {"candidates", g.candidates}, {"ran", g.result != nullptr}});
  mine["groups"] = gs;
  if (!pg.root()) mine["files"] = folder_files(dir);
  const std::vector<uint8_t> packed = nlohmann::json::to_cbor(mine);
  const std::vector<std::string> shares = pg.gather(std::string(packed.begin(), packed.end()));
  if (!pg.root()) return false;
  for (size_t r = 1; r < shares.size(); ++r) {
    const nlohmann::json share = nlohmann::json::from_cbor(std::vector<uint8_t>(shares[r].begin(), shares[r].end()));
    const size_t offset = groups.size();
    for (auto row : share["rows"]) {
      if (row.contains("baseline") && row["baseline"].contains("group"))
        row["baseline"]["group"] = row["baseline"]["group"].get<size_t>() + offset;
      rows.push_back(row);
    }
    for (const auto& g : share["groups"]) {
      BaselineGroup b;
      b.key = g["key"];
      b.material = g["material"];
      b.source = g["source"];
      b.ran_with = g["ran_with"];
      b.candidates = g["candidates"].get<std::vector<std::string>>();
      if (g["ran"].get<bool>()) b.result = std::make_shared<BaselineResult>();  // ran on that rank
      groups.push_back(std::move(b));
    }
    for (size_t k = 0; k < counts.size(); ++k) *counts[k] += share["counts"][k].get<int>();
    for (const auto& [rel, bytes] : share["files"].items()) {
      const fs::path file = dir / rel;
      fs::create_directories(file.parent_path());
      const auto& b = bytes.get_binary();
      write_file_atomic(file, std::string(b.begin(), b.end()));
    }
  }
  return true;
}

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
  // A multi-process run (docs/distributed.md): with more candidates than ranks, each rank evaluates
  // a contiguous share of whole candidates as one process, and rank 0 gathers them; otherwise every
  // candidate's prompts are split over the ranks, as eval splits them. Rank 0 writes the suite.
  ProcessGroup* const pg = so.eval.group;
  const bool root = !pg || pg->root();
  const bool by_candidate = pg && candidates.size() > static_cast<size_t>(pg->world().size);
  const Shard share = by_candidate ? shard_prompts(candidates.size(), 1, pg->world()) : Shard{0, candidates.size()};
  common.group = by_candidate ? nullptr : pg;
  std::optional<StagingDir> staging;  // rank 0's
  fs::path dir;  // where this rank writes its candidates' folders (none: it writes nothing)
  if (root) {
    staging.emplace(out, so.force);
    dir = staging->path();
  } else if (by_candidate) {
    dir = fs::temp_directory_path() / ("diffbench-suite-rank" + std::to_string(pg->world().rank) + "-" +
                                       std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  struct RankDir {  // a rank's own folder goes when the suite ends, however it ends
    fs::path path;
    ~RankDir() {
      std::error_code ec;
      if (!path.empty()) remove_tree(path, ec);
    }
  } rank_dir{root ? fs::path() : dir};
  // The baseline cache is one process's: a multi-process suite generates its baselines.
  const fs::path cache_dir = pg ? fs::path() : so.baseline_cache;
  const BaselineCache cache(cache_dir);
  const std::vector<std::string> names = folder_names(candidates);
  std::vector<BaselineGroup> groups;
  nlohmann::json rows = nlohmann::json::array();
  int generated = 0, from_cache = 0, retimed = 0;

  for (size_t i = share.first; i < share.end; ++i) {
    const SuiteCandidate& c = candidates[i];
    const std::string& name = names[i];
    log.info("suite: candidate " + std::to_string(i + 1) + "/" + std::to_string(candidates.size()) + ": " + name);
    nlohmann::json row = {{"name", name}, {"file", c.file.string()}, {"params", c.params}, {"report", nullptr}};
    std::string stage = "invalid_spec";
    std::string reason, message;
    try {
      if (!c.error.empty()) throw InputError(c.error, name);
      PipelineSpec spec = c.spec ? *c.spec : load_pipeline_file(c.file);
      MethodRegistry::with_builtins().create_all(spec.accelerate, spec.file.string());
      PipelineSpec baseline = so.baseline ? *so.baseline : spec.baseline();
      if (pg)  // "cuda": this rank's GPU
        for (PipelineSpec* p : {&spec, &baseline}) p->device = rank_device(p->device, pg->world());
      stage = "load_error";
      for (const PipelineSpec* s : {&baseline, &spec})
        ModelSource::open(s->model, ModelSourceOptions{s->variant, s->prediction_type, s->model_config});
      stage = "config_mismatch";
      const nlohmann::json consistency = check_consistency(baseline, spec, common.allow_model_mismatch);
      EvalOptions e = common;
      e.allow_identical = common.allow_identical || c.allow_identical;
      check_comparable(baseline, spec, consistency, e);
      stage = "load_error";
      const nlohmann::json material = baseline_key_material(baseline, common, prompts.prompts);
      const std::string key = baseline_key(material);
      auto group = std::find_if(groups.begin(), groups.end(), [&](const BaselineGroup& g) { return g.key == key; });
      if (group == groups.end()) {
        BaselineGroup g;
        g.key = key;
        g.material = material;
        if (!cache_dir.empty() && (g.result = cache.find(key, log))) g.source = "cache";
        groups.push_back(std::move(g));
        group = groups.end() - 1;
      }
      e.candidate = spec;
      e.baseline = baseline;
      e.out = dir / name;
      e.force = false;
      e.baseline_result = common.group ? nullptr : group->result;  // prompts split: each generates its own
      stage = "run";
      const EvalResult r = run_eval(e, log);
      if (!root && common.group) continue;  // rank 0 scores the candidate and writes its row
      group->candidates.push_back(name);
      if (!group->result || common.group) {
        auto shared = std::make_shared<BaselineResult>(*r.baseline_result);
        shared->provenance = {{"source", "suite"}, {"ran_with", name}};
        group->result = std::move(shared);
        group->source = "run";
        group->ran_with = name;
        ++generated;
        if (!cache_dir.empty()) cache.store(key, material, *r.baseline_result, log);
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
      if (common.group && stage == "run") throw;  // the ranks' collectives would no longer pair up
      reason = classify(stage, err);
      message = err.what();
    } catch (const c10::Error& err) {
      if (common.group && stage == "run") throw;  // the ranks' collectives would no longer pair up
      reason = is_out_of_memory(err) ? "out_of_memory" : "error";
      message = err.what_without_backtrace();
    } catch (const std::bad_alloc&) {
      if (common.group && stage == "run") throw;  // the ranks' collectives would no longer pair up
      reason = "out_of_memory";
      message = "out of host memory";
    } catch (const std::exception& err) {
      if (common.group && stage == "run") throw;  // the ranks' collectives would no longer pair up
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
      if (dir.empty()) continue;  // rank 0 writes it
      std::error_code ec;
      remove_tree(dir / name, ec);  // anything a failed run left
      fs::create_directories(dir / name);
      write_file_atomic(dir / name / "error.json", error.dump(2) + "\n");
      row["report"] = name + "/error.json";
    }
    rows.push_back(row);
  }
  if (by_candidate) {
    if (!gather_shares(*pg, dir, rows, groups, {&generated, &from_cache, &retimed})) return {};
  } else if (!root) {
    return {};
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
  s["baseline_cache"] = cache_dir.empty() ? nlohmann::json() : nlohmann::json(cache_dir.string());
  if (pg)
    s["distributed"] = {{"world_size", pg->world().size},
                        {"launcher", pg->world().launcher},
                        {"backend", "gloo"},
                        {"split", by_candidate ? "candidates: contiguous shares of whole candidates, each rank one process"
                                               : "prompts: each candidate's prompts over the ranks, as eval"}};
  s["thresholds"] = thresholds;
  s["rows"] = rows;
  write_file_atomic(dir / "suite.json", s.dump(2) + "\n");
  write_file_atomic(dir / "suite.csv", render_suite_csv(s));
  write_file_atomic(dir / "suite.md", render_suite_markdown(s));
  if (extra) extra(dir, s);
  staging->commit();
  SuiteResult res;
  res.summary = std::move(s);
  res.all_passed = passed == rows.size();
  res.out = out;
  return res;
}

}  // namespace diffbench
