// The baseline cache: a baseline's images, times and CLIP scores stored under a key of everything
// they depend on, and read back by later evaluations (eval/baseline_cache.hpp).
#include "diffbench/eval/baseline_cache.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <future>
#include <set>

#include <xxhash.h>

#include "diffbench/error.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "diffbench/io/diffusers_folder.hpp"
#include "diffbench/io/file_identity.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/prompts.hpp"
#include "diffbench/pipeline/device.hpp"
#include "diffbench/pipeline/environment.hpp"
#include "diffbench/pipeline/outputs.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

constexpr const char* kEntrySchema = "diffbench.baseline-cache/1";

// The first "model name" of /proc/cpuinfo (empty elsewhere): the device name on the CPU.
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? "" : line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "";
}

// The files a weights path stands for: itself, or for a shard index also the shards it names.
std::vector<fs::path> weights_and_shards(const fs::path& weights) {
  std::vector<fs::path> out = {weights};
  if (weights.extension() != ".json") return out;
  const nlohmann::json index = read_json_file(weights);
  std::set<std::string> names;
  for (const auto& [key, file] : index.value("weight_map", nlohmann::json::object()).items())
    if (file.is_string()) names.insert(file.get<std::string>());
  for (const auto& n : names) out.push_back(weights.parent_path() / n);
  return out;
}

std::string utc_now() {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json run_to_json(const PipelineRun& r) {
  return {{"batch_seconds", r.batch_seconds},
          {"batch_images", r.batch_images},
          {"batch_start_s", r.batch_start_s},
          {"seconds_per_image", r.seconds_per_image},
          {"stages", to_json(r.stages)},
          {"unet_calls_per_image", r.unet_calls_per_image},
          {"skipped_module_fraction", r.skipped_module_fraction},
          {"peak_memory_bytes", r.peak_memory_bytes},
          {"peak_memory_kind", r.peak_memory_kind},
          {"reused_components", r.reused_components},
          {"methods", r.methods},
          {"per_seed_clip", r.per_seed_clip}};
}

PipelineRun run_from_json(const nlohmann::json& j) {
  PipelineRun r;
  r.batch_seconds = j.at("batch_seconds").get<std::vector<double>>();
  r.batch_images = j.at("batch_images").get<std::vector<size_t>>();
  r.batch_start_s = j.at("batch_start_s").get<std::vector<double>>();
  r.seconds_per_image = j.at("seconds_per_image").get<double>();
  r.stages = stage_times_from_json(j.at("stages"));
  r.unet_calls_per_image = j.at("unet_calls_per_image").get<double>();
  r.skipped_module_fraction = j.at("skipped_module_fraction").get<double>();
  r.peak_memory_bytes = j.at("peak_memory_bytes").get<int64_t>();
  r.peak_memory_kind = j.at("peak_memory_kind").get<std::string>();
  r.reused_components = j.at("reused_components");
  r.methods = j.at("methods");
  r.per_seed_clip = j.at("per_seed_clip").get<std::vector<std::vector<double>>>();
  if (r.per_seed_clip.empty() || r.batch_seconds.size() != r.batch_images.size())
    throw InputError("inconsistent run", "entry.json");
  return r;
}

}  // namespace

at::Tensor BaselineResult::batch(size_t k, size_t first, size_t count) const {
  if (k < images.size()) return images[k].narrow(0, static_cast<int64_t>(first), static_cast<int64_t>(count));
  if (k >= image_dirs.size()) throw RuntimeFailure("a reused baseline has no images of seed " + std::to_string(k));
  std::vector<fs::path> files;
  for (size_t i = first; i < first + count; ++i) files.push_back(image_dirs[k] / png_sequence_name(i));
  return at::stack(read_pngs(files));  // decoded on several threads
}

void BaselineResult::write_pngs(size_t k, size_t count, const fs::path& dir) const {
  fs::create_directories(dir);
  if (k < images.size()) {
    std::vector<fs::path> files;
    for (size_t i = 0; i < count; ++i) files.push_back(dir / png_sequence_name(i));
    diffbench::write_pngs(files, images[k].narrow(0, 0, static_cast<int64_t>(count)).unbind(0));  // on several threads
    return;
  }
  if (k >= image_dirs.size()) throw RuntimeFailure("a reused baseline has no images of seed " + std::to_string(k));
  for (size_t i = 0; i < count; ++i) {
    const std::string name = png_sequence_name(i);
    fs::copy_file(image_dirs[k] / name, dir / name, fs::copy_options::overwrite_existing);
  }
}

