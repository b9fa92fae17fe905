#include "diffbench/pipeline/outputs.hpp"

#include <cstdio>

#include <torch/cuda.h>
#include <torch/version.h>

#include "diffbench/error.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/staging_dir.hpp"

namespace diffbench {

namespace fs = std::filesystem;

at::Device parse_device(const std::string& name) {
  if (name == "cpu") return at::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    int index = 0;
    if (name.size() > 4) {
      if (name[4] != ':' || name.size() == 5) throw UsageError("device must be cpu, cuda or cuda:N", "--device");
      try {
        index = std::stoi(name.substr(5));
      } catch (const std::exception&) {
        throw UsageError("device must be cpu, cuda or cuda:N", "--device");
      }
    }
    if (!torch::cuda::is_available())
      throw UsageError("CUDA device requested but LibTorch sees no GPU", "--device");
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count()))
      throw UsageError("no CUDA device " + std::to_string(index), "--device");
    return at::Device(at::kCUDA, static_cast<at::DeviceIndex>(index));
  }
  throw UsageError("unknown device '" + name + "' (cpu, cuda or cuda:N)", "--device");
}

at::ScalarType parse_dtype(const std::string& name, const at::Device& device) {
  at::ScalarType t;
  if (name == "fp32") t = at::kFloat;
  else if (name == "fp16") t = at::kHalf;
  else if (name == "bf16") t = at::kBFloat16;
  else throw UsageError("unknown dtype '" + name + "' (fp32, fp16 or bf16)", "--dtype");
  if (t != at::kFloat && !device.is_cuda())
    throw UsageError(name + " runs on CUDA only; use --dtype fp32 on the CPU", "--dtype");
  return t;
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "fp32";
    case at::kHalf: return "fp16";
    case at::kBFloat16: return "bf16";
    default: return c10::toString(t);
  }
}

nlohmann::json environment_info(const at::Device& device) {
  nlohmann::json env = {{"diffbench", DIFFBENCH_VERSION}, {"libtorch", TORCH_VERSION}, {"device", device.str()}};
  env["threads"] = at::get_num_threads();
  return env;
}

nlohmann::json to_json(const StageTimes& t) {
  return {{"text_encoder_s", t.text_encoder}, {"denoise_s", t.denoise}, {"vae_decode_s", t.vae_decode}, {"total_s", t.total}};
}

void save_generation(const fs::path& out, bool replace, const GenerationResult& result,
                     const std::vector<std::string>& prompts, const nlohmann::json& settings) {
  StagingDir staging(out, replace);
  const at::Tensor u8 = to_uint8(result.images);  // [N,3,H,W]
  for (int64_t i = 0; i < u8.size(0); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(i));
    write_png(staging.path() / name, u8[i]);
  }
  nlohmann::json run;
  run["schema"] = "diffbench.generate/1";
  run["settings"] = settings;
  run["prompts"] = prompts;
  run["height"] = result.height;
  run["width"] = result.width;
  run["scheduler"] = {{"name", result.scheduler}, {"config", result.scheduler_config}};
  nlohmann::json batches = nlohmann::json::array();
  for (const auto& b : result.batches)
    batches.push_back({{"first", b.first},
                       {"count", b.count},
                       {"unet_calls", b.unet_calls},
                       {"guided_unet_calls", b.guided_calls},
                       {"module_hooks", b.module_calls},
                       {"skipped_modules", b.module_skips},
                       {"times", to_json(b.times)}});
  run["batches"] = batches;
  run["times"] = to_json(result.times);
  run["images"] = prompts.size();
  run["seconds_per_image"] = result.times.total / static_cast<double>(prompts.size());
  run["unet_calls_per_image"] = result.unet_calls_per_image();
  run["skipped_module_fraction"] = result.skipped_module_fraction();
  write_file_atomic(staging.path() / "run.json", run.dump(2) + "\n");
  staging.commit();
}

}  // namespace diffbench
