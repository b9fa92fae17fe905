#include "sdxl_text.hpp"

#include <c10/core/InferenceMode.h>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "load_component.hpp"

namespace diffbench {

namespace fs = std::filesystem;

std::unique_ptr<SdxlText> SdxlText::load(const ModelSource& source, const ModelOptions& options) {
  if (source.tokenizer_2_dir().empty())
    throw ModelError("an SDXL pipeline needs 'tokenizer_2' beside 'text_encoder_2'", source.path().string());
  const ComponentSource& text = source.component("text_encoder_2");
  LoadOptions lo;
  lo.ignore_unexpected = {"text_model.embeddings.position_ids"};
  TokenizerOptions tokenizer_options;
  if (!source.pad_token_2().empty()) tokenizer_options.pad_token = source.pad_token_2();
  auto out = std::unique_ptr<SdxlText>(new SdxlText{
      ClipTokenizer::from_dir(source.tokenizer_2_dir(), tokenizer_options),
      load_component<ClipTextModelWithProjection>(ClipTextConfig::from_json(JsonConfig(text.config, text.config_source)),
                                                  text, options, lo),
      text.config_source, source.force_zeros_for_empty_prompt()});
  if (source.text_projection_transposed()) {
    // open_clip's [width, projection] bytes were read into the [projection, width] weight.
    c10::InferenceMode guard;
    auto params = out->text_encoder_2->named_parameters(true);
    at::Tensor* found = params.find("text_projection.weight");
    if (!found) throw ModelError("text_encoder_2 has no text_projection", text.config_source);
    at::Tensor w = *found;
    w.copy_(w.view({w.size(1), w.size(0)}).t().clone());
  }
  return out;
}

TextConditioning SdxlText::encode(const ClipTokenizer& tokenizer, ClipTextModel& text_encoder,
                                  const std::string& text_config, const std::vector<std::string>& prompts,
                                  const at::Device& device) {
  const at::Tensor ids_1 = tokenizer.encode_batch(prompts);    // [B, 77]
  const at::Tensor ids_2 = tokenizer_2.encode_batch(prompts);  // [B, 77]
  check_token_ids(ids_1, text_encoder->config().vocab_size, text_config);
  check_token_ids(ids_2, text_encoder_2->config().vocab_size, text_config_2);
  const ClipTextOutput out_1 = text_encoder->forward(ids_1.to(device), {}, /*clip_skip=*/1);
  const ClipTextOutput out_2 = text_encoder_2->forward(ids_2.to(device), {}, /*clip_skip=*/1);
  TextConditioning c;
  c.embeds = at::cat({out_1.hidden_kept, out_2.hidden_kept.to(out_1.hidden_kept.scalar_type())}, -1);  // [B, 77, D1+D2]
  c.pooled = out_2.text_embeds;                                                                        // [B, P]
  return c;
}

TextConditioning SdxlText::negative(const ClipTokenizer& tokenizer, ClipTextModel& text_encoder,
                                    const std::string& text_config, const TextConditioning& cond,
                                    const at::Device& device) {
  if (force_zeros_for_empty_prompt) return TextConditioning{at::zeros_like(cond.embeds), at::zeros_like(cond.pooled)};
  return encode(tokenizer, text_encoder, text_config, std::vector<std::string>(cond.embeds.size(0), ""), device);
}

at::Tensor sdxl_time_ids(int64_t height, int64_t width, int64_t count, const at::TensorOptions& options) {
  const at::Tensor row = at::tensor({static_cast<float>(height), static_cast<float>(width), 0.f, 0.f,
                                     static_cast<float>(height), static_cast<float>(width)});
  return row.to(options).unsqueeze(0).repeat({count, 1});  // [count, 6]
}

}  // namespace diffbench
