// The "tome" acceleration method: tomesd's compute_merge at every BasicTransformerBlock, through
// UNetHooks::tokens. The merge itself is in tome_merge.cpp.
#include <cmath>
#include <map>
#include <set>
#include <tuple>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "diffbench/accel/builtins.hpp"
#include "diffbench/accel/tome.hpp"
#include "diffbench/error.hpp"

namespace diffbench {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// A fresh generator on `device` (tomesd keeps its generator on the tokens' device too).
at::Generator generator_on(at::Device device, uint64_t seed) {
  if (device.is_cuda()) {
    at::Generator gen = at::detail::getCUDAHooks().getNewGenerator(device.index());
    gen.set_current_seed(seed);
    return gen;
  }
  // CPU, and tomesd's fallback for other devices: draws move to the device afterwards.
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

class TomeTransform final : public TokenTransform {
 public:
  TomeTransform(TokenMerge merge, const TomeOptions& options) : merge_(std::move(merge)), options_(options) {}

  at::Tensor merge(TransformerPart part, const at::Tensor& x) override {
    return enabled(part) ? merge_.merge(x) : x;
  }
  at::Tensor unmerge(TransformerPart part, const at::Tensor& x) override {
    return enabled(part) ? merge_.unmerge(x) : x;
  }

 private:
  bool enabled(TransformerPart part) const {
    switch (part) {
      case TransformerPart::SelfAttention: return options_.merge_attn;
      case TransformerPart::CrossAttention: return options_.merge_crossattn;
      case TransformerPart::FeedForward: return options_.merge_mlp;
    }
    return false;
  }

  TokenMerge merge_;
  TomeOptions options_;
};

class TomeMethod final : public Method {
 public:
  explicit TomeMethod(const TomeOptions& options) : options_(options) {}

  std::string name() const override { return "tome"; }

  nlohmann::json params() const override {
    return {{"ratio", options_.ratio},         {"max_downsample", options_.max_downsample},
            {"sx", options_.sx},               {"sy", options_.sy},
            {"use_rand", options_.use_rand},   {"merge_attn", options_.merge_attn},
            {"merge_crossattn", options_.merge_crossattn}, {"merge_mlp", options_.merge_mlp}};
  }

  nlohmann::json stats() const override {
    return {{"merging_block_calls", total_.merging_calls},
            {"tokens_in", total_.tokens_in},
            {"tokens_removed", total_.tokens_removed}};
  }

  void reset_stats() override { total_ = Counts{}; }

  void begin_generation(const GenerationInfo& info) override {
    seed_ = splitmix64(info.seed ^ splitmix64(info.batch_index));
    generator_.reset();
    latent_h_ = info.latent_h;
    latent_w_ = info.latent_w;
  }

  // tomesd's forward pre-hook on the UNet: the latent size at the UNet input. Where an earlier
  // call of this shape showed which random choices a call draws, they are drawn here, in order,
  // into that call's buffers (so the hooks below draw nothing and a CUDA graph can replay them).
  void begin_call(const UNetCallInfo& info) override {
    if (recording_) recorded_.insert(key_);
    if (current_.merging_calls > 0) last_[key_] = current_;
    current_ = Counts{};
    latent_h_ = info.latent_h;
    latent_w_ = info.latent_w;
    key_ = {info.latent_h, info.latent_w, info.batch};
    next_draw_ = 0;
    recording_ = !recorded_.count(key_);
    if (recording_) {
      draws_[key_].clear();  // no graph reads buffers of an unrecorded shape
    } else {
      for (at::Tensor& choice : draws_[key_]) {
        at::Generator& gen = generator_for(choice.device());
        at::randint_out(choice, options_.sx * options_.sy, choice.sizes(), gen);
      }
    }
  }

  // Once a call of this shape has run its hooks, the same work every time.
  std::optional<std::string> graph_variant() override {
    if (!recorded_.count(key_)) return std::nullopt;
    return std::string("tome");
  }

  void replayed() override {
    const auto it = last_.find(key_);
    if (it != last_.end()) total_ += it->second;
  }

  // tomesd's compute_merge.
  std::shared_ptr<TokenTransform> tokens(const TransformerId& id, const at::Tensor& x, int64_t h, int64_t w) override {
    if (!options_.merge_attn && !options_.merge_crossattn && !options_.merge_mlp) return nullptr;
    const int64_t n = x.size(1);
    const int64_t original_h = latent_h_ > 0 ? latent_h_ : h;
    const int64_t original_w = latent_w_ > 0 ? latent_w_ : w;
    const int64_t downsample =
        std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(original_h * original_w / n)))));
    if (downsample > options_.max_downsample) return nullptr;

    int64_t grid_w = (original_w + downsample - 1) / downsample;
    int64_t grid_h = (original_h + downsample - 1) / downsample;
    if (grid_h * grid_w != n) {
      // tomesd fails here (its grid does not cover the tokens); the level's own size does.
      grid_h = h;
      grid_w = w;
    }
    const auto r = static_cast<int64_t>(static_cast<double>(n) * options_.ratio);
    // An odd batch cannot hold matching conditional and unconditional halves: no randomness.
    const bool use_rand = x.size(0) % 2 == 1 ? false : options_.use_rand;
    at::Tensor choice;
    if (use_rand && tome_draws_choice(grid_w, grid_h, options_.sx, options_.sy, r)) {
      auto& draws = draws_[key_];
      if (recording_) {
        const at::Device where = x.is_cuda() ? x.device() : at::Device(at::kCPU);
        choice = at::randint(options_.sx * options_.sy, {grid_h / options_.sy, grid_w / options_.sx, 1}, generator_for(where),
                             at::TensorOptions().dtype(at::kLong).device(where));
        draws.push_back(choice);
      } else {
        if (next_draw_ >= draws.size())
          throw RuntimeFailure("tome: this call merges more blocks than the first call of its shape", "tome");
        choice = draws[next_draw_];
      }
      ++next_draw_;
    }
    auto merge = choice.defined()
                     ? bipartite_soft_matching_random2d(x, grid_w, grid_h, options_.sx, options_.sy, r, choice)
                     : bipartite_soft_matching_random2d(x, grid_w, grid_h, options_.sx, options_.sy, r,
                                                        fixed_partition(grid_h, grid_w, x.device()));
    if (!merge) return nullptr;
    current_ += Counts{1, n, merge->removed()};
    total_ += Counts{1, n, merge->removed()};
    return std::make_shared<TomeTransform>(std::move(*merge), options_);
  }

 private:
  struct Counts {
    int64_t merging_calls = 0, tokens_in = 0, tokens_removed = 0;
    Counts& operator+=(const Counts& o) {
      merging_calls += o.merging_calls;
      tokens_in += o.tokens_in;
      tokens_removed += o.tokens_removed;
      return *this;
    }
  };
  using Key = std::tuple<int64_t, int64_t, int64_t>;  // latent h, w, UNet batch
  using PartitionKey = std::tuple<int64_t, int64_t, int, int>;  // grid h, w, device type, index

  // The partition without a random choice depends only on the grid: made once per grid and device.
  const TomePartition& fixed_partition(int64_t h, int64_t w, at::Device device) {
    const PartitionKey key{h, w, static_cast<int>(device.type()), device.index()};
    auto it = partitions_.find(key);
    if (it == partitions_.end())
      it = partitions_.emplace(key, tome_partition(h, w, options_.sx, options_.sy, {}, device)).first;
    return it->second;
  }

  at::Generator& generator_for(at::Device where) {
    if (!generator_ || generator_->device() != where) generator_ = generator_on(where, seed_);
    return *generator_;
  }

  TomeOptions options_;
  uint64_t seed_ = splitmix64(0);
  std::optional<at::Generator> generator_;
  int64_t latent_h_ = 0;
  int64_t latent_w_ = 0;
  // Random choices per shape: recorded by the first call of a shape, redrawn in place afterwards.
  Key key_{0, 0, 0};
  bool recording_ = true;
  std::set<Key> recorded_;
  std::map<Key, std::vector<at::Tensor>> draws_;
  size_t next_draw_ = 0;
  std::map<PartitionKey, TomePartition> partitions_;
  Counts total_, current_;
  std::map<Key, Counts> last_;  // per shape: what its last call with hooks merged
};

}  // namespace

