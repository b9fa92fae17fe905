// train-demo: data pool, the three phases, the folders, the acceptance checks, train.json.
#include "diffbench/demo/train.hpp"

#include <chrono>
#include <cstdio>

#include <ATen/Context.h>
#include <torch/torch.h>

#include "diffbench/demo/evaluate.hpp"
#include "diffbench/demo/scenes.hpp"
#include "diffbench/error.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "diffbench/metrics/clip_score.hpp"
#include "diffbench/pipeline/environment.hpp"
#include "diffbench/pipeline/outputs.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "diffbench/tokenizer/clip_tokenizer.hpp"

namespace diffbench::demo {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

json phase_json(const PhaseOptions& p, const PhaseResult& r) {
  return {{"steps", p.steps}, {"batch_size", p.batch_size}, {"lr", p.lr},          {"warmup", p.warmup},
          {"losses", r.losses}, {"seconds", r.seconds},      {"final_loss", r.losses.empty() ? 0.0 : r.losses.back()}};
}

void check_options(const TrainOptions& o) {
  for (const auto* p : {&o.vae, &o.clip, &o.unet})
    if (p->steps < 0 || p->batch_size < 1 || p->lr <= 0) throw UsageError("steps >= 0, batch size >= 1 and lr > 0", "train-demo");
  if (o.train_size < 1) throw UsageError("the training pool needs at least one picture", "--train-size");
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A short model card from train.json.
std::string model_card(const json& j) {
  std::string s = "# diffbench demo models\n\n";
  s += "Small models trained from scratch by `diffbench train-demo` on diffbench's procedural pictures (64x64 RGB, one\n"
       "to three flat shapes on a plain background, captions from a small grammar), so that `make demo` runs a real\n"
       "evaluation offline. They know nothing but these pictures.\n\n";
  s += "- `sd/`: diffusers StableDiffusionPipeline folder: CLIPTextModel (the scorer's text tower), AutoencoderKL\n"
       "  (8x down, 64x64 -> 4x8x8), UNet2DConditionModel (SD1.x topology), PNDM scheduler (SD1.5 config).\n";
  s += "- `clip/`: transformers CLIPModel scorer (ViT, image_size 64, patch " + std::to_string(j["arch"]["patch_size"].get<int>()) +
       ") with its own BPE vocabulary (vocab.json + merges.txt).\n";
  s += "- `prompts.txt`: the 32 held-out demo prompts (`--prompts demo`).\n\n";
  s += "Reproduce: `" + j["command"].get<std::string>() + "`\n\n";
  s += "Seeds: weights/batches " + std::to_string(j["seed"].get<uint64_t>()) + ", training data set " +
       std::to_string(j["data_seed"].get<uint64_t>()) + " (train split), demo prompts: held-out split of data set 0.\n\n";
  s += "| phase | steps | batch | final loss | seconds |\n|---|---|---|---|---|\n";
  for (const char* p : {"vae", "clip", "unet"}) {
    const auto& ph = j["phases"][p];
    s += std::string("| ") + p + " | " + std::to_string(ph["steps"].get<int64_t>()) + " | " +
         std::to_string(ph["batch_size"].get<int64_t>()) + " | " + fmt("%.4f", ph["final_loss"].get<double>()) + " | " +
         fmt("%.0f", ph["seconds"].get<double>()) + " |\n";
  }
  s += "\nDevice: " + j["device"].get<std::string>() + "; total " + fmt("%.0f", j["seconds"].get<double>()) + " s.\n";
  if (j.contains("checks")) {
    const auto& c = j["checks"];
    s += "\nChecks on the 32 demo prompts (top-1 retrieval among the 32 captions):\n\n";
    s += "- scorer on rendered pictures: " + fmt("%.1f %%", 100 * c["scorer"]["top1"].get<double>()) + "\n";
    s += "- pipeline images (" + std::to_string(c["pipeline"]["steps"].get<int>()) + " PNDM steps, guidance " +
         fmt("%.1f", c["pipeline"]["guidance"].get<double>()) + ") retrieved as their own prompt: " +
         fmt("%.1f %%", 100 * c["pipeline"]["top1"].get<double>()) + ", CLIP score " +
         fmt("%.2f", c["pipeline"]["clip_score"].get<double>()) + "\n";
  }
  s += "\nLicence: the same as diffbench's code; trained only on procedurally drawn pictures.\n";
  return s;
}

}  // namespace

json train_demo(const TrainOptions& o, const Logger& log) {
  check_options(o);
  const auto t_start = Clock::now();
  StagingDir staging(o.out, /*replace=*/false);
  const fs::path dir = staging.path();
  torch::manual_seed(o.seed);
  if (o.device.is_cuda()) {
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
  }

  // Vocabulary and tokenizer: the files the folders will carry.
  const BpeVocab vocab = build_bpe_vocab(grammar_words());
  write_tokenizer_files(vocab, dir / "clip");
  const ClipTokenizer tokenizer = ClipTokenizer::from_dir(dir / "clip");
  log.info("vocabulary: " + std::to_string(vocab.tokens.size()) + " tokens, " + std::to_string(vocab.merges.size()) +
           " merges");

  // The training pool, rendered once.
  auto t0 = Clock::now();
  TrainPool pool;
  std::vector<std::string> captions;
  pool.images = render_batch_u8(Split::Train, 0, o.train_size, o.data_seed, &captions).to(o.device);
  pool.ids = tokenizer.encode_batch(captions).to(o.device);
  const at::Tensor empty_ids = tokenizer.encode_batch({""})[0];
  const double pool_seconds = seconds_since(t0);
  log.info("rendered " + std::to_string(o.train_size) + " training pictures in " + fmt("%.1f", pool_seconds) + " s");

  AutoencoderKL vae(VaeConfig::from_json(JsonConfig(vae_config(o.arch, 1.0), "vae/config.json")));
  vae->to(o.device);
  const PhaseResult vae_r = train_vae(vae, pool, o, log);
  t0 = Clock::now();
  const double scaling_factor = encode_pool(vae, pool, 256);
  log.info("latent scaling factor " + fmt("%.5f", scaling_factor) + " (pool encoded in " + fmt("%.1f", seconds_since(t0)) + " s)");

  const json clip_cfg = clip_config(o.arch, vocab);
  ClipModel clip(ClipConfig::from_json(JsonConfig(clip_cfg, "clip/config.json")));
  init_clip(clip);
  clip->to(o.device);
  const PhaseResult clip_r = train_clip(clip, pool, o, log);

  const UNetConfig unet_cfg = UNetConfig::from_json(JsonConfig(unet_config(o.arch), "unet/config.json"));
  UNet2DConditionModel unet(unet_cfg), ema(unet_cfg);
  unet->to(o.device);
  ema->to(o.device);
  {
    torch::NoGradGuard no_grad;
    auto src = unet->parameters(), dst = ema->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  const PhaseResult unet_r = train_unet(unet, ema, clip->text_tower(), pool, empty_ids, scaling_factor, o, log);

  write_clip_folder(dir / "clip", clip, clip_cfg, vocab, o.weights_dtype);
  write_sd_folder(dir / "sd", clip, vae, ema, o.arch, vocab, scaling_factor, o.weights_dtype);
  std::string prompts;
  for (const auto& p : demo_prompts()) prompts += p + "\n";
  write_file_atomic(dir / "prompts.txt", prompts);
  pool = TrainPool{};  // free the device memory before the checks

  const std::string command =
      o.command.empty() ? "diffbench train-demo --out DIR --device " + o.device.str() + " --seed " + std::to_string(o.seed)
                        : o.command;
  json j = {{"command", command},
            {"seed", o.seed},
            {"data_seed", o.data_seed},
            {"device", o.device.str()},
            {"environment", environment_info(o.device)},
            {"train_size", o.train_size},
            {"vocab_size", vocab.tokens.size()},
            {"scaling_factor", scaling_factor},
            {"kl_weight", o.kl_weight},
            {"caption_dropout", o.caption_dropout},
            {"noise_offset", o.noise_offset},
            {"ema_decay", o.ema_decay},
            {"weights_dtype", o.weights_dtype == at::kHalf ? "fp16" : "fp32"},
            {"arch",
             {{"text", {o.arch.text_hidden, o.arch.text_layers, o.arch.text_heads}},
              {"vision", {o.arch.vision_hidden, o.arch.vision_layers, o.arch.vision_heads}},
              {"patch_size", o.arch.patch_size},
              {"vae_channels", o.arch.vae_channels},
              {"unet_channels", o.arch.unet_channels},
              {"unet_layers_per_block", o.arch.unet_layers_per_block}}},
            {"pool_seconds", pool_seconds},
            {"phases", {{"vae", phase_json(o.vae, vae_r)}, {"clip", phase_json(o.clip, clip_r)}, {"unet", phase_json(o.unet, unet_r)}}}};

  if (o.evaluate) {
    t0 = Clock::now();
    const auto scorer = ClipScorer::load(dir / "clip", o.device);
    const RetrievalCheck sc = check_scorer(*scorer);
    log.info("scorer top-1 retrieval on the demo pictures: " + fmt("%.1f %%", 100 * sc.top1));
    ModelOptions mo;
    mo.dir = dir / "sd";
    mo.device = o.device;
    auto pipe = Txt2ImgPipeline::load(mo);
    GenerateOptions go;
    go.steps = o.eval_steps;
    go.guidance = o.eval_guidance;
    go.batch_size = 8;
    at::Tensor images;
    const RetrievalCheck pc = check_pipeline(*pipe, *scorer, go, 32, &images);
    log.info("pipeline images retrieved as their own prompt: " + fmt("%.1f %%", 100 * pc.top1) + ", CLIP score " +
             fmt("%.2f", pc.clip_score));
    write_png(dir / "samples.png", image_grid(images, 8));
    std::vector<at::Tensor> pictures;
    for (uint64_t seed : demo_prompt_seeds()) pictures.push_back(render_scene(make_scene(seed)));
    write_png(dir / "prompts.png", image_grid(at::stack(pictures), 8));
    json pj = pc.to_json();
    pj["steps"] = go.steps;
    pj["guidance"] = go.guidance;
    pj["seed"] = go.seed;
    j["checks"] = {{"scorer", sc.to_json()}, {"pipeline", pj}, {"seconds", seconds_since(t0)}};
  }
  j["seconds"] = seconds_since(t_start);
  write_file_atomic(dir / "train.json", j.dump(2) + "\n");
  write_file_atomic(dir / "README.md", model_card(j));
  staging.commit();
  log.info("wrote " + o.out.string() + " in " + fmt("%.0f", j["seconds"].get<double>()) + " s");
  return j;
}

}  // namespace diffbench::demo
