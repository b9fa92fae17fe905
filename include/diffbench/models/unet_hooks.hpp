// Layering: methods see the model only through these hooks; nothing here knows the pipeline.
// The one hook interface through which acceleration methods (built-in and plugins) act on the
// UNet. Methods never patch models: the UNet calls these hooks at fixed points, every hook does
// nothing by default, and a null hooks pointer costs nothing.
//
// Hook points, in the order a UNet call meets them:
//   begin_call                     once per UNet call, with the step index and latent size (called
//                                  by the pipeline just before UNet2DConditionModel::forward)
//   before_module / after_module   around every down block, the mid block, every up block, and
//                                  inside blocks around each resnet, attention (Transformer2DModel),
//                                  downsampler and upsampler; before_module may return an output,
//                                  which skips the module (DeepCache); after_module runs only for
//                                  modules that ran. A block's hooks enclose its layers' hooks:
//                                  before(block), before(resnets.0), after(resnets.0), ...,
//                                  after(block); a skipped block's layers see no hooks
//   tokens                         at the start of every BasicTransformerBlock: a TokenTransform
//                                  whose merge/unmerge wrap self-attention, cross-attention and the
//                                  feed-forward (ToMe)
//   before_attention / after_attention
//                                  around attn1 / attn2 of every BasicTransformerBlock, output after
//                                  to_out; before_attention may return the output to use (T-GATE);
//                                  after_attention runs only for attentions that ran
// In a transformer block the order is: tokens, then for self-attention
//   merge(norm1(x)) -> before_attention -> attn1 -> after_attention -> unmerge, + x
// and the same for cross-attention (norm2, attn2) and the feed-forward (norm3, ff; no attention
// hooks), exactly as tomesd's ToMeBlock.
// Step-level hooks (before/after each step, dropping classifier-free guidance) are in
// pipeline/step_hooks.hpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace diffbench {

enum class UNetSection { Down, Mid, Up };
enum class ModuleKind { Block, Resnet, Attention, Downsampler, Upsampler };

// Where a module sits, with its diffusers name ("down_blocks.1.attentions.0", "mid_block",
// "up_blocks.3.upsamplers.0"), so methods, logs and profiles talk about the same thing.
struct ModuleId {
  UNetSection section = UNetSection::Down;
  ModuleKind kind = ModuleKind::Block;
  int block = 0;  // index in down_blocks / up_blocks (0 for the mid block)
  int layer = 0;  // index in resnets / attentions (0 for blocks and samplers)
  std::string name;
  // Sizes, so that a method can renumber (DeepCache counts up blocks and their layers from the
  // bottom: block' = num_blocks - 1 - block, layer' = num_layers - 1 - layer).
  int num_blocks = 0;  // blocks in this section (len(down_blocks) / len(up_blocks); 1 for mid)
  int num_layers = 0;  // resnets in the enclosing block
};

// A module's output. Down blocks also return their skip residuals, in diffusers' order.
struct ModuleOutput {
  at::Tensor hidden;
  std::vector<at::Tensor> residuals;
};

enum class TransformerPart { SelfAttention, CrossAttention, FeedForward };

// One BasicTransformerBlock: its Transformer2DModel's id and its index in transformer_blocks.
struct TransformerId {
  ModuleId attention;
  int index = 0;
  std::string name;  // "down_blocks.1.attentions.0.transformer_blocks.0"
};

// Tokens in and out of the three parts of a transformer block ([B, N, C] -> [B, N', C] and back).
class TokenTransform {
 public:
  virtual ~TokenTransform() = default;
  virtual at::Tensor merge(TransformerPart part, const at::Tensor& x) = 0;
  virtual at::Tensor unmerge(TransformerPart part, const at::Tensor& x) = 0;
};

struct UNetCallInfo {
  size_t step = 0;         // index of this UNet call within the generation (0-based)
  size_t total_steps = 0;  // UNet calls in the generation
  double timestep = 0;     // the scheduler timestep of this call
  int64_t batch = 0;       // UNet batch (2 × images while classifier-free guidance runs)
  int64_t latent_h = 0;    // latent size at the UNet input
  int64_t latent_w = 0;
};

// 1, 2, 3, ... in the order hooks objects are made (process-wide, thread-safe): names a hooks object
// in CUDA-graph keys, so two objects never share a graph.
uint64_t next_hooks_instance_id();

class UNetHooks {
 public:
  UNetHooks() : instance_id_(next_hooks_instance_id()) {}
  UNetHooks(const UNetHooks&) : UNetHooks() {}  // a copy has its own buffers, so its own graphs
  UNetHooks& operator=(const UNetHooks&) { return *this; }
  virtual ~UNetHooks() = default;

  virtual void begin_call(const UNetCallInfo& info) {}

  // Returning an output skips the module; that output is used in its place.
  virtual std::optional<ModuleOutput> before_module(const ModuleId& id) { return std::nullopt; }
  virtual void after_module(const ModuleId& id, const ModuleOutput& output) {}

  // x: [B, h·w, C] entering the transformer block; h, w: this level's spatial size.
  virtual std::shared_ptr<TokenTransform> tokens(const TransformerId& id, const at::Tensor& x, int64_t h, int64_t w) {
    return nullptr;
  }

  // x: the (normalised, possibly merged) tokens entering attn1 or attn2. Returning a tensor skips
  // the attention and uses it as the attention's output (shape of what to_out would produce).
  virtual std::optional<at::Tensor> before_attention(const TransformerId& id, TransformerPart part, const at::Tensor& x) {
    return std::nullopt;
  }
  virtual void after_attention(const TransformerId& id, TransformerPart part, const at::Tensor& output) {}
  // False promises that tokens(), before_attention() and after_attention() do nothing for every
  // block of this call: the transformer blocks then run as without hooks, free to fuse across the
  // attention's output (asked once per Transformer2DModel call). The default, true, is always safe.
  virtual bool hooks_transformer_blocks() const { return true; }

  // ---- CUDA graphs (optional) ----
  // Asked once per UNet call, after begin_call. A key promises that every call given this key (at
  // the same input shapes) does the same device work: the module, token and attention hooks take
  // the same decisions, draw no random numbers and read no host values, and every tensor they hand
  // from one call to a later one lives in a buffer that stays put (allocated once, written in
  // place). The runner may then capture such a call in a CUDA graph (its first call with a key runs
  // eagerly, the second is captured) and replay it later WITHOUT calling those hooks; it tells the
  // method through replayed(), so that counters stay right. std::nullopt (the default): the call
  // runs eagerly with every hook, as on the CPU.
  virtual std::optional<std::string> graph_variant() { return std::nullopt; }
  // This call was a replay of the graph captured from an earlier call with the same key.
  virtual void replayed() {}

  // next_hooks_instance_id() at construction: captured graphs read this object's buffers, so the
  // runner keys them by it (an address could be reused by a later object).
  uint64_t instance_id() const { return instance_id_; }

 private:
  uint64_t instance_id_;
};

}  // namespace diffbench
