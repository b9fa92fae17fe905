#include "diffbench/models/blocks/attention.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include "diffbench/models/blocks/linear.hpp"

#include <vector>

#include <torch/nn/modules/dropout.h>
#include <torch/utils.h>

#include "util/ab_switch.hpp"
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
#include "kernels/attention.hpp"
#include "kernels/short_attention.hpp"
#endif

namespace diffbench {

namespace nn = torch::nn;

AttentionImpl::AttentionImpl(const AttentionOptions& options) : options_(options) {
  const int64_t inner = options_.heads * options_.dim_head;
  const int64_t kv_dim = options_.cross_attention_dim > 0 ? options_.cross_attention_dim : options_.query_dim;
  if (options_.norm_num_groups > 0)
    group_norm = register_module(
        "group_norm", make_group_norm(nn::GroupNormOptions(options_.norm_num_groups, options_.query_dim).eps(options_.eps)));
  to_q = register_module("to_q", make_linear(nn::LinearOptions(options_.query_dim, inner).bias(options_.bias)));
  to_k = register_module("to_k", make_linear(nn::LinearOptions(kv_dim, inner).bias(options_.bias)));
  to_v = register_module("to_v", make_linear(nn::LinearOptions(kv_dim, inner).bias(options_.bias)));
  to_out_proj = make_linear(nn::LinearOptions(inner, options_.query_dim).bias(options_.out_bias));
  to_out = register_module("to_out", nn::ModuleList(to_out_proj, nn::Dropout(0.0)));
  // The projections that read the same input share one weight tensor (and bias): self-attention's q,
  // k, v or cross-attention's k, v run as one GEMM.
  if (ab_switch_on("DIFFBENCH_FUSED_QKV")) fused_ = RowFusedLinears(fused_modules());
}

void AttentionImpl::set_kv_column(int64_t column) {
  kv_column_ = column;
  if (options_.cross_attention_dim > 0) fused_ = RowFusedLinears();  // its to_k/to_v now live in the owner's tensor
}

void AttentionImpl::use_fp8() {
  torch::NoGradGuard no_grad;  // intact() asks for the inference the forms are for
  fp8_out_ = Fp8Matrix::of(to_out_proj->weight);
  if (options_.cross_attention_dim > 0) {  // the keys and values are the text's
    fp8_q_ = Fp8Matrix::of(to_q->weight);
  } else if (fused_.intact(fused_modules())) {  // q, k, v by their one weight: one e4m3 copy
    fused_.use_fp8();
  } else {
    fp8_q_ = Fp8Matrix::of(to_q->weight);
    fp8_k_ = Fp8Matrix::of(to_k->weight);
    fp8_v_ = Fp8Matrix::of(to_v->weight);
  }
}

std::vector<torch::nn::Linear> AttentionImpl::fused_modules() const {
  if (options_.cross_attention_dim <= 0) return {to_q, to_k, to_v};
  return {to_k, to_v};
}

at::Tensor AttentionImpl::forward(const at::Tensor& hidden, const CrossAttentionContext& cross) {
  return run(hidden, cross, /*with_out_bias=*/true);
}

at::Tensor AttentionImpl::forward_without_out_bias(const at::Tensor& hidden, const CrossAttentionContext& cross) {
  TORCH_CHECK(hidden.dim() == 3 && !options_.residual_connection && options_.rescale_output_factor == 1.0,
              "Attention::forward_without_out_bias: tokens in, no residual connection or rescaling");
  return run(hidden, cross, /*with_out_bias=*/false);
}

bool have_hd40_attention_kernel(const at::Device& device) {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  return device.is_cuda() && kernels::attention_hd40_device(device.has_index() ? device.index() : 0);
#else
  (void)device;
  return false;
#endif
}

bool have_short_attention_kernel(const at::Device& device) {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  return device.is_cuda() && kernels::attention_short_device(device.has_index() ? device.index() : 0);
#else
  (void)device;
  return false;
#endif
}

at::Tensor AttentionImpl::attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  // Head dim 40 (SD 1.x's first level) by the own Hopper kernel, which does not pad the head to 64, where it
  // measured faster: 3,072 keys and more (SD 1.5's 64² self-attention and larger; with fewer, as the 77 of
  // cross-attention, LibTorch's was as fast or faster: docs/performance.md, round 12).
  // DIFFBENCH_HD40_ATTENTION=0: LibTorch's SDPA throughout.
  if (q.size(-1) == 40 && k.size(2) >= 3072 && kernels::attention_hd40_supported(q, k, v) &&
      ab_switch_on("DIFFBENCH_HD40_ATTENTION"))
    return kernels::attention_hd40(q, k, v);
  // At most 80 keys (cross-attention to the text, SD 1.x's 8² self-attention) by the own kernel: cuDNN's SDPA
  // zeroes a buffer before each call, and in a CUDA graph the GPU idles after that memset (round 16).
  // DIFFBENCH_SHORT_ATTENTION=0: LibTorch's SDPA there.
  if (k.size(2) <= kernels::kShortAttentionMaxKeys && kernels::attention_short_supported(q, k, v) &&
      ab_switch_on("DIFFBENCH_SHORT_ATTENTION"))
    return kernels::attention_short(q, k, v);
#endif
  const at::Tensor o = at::scaled_dot_product_attention(q, k, v);  // [B, heads, N, dh]
  return o.transpose(1, 2).reshape({q.size(0), q.size(2), q.size(1) * q.size(3)});
}