nlohmann::json folder_hashes(const fs::path& folder, const std::string& variant) {
  // The files are listed first, then hashed several at a time.
  std::vector<std::pair<std::string, fs::path>> files;
  auto hashed = [&files] {
    std::vector<fs::path> paths;
    for (const auto& f : files) paths.push_back(f.second);
    const std::vector<std::string> hashes = content_hashes(paths);
    nlohmann::json out = nlohmann::json::object();
    for (size_t i = 0; i < files.size(); ++i) out[files[i].first] = hashes[i];
    return out;
  };
  std::error_code ec;
  if (!fs::exists(folder, ec)) throw InputError("no such file or folder", folder.string());
  if (fs::is_regular_file(folder)) {
    files.emplace_back(folder.filename().string(), folder);
    return hashed();
  }
  auto add = [&](const fs::path& file) {
    if (fs::is_regular_file(file)) files.emplace_back(file.lexically_relative(folder).generic_string(), file);
  };
  if (fs::exists(folder / "model_index.json")) {
    // A diffusers folder: what the pipeline reads, nothing else (not the safety checker, not the
    // other weight variants or pickle files beside). SDXL's second text encoder and tokenizer included.
    std::vector<std::string> parts = {"text_encoder", "unet", "vae"};
    const auto d = DiffusersFolder::open(folder, parts);
    if (d.has("text_encoder_2")) parts.push_back("text_encoder_2");
    add(folder / "model_index.json");
    for (const auto& part : parts) {
      add(d.config_file(part));
      for (const auto& f : weights_and_shards(d.weights_file(part, variant))) add(f);
    }
    for (const char* small : {"tokenizer", "tokenizer_2", "scheduler"})
      if (fs::is_directory(folder / small))
        for (const auto& e : fs::directory_iterator(folder / small)) add(e.path());
    return hashed();
  }
  // A scorer folder: its configs, vocabularies (open_clip's gzipped merges list too) and safetensors.
  auto it = fs::recursive_directory_iterator(folder, fs::directory_options::follow_directory_symlink, ec);
  if (ec) throw InputError("cannot list the folder: " + ec.message(), folder.string());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw InputError("cannot list the folder: " + ec.message(), folder.string());
    const std::string ext = it->path().extension().string();
    if (ext == ".json" || ext == ".txt" || ext == ".gz" || ext == ".safetensors") add(it->path());
  }
  return hashed();
}

nlohmann::json spec_identity(const PipelineSpec& baseline) {
  nlohmann::json spec = baseline.to_json();
  for (const char* k : {"file", "name", "origin", "model", "model_ref", "hub", "config"}) spec.erase(k);
  spec["model_files"] = folder_hashes(resolve_demo_alias(baseline.model, "sd"), baseline.variant);
  if (!baseline.model_config.empty()) spec["config_files"] = folder_hashes(baseline.model_config);
  for (size_t i = 0; i < baseline.loras.size(); ++i) spec["lora"][i]["file"] = content_hash(baseline.loras[i].file);
  if (!baseline.variant.empty()) spec["variant"] = baseline.variant;
  for (size_t i = 0; i < baseline.accelerate.size(); ++i)
    if (!baseline.accelerate[i].plugin.empty())
      spec["accelerate"][i]["plugin"] = content_hash(baseline.accelerate[i].plugin);
  return spec;
}

nlohmann::json baseline_key_material(const PipelineSpec& baseline, const EvalOptions& o,
                                     const std::vector<std::string>& prompts, const std::string& version) {
  // The scorer's files are hashed while the model's are (a first run hashes gigabytes of each).
  auto scorer_files = std::async(std::launch::async, [&] { return folder_hashes(resolve_demo_alias(o.clip, "clip")); });
  const nlohmann::json spec = spec_identity(baseline);
  const at::Device device = parse_device(baseline.device);
  nlohmann::json env = environment_info(device);
  if (!device.is_cuda()) env["cpu"] = cpu_model();
  env.erase("diffbench");
  return {{"baseline", spec},
          {"protocol",
           {{"prompts", prompts},
            {"seeds", eval_seeds(o)},
            {"batch_size", o.batch_size},
            {"noise", to_string(o.noise)},
            {"repeats", o.repeats},
            {"warmup", o.warmup}}},
          {"scorer", {{"files", scorer_files.get()}, {"clip_score", to_string(o.clip_score)}}},
          {"device", env},
          {"diffbench", version}};
}

