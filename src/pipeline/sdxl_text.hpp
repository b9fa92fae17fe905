// Pipeline-internal: the text conditioning of diffusers' StableDiffusionXLPipeline (encode_prompt and
// _get_add_time_ids): the second tokenizer and text encoder (CLIPTextModelWithProjection), the two
// encoders' penultimate hidden states concatenated, the pooled projected embedding, the time ids, and
// force_zeros_for_empty_prompt for the negative prompt.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "diffbench/io/diffusers_folder.hpp"
#include "diffbench/pipeline/model_source.hpp"
#include "diffbench/models/clip_text.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "diffbench/tokenizer/clip_tokenizer.hpp"

namespace diffbench {

// What a prompt batch conditions the UNet with.
struct TextConditioning {
  at::Tensor embeds;  // [B, 77, D] (SDXL: D = first encoder's width + second's)
  at::Tensor pooled;  // [B, P]: SDXL's text_encoder_2 projected pooled output; undefined otherwise
};

struct SdxlText {
  ClipTokenizer tokenizer_2;
  ClipTextModelWithProjection text_encoder_2{nullptr};
  std::string text_config_2;  // for error messages
  bool force_zeros_for_empty_prompt = true;  // model_index.json's, diffusers' default true

  // text_encoder_2 / tokenizer_2 of an SDXL folder (model_index.json naming StableDiffusionXLPipeline)
  // or single file.
  static std::unique_ptr<SdxlText> load(const ModelSource& source, const ModelOptions& options);

  // encode_prompt for `prompts`: each tokenizer pads to 77; each encoder's hidden state before its
  // last layer (hidden_states[-2]), concatenated along the width; text_encoder_2's text_embeds pooled.
  TextConditioning encode(const ClipTokenizer& tokenizer, ClipTextModel& text_encoder, const std::string& text_config,
                          const std::vector<std::string>& prompts, const at::Device& device);
  // The negative (empty) prompt's conditioning for the images of `cond`: zeros like it when
  // force_zeros_for_empty_prompt, else "" encoded as a prompt.
  TextConditioning negative(const ClipTokenizer& tokenizer, ClipTextModel& text_encoder, const std::string& text_config,
                            const TextConditioning& cond, const at::Device& device);
};

// _get_add_time_ids with the pipeline's defaults: (original size, crop top-left, target size) =
// (height, width, 0, 0, height, width), one row per image: [count, 6].
at::Tensor sdxl_time_ids(int64_t height, int64_t width, int64_t count, const at::TensorOptions& options);

}  // namespace diffbench
