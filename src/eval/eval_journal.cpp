// eval's journal of finished batches (eval_journal.hpp).
#include "eval_journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "diffbench/error.hpp"
#include "diffbench/eval/baseline_cache.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/pipeline/device.hpp"
#include "diffbench/pipeline/environment.hpp"
#include "diffbench/pipeline/outputs.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSchema = "diffbench.eval-journal/1";

std::string to_hex(const std::vector<uint8_t>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

std::vector<uint8_t> from_hex(const std::string& hex) {
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw InputError("noise_state is not hexadecimal", "journal");
  };
  if (hex.size() % 2) throw InputError("noise_state has an odd length", "journal");
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(nibble(hex[2 * i]) * 16 + nibble(hex[2 * i + 1]));
  return out;
}

const char* side_name(int side) { return side == 0 ? "baseline" : "candidate"; }

}  // namespace

ScheduleChoice schedule_from_json(const nlohmann::json& j) {
  ScheduleChoice c;
  c.schedule = parse_schedule(j.at("schedule").get<std::string>());
  c.asked = j.at("asked").get<bool>();
  c.estimated_bytes = j.at("estimated_bytes").get<int64_t>();
  c.free_bytes = j.at("free_bytes").get<int64_t>();
  c.reason = j.at("reason").get<std::string>();
  return c;
}

nlohmann::json journal_batch_json(const JournalBatch& b) {
  const BatchRecord& r = b.record;
  nlohmann::json j = {{"type", "batch"},
                      {"process", b.process},
                      {"rank", b.rank},
                      {"side", side_name(b.at.side)},
                      {"pass", b.at.pass},
                      {"batch", b.at.batch},
                      {"first", r.first},
                      {"count", r.count},
                      {"start_s", b.start_s},
                      {"times", to_json(r.times)},
                      {"unet_calls", r.unet_calls},
                      {"module_calls", r.module_calls},
                      {"module_skips", r.module_skips},
                      {"guided_calls", r.guided_calls},
                      {"first_nonfinite_step", r.first_nonfinite_step},
                      {"nonfinite_images", r.nonfinite_images},
                      {"peak_memory_bytes", b.peak_memory_bytes},
                      {"peak_memory_kind", b.peak_memory_kind},
                      {"images", b.images},
                      {"clip", b.clip}};
  if (!b.methods.is_null()) j["methods"] = b.methods;
  if (!b.noise_state.empty()) j["noise_state"] = to_hex(b.noise_state);
  if (b.device_seconds) j["device_seconds"] = *b.device_seconds;
  return j;
}

JournalBatch journal_batch_from_json(const nlohmann::json& j) {
  JournalBatch b;
  const std::string side = j.at("side").get<std::string>();
  if (side != "baseline" && side != "candidate") throw InputError("unknown side '" + side + "'", "journal");
  b.at.side = side == "baseline" ? 0 : 1;
  b.at.pass = j.at("pass").get<int>();
  b.at.batch = j.at("batch").get<size_t>();
  b.process = j.at("process").get<int>();
  b.rank = j.value("rank", 0);
  BatchRecord& r = b.record;
  r.first = j.at("first").get<size_t>();
  r.count = j.at("count").get<size_t>();
  r.times = stage_times_from_json(j.at("times"));
  r.unet_calls = j.at("unet_calls").get<int64_t>();
  r.module_calls = j.at("module_calls").get<int64_t>();
  r.module_skips = j.at("module_skips").get<int64_t>();
  r.guided_calls = j.at("guided_calls").get<int64_t>();
  r.first_nonfinite_step = j.at("first_nonfinite_step").get<int64_t>();
  r.nonfinite_images = j.at("nonfinite_images").get<bool>();
  b.start_s = j.at("start_s").get<double>();
  b.peak_memory_bytes = j.at("peak_memory_bytes").get<int64_t>();
  b.peak_memory_kind = j.at("peak_memory_kind").get<std::string>();
  b.images = j.at("images").get<bool>();
  b.clip = j.at("clip").get<std::vector<double>>();
  if (j.contains("methods")) b.methods = j["methods"];
  if (j.contains("noise_state")) b.noise_state = from_hex(j["noise_state"].get<std::string>());
  if (j.contains("device_seconds")) b.device_seconds = j["device_seconds"].get<double>();
  return b;
}

namespace {


std::string short_value(const nlohmann::json& v) {
  if (v.is_null()) return "(none)";
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

void differences(const nlohmann::json& a, const nlohmann::json& b, const std::string& path, size_t max,
                 std::vector<std::string>* out) {
  if (out->size() >= max || a == b) return;
  if (a.is_object() && b.is_object()) {
    for (const auto& [k, v] : a.items())
      differences(v, b.contains(k) ? b[k] : nlohmann::json(), path.empty() ? k : path + "." + k, max, out);
    for (const auto& [k, v] : b.items())
      if (!a.contains(k)) differences(nlohmann::json(), v, path.empty() ? k : path + "." + k, max, out);
    return;
  }
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) differences(a[i], b[i], path + "[" + std::to_string(i) + "]", max, out);
    return;
  }
  out->push_back(path + ": " + short_value(a) + " then, " + short_value(b) + " now");
}