std::string baseline_key(const nlohmann::json& material) {
  const std::string text = material.dump();  // nlohmann's objects are sorted: canonical
  const XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

BaselineCache::BaselineCache(fs::path dir) : dir_(std::move(dir)) {}

std::shared_ptr<const BaselineResult> BaselineCache::find(const std::string& key, const Logger& log) const {
  const fs::path entry = dir_ / key;
  if (!fs::is_regular_file(entry / "entry.json")) return nullptr;
  try {
    const nlohmann::json j = read_json_file(entry / "entry.json");
    if (j.value("schema", "") != kEntrySchema || j.value("key", "") != key) throw InputError("not a cache entry", key);
    auto r = std::make_shared<BaselineResult>();
    r->run = run_from_json(j.at("run"));
    const auto seeds = j.at("seeds").get<std::vector<uint64_t>>();
    const size_t n = r->run.per_seed_clip.front().size();
    if (seeds.size() != r->run.per_seed_clip.size()) throw InputError("seeds and scores differ", key);
    for (uint64_t seed : seeds) {  // read a batch at a time when used; here only checked to be there
      const fs::path dir = entry / ("seed-" + std::to_string(seed));
      for (size_t i = 0; i < n; ++i)
        if (!fs::is_regular_file(dir / png_sequence_name(i)))
          throw InputError("missing image", (dir / png_sequence_name(i)).string());
      r->image_dirs.push_back(dir);
    }
    r->provenance = {{"source", "cache"},
                     {"cache_entry", entry.string()},
                     {"key", key},
                     {"created", j.value("created", "")}};
    log.info("baseline cache: hit " + entry.string());
    return r;
  } catch (const std::exception& e) {
    log.warn("baseline cache: ignoring the damaged entry " + entry.string() + " (" + e.what() + ")");
    return nullptr;
  }
}

void BaselineCache::store(const std::string& key, const nlohmann::json& material, const BaselineResult& result,
                          const Logger& log) const {
  const fs::path entry = dir_ / key;
  const fs::path tmp = dir_ / ("." + key + "." + std::to_string(::getpid()) + ".tmp");
  std::error_code ec;
  if (fs::exists(entry, ec)) return;
  try {
    fs::create_directories(tmp);
    const std::vector<uint64_t> seeds = material.at("protocol").at("seeds").get<std::vector<uint64_t>>();
    const size_t sets = result.images.empty() ? result.image_dirs.size() : result.images.size();
    if (seeds.size() != sets) throw InputError("one image set per seed expected", key);
    const size_t count = material.at("protocol").at("prompts").size();
    for (size_t k = 0; k < seeds.size(); ++k)  // PNG files copied as they are, tensors encoded
      result.write_pngs(k, count, tmp / ("seed-" + std::to_string(seeds[k])));
    const nlohmann::json j = {{"schema", kEntrySchema}, {"key", key},    {"created", utc_now()},
                              {"material", material},    {"seeds", seeds}, {"run", run_to_json(result.run)}};
    std::ofstream(tmp / "entry.json") << j.dump(1) << "\n";
    fs::rename(tmp, entry, ec);
    if (ec) {
      remove_tree(tmp, ec);  // another run stored it meanwhile
      return;
    }
    log.info("baseline cache: stored " + entry.string());
  } catch (const std::exception& e) {
    remove_tree(tmp, ec);
    log.warn("baseline cache: could not store the baseline in " + dir_.string() + " (" + e.what() + ")");
  }
}

std::string default_baseline_cache() {
  const char* env = std::getenv("DIFFBENCH_BASELINE_CACHE");
  return env && *env ? env : kDefaultBaselineCache;
}

fs::path baseline_cache_dir(const std::string& option, bool disabled) {
  return disabled || option.empty() || option == "off" ? fs::path() : fs::path(option);
}

EvalResult run_eval_cached(EvalOptions o, const fs::path& cache_dir, const Logger& log) {
  if (cache_dir.empty() || o.baseline_result) return run_eval(o, log);
  validate_eval_options(o);
  const PipelineSpec baseline = o.baseline ? *o.baseline : o.candidate.baseline();
  // CUDA's context and library handles start while the weight files are hashed (the first run of a
  // model hashes gigabytes); the pipeline's load then finds them ready.
  std::future<void> device_ready;
  try {
    device_ready = warm_up_device_async(parse_device(o.candidate.device));
  } catch (const std::exception&) {
    // A bad device is reported by the evaluation itself.
  }
  nlohmann::json material;
  std::string key;
  const auto key_started = std::chrono::steady_clock::now();
  try {
    material = baseline_key_material(baseline, o, load_prompts(o.prompts, o.num_samples).prompts);
    key = baseline_key(material);
    o.cache_key_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - key_started).count();
  } catch (const std::exception& e) {
    // A missing model, scorer or prompt file: the evaluation reports it as it would without a cache.
    log.info(std::string("baseline cache: not used (") + e.what() + ")");
    return run_eval(o, log);
  }
  const BaselineCache cache(cache_dir);
  o.baseline_result = cache.find(key, log);
  const bool hit = o.baseline_result != nullptr;
  EvalResult r = run_eval(o, log);
  if (!hit) cache.store(key, material, *r.baseline_result, log);
  return r;
}

}  // namespace diffbench
