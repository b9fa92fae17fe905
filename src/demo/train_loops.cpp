// The three training loops of train-demo (see include/diffbench/demo/train.hpp).
#include <chrono>
#include <cmath>
#include <cstdio>

#include <torch/torch.h>

#include "diffbench/demo/train.hpp"
#include "diffbench/models/clip_embedder.hpp"

namespace diffbench::demo {

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kPi = 3.14159265358979323846;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Linear warm-up, then cosine decay to 10 % of the base rate.
double lr_at(const PhaseOptions& p, int64_t step) {
  const double warm = p.warmup > 0 ? std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(p.warmup)) : 1.0;
  const double progress = static_cast<double>(step) / static_cast<double>(std::max<int64_t>(p.steps - 1, 1));
  return p.lr * warm * (0.1 + 0.9 * 0.5 * (1.0 + std::cos(kPi * progress)));
}

// AdamW (decoupled weight decay on matrices and kernels only, not on norms, biases or the CLIP
// temperature) over whole parameter lists with the _foreach kernels: a handful of launches per
// step instead of about ten per tensor, which is what bounds small models on a GPU.
class ForeachAdamW {
 public:
  ForeachAdamW(const std::vector<at::Tensor>& params, double weight_decay) : weight_decay_(weight_decay) {
    for (const auto& p : params) (p.dim() >= 2 ? decay_ : plain_).params.push_back(p);
    for (Group* g : {&decay_, &plain_})
      for (const auto& p : g->params) {
        g->m.push_back(at::zeros_like(p));
        g->v.push_back(at::zeros_like(p));
      }
  }

  void step(double lr) {
    ++t_;
    const double bc1 = 1.0 - std::pow(kBeta1, static_cast<double>(t_));
    const double bc2 = 1.0 - std::pow(kBeta2, static_cast<double>(t_));
    for (Group* g : {&decay_, &plain_}) {
      if (g->params.empty()) continue;
      std::vector<at::Tensor> grads, params, m, v;
      for (size_t i = 0; i < g->params.size(); ++i) {
        if (!g->params[i].grad().defined()) continue;
        grads.push_back(g->params[i].grad());
        params.push_back(g->params[i]);
        m.push_back(g->m[i]);
        v.push_back(g->v[i]);
      }
      if (params.empty()) continue;
      torch::NoGradGuard no_grad;
      at::_foreach_lerp_(m, grads, 1.0 - kBeta1);
      at::_foreach_mul_(v, kBeta2);
      at::_foreach_addcmul_(v, grads, grads, 1.0 - kBeta2);
      if (g == &decay_ && weight_decay_ > 0) at::_foreach_mul_(params, 1.0 - lr * weight_decay_);
      std::vector<at::Tensor> denom = at::_foreach_sqrt(v);
      at::_foreach_div_(denom, std::sqrt(bc2));
      at::_foreach_add_(denom, kEps);
      at::_foreach_addcdiv_(params, m, denom, -lr / bc1);
    }
  }

  void zero_grad() {
    for (Group* g : {&decay_, &plain_})
      for (auto& p : g->params) p.mutable_grad() = at::Tensor();
  }

 private:
  static constexpr double kBeta1 = 0.9, kBeta2 = 0.99, kEps = 1e-8;
  struct Group {
    std::vector<at::Tensor> params, m, v;
  };
  Group decay_, plain_;
  double weight_decay_;
  int64_t t_ = 0;
};

// Scales all gradients so that their global L2 norm is at most `max_norm` (no host sync).
void clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return;
  torch::NoGradGuard no_grad;
  const at::Tensor total = at::stack(at::_foreach_norm(grads)).norm();
  const at::Tensor scale = (max_norm / (total + 1e-6)).clamp_max(1.0);
  at::_foreach_mul_(grads, scale);
}

// Random pool indices on the pool's device, drawn from the global (seeded) generator.
at::Tensor sample_indices(const TrainPool& pool, int64_t batch) {
  return at::randint(pool.images.size(0), {batch}, at::TensorOptions().dtype(at::kLong).device(pool.images.device()));
}

at::Tensor to_unit_range(const at::Tensor& u8) { return u8.to(at::kFloat).div(127.5).sub(1.0); }  // [-1, 1]

