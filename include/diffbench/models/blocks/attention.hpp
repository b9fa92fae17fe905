// diffusers' `Attention` with the scaled-dot-product processor (AttnProcessor2_0): to_q, to_k,
// to_v, to_out.0; optional GroupNorm on the input and a residual connection (the VAE mid-block
// attention, which works on [B, C, H, W] maps).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "diffbench/models/blocks/linear.hpp"

#include <vector>

namespace diffbench {

// What a cross-attention layer reads: the encoder hidden states [B, M, D] and, when the layers' owner
// projected them for every layer in one GEMM, all layers' keys and values [B, M, Σ 2·inner] (each layer
// reads the columns set_kv_column gave it: its keys, then its values). Made implicitly from the states.
struct CrossAttentionContext {
  CrossAttentionContext(at::Tensor states = {}) : states(std::move(states)) {}  // NOLINT(google-explicit-constructor)
  at::Tensor states, kv;
};

struct AttentionOptions {
  int64_t query_dim = 0;
  int64_t cross_attention_dim = 0;  // 0: self-attention (keys/values from query_dim)
  int64_t heads = 8;
  int64_t dim_head = 64;
  bool bias = false;       // on to_q / to_k / to_v
  bool out_bias = true;    // on to_out.0
  int64_t norm_num_groups = 0;  // > 0: a `group_norm` on the input (channels = query_dim)
  double eps = 1e-5;            // of that group_norm
  bool residual_connection = false;
  double rescale_output_factor = 1.0;
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& options);
  // hidden: [B, N, query_dim] or [B, C, H, W]; context.states: [B, M, cross_attention_dim], or
  // undefined for self-attention. Returns the same shape as `hidden`.
  at::Tensor forward(const at::Tensor& hidden, const CrossAttentionContext& context = {});
  // As forward for tokens ([B, N, query_dim]; no residual connection, no rescaling), less to_out's bias,
  // which the caller adds itself (out_bias(); undefined when there is none): the transformer block
  // adds it inside its residual add + LayerNorm.
  at::Tensor forward_without_out_bias(const at::Tensor& hidden, const CrossAttentionContext& context = {});
  const at::Tensor& out_bias() const { return to_out_proj->bias; }

  const AttentionOptions& options() const { return options_; }

  // For an owner that projects the keys and values of several cross-attention layers in one GEMM
  // (RowFusedLinears over each layer's key_value_layers()): the layer's own fusion of to_k and to_v
  // is given up, and its keys and values are read from context.kv at `column` when it is defined.
  std::vector<torch::nn::Linear> key_value_layers() const { return {to_k, to_v}; }
  void set_kv_column(int64_t column);

  // dtype "fp8": the projections of the image's tokens (to_q, to_out and self-attention's to_k, to_v, by
  // their fused weight when they are fused) multiply in fp8 from now on (Fp8Matrix); cross-attention's keys
  // and values, from the 77 text tokens, stay in the activations' dtype.
  void use_fp8();

 private:
  AttentionOptions options_;
  torch::nn::GroupNorm group_norm{nullptr};
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};  // 0: Linear, 1: Dropout
  torch::nn::Linear to_out_proj{nullptr};  // the same module as to_out[0], typed
  // The projections that read the same input share one weight tensor and bias (their parameters
  // are views of them): self-attention's q, k, v or cross-attention's k, v run as one GEMM.
  // The environment variable DIFFBENCH_FUSED_QKV=0 turns this off (for timing both).
  RowFusedLinears fused_;
  std::vector<torch::nn::Linear> fused_modules() const;
  Fp8Matrix fp8_q_, fp8_k_, fp8_v_, fp8_out_;  // defined after use_fp8()
  int64_t kv_column_ = -1;  // where context.kv holds this layer's keys and values; -1: nowhere
  at::Tensor run(const at::Tensor& hidden, const CrossAttentionContext& context, bool with_out_bias);
  // softmax(q·kᵀ/√dh)·v of q [B, heads, N, dh], k, v [B, heads, M, dh] as [B, N, heads·dh].
  static at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
};
TORCH_MODULE(Attention);

// True when this build has the own head-dim-40 attention kernel and `device` can run it (a CUDA device of
// compute capability 9.0: the kernel is built for sm_90a).
bool have_hd40_attention_kernel(const at::Device& device);
// True when this build has the own few-key attention kernel (at most 80 keys: cross-attention to a text's
// tokens) and `device` can run it (a CUDA device of compute capability 8.0 or later).
bool have_short_attention_kernel(const at::Device& device);

}  // namespace diffbench
