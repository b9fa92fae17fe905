#include "diffbench/eval/bench.hpp"

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <functional>
#include <map>
#include <set>

#include <torch/csrc/autograd/profiler_kineto.h>

#include "diffbench/accel/spec_run.hpp"
#include "diffbench/error.hpp"
#include "diffbench/metrics/stats.hpp"
#include "diffbench/progress.hpp"
#include "diffbench/pipeline/device.hpp"
#include "diffbench/pipeline/environment.hpp"
#include "diffbench/pipeline/outputs.hpp"
#include "diffbench/pipeline/txt2img.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
// Runs `fn` under the Kineto profiler (CPU + CUDA activity), saves the trace to `path` and returns
// the GPU kernels' total time by name, largest first.
nlohmann::json profile_kernels(const std::function<void()>& fn, const std::string& path) {
  namespace prof = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  // Input shapes go into the trace so that a kernel can be traced back to the op (and shape) that launched it.
  const torch::profiler::impl::ProfilerConfig cfg(torch::profiler::impl::ProfilerState::KINETO,
                                                  /*report_input_shapes=*/true);
  const std::set<ActivityType> activities{ActivityType::CPU, ActivityType::CUDA};
  prof::prepareProfiler(cfg, activities);
  prof::enableProfiler(cfg, activities);
  fn();
  auto result = prof::disableProfiler();
  std::map<std::string, std::pair<double, int64_t>> by_name;
  double total = 0;
  for (const auto& e : result->events()) {
    if (e.deviceType() != c10::DeviceType::CUDA) continue;
    const double ms = static_cast<double>(e.durationNs()) / 1e6;
    auto& slot = by_name[e.name()];
    slot.first += ms;
    slot.second += 1;
    total += ms;
  }
  result->save(path);
  std::error_code ec;
  if (fs::file_size(path, ec) == 0 || ec) throw InputError("the profiler did not write its trace", path);
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(by_name.begin(), by_name.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  nlohmann::json top = nlohmann::json::array();
  for (size_t i = 0; i < rows.size() && i < 40; ++i)
    top.push_back({{"kernel", rows[i].first.substr(0, 160)},
                   {"ms", rows[i].second.first},
                   {"calls", rows[i].second.second},
                   {"share", total > 0 ? rows[i].second.first / total : 0.0}});
  return {{"trace", path}, {"gpu_kernel_ms", total}, {"kernels", rows.size()}, {"top", top}};
}

// UsageError naming `option` unless `file` can be created (or appended to): checked before any work,
// as the profiler writes its trace only at the end and does not report a failure.
void check_writable(const std::string& file, const std::string& option) {
  std::error_code ec;
  const bool existed = fs::exists(file, ec);
  if (existed && !fs::is_regular_file(file, ec)) throw UsageError("exists and is not a regular file: " + file, option);
  {
    std::ofstream probe(file, std::ios::app);
    if (!probe) throw UsageError("cannot write " + file + ": " + std::strerror(errno), option);
  }
  if (!existed) fs::remove(file, ec);
}

}  // namespace