// Progress line every log_every steps: mean loss of the block, time per step, time left.
class PhaseLog {
 public:
  PhaseLog(const char* name, const TrainOptions& o, int64_t steps, const Logger& log)
      : name_(name), every_(std::max<int64_t>(o.log_every, 1)), steps_(steps), log_(log), t0_(Clock::now()) {}
  // `loss` stays on the device; the host waits for it only on logging steps.
  void step(int64_t step, const at::Tensor& loss, PhaseResult& r) {
    const at::Tensor l = loss.detach().to(at::kDouble);
    sum_ = sum_.defined() ? sum_ + l : l;
    ++n_;
    if ((step + 1) % every_ != 0 && step + 1 != steps_) return;
    const double mean = sum_.item<double>() / static_cast<double>(n_);
    r.losses.push_back(mean);
    const double elapsed = seconds_since(t0_);
    const double per_step = elapsed / static_cast<double>(step + 1);
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s step %lld/%lld  loss %.5f  %.1f ms/step  %.0f s left", name_, static_cast<long long>(step + 1),
                  static_cast<long long>(steps_), mean, per_step * 1000, per_step * static_cast<double>(steps_ - step - 1));
    log_.info(buf);
    sum_ = at::Tensor();
    n_ = 0;
  }
  double seconds() const { return seconds_since(t0_); }

 private:
  const char* name_;
  int64_t every_, steps_;
  const Logger& log_;
  Clock::time_point t0_;
  at::Tensor sum_;
  int64_t n_ = 0;
};

// The scorer's image normalisation applied to pictures in [-1, 1], after rounding to 8 bits as
// the scorer's own preprocessing sees them.
at::Tensor clip_pixels(const at::Tensor& x) {
  const auto opt = x.options();
  const at::Tensor mean = at::tensor({kOpenAiClipMean[0], kOpenAiClipMean[1], kOpenAiClipMean[2]}, opt).view({1, 3, 1, 1});
  const at::Tensor std = at::tensor({kOpenAiClipStd[0], kOpenAiClipStd[1], kOpenAiClipStd[2]}, opt).view({1, 3, 1, 1});
  const at::Tensor u = ((x + 1) * 127.5).round().clamp(0, 255) / 255.0;
  return (u - mean) / std;
}

// The scorer's attention mask: 1 up to and including the first end-of-text token.
at::Tensor eos_mask(const at::Tensor& ids, int64_t eos) {
  at::Tensor is_eos = ids.eq(eos).to(at::kLong);
  return (is_eos.cumsum(1) - is_eos).eq(0).to(at::kLong);
}

}  // namespace

PhaseResult train_vae(AutoencoderKL& vae, const TrainPool& pool, const TrainOptions& o, const Logger& log) {
  PhaseResult r;
  vae->train();
  const auto params = vae->parameters();
  ForeachAdamW opt(params, 0.01);
  PhaseLog plog("vae", o, o.vae.steps, log);
  for (int64_t step = 0; step < o.vae.steps; ++step) {
    const at::Tensor x = to_unit_range(pool.images.index_select(0, sample_indices(pool, o.vae.batch_size)));
    auto [mean, logvar] = vae->encode(x);                          // [B, 4, 8, 8] each
    const at::Tensor z = mean + at::exp(0.5 * logvar) * at::randn_like(mean);
    const at::Tensor recon = vae->decode(z);                       // [B, 3, 64, 64]
    const at::Tensor l1 = (recon - x).abs().mean();
    const at::Tensor kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean();
    const at::Tensor loss = l1 + o.kl_weight * kl;
    opt.zero_grad();
    loss.backward();
    clip_grad_norm(params, 1.0);
    opt.step(lr_at(o.vae, step));
    plog.step(step, loss, r);
  }
  vae->eval();
  r.seconds = plog.seconds();
  return r;
}

PhaseResult train_clip(ClipModel& clip, const TrainPool& pool, const TrainOptions& o, const Logger& log) {
  PhaseResult r;
  clip->train();
  const auto params = clip->parameters();
  ForeachAdamW opt(params, 0.05);
  at::Tensor logit_scale = clip->named_parameters(false)["logit_scale"];
  const int64_t eos = clip->config().text_config.eos_token_id;
  const bool have_recon = pool.recon.defined();
  PhaseLog plog("clip", o, o.clip.steps, log);
  for (int64_t step = 0; step < o.clip.steps; ++step) {
    const int64_t b = o.clip.batch_size;
    const at::Tensor idx = sample_indices(pool, b);
    at::Tensor x = to_unit_range(pool.images.index_select(0, idx));
    if (have_recon) {  // half of the pictures as the VAE decodes them
      const at::Tensor use = at::rand({b, 1, 1, 1}, x.options()).lt(0.5);
      x = at::where(use, to_unit_range(pool.recon.index_select(0, idx)), x);
    }
    x = x + 0.03 * at::randn_like(x) * at::rand({b, 1, 1, 1}, x.options()).lt(0.3);
    const at::Tensor ids = pool.ids.index_select(0, idx);
    at::Tensor img = clip->get_image_features(clip_pixels(x));   // [B, E]
    at::Tensor txt = clip->get_text_features(ids, eos_mask(ids, eos));
    img = img / img.norm(2, -1, true);
    txt = txt / txt.norm(2, -1, true);
    const at::Tensor logits = logit_scale.exp() * img.matmul(txt.t());  // [B, B]
    // Identical captions in a batch are all right answers: soft targets over equal ids.
    const at::Tensor same = ids.unsqueeze(1).eq(ids.unsqueeze(0)).all(-1).to(at::kFloat);  // [B, B]
    const at::Tensor target = same / same.sum(1, true);
    const at::Tensor loss = 0.5 * (-(target * at::log_softmax(logits, 1)).sum(1).mean() -
                                   (target * at::log_softmax(logits.t(), 1)).sum(1).mean());
    opt.zero_grad();
    loss.backward();
    clip_grad_norm(params, 1.0);
    opt.step(lr_at(o.clip, step));
    {
      torch::NoGradGuard no_grad;
      logit_scale.clamp_(0.0, std::log(100.0));
    }
    plog.step(step, loss, r);
  }
  clip->eval();
  r.seconds = plog.seconds();
  return r;
}

