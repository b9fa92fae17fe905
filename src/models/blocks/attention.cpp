#include "diffbench/models/blocks/attention.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include "diffbench/models/blocks/linear.hpp"

#include <cstdlib>
#include <string>
#include <vector>

#include <torch/nn/modules/dropout.h>
#include <torch/utils.h>

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
  if (!options_.bias && fused_projections_enabled()) {
    // One weight [3·inner, dim] (self-attention: q, k, v) or [2·inner, kv_dim] (cross-attention: k,
    // v) whose row blocks are to_q/to_k/to_v's weights: loading fills it through them, and one GEMM
    // computes every projection that reads the same input.
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> parts;
    if (options_.cross_attention_dim <= 0) parts.push_back(to_q->weight);
    parts.push_back(to_k->weight);
    parts.push_back(to_v->weight);
    int64_t rows = 0;
    for (const auto& w : parts) rows += w.size(0);
    // Under a ParameterTarget the weights are uninitialised (the loader fills them): nothing to copy.
    fused_weight_ = ParameterTarget::current() ? at::empty({rows, parts[0].size(1)}, parts[0].options())
                                               : at::cat(parts, 0);
    int64_t row = 0;
    for (auto* m : fused_modules()) {
      const int64_t n = (*m)->weight.size(0);
      (*m)->weight.set_data(fused_weight_.narrow(0, row, n));
      row += n;
    }
  }
}

bool AttentionImpl::fused_projections_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("DIFFBENCH_FUSED_QKV");  // "0": separate projections (for A/B timing)
    return !(v && std::string(v) == "0");
  }();
  return on;
}

std::vector<torch::nn::Linear*> AttentionImpl::fused_modules() {
  if (options_.cross_attention_dim <= 0) return {&to_q, &to_k, &to_v};
  return {&to_k, &to_v};
}

// The weights are still the row blocks of fused_weight_ (a module moved to another device or dtype,
// or given other weight tensors, has separate ones again) and no gradient is needed (training needs
// to_q/to_k/to_v's own): otherwise the projections run one by one.
bool AttentionImpl::fused_intact() {
  if (!fused_weight_.defined() || (at::GradMode::is_enabled() && to_k->weight.requires_grad())) return false;
  int64_t offset = fused_weight_.storage_offset();
  for (auto* m : fused_modules()) {
    const at::Tensor& w = (*m)->weight;
    if (!w.is_alias_of(fused_weight_) || w.storage_offset() != offset || !w.is_contiguous() ||
        w.size(1) != fused_weight_.size(1))
      return false;
    offset += w.numel();
  }
  return true;
}

at::Tensor AttentionImpl::forward(const at::Tensor& hidden, const at::Tensor& context) {
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
  at::Tensor q, k, v;
  if (fused_intact()) {
    if (!context.defined() && options_.cross_attention_dim <= 0) {  // [B, N, 3, heads, dh]
      const auto qkv = at::linear(x, fused_weight_).view({B, -1, 3, heads, dh});
      q = qkv.select(2, 0).transpose(1, 2);
      k = qkv.select(2, 1).transpose(1, 2);
      v = qkv.select(2, 2).transpose(1, 2);
    } else if (context.defined() && options_.cross_attention_dim > 0) {  // [B, M, 2, heads, dh]
      const auto kv2 = at::linear(kv, fused_weight_).view({B, -1, 2, heads, dh});
      k = kv2.select(2, 0).transpose(1, 2);
      v = kv2.select(2, 1).transpose(1, 2);
    }
  }
  if (!q.defined()) q = linear(to_q, x).view({B, -1, heads, dh}).transpose(1, 2);    // [B, heads, N, dh]
  if (!k.defined()) {
    k = linear(to_k, kv).view({B, -1, heads, dh}).transpose(1, 2);  // [B, heads, M, dh]
    v = linear(to_v, kv).view({B, -1, heads, dh}).transpose(1, 2);  // [B, heads, M, dh]
  }
  at::Tensor o = at::scaled_dot_product_attention(q, k, v);                  // [B, heads, N, dh]
  o = o.transpose(1, 2).reshape({B, -1, heads * dh});                        // [B, N, inner]
  o = linear(to_out_proj, o);  // [B, N, query_dim]; to_out.1 is dropout

  if (spatial) o = o.transpose(-1, -2).reshape({B, C, H, W});  // [B, C, H, W]
  if (options_.residual_connection) o = o + hidden;
  if (options_.rescale_output_factor != 1.0) o = o / options_.rescale_output_factor;
  return o;
}

}  // namespace diffbench
