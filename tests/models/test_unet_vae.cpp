// UNet2DConditionModel and AutoencoderKL against the tiny-sd fixtures (diffusers, float32, CPU),
// plus an optional live comparison with diffusers on other configs (DIFFBENCH_PYREF=python).
#include <cstdlib>
#include <fstream>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/unet.hpp"
#include "diffbench/models/vae.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> sorted_keys(const StateDict& sd) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : sd) keys.push_back(k);
  return keys;  // std::map: already sorted
}

// Names in `a` but not in `b`, for a readable failure.
std::vector<std::string> minus(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 10; ++i) s += (i ? ", " : "") + v[i];
  return s;
}

void expect_same_names(const torch::nn::Module& module, const StateDict& weights) {
  const auto model = state_names(module);
  const auto ckpt = sorted_keys(weights);
  EXPECT_EQ(model.size(), ckpt.size());
  EXPECT_TRUE(minus(model, ckpt).empty()) << "only in the model: " << joined(minus(model, ckpt));
  EXPECT_TRUE(minus(ckpt, model).empty()) << "only in the checkpoint: " << joined(minus(ckpt, model));
}

JsonConfig with_changes(const JsonConfig& base, const nlohmann::json& changes, const std::string& source) {
  nlohmann::json j = base.raw();
  for (const auto& [k, v] : changes.items()) j[k] = v;
  return JsonConfig(j, source);
}

fs::path unet_dir() { return test::fixture("tiny-sd/unet"); }
fs::path vae_dir() { return test::fixture("tiny-sd/vae"); }
fs::path reference() { return test::fixture("tiny-sd-reference.safetensors"); }

UNet2DConditionModel load_unet(const fs::path& dir) {
  UNet2DConditionModel unet(UNetConfig::from_json(JsonConfig::load(dir / "config.json")));
  const auto weights_path = dir / "diffusion_pytorch_model.safetensors";
  load_into(*unet, load_safetensors(weights_path), weights_path.string());
  unet->eval();
  return unet;
}

AutoencoderKL load_vae(const fs::path& dir) {
  AutoencoderKL vae(VaeConfig::from_json(JsonConfig::load(dir / "config.json")));
  const auto weights_path = dir / "diffusion_pytorch_model.safetensors";
  load_into(*vae, load_safetensors(weights_path), weights_path.string());
  vae->eval();
  return vae;
}

}  // namespace

TEST(UNet, ParameterNamesEqualCheckpointKeys) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  UNet2DConditionModel unet(UNetConfig::from_json(JsonConfig::load(unet_dir() / "config.json")));
  expect_same_names(*unet, load_safetensors(unet_dir() / "diffusion_pytorch_model.safetensors"));
}

TEST(Vae, ParameterNamesEqualCheckpointKeys) {
  DIFFBENCH_REQUIRE_FIXTURE(vae_dir());
  AutoencoderKL vae(VaeConfig::from_json(JsonConfig::load(vae_dir() / "config.json")));
  expect_same_names(*vae, load_safetensors(vae_dir() / "diffusion_pytorch_model.safetensors"));
}

TEST(UNet, ConfigReadsTinySd) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  const auto c = UNetConfig::from_json(JsonConfig::load(unet_dir() / "config.json"));
  EXPECT_EQ(c.sample_size, 16);
  EXPECT_EQ(c.block_out_channels, std::vector<int64_t>({32, 64, 64, 64}));
  EXPECT_EQ(c.num_attention_heads, std::vector<int64_t>({2, 2, 2, 2}));  // from attention_head_dim
  EXPECT_EQ(c.cross_attention_dim, std::vector<int64_t>({32, 32, 32, 32}));
  EXPECT_EQ(c.time_embed_dim(), 128);
  const auto v = VaeConfig::from_json(JsonConfig::load(vae_dir() / "config.json"));
  EXPECT_EQ(v.scale_factor(), 8);
  EXPECT_DOUBLE_EQ(v.scaling_factor, 0.18215);
  EXPECT_FALSE(v.shift_factor.has_value());
}

TEST(UNet, MatchesDiffusersOnTinySd) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  DIFFBENCH_REQUIRE_FIXTURE(reference());
  c10::InferenceMode guard;
  auto unet = load_unet(unet_dir());
  auto ref = load_safetensors(reference());
  // PNDM: init_noise_sigma 1 and scale_model_input is the identity, so the first UNet input is the noise.
  const at::Tensor noise = ref.at("init_noise.seed42.shape_4x4x16x16");
  const at::Tensor expected = ref.at("unet.call.t981.out");
  at::Tensor out = unet(noise, torch::tensor(981, torch::kLong), ref.at("prompt.embeds"));
  std::cout << "unet.call.t981.out max abs diff: " << test::max_abs_diff(out, expected) << "\n";
  EXPECT_TENSOR_NEAR(out, expected, 1e-4);
  // A per-sample timestep vector gives the same result.
  at::Tensor out_vec = unet(noise, torch::full({4}, 981, torch::kLong), ref.at("prompt.embeds"));
  EXPECT_TENSOR_NEAR(out_vec, out, 0.0);
}

