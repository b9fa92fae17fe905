// Training the demo models from the procedural data set (diffbench train-demo):
//  1. VAE (AutoencoderKL, 8× down): L1 reconstruction + a small KL term; the latent scaling factor
//     is 1 / std of the posterior means over the training pool;
//  2. CLIP scorer (CLIPModel): symmetric contrastive loss with a learned temperature; half of the
//     pictures are shown through the VAE (reconstructions), so the scorer also judges decoded images;
//  3. UNet (UNet2DConditionModel): epsilon prediction on scaled VAE latents, conditioned on the
//     frozen CLIP text tower's last hidden state (as the pipeline computes it), 10 % of captions
//     replaced by the empty prompt (for classifier-free guidance), "offset noise" (a per-channel
//     constant in the noise, so plain backgrounds of any colour come out), an EMA of the weights saved.
// Then DIR/sd (diffusers folder), DIR/clip (CLIPModel folder), DIR/prompts.txt (the demo prompt
// set) and DIR/train.json (settings, seeds, losses, seconds, acceptance checks).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "diffbench/demo/models.hpp"
#include "diffbench/log.hpp"

namespace diffbench::demo {

struct PhaseOptions {
  int64_t steps = 0;
  int64_t batch_size = 0;
  double lr = 0;
  int64_t warmup = 0;  // linear warm-up steps, then cosine decay to 10 % of lr
};

struct TrainOptions {
  std::filesystem::path out;          // created; must not exist or be empty
  at::Device device = at::kCPU;
  uint64_t seed = 0;                  // weight init, batch order, noise
  uint64_t data_seed = 0;             // data-set seed of the training pool (held-out prompts use 0)
  DemoArch arch = DemoArch::standard();
  int64_t train_size = 100000;        // pictures rendered once into the training pool
  PhaseOptions vae{5000, 64, 5e-4, 200};
  PhaseOptions clip{3000, 512, 5e-4, 200};
  PhaseOptions unet{5000, 256, 4e-4, 500};
  double kl_weight = 1e-4;            // per latent element, against the per-pixel L1
  double caption_dropout = 0.1;
  double noise_offset = 0.1;          // std of a per-channel constant added to the UNet's training noise, so
                                      // that it can move whole-picture colour (plain backgrounds)
  double ema_decay = 0.999;
  at::ScalarType weights_dtype = at::kHalf;  // on disk
  bool evaluate = true;               // scorer and pipeline retrieval on the demo prompts at the end
  int eval_steps = 50;
  double eval_guidance = 3.0;         // what examples/demo-*.toml use
  int64_t log_every = 100;
  std::string command;                // the command line, for train.json and the model card
};

// Trains everything and writes the folders; returns what train.json holds.
nlohmann::json train_demo(const TrainOptions& options, const Logger& log);

// ---- the pieces, for tests ----

// Pictures of the training split, their token ids and (later) VAE posteriors, on one device.
struct TrainPool {
  at::Tensor images;  // uint8 [N, 3, 64, 64]
  at::Tensor ids;     // int64 [N, 77]
  at::Tensor recon;   // uint8 [N, 3, 64, 64], VAE reconstructions (after the VAE phase)
  at::Tensor mean;    // float [N, 4, 8, 8] posterior means (after the VAE phase)
  at::Tensor logvar;  // float [N, 4, 8, 8]
};

struct PhaseResult {
  std::vector<double> losses;  // mean loss over each block of log_every steps
  double seconds = 0;
};

PhaseResult train_vae(AutoencoderKL& vae, const TrainPool& pool, const TrainOptions& o, const Logger& log);
PhaseResult train_clip(ClipModel& clip, const TrainPool& pool, const TrainOptions& o, const Logger& log);
PhaseResult train_unet(UNet2DConditionModel& unet, UNet2DConditionModel& ema, ClipTextModel& text, const TrainPool& pool,
                       const at::Tensor& empty_ids, double scaling_factor, const TrainOptions& o, const Logger& log);

// Initialises a fresh CLIP model the way transformers does for its embeddings (N(0, 0.02)); the
// other layers keep LibTorch's defaults (PyTorch's).
void init_clip(ClipModel& clip);
// Fills pool.mean / pool.logvar / pool.recon from the VAE; returns the latent scaling factor.
double encode_pool(AutoencoderKL& vae, TrainPool& pool, int64_t batch_size);

}  // namespace diffbench::demo
