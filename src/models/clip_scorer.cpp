#include "diffbench/models/clip_scorer.hpp"

#include "diffbench/error.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/blocks/layers.hpp"
#include "diffbench/models/clip_model.hpp"
#include "diffbench/models/open_clip.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

// The first parameter's device and dtype: where inputs have to go.
at::TensorOptions weight_options(torch::nn::Module& m) {
  auto params = m.parameters();
  if (params.empty()) return at::TensorOptions();
  return params.front().options();
}

std::array<double, 3> triple(const nlohmann::json& v, const std::string& key, const std::string& where) {
  if (!v.is_array() || v.size() != 3) throw InputError("'" + key + "' must be a list of 3 numbers", where);
  return {v[0].get<double>(), v[1].get<double>(), v[2].get<double>()};
}

// A size given as an int or as {"height", "width"} / {"shortest_edge"}; 0 when absent.
int size_value(const nlohmann::json& j, const std::string& key, const std::string& where) {
  if (!j.contains(key) || j.at(key).is_null()) return 0;
  const auto& v = j.at(key);
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_object()) {
    if (v.contains("shortest_edge")) return v.at("shortest_edge").get<int>();
    if (v.contains("height") && v.contains("width")) {
      if (v.at("height") != v.at("width")) throw InputError("non-square '" + key + "' is not supported", where);
      return v.at("height").get<int>();
    }
  }
  throw InputError("cannot read '" + key + "'", where);
}

// transformers' CLIPImageProcessor settings from processor_config.json ("image_processor") or
// preprocessor_config.json.
ClipImageSpec transformers_image_spec(const fs::path& dir, int model_image_size) {
  ClipImageSpec spec;
  spec.size = model_image_size;
  nlohmann::json p;
  fs::path file;
  if (fs::exists(dir / "preprocessor_config.json")) {
    file = dir / "preprocessor_config.json";
    p = read_json_file(file);
  } else if (fs::exists(dir / "processor_config.json")) {
    file = dir / "processor_config.json";
    p = read_json_file(file).value("image_processor", nlohmann::json::object());
  } else {
    return spec;
  }
  const std::string where = file.string();
  if (p.contains("resample") && p.at("resample") != 3)
    throw InputError("only bicubic resampling (resample 3) is supported", where);
  const int crop = p.value("do_center_crop", true) ? size_value(p, "crop_size", where) : 0;
  const int resize = p.value("do_resize", true) ? size_value(p, "size", where) : 0;
  if (crop && resize && crop != resize)
    throw InputError("resize to " + std::to_string(resize) + " then crop to " + std::to_string(crop) +
                         " is not supported (CLIP resizes the shorter side to the crop size)",
                     where);
  if (crop || resize) spec.size = crop ? crop : resize;
  if (p.contains("image_mean")) spec.mean = triple(p.at("image_mean"), "image_mean", where);
  if (p.contains("image_std")) spec.std = triple(p.at("image_std"), "image_std", where);
  if (!p.value("do_normalize", true)) spec.mean = {0, 0, 0}, spec.std = {1, 1, 1};
  return spec;
}

ClipImageSpec open_clip_image_spec(const JsonConfig& file, int model_image_size) {
  ClipImageSpec spec;
  spec.size = model_image_size;  // open_clip sets the preprocess size from the image tower
  if (!file.has("preprocess_cfg")) return spec;
  const auto& p = file.raw().at("preprocess_cfg");
  if (p.contains("mean")) spec.mean = triple(p.at("mean"), "preprocess_cfg.mean", file.source());
  if (p.contains("std")) spec.std = triple(p.at("std"), "preprocess_cfg.std", file.source());
  if (p.value("interpolation", std::string("bicubic")) != "bicubic")
    throw InputError("only bicubic preprocess interpolation is supported", file.source());
  if (p.value("resize_mode", std::string("shortest")) != "shortest")
    throw InputError("only resize_mode 'shortest' is supported", file.source());
  return spec;
}

class TransformersClipScorer : public ClipScorerModel {
 public:
  TransformersClipScorer(const ClipConfig& config, ClipImageSpec spec) : model_(config), spec_(spec) {}
  at::Tensor image_features(const at::Tensor& pixel_values) override {
    auto o = weight_options(*model_);
    return model_->get_image_features(pixel_values.to(o.device(), o.dtype().toScalarType()));
  }
  at::Tensor text_features(const at::Tensor& input_ids, const at::Tensor& attention_mask) override {
    auto device = weight_options(*model_).device();
    check_token_ids(input_ids, model_->config().text_config.vocab_size, "CLIP scorer text_config");
    auto mask = attention_mask.defined() ? attention_mask.to(device) : attention_mask;
    return model_->get_text_features(input_ids.to(device), mask);
  }
  ClipImageSpec image_spec() const override { return spec_; }
  int64_t context_length() const override { return model_->config().text_config.max_position_embeddings; }
  std::string layout() const override { return "transformers"; }
  torch::nn::Module& module() override { return *model_; }