nlohmann::json add_counters(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number_integer() && b.is_number_integer()) return a.get<int64_t>() + b.get<int64_t>();
  if (a.is_object() && b.is_object()) {
    nlohmann::json out = b;
    for (const auto& [k, v] : a.items()) out[k] = b.contains(k) ? add_counters(v, b[k]) : v;
    return out;
  }
  return b;  // not a counter: the later value
}

nlohmann::json subtract_counters(const nlohmann::json& before, const nlohmann::json& after) {
  if (before.is_number_integer() && after.is_number_integer()) return after.get<int64_t>() - before.get<int64_t>();
  if (before.is_object() && after.is_object()) {
    nlohmann::json out = after;
    for (const auto& [k, v] : after.items())
      if (before.contains(k)) out[k] = subtract_counters(before[k], v);
    return out;
  }
  return after;  // not a counter: the later value
}

// The batch files of a journal folder: journal.jsonl, then journal.rank-R.jsonl by R.
std::vector<fs::path> batch_files(const fs::path& dir) {
  std::vector<std::pair<long, fs::path>> ranks;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const std::string head = "journal.rank-", tail = ".jsonl";
    if (name.size() <= head.size() + tail.size() || name.rfind(head, 0) != 0 ||
        name.compare(name.size() - tail.size(), tail.size(), tail) != 0)
      continue;
    const std::string digits = name.substr(head.size(), name.size() - head.size() - tail.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    ranks.emplace_back(std::stol(digits), e.path());
  }
  std::sort(ranks.begin(), ranks.end());
  std::vector<fs::path> out{dir / EvalJournal::kFile};
  for (const auto& [r, p] : ranks) out.push_back(p);
  return out;
}

std::string rank_file_name(int rank) { return "journal.rank-" + std::to_string(rank) + ".jsonl"; }

}  // namespace

nlohmann::json eval_journal_material(const PipelineSpec& baseline, const PipelineSpec& candidate, const EvalOptions& o,
                                     const std::vector<std::string>& prompts) {
  nlohmann::json env = environment_info(parse_device(candidate.device));
  env.erase("diffbench");
  nlohmann::json scorer;  // null without the clip metric
  if (o.metrics.clip)
    scorer = {{"files", folder_hashes(resolve_demo_alias(o.clip, "clip"))}, {"clip_score", to_string(o.clip_score)}};
  nlohmann::json reused;
  if (o.baseline_result) reused = o.baseline_result->provenance.value("key", o.baseline_result->provenance.value("source", ""));
  return {{"baseline", spec_identity(baseline)},
          {"candidate", spec_identity(candidate)},
          {"protocol",
           {{"prompts", prompts},
            {"seeds", eval_seeds(o)},
            {"batch_size", o.batch_size},
            {"noise", to_string(o.noise)},
            {"repeats", o.repeats},
            {"warmup", o.warmup},
            {"allow_nonfinite", o.allow_nonfinite},
            {"schedule", o.schedule ? to_string(*o.schedule) : std::string("auto")}}},
          {"metrics", to_string(o.metrics)},
          {"scorer", scorer},
          {"baseline_reused", reused},
          {"device", env},
          {"diffbench", DIFFBENCH_VERSION}};
}

std::vector<std::string> material_differences(const nlohmann::json& journal, const nlohmann::json& now, size_t max) {
  std::vector<std::string> out;
  differences(journal, now, "", max, &out);
  return out;
}

nlohmann::json method_counters_delta(const nlohmann::json& before, const nlohmann::json& after) {
  if (!before.is_array() || !after.is_array() || before.size() != after.size()) return after;
  nlohmann::json out = after;
  for (size_t i = 0; i < after.size(); ++i)
    out[i]["stats"] = subtract_counters(before[i].value("stats", nlohmann::json::object()),
                                        after[i].value("stats", nlohmann::json::object()));
  return out;
}

nlohmann::json add_method_counters(const nlohmann::json& a, const nlohmann::json& b) {
  if (!a.is_array() || a.empty()) return b;
  if (!b.is_array() || a.size() != b.size()) return a;
  nlohmann::json out = b;
  for (size_t i = 0; i < a.size(); ++i) out[i]["stats"] = add_counters(a[i].value("stats", nlohmann::json::object()),
                                                                         b[i].value("stats", nlohmann::json::object()));
  return out;
}

