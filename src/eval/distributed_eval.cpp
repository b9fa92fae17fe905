#include "distributed_eval.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "diffbench/error.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "diffbench/pipeline/outputs.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

// What rank 0 needs of one side's timed run.
nlohmann::json side_json(const PipelineRun& r) {
  nlohmann::json nonfinite = nlohmann::json::array();
  for (const auto& b : r.nonfinite)
    nonfinite.push_back({b.first, b.count, b.first_nonfinite_step, b.nonfinite_images});
  return {{"batch_seconds", r.batch_seconds},
          {"batch_images", r.batch_images},
          {"batch_start_s", r.batch_start_s},
          {"batch_process", r.batch_process},
          {"seconds_per_image", r.seconds_per_image},
          {"stages", {r.stages.text_encoder, r.stages.denoise, r.stages.vae_decode, r.stages.total}},
          {"unet_calls_per_image", r.unet_calls_per_image},
          {"skipped_module_fraction", r.skipped_module_fraction},
          {"peak_memory_bytes", r.peak_memory_bytes},
          {"peak_memory_kind", r.peak_memory_kind},
          {"nonfinite", nonfinite}};
}

// Adds rank `j`'s side (whose shard starts at prompt `first`) to rank 0's merged side; `weight` and
// `total_weight` are the ranks' prompt counts.
void merge_side(PipelineRun& into, const nlohmann::json& j, size_t first, double weight, double total_weight,
                bool is_first_rank) {
  if (is_first_rank) {
    into.batch_seconds.clear();
    into.batch_images.clear();
    into.batch_start_s.clear();
    into.batch_process.clear();
    into.stages = {};
    into.unet_calls_per_image = into.skipped_module_fraction = 0;
    into.nonfinite.clear();
  }
  for (double s : j["batch_seconds"]) into.batch_seconds.push_back(s);
  for (size_t n : j["batch_images"]) into.batch_images.push_back(n);
  for (double s : j["batch_start_s"]) into.batch_start_s.push_back(s);
  for (int p : j["batch_process"]) into.batch_process.push_back(p);
  const auto& st = j["stages"];
  into.stages.text_encoder += st[0].get<double>();
  into.stages.denoise += st[1].get<double>();
  into.stages.vae_decode += st[2].get<double>();
  into.stages.total += st[3].get<double>();
  into.unet_calls_per_image += j["unet_calls_per_image"].get<double>() * weight / total_weight;
  into.skipped_module_fraction += j["skipped_module_fraction"].get<double>() * weight / total_weight;
  into.peak_memory_bytes = std::max(into.peak_memory_bytes, j["peak_memory_bytes"].get<int64_t>());
  for (const auto& b : j["nonfinite"]) {
    BatchRecord rec;
    rec.first = first + b[0].get<size_t>();
    rec.count = b[1].get<size_t>();
    rec.first_nonfinite_step = b[2].get<int64_t>();
    rec.nonfinite_images = b[3].get<bool>();
    into.nonfinite.push_back(rec);
  }
}

double seconds_per_image(const PipelineRun& r) {
  double seconds = 0, images = 0;
  for (size_t k = 0; k < r.batch_seconds.size(); ++k) {
    seconds += r.batch_seconds[k];
    images += static_cast<double>(r.batch_images[k]);
  }
  return images > 0 ? seconds / images : 0;
}

}  // namespace

