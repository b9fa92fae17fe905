#include "diffbench/models/clip_text.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include <ATen/ATen.h>

#include "diffbench/error.hpp"
#include "diffbench/models/blocks/linear.hpp"

namespace diffbench {

ClipTextConfig ClipTextConfig::from_json(const JsonConfig& j) {
  ClipTextConfig c;
  // Bounds far above any real CLIP, so that a typo fails here rather than as a crash or a huge allocation.
  c.vocab_size = j.get_int("vocab_size", c.vocab_size, 1, 1 << 22);
  read_encoder_sizes(j, c);
  c.max_position_embeddings = j.get_int("max_position_embeddings", c.max_position_embeddings, 1, 65536);
  c.hidden_act = j.get<std::string>("hidden_act", c.hidden_act);
  c.layer_norm_eps = j.get<double>("layer_norm_eps", c.layer_norm_eps);
  c.pad_token_id = j.get<int64_t>("pad_token_id", c.pad_token_id);
  c.bos_token_id = j.get<int64_t>("bos_token_id", c.bos_token_id);
  c.eos_token_id = j.get<int64_t>("eos_token_id", c.eos_token_id);
  c.encoder(j.source());  // validates hidden_act and the head split early, naming the file
  return c;
}

ClipEncoderConfig ClipTextConfig::encoder(const std::string& where) const {
  return ClipEncoderConfig::from_fields(hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
                                        layer_norm_eps, hidden_act, where);
}

void check_token_ids(const at::Tensor& ids, int64_t vocab_size, const std::string& where) {
  if (ids.numel() == 0) return;
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= vocab_size)
    throw InputError("the tokenizer gave token id " + std::to_string(lo < 0 ? lo : hi) + " but the text encoder has " +
                         std::to_string(vocab_size) + " token embeddings (vocab_size): tokenizer and text encoder "
                         "do not belong together",
                     where);
}

LoadOptions clip_text_load_options() {
  LoadOptions o;
  o.strip_prefix = "text_model.";
  o.ignore_unexpected = {"embeddings.position_ids"};
  return o;
}

ClipTextEmbeddingsImpl::ClipTextEmbeddingsImpl(const ClipTextConfig& c) {
  token_embedding = register_module("token_embedding", make_embedding(c.vocab_size, c.hidden_size));
  position_embedding =
      register_module("position_embedding", make_embedding(c.max_position_embeddings, c.hidden_size));
}

at::Tensor ClipTextEmbeddingsImpl::forward(const at::Tensor& input_ids) {
  const int64_t length = input_ids.size(1);
  const int64_t max_positions = position_embedding->weight.size(0);
  if (length > max_positions)
    throw UsageError("text of " + std::to_string(length) + " tokens is longer than the encoder's " +
                     std::to_string(max_positions) + " positions");
  auto positions = at::arange(length, input_ids.options().dtype(at::kLong));  // [L]
  return token_embedding(input_ids) + position_embedding(positions);         // [B, L, D]
}

ClipTextModelImpl::ClipTextModelImpl(const ClipTextConfig& config) : config_(config) {
  embeddings = register_module("embeddings", ClipTextEmbeddings(config));
  encoder = register_module("encoder", ClipEncoder(config.encoder()));
  final_layer_norm = register_module(
      "final_layer_norm", make_layer_norm(torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps)));
}

ClipTextOutput ClipTextModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                          int64_t clip_skip) {
  if (input_ids.dim() != 2) throw UsageError("input_ids must be [batch, length]", "ClipTextModel");
  if (clip_skip < 0 || clip_skip >= encoder->num_layers())
    throw UsageError("clip_skip must be in [0, " + std::to_string(encoder->num_layers()) + ")", "ClipTextModel");
  const auto ids = input_ids.to(at::kLong);
  const int64_t batch = ids.size(0), length = ids.size(1);

  auto x = embeddings(ids);  // [B, L, D]
  auto mask = causal_attention_mask(length, x.options(), attention_mask);  // [1 or B, 1, L, L]
  at::Tensor kept;
  x = encoder->forward_keep(x, mask, encoder->num_layers() - clip_skip, kept);  // [B, L, D]
  auto last = final_layer_norm(x);                                           // [B, L, D]

  // transformers: eos_token_id == 2 is the legacy config (pool at the highest id); otherwise
  // pool at the first position holding eos_token_id (the pad token may equal it).
  at::Tensor eos_index;  // [B]
  if (config_.eos_token_id == 2)
    eos_index = ids.to(at::kInt).argmax(-1);
  else
    eos_index = ids.eq(config_.eos_token_id).to(at::kInt).argmax(-1);
  auto rows = at::arange(batch, eos_index.options().dtype(at::kLong));
  auto pooled = last.index({rows, eos_index.to(at::kLong)});  // [B, D]

  ClipTextOutput out;
  out.last_hidden_state = clip_skip == 0 ? last : final_layer_norm(kept);
  out.pooled = pooled;
  out.hidden_kept = clip_skip == 0 ? x : kept;
  return out;
}

ClipTextModelWithProjectionImpl::ClipTextModelWithProjectionImpl(const ClipTextConfig& config) {
  text_model = register_module("text_model", ClipTextModel(config));
  text_projection = register_module(
      "text_projection", make_linear(torch::nn::LinearOptions(config.hidden_size, config.projection_dim).bias(false)));
}

ClipTextOutput ClipTextModelWithProjectionImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                                        int64_t clip_skip) {
  ClipTextOutput out = text_model->forward(input_ids, attention_mask, clip_skip);
  out.text_embeds = linear(text_projection, out.pooled);  // [B, projection_dim]
  return out;
}

}  // namespace diffbench