PhaseResult train_unet(UNet2DConditionModel& unet, UNet2DConditionModel& ema, ClipTextModel& text, const TrainPool& pool,
                       const at::Tensor& empty_ids, double scaling_factor, const TrainOptions& o, const Logger& log) {
  PhaseResult r;
  unet->train();
  ema->eval();
  text->eval();
  for (auto& p : text->parameters()) p.set_requires_grad(false);
  for (auto& p : ema->parameters()) p.set_requires_grad(false);
  ForeachAdamW opt(unet->parameters(), 0.01);
  const auto device = pool.mean.device();
  // SD's scaled-linear schedule: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2.
  const at::Tensor betas = at::linspace(std::sqrt(0.00085), std::sqrt(0.012), 1000, at::kDouble).pow(2);
  const at::Tensor alphas_cumprod = at::cumprod(1.0 - betas, 0).to(at::kFloat).to(device);
  std::vector<at::Tensor> params = unet->parameters(), ema_params = ema->parameters();
  PhaseLog plog("unet", o, o.unet.steps, log);
  for (int64_t step = 0; step < o.unet.steps; ++step) {
    const int64_t b = o.unet.batch_size;
    const at::Tensor idx = sample_indices(pool, b);
    const at::Tensor mean = pool.mean.index_select(0, idx), logvar = pool.logvar.index_select(0, idx);
    const at::Tensor latents = (mean + at::exp(0.5 * logvar) * at::randn_like(mean)) * scaling_factor;
    at::Tensor ids = pool.ids.index_select(0, idx);
    const at::Tensor drop = at::rand({b, 1}, latents.options()).lt(o.caption_dropout);
    ids = at::where(drop, empty_ids.to(device).view({1, -1}).expand_as(ids), ids);
    at::Tensor context;
    {
      torch::NoGradGuard no_grad;
      context = text->forward(ids).last_hidden_state;  // [B, 77, D], as the pipeline encodes prompts
    }
    const at::Tensor t = at::randint(1000, {b}, at::TensorOptions().dtype(at::kLong).device(device));
    at::Tensor noise = at::randn_like(latents);
    if (o.noise_offset > 0) noise = noise + o.noise_offset * at::randn({b, latents.size(1), 1, 1}, latents.options());
    const at::Tensor ac = alphas_cumprod.index_select(0, t).view({b, 1, 1, 1});
    const at::Tensor noisy = ac.sqrt() * latents + (1 - ac).sqrt() * noise;
    const at::Tensor pred = unet->forward(noisy, t, context);
    const at::Tensor loss = (pred - noise).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    clip_grad_norm(params, 1.0);
    opt.step(lr_at(o.unet, step));
    {
      torch::NoGradGuard no_grad;
      const double decay = std::min(o.ema_decay, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
      at::_foreach_lerp_(ema_params, params, 1.0 - decay);
    }
    plog.step(step, loss, r);
  }
  unet->eval();
  r.seconds = plog.seconds();
  return r;
}

void init_clip(ClipModel& clip) {
  torch::NoGradGuard no_grad;
  for (auto& p : clip->named_parameters(true)) {
    const std::string& name = p.key();
    if (name.find("embedding") != std::string::npos && name.find("patch_embedding") == std::string::npos)
      p.value().normal_(0.0, 0.02);
  }
}

double encode_pool(AutoencoderKL& vae, TrainPool& pool, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  vae->eval();
  std::vector<at::Tensor> means, logvars, recons;
  const int64_t n = pool.images.size(0);
  for (int64_t first = 0; first < n; first += batch_size) {
    const int64_t count = std::min(batch_size, n - first);
    auto [mean, logvar] = vae->encode(to_unit_range(pool.images.narrow(0, first, count)));
    means.push_back(mean);
    logvars.push_back(logvar);
    const at::Tensor recon = vae->decode(mean);
    recons.push_back(((recon + 1) * 127.5).round().clamp(0, 255).to(at::kByte));
  }
  pool.mean = at::cat(means);
  pool.logvar = at::cat(logvars);
  pool.recon = at::cat(recons);
  // Unit variance for the diffusion model: 1 / std of sampled latents, the way SD's 0.18215 was found.
  const at::Tensor z = pool.mean + at::exp(0.5 * pool.logvar) * at::randn_like(pool.mean);
  return 1.0 / z.to(at::kDouble).std().item<double>();
}

}  // namespace diffbench::demo