TimedRuns gather_timed_runs(ProcessGroup& group, TimedRuns local, const Shard& shard, double timed_wall_s,
                            const std::string& device, nlohmann::json* distributed) {
  const World& world = group.world();
  const nlohmann::json mine = {{"rank", world.rank},
                               {"local_rank", world.local_rank},
                               {"host", rank_host_name()},
                               {"device", device},
                               {"prompts", {shard.first, shard.end}},
                               {"schedule", to_string(local.schedule.schedule)},
                               {"timed_wall_s", timed_wall_s},
                               {"baseline", side_json(local.baseline)},
                               {"candidate", side_json(local.candidate)}};
  const std::vector<std::string> texts = group.gather(mine.dump());
  // Images per seed and side, gathered in the same order on every rank.
  std::vector<std::vector<at::Tensor>> base_parts, cand_parts;
  for (size_t k = 0; k < local.candidate_images.size(); ++k) {
    base_parts.push_back(group.gather(local.baseline_images[k]));
    cand_parts.push_back(group.gather(local.candidate_images[k]));
  }
  if (!group.root()) return local;

  TimedRuns merged = std::move(local);
  std::vector<nlohmann::json> ranks;
  for (const auto& t : texts) ranks.push_back(nlohmann::json::parse(t));
  double total_prompts = 0, images = 0, slowest = 0;
  for (const auto& j : ranks) total_prompts += j["prompts"][1].get<double>() - j["prompts"][0].get<double>();
  nlohmann::json rank_rows = nlohmann::json::array();
  bool same_schedule = true;
  for (size_t r = 0; r < ranks.size(); ++r) {
    const auto& j = ranks[r];
    const auto first = j["prompts"][0].get<size_t>();
    const double weight = j["prompts"][1].get<double>() - j["prompts"][0].get<double>();
    merge_side(merged.baseline, j["baseline"], first, weight, total_prompts, r == 0);
    merge_side(merged.candidate, j["candidate"], first, weight, total_prompts, r == 0);
    for (const char* side : {"baseline", "candidate"})
      for (size_t n : j[side]["batch_images"]) images += static_cast<double>(n);
    slowest = std::max(slowest, j["timed_wall_s"].get<double>());
    same_schedule = same_schedule && j["schedule"] == ranks.front()["schedule"];
    rank_rows.push_back({{"rank", j["rank"]},
                         {"local_rank", j["local_rank"]},
                         {"host", j["host"]},
                         {"device", j["device"]},
                         {"prompts", j["prompts"]},
                         {"schedule", j["schedule"]},
                         {"baseline_seconds_per_image", j["baseline"]["seconds_per_image"]},
                         {"candidate_seconds_per_image", j["candidate"]["seconds_per_image"]},
                         {"timed_wall_s", j["timed_wall_s"]}});
  }
  merged.baseline.seconds_per_image = seconds_per_image(merged.baseline);
  merged.candidate.seconds_per_image = seconds_per_image(merged.candidate);
  for (size_t k = 0; k < merged.candidate_images.size(); ++k) {
    merged.baseline_images[k] = at::cat(base_parts[k], 0);
    merged.candidate_images[k] = at::cat(cand_parts[k], 0);
  }
  *distributed = {{"world_size", world.size},
                  {"launcher", world.launcher},
                  {"backend", "gloo"},
                  {"split", "contiguous shards of whole batches; rank 0 scores every image"},
                  {"ranks", rank_rows},
                  {"images", images},
                  {"timed_wall_s", slowest},
                  {"images_per_second", slowest > 0 ? images / slowest : 0.0},
                  {"same_schedule", same_schedule}};
  return merged;
}

std::optional<fs::path> shared_staging(ProcessGroup& group, const fs::path* staging, const Logger& log) {
  constexpr const char* kCheck = ".ranks-see-this";
  std::string token;
  if (group.root()) {
    std::random_device rd;
    token = std::to_string(rd()) + "-" + std::to_string(rd()) + "-" + std::to_string(::getpid());
    write_file_atomic(*staging / kCheck, token);
  }
  const std::string sent = group.broadcast(group.root() ? staging->string() + "\n" + token : std::string());
  const fs::path dir = sent.substr(0, sent.find('\n'));
  token = sent.substr(sent.find('\n') + 1);
  std::ifstream in(dir / kCheck, std::ios::binary);
  std::stringstream seen;
  seen << in.rdbuf();
  const std::vector<std::string> answers = group.gather(in && seen.str() == token ? "1" : "0");
  std::string blind;  // the ranks that do not see it
  for (size_t r = 0; r < answers.size(); ++r)
    if (answers[r] != "1") blind += (blind.empty() ? "" : ", ") + std::to_string(r);
  const bool shared = group.broadcast(blind.empty() ? "1" : "0") == "1";
  if (group.root()) {
    std::error_code ec;
    fs::remove(dir / kCheck, ec);
    if (!shared)
      log.info("rank(s) " + blind + " do not see the staging folder " + dir.string() +
               " (no shared file system): rank 0 gathers the images, and the run is not journalled, so it cannot "
               "be resumed (--resume)");
  }
  if (!shared) return std::nullopt;
  return dir;
}

EvalJournal share_journal(ProcessGroup& group, const fs::path& dir, EvalJournal* root) {
  nlohmann::json sent;
  if (group.root()) {
    nlohmann::json batches = nlohmann::json::array();
    for (const auto& b : root->batches()) batches.push_back(journal_batch_json(b));
    sent = {{"process", root->process()}, {"schedule", root->schedule().to_json()}, {"batches", batches}};
  }
  const nlohmann::json got = nlohmann::json::parse(group.broadcast(group.root() ? sent.dump() : std::string()));
  const int rank = group.world().rank;
  if (group.root()) {
    root->write_batches_as_rank(rank);
    return std::move(*root);
  }
  std::vector<JournalBatch> batches;
  for (const auto& b : got["batches"]) batches.push_back(journal_batch_from_json(b));
  return EvalJournal::for_rank(dir, rank, got["process"].get<int>(), std::move(batches),
                               schedule_from_json(got["schedule"]));
}

}  // namespace diffbench