TEST(Vae, DecodeMatchesDiffusersOnTinySd) {
  DIFFBENCH_REQUIRE_FIXTURE(vae_dir());
  DIFFBENCH_REQUIRE_FIXTURE(reference());
  c10::InferenceMode guard;
  auto vae = load_vae(vae_dir());
  auto ref = load_safetensors(reference());
  const at::Tensor z = ref.at("init_noise.seed42.shape_4x4x16x16") / vae->config().scaling_factor;
  const at::Tensor expected = ref.at("vae.decode.out");
  at::Tensor out = vae->decode(z);
  std::cout << "vae.decode.out max abs diff: " << test::max_abs_diff(out, expected) << "\n";
  EXPECT_TENSOR_NEAR(out, expected, 1e-4);
}

TEST(Vae, EncodeShapes) {
  DIFFBENCH_REQUIRE_FIXTURE(vae_dir());
  c10::InferenceMode guard;
  auto vae = load_vae(vae_dir());
  auto [mean, logvar] = vae->encode(torch::rand({2, 3, 40, 24}) * 2 - 1);
  EXPECT_EQ(mean.sizes(), torch::IntArrayRef({2, 4, 5, 3}));
  EXPECT_EQ(logvar.sizes(), torch::IntArrayRef({2, 4, 5, 3}));
  EXPECT_TRUE(torch::isfinite(mean).all().item<bool>());
  EXPECT_LE(logvar.max().item<double>(), 20.0);
}

// Reduced precision: every op must accept the module's dtype (the timestep embedding is cast to
// it, as diffusers does). bfloat16 runs on the CPU; CUDA float16 takes the same code path.
TEST(UNet, RunsInBfloat16CloseToFloat32) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  DIFFBENCH_REQUIRE_FIXTURE(reference());
  c10::InferenceMode guard;
  auto unet = load_unet(unet_dir());
  auto ref = load_safetensors(reference());
  const at::Tensor noise = ref.at("init_noise.seed42.shape_4x4x16x16");
  unet->to(torch::kBFloat16);
  at::Tensor out = unet(noise.to(torch::kBFloat16), torch::tensor(981, torch::kLong),
                        ref.at("prompt.embeds").to(torch::kBFloat16));
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  const double diff = test::max_abs_diff(out, ref.at("unet.call.t981.out"));
  std::cout << "bfloat16 UNet vs float32 reference max abs diff: " << diff << "\n";
  EXPECT_LT(diff, 0.1);

  auto vae = load_vae(vae_dir());
  vae->to(torch::kBFloat16);
  at::Tensor image = vae->decode((noise / vae->config().scaling_factor).to(torch::kBFloat16));
  EXPECT_EQ(image.scalar_type(), torch::kBFloat16);
  EXPECT_LT(test::max_abs_diff(image, ref.at("vae.decode.out")), 0.1);
}

// Linear projections, per-block head counts, two transformer layers and an odd, non-square
// latent: the upsamplers must be given the skips' sizes.
TEST(UNet, RunsOtherConfigOnOddNonSquareLatent) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  c10::InferenceMode guard;
  const auto base = JsonConfig::load(unet_dir() / "config.json");
  const auto config = UNetConfig::from_json(with_changes(
      base,
      {{"use_linear_projection", true}, {"attention_head_dim", {1, 2, 4, 4}}, {"transformer_layers_per_block", 2}},
      "modified-config.json"));
  EXPECT_EQ(config.num_attention_heads, std::vector<int64_t>({1, 2, 4, 4}));
  torch::manual_seed(0);
  UNet2DConditionModel unet(config);
  unet->eval();
  at::Tensor out = unet(torch::randn({2, 4, 9, 13}), torch::tensor(500.0), torch::randn({2, 77, 32}));
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({2, 4, 9, 13}));
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
}