nlohmann::json run_bench(const BenchOptions& o, const Logger& log) {
  if (o.batch_size < 1) throw UsageError("batch size must be at least 1", "--batch-size");
  if (o.runs < 1) throw UsageError("runs must be at least 1", "--runs");
  if (o.warmup < 0) throw UsageError("warm-up must be >= 0", "--warmup");
  if (!o.profile.empty()) check_writable(o.profile, "--profile");
  RunProtocol protocol;
  protocol.seed = o.seed;
  protocol.batch_size = o.batch_size;
  // Methods first: a bad method or parameter fails before any model is loaded.
  SpecRun run = prepare_run(o.spec, protocol, {o.cuda_graphs, o.channels_last, o.cudnn_benchmark});
  const ModelOptions& mo = run.model;
  const GenerateOptions& go = run.generate;
  const std::vector<std::string> prompts(static_cast<size_t>(o.batch_size), o.prompt);

  auto t0 = Clock::now();
  auto pipe = Txt2ImgPipeline::load(mo, log);
  const double load_s = since(t0);

  // The first generation pays for kernel selection and any other one-time set-up.
  t0 = Clock::now();
  pipe->generate(prompts, go);
  device_synchronize(mo.device);
  const double first_s = since(t0);
  for (int i = 1; i < o.warmup; ++i) pipe->generate(prompts, go);

  reset_peak_memory(mo.device);
  run.methods.reset_stats();  // the counters cover the timed runs only
  std::vector<double> per_image, unet_steps_per_s;
  StageTimes stages;
  int64_t unet_calls = 0;
  double skipped = 0;
  int height = 0, width = 0;
  Progress progress(log, "bench", {{"", static_cast<size_t>(o.runs)}});
  for (int r = 0; r < o.runs; ++r) {
    auto res = pipe->generate(prompts, go);
    const auto& b = res.batches.at(0);
    per_image.push_back(b.times.total / o.batch_size);
    unet_steps_per_s.push_back(static_cast<double>(b.unet_calls) / b.times.denoise);
    stages += b.times;
    unet_calls = b.unet_calls;
    skipped = res.skipped_module_fraction();
    height = res.height;
    width = res.width;
    progress.batch_done(0, static_cast<size_t>(o.batch_size), b.times.total);
  }
  const auto [peak, peak_kind] = peak_memory(mo.device);
  const nlohmann::json methods = run.methods.to_json();  // before the profiled generation
  nlohmann::json profile;
  if (!o.profile.empty())
    profile = profile_kernels([&] {
      pipe->generate(prompts, go);
      device_synchronize(mo.device);
    }, o.profile);
  const double n = static_cast<double>(o.runs);
  nlohmann::json j;
  j["schema"] = "diffbench.bench/1";
  j["spec"] = o.spec.to_json();
  j["batch_size"] = o.batch_size;
  j["runs"] = o.runs;
  j["warmup"] = o.warmup;
  j["height"] = height;
  j["width"] = width;
  j["load_s"] = load_s;
  j["first_generation_s"] = first_s;
  j["seconds_per_image"] = {{"median", median(per_image)}, {"p90", percentile(per_image, 90)},
                            {"min", *std::min_element(per_image.begin(), per_image.end())},
                            {"all", per_image}};
  j["seconds_per_batch_median"] = median(per_image) * o.batch_size;
  j["unet_steps_per_second"] = median(unet_steps_per_s);
  j["unet_calls_per_image"] = unet_calls;
  j["skipped_module_fraction"] = skipped;
  j["methods"] = methods;
  j["stages_mean_s"] = {{"text_encoder_s", stages.text_encoder / n}, {"denoise_s", stages.denoise / n},
                        {"vae_decode_s", stages.vae_decode / n}, {"total_s", stages.total / n}};
  j["peak_memory_bytes"] = peak;
  j["peak_memory_kind"] = peak_kind;
  j["environment"] = environment_info(mo.device);
  j["cuda_graphs"] = o.cuda_graphs && mo.device.is_cuda();
  j["channels_last"] = o.channels_last && mo.device.is_cuda();
  j["cudnn_benchmark"] = o.cudnn_benchmark && mo.device.is_cuda();
  if (!profile.is_null()) j["profile"] = profile;
  return j;
}

std::string render_bench(const nlohmann::json& j) {
  char buf[512];
  std::ostringstream o;
  std::snprintf(buf, sizeof buf, "%s on %s (%s), %dx%d, batch %d, %d runs after %d warm-up\n",
                j["spec"]["name"].get<std::string>().c_str(), j["environment"].value("gpu", j["environment"]["device"].get<std::string>()).c_str(),
                j["spec"]["dtype"].get<std::string>().c_str(), j["width"].get<int>(), j["height"].get<int>(),
                j["batch_size"].get<int>(), j["runs"].get<int>(), j["warmup"].get<int>());
  o << buf;
  std::snprintf(buf, sizeof buf, "  per image: median %.4f s, p90 %.4f s   per batch: %.4f s\n",
                j["seconds_per_image"]["median"].get<double>(), j["seconds_per_image"]["p90"].get<double>(),
                j["seconds_per_batch_median"].get<double>());
  o << buf;
  const auto& s = j["stages_mean_s"];
  std::snprintf(buf, sizeof buf, "  stages per batch: text %.4f s, denoise %.4f s, VAE %.4f s\n",
                s["text_encoder_s"].get<double>(), s["denoise_s"].get<double>(), s["vae_decode_s"].get<double>());
  o << buf;
  std::snprintf(buf, sizeof buf, "  UNet: %lld calls/image, %.1f steps/s   first generation %.2f s, load %.2f s   peak %s %.1f MiB\n",
                static_cast<long long>(j["unet_calls_per_image"].get<int64_t>()), j["unet_steps_per_second"].get<double>(),
                j["first_generation_s"].get<double>(), j["load_s"].get<double>(), j["peak_memory_kind"].get<std::string>().c_str(),
                static_cast<double>(j["peak_memory_bytes"].get<int64_t>()) / (1024.0 * 1024.0));
  o << buf;
  return o.str();
}

}  // namespace diffbench