 private:
  ClipModel model_;
  ClipImageSpec spec_;
};

class OpenClipScorer : public ClipScorerModel {
 public:
  OpenClipScorer(const OpenClipConfig& config, ClipImageSpec spec) : model_(config), spec_(spec) {}
  at::Tensor image_features(const at::Tensor& pixel_values) override {
    auto o = weight_options(*model_);
    return model_->encode_image(pixel_values.to(o.device(), o.dtype().toScalarType()));
  }
  at::Tensor text_features(const at::Tensor& input_ids, const at::Tensor&) override {
    check_token_ids(input_ids, model_->config().text_cfg.vocab_size, "open_clip text_cfg");
    return model_->encode_text(input_ids.to(weight_options(*model_).device()));
  }
  ClipImageSpec image_spec() const override { return spec_; }
  int64_t context_length() const override { return model_->config().text_cfg.context_length; }
  std::string layout() const override { return "open_clip"; }
  torch::nn::Module& module() override { return *model_; }

 private:
  OpenClipModel model_;
  ClipImageSpec spec_;
};

}  // namespace

std::unique_ptr<ClipScorerModel> load_clip_scorer(const fs::path& given, const at::TensorOptions& target) {
  const fs::path dir = resolve_demo_alias(given, "clip");  // "demo": the bundled demo scorer
  if (!fs::is_directory(dir)) throw InputError("not a directory (expected a CLIP model folder)", dir.string());

  if (fs::exists(dir / "open_clip_config.json") && fs::exists(dir / "open_clip_model.safetensors")) {
    const auto file = JsonConfig::load(dir / "open_clip_config.json");
    const auto config = OpenClipConfig::from_json(file);
    const ParameterTarget made_on(target);  // no initialisation pass: the weights are read next
    auto scorer = std::make_unique<OpenClipScorer>(
        config, open_clip_image_spec(file, static_cast<int>(config.vision_cfg.image_size)));
    load_weights(scorer->module(), dir / "open_clip_model.safetensors");
    scorer->module().eval();
    return scorer;
  }

  fs::path weights_file;
  for (const char* name : {"model.safetensors", "model.safetensors.index.json"})
    if (fs::exists(dir / name)) weights_file = dir / name;
  if (fs::exists(dir / "config.json") && !weights_file.empty()) {
    const auto config = ClipConfig::from_json(JsonConfig::load(dir / "config.json"));
    const ParameterTarget made_on(target);
    auto scorer = std::make_unique<TransformersClipScorer>(
        config, transformers_image_spec(dir, static_cast<int>(config.vision_config.image_size)));
    LoadOptions options;  // older transformers also saved the position_ids buffers
    options.ignore_unexpected = {"text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"};
    load_weights(scorer->module(), weights_file, options);
    scorer->module().eval();
    return scorer;
  }

  if (fs::exists(dir / "open_clip_pytorch_model.bin"))
    throw InputError(
        "only a pickle checkpoint (open_clip_pytorch_model.bin) is here, and diffbench never unpickles weights. "
        "Download open_clip_model.safetensors from the hub repo if it has one, or convert once in Python: "
        "import open_clip, safetensors.torch; m = open_clip.create_model_and_transforms('local-dir:DIR')[0]; "
        "safetensors.torch.save_file(m.state_dict(), 'DIR/open_clip_model.safetensors')",
        dir.string());
  if (fs::exists(dir / "pytorch_model.bin") || fs::exists(dir / "pytorch_model.bin.index.json"))
    throw InputError(
        "only a pickle checkpoint (pytorch_model.bin) is here, and diffbench never unpickles weights. "
        "Download model.safetensors from the hub repo, or convert once in Python: "
        "import transformers; transformers.CLIPModel.from_pretrained('DIR').save_pretrained('DIR') "
        "(save_pretrained writes model.safetensors)",
        dir.string());
  throw InputError(
      "not a CLIP model folder: expected open_clip_config.json + open_clip_model.safetensors (open_clip) or "
      "config.json + model.safetensors (transformers CLIPModel)",
      dir.string());
}

}  // namespace diffbench