at::Tensor AttentionImpl::run(const at::Tensor& hidden, const CrossAttentionContext& cross, bool with_out_bias) {
  const at::Tensor& context = cross.states;
  const bool spatial = hidden.dim() == 4;
  const int64_t B = hidden.size(0);
  at::Tensor x = hidden;
  int64_t C = 0, H = 0, W = 0;
  if (spatial) {
    C = hidden.size(1), H = hidden.size(2), W = hidden.size(3);
    x = hidden.view({B, C, H * W}).transpose(1, 2);  // [B, HW, C]
  }
  if (group_norm) x = group_norm(x.transpose(1, 2)).transpose(1, 2);  // normalised over channels
  const at::Tensor& kv = context.defined() ? context : x;

  const int64_t heads = options_.heads, dh = options_.dim_head;
  at::Tensor q, k, v, kv2;  // kv2: [B, M, 2, heads, dh], keys then values
  if (context.defined() && cross.kv.defined() && kv_column_ >= 0) {  // projected by the owner for all layers
    kv2 = cross.kv.narrow(-1, kv_column_, 2 * heads * dh).view({B, -1, 2, heads, dh});
  } else if (fused_.intact(fused_modules())) {
    if (!context.defined() && options_.cross_attention_dim <= 0) {  // [B, N, 3, heads, dh]
      const auto qkv = fused_.forward(x).view({B, -1, 3, heads, dh});
      q = qkv.select(2, 0).transpose(1, 2);
      k = qkv.select(2, 1).transpose(1, 2);
      v = qkv.select(2, 2).transpose(1, 2);
    } else if (context.defined() && options_.cross_attention_dim > 0) {
      kv2 = fused_.forward(kv).view({B, -1, 2, heads, dh});
    }
  }
  if (kv2.defined()) {
    k = kv2.select(2, 0).transpose(1, 2);
    v = kv2.select(2, 1).transpose(1, 2);
  }
  if (!q.defined()) q = linear(to_q, x, fp8_q_).view({B, -1, heads, dh}).transpose(1, 2);  // [B, heads, N, dh]
  if (!k.defined()) {
    k = linear(to_k, kv, fp8_k_).view({B, -1, heads, dh}).transpose(1, 2);  // [B, heads, M, dh]
    v = linear(to_v, kv, fp8_v_).view({B, -1, heads, dh}).transpose(1, 2);  // [B, heads, M, dh]
  }
  at::Tensor o = attend(q, k, v);                                                    // [B, N, inner]
  o = gemm(o, to_out_proj->weight, with_out_bias ? to_out_proj->bias : at::Tensor(), fp8_out_);  // [B, N, query_dim]

  if (spatial) o = o.transpose(-1, -2).reshape({B, C, H, W});  // [B, C, H, W]
  if (options_.residual_connection) o = o + hidden;
  if (options_.rescale_output_factor != 1.0) o = o / options_.rescale_output_factor;
  return o;
}

}  // namespace diffbench