TEST(UNet, UnknownBlockTypeIsModelErrorNamingIt) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  const auto base = JsonConfig::load(unet_dir() / "config.json");
  const auto bad = with_changes(
      base, {{"down_block_types", {"CrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                   "DownBlock2D"}}},
      "bad/unet/config.json");
  try {
    UNetConfig::from_json(bad);
    ADD_FAILURE() << "no error";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("SimpleCrossAttnDownBlock2D"), std::string::npos) << e.what();
    EXPECT_EQ(e.where(), "bad/unet/config.json");
  }
  EXPECT_THROW(UNetConfig::from_json(with_changes(base, {{"mid_block_type", "UNetMidBlock2DSimpleCrossAttn"}}, "x")),
               ModelError);
}

TEST(UNet, UnsupportedFeaturesAreModelErrors) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  const auto base = JsonConfig::load(unet_dir() / "config.json");
  const std::vector<nlohmann::json> cases = {
      {{"class_embed_type", "timestep"}}, {{"addition_embed_type", "text_time"}}, {{"time_cond_proj_dim", 256}},
      {{"only_cross_attention", true}},   {{"resnet_time_scale_shift", "scale_shift"}},
      {{"act_fn", "gelu"}}};
  for (const auto& change : cases) {
    try {
      UNetConfig::from_json(with_changes(base, change, "f.json"));
      ADD_FAILURE() << change.dump() << ": no error";
    } catch (const ModelError& e) {
      EXPECT_NE(std::string(e.what()).find(change.begin().key()), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(UNetConfig::from_json(with_changes(base, {{"attention_head_dim", {2, 2}}}, "f.json")), ModelError);
}

TEST(UNet, WrongTensorShapeIsModelErrorNamingTensor) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  UNet2DConditionModel unet(UNetConfig::from_json(JsonConfig::load(unet_dir() / "config.json")));
  auto weights = load_safetensors(unet_dir() / "diffusion_pytorch_model.safetensors");
  const std::string name = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight";
  ASSERT_TRUE(weights.count(name));
  weights[name] = torch::zeros({64, 33});
  try {
    load_into(*unet, weights, "unet.safetensors");
    ADD_FAILURE() << "no error";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    EXPECT_EQ(e.where(), "unet.safetensors");
  }
}

// ---- live comparison with diffusers (optional) ----
// DIFFBENCH_PYREF names a Python with torch, diffusers and safetensors. The script builds random
// models with configs the fixtures do not cover, saves them with save_pretrained, and records
// inputs and outputs; nothing it writes is kept.

namespace {

const char* kLiveScript = R"PY(
import json, sys, torch
from diffusers import UNet2DConditionModel, AutoencoderKL
from safetensors.torch import save_file
out = sys.argv[1]
torch.manual_seed(0)

def perturb(m):
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()

unet = perturb(UNet2DConditionModel(
    sample_size=16, in_channels=4, out_channels=4, flip_sin_to_cos=False, freq_shift=1,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(32, 48, 64, 64), layers_per_block=(1, 2, 1, 2), norm_num_groups=16,
    cross_attention_dim=24, attention_head_dim=(1, 2, 4, 4), transformer_layers_per_block=(1, 2, 1, 1),
    use_linear_projection=True, mid_block_scale_factor=1.5, resnet_out_scale_factor=1.25,
    conv_in_kernel=5, conv_out_kernel=1))
unet.save_pretrained(out + "/unet")
sample, t, ctx = torch.randn(2, 4, 9, 13), torch.tensor([999, 37]), torch.randn(2, 77, 24)
with torch.no_grad():
    unet_out = unet(sample, t, ctx).sample

vae = perturb(AutoencoderKL(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 32),
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    layers_per_block=2, norm_num_groups=8, use_quant_conv=True, use_post_quant_conv=False))
vae.save_pretrained(out + "/vae")
image, z = torch.rand(1, 3, 24, 40) * 2 - 1, torch.randn(1, 4, 5, 7)
with torch.no_grad():
    dist = vae.encode(image).latent_dist
    decoded = vae.decode(z).sample
save_file({"unet.sample": sample, "unet.t": t, "unet.ctx": ctx, "unet.out": unet_out,
           "vae.image": image, "vae.mean": dist.mean.contiguous(), "vae.logvar": dist.logvar.contiguous(),
           "vae.z": z, "vae.decoded": decoded}, out + "/io.safetensors")
)PY";

}  // namespace

TEST(LiveReference, OtherConfigsMatchDiffusers) {
  const char* python = std::getenv("DIFFBENCH_PYREF");
  if (!python || !*python) GTEST_SKIP() << "DIFFBENCH_PYREF unset (a Python with torch and diffusers)";
  const auto dir = test::temp_dir("unet-live");
  std::ofstream(dir / "make_reference.py") << kLiveScript;
  const std::string cmd = "\"" + std::string(python) + "\" \"" + (dir / "make_reference.py").string() + "\" \"" +
                          dir.string() + "\" > \"" + (dir / "log.txt").string() + "\" 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "reference script failed; see " << (dir / "log.txt").string();

  c10::InferenceMode guard;
  auto io = load_safetensors(dir / "io.safetensors");
  auto unet = load_unet(dir / "unet");
  EXPECT_TRUE(unet->needs_upsample_size(io.at("unet.sample")));
  at::Tensor out = unet(io.at("unet.sample"), io.at("unet.t"), io.at("unet.ctx"));
  std::cout << "live UNet (linear proj, list heads, 9x13) max abs diff: " << test::max_abs_diff(out, io.at("unet.out"))
            << "\n";
  EXPECT_TENSOR_NEAR(out, io.at("unet.out"), 1e-4);

  auto vae = load_vae(dir / "vae");
  auto [mean, logvar] = vae->encode(io.at("vae.image"));
  at::Tensor decoded = vae->decode(io.at("vae.z"));
  std::cout << "live VAE max abs diff: mean " << test::max_abs_diff(mean, io.at("vae.mean")) << ", logvar "
            << test::max_abs_diff(logvar, io.at("vae.logvar")) << ", decode "
            << test::max_abs_diff(decoded, io.at("vae.decoded")) << "\n";
  EXPECT_TENSOR_NEAR(mean, io.at("vae.mean"), 1e-4);
  EXPECT_TENSOR_NEAR(logvar, io.at("vae.logvar"), 1e-4);
  EXPECT_TENSOR_NEAR(decoded, io.at("vae.decoded"), 1e-4);
  fs::remove_all(dir);
}