std::unique_ptr<Method> make_tome(const TomeOptions& options) {
  if (!(options.ratio >= 0 && options.ratio < 1))
    throw InputError("parameter 'ratio' of tome must be in [0, 1), got " + std::to_string(options.ratio), "ratio");
  const int64_t md = options.max_downsample;
  if (md != 1 && md != 2 && md != 4 && md != 8)
    throw InputError("parameter 'max_downsample' of tome must be 1, 2, 4 or 8, got " + std::to_string(md),
                     "max_downsample");
  if (options.sx < 1) throw InputError("parameter 'sx' of tome must be >= 1", "sx");
  if (options.sy < 1) throw InputError("parameter 'sy' of tome must be >= 1", "sy");
  return std::make_unique<TomeMethod>(options);
}

void register_tome(MethodRegistry& registry) {
  using T = ParamSpec::Type;
  const TomeOptions d;
  MethodInfo info;
  info.name = "tome";
  info.description = "Token Merging for Stable Diffusion (tomesd): merges similar tokens around the attention of "
                     "the least downsampled transformer blocks";
  info.params = {
      make_param("ratio", T::Float, d.ratio, 0.0, 1.0, "fraction of tokens to merge away, 0 <= ratio < 1"),
      make_param("max_downsample", T::Int, d.max_downsample, 1, 8, "merge in levels downsampled at most this much: 1, 2, 4 or 8"),
      make_param("sx", T::Int, d.sx, 1, std::nullopt, "destination stride in x"),
      make_param("sy", T::Int, d.sy, 1, std::nullopt, "destination stride in y"),
      make_param("use_rand", T::Bool, d.use_rand, std::nullopt, std::nullopt,
            "random destination in each sy x sx cell (seeded from the run's seed)"),
      make_param("merge_attn", T::Bool, d.merge_attn, std::nullopt, std::nullopt, "merge around self-attention"),
      make_param("merge_crossattn", T::Bool, d.merge_crossattn, std::nullopt, std::nullopt, "merge around cross-attention"),
      make_param("merge_mlp", T::Bool, d.merge_mlp, std::nullopt, std::nullopt, "merge around the feed-forward"),
  };
  info.create = [](const MethodParams& p) {
    TomeOptions o;
    o.ratio = p.get_float("ratio");
    o.max_downsample = p.get_int("max_downsample");
    o.sx = p.get_int("sx");
    o.sy = p.get_int("sy");
    o.use_rand = p.get_bool("use_rand");
    o.merge_attn = p.get_bool("merge_attn");
    o.merge_crossattn = p.get_bool("merge_crossattn");
    o.merge_mlp = p.get_bool("merge_mlp");
    return make_tome(o);
  };
  registry.add(std::move(info));
}

}  // namespace diffbench