EvalJournal EvalJournal::create(const fs::path& dir, const nlohmann::json& material, const ScheduleChoice& schedule,
                                int world_size) {
  EvalJournal j;
  j.file_ = j.batch_file_ = dir / kFile;
  j.schedule_ = schedule;
  j.world_sizes_ = {world_size};
  for (const auto& f : batch_files(dir)) {
    std::error_code ec;
    fs::remove(f, ec);
  }
  j.append_line(j.file_, {{"type", "header"}, {"schema", kSchema}, {"material", material}, {"schedule", schedule.to_json()}});
  j.append_line(j.file_, {{"type", "process"}, {"process", 0}, {"pid", static_cast<long>(::getpid())}, {"world_size", world_size}});
  return j;
}

EvalJournal EvalJournal::resume(const fs::path& dir, const nlohmann::json& material, int world_size) {
  EvalJournal j;
  j.file_ = j.batch_file_ = dir / kFile;
  bool header = false;
  for (const fs::path& file : batch_files(dir)) {
    const bool main_file = file == j.file_;
    std::ifstream in(file, std::ios::binary);
    if (!in) throw InputError("cannot read the journal", file.string());
    std::stringstream text;
    text << in.rdbuf();
    const std::string all = text.str();
    size_t pos = 0, line_no = 0;
    while (pos < all.size()) {
      const size_t nl = all.find('\n', pos);
      if (nl == std::string::npos) break;  // a torn last line: its batch is run again
      const std::string line = all.substr(pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      const std::string where = file.string() + ":" + std::to_string(line_no);
      const nlohmann::json l = nlohmann::json::parse(line, nullptr, false);
      if (l.is_discarded() || !l.is_object()) throw InputError("damaged journal line", where);
      try {
        const std::string type = l.value("type", "");
        if (main_file && !header) {
          if (type != "header" || l.value("schema", "") != kSchema) throw InputError("not an eval journal", where);
          const auto diff = material_differences(l.at("material"), material);
          if (!diff.empty()) {
            std::string what;
            for (const auto& d : diff) what += "\n  " + d;
            throw UsageError("--resume: the interrupted run was made with other inputs, so it cannot be continued; "
                             "what differs:" + what + "\nrun the same command as before, or drop --resume to start over",
                             "--resume");
          }
          j.schedule_ = schedule_from_json(l.at("schedule"));
          header = true;
        } else if (type == "process" && main_file) {
          j.world_sizes_.push_back(l.value("world_size", 1));
        } else if (type == "batch") {
          j.batches_.push_back(journal_batch_from_json(l));
        } else {
          throw InputError("unknown journal line type '" + type + "'", where);
        }
      } catch (const nlohmann::json::exception& e) {
        throw InputError(std::string("damaged journal line: ") + e.what(), where);
      }
    }
    if (main_file && !header) throw InputError("the journal has no header", file.string());
    if (pos < all.size()) {  // drop the torn line, so that the next line starts on a line of its own
      std::error_code ec;
      fs::resize_file(file, pos, ec);
      if (ec) throw InputError("cannot drop the journal's torn last line: " + ec.message(), file.string());
    }
  }
  j.process_ = static_cast<int>(j.world_sizes_.size());
  j.world_sizes_.push_back(world_size);
  j.append_line(j.file_, {{"type", "process"}, {"process", j.process_}, {"pid", static_cast<long>(::getpid())},
                          {"world_size", world_size}});
  return j;
}

EvalJournal EvalJournal::for_rank(const fs::path& dir, int rank, int process, std::vector<JournalBatch> batches,
                                  const ScheduleChoice& schedule) {
  EvalJournal j;
  j.file_ = dir / kFile;
  j.batch_file_ = dir / rank_file_name(rank);
  j.rank_ = rank;
  j.process_ = process;
  j.batches_ = std::move(batches);
  j.schedule_ = schedule;
  return j;
}

void EvalJournal::write_batches_as_rank(int rank) {
  rank_ = rank;
  batch_file_ = file_.parent_path() / rank_file_name(rank);
}

void EvalJournal::append(const JournalBatch& batch) const {
  JournalBatch b = batch;
  b.rank = rank_;
  append_line(batch_file_, journal_batch_json(b));
}

void EvalJournal::remove_files() const {
  for (const auto& f : batch_files(file_.parent_path())) {
    std::error_code ec;
    fs::remove(f, ec);
  }
}

void EvalJournal::append_line(const fs::path& file, const nlohmann::json& line) const {
  const std::string text = line.dump() + "\n";
  const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw InputError(std::string("cannot open the journal: ") + std::strerror(errno), file.string());
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      throw InputError(std::string("cannot write the journal: ") + std::strerror(err), file.string());
    }
    done += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
}

}  // namespace diffbench
