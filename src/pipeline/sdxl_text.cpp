#include "sdxl_text.hpp"

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "load_component.hpp"

namespace diffbench {

namespace fs = std::filesystem;

std::unique_ptr<SdxlText> SdxlText::load(const DiffusersFolder& folder, const ModelOptions& options) {
  for (const char* name : {"text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"})
    if (!folder.has(name))
      throw ModelError(std::string("an SDXL pipeline needs '") + name +
                           "' (refiner-style folders without the first text encoder are not supported)",
                       (folder.root() / "model_index.json").string());
  const auto index = JsonConfig::load(folder.root() / "model_index.json");
  const fs::path config = folder.config_file("text_encoder_2");
  LoadOptions lo;
  lo.ignore_unexpected = {"text_model.embeddings.position_ids"};
  auto out = std::unique_ptr<SdxlText>(new SdxlText{
      ClipTokenizer::from_dir(folder.component("tokenizer_2").dir),
      load_component<ClipTextModelWithProjection>(
          ClipTextConfig::from_json(JsonConfig::load(config)),
          ComponentSource{folder.weights_file("text_encoder_2", options.variant), {}, config.string(), {}}, options, lo),
      config.string(), index.get<bool>("force_zeros_for_empty_prompt", true)});
  return out;
}

TextConditioning SdxlText::encode(ClipTokenizer& tokenizer, ClipTextModel& text_encoder,
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

TextConditioning SdxlText::negative(ClipTokenizer& tokenizer, ClipTextModel& text_encoder,
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
