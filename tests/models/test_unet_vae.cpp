// UNet2DConditionModel and AutoencoderKL against the tiny-sd fixtures (diffusers, float32, CPU),
// plus committed diffusers references for configurations the fixture does not cover (tests/models/data).
// Tolerances: 1e-4 for one float32 module call against diffusers (../shared/README.md; holds on any
// CPU since nothing accumulates over steps); 0 where two code paths of ours must agree exactly.
#include <cstdlib>
#include <fstream>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/blocks/layers.hpp"
#include "diffbench/models/blocks/norm.hpp"
#include "diffbench/models/blocks/sampling.hpp"
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

// As the pipeline loads them: made without initialisation, then read from the file.
UNet2DConditionModel load_unet(const fs::path& dir) {
  const auto config = UNetConfig::from_json(JsonConfig::load(dir / "config.json"));
  UNet2DConditionModel unet = [&] {
    ParameterTarget target(at::TensorOptions(at::kFloat));
    return UNet2DConditionModel(config);
  }();
  load_weights(*unet, dir / "diffusion_pytorch_model.safetensors");
  unet->eval();
  return unet;
}

// The reference UNet call of tiny-sd-reference: the initial noise and the prompt's embeddings at t = 981.
struct ReferenceCall {
  at::Tensor noise, context, t, expected;
};
ReferenceCall reference_call() {
  auto ref = load_safetensors(reference());
  return {ref.at("init_noise.seed42.shape_4x4x16x16"), ref.at("prompt.embeds"), torch::tensor(981, torch::kLong),
          ref.at("unet.call.t981.out")};
}

AutoencoderKL load_vae(const fs::path& dir) {
  const auto config = VaeConfig::from_json(JsonConfig::load(dir / "config.json"));
  AutoencoderKL vae = [&] {
    ParameterTarget target(at::TensorOptions(at::kFloat));
    return AutoencoderKL(config);
  }();
  load_weights(*vae, dir / "diffusion_pytorch_model.safetensors");
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

// Every ResNet block's time_emb_proj is a row block of one weight, so the UNet projects the time
// embedding for all of them in one GEMM and each block reads its columns. Those columns equal each
// block's own projection, for a UNet loaded as the pipeline loads it (the blocks filled through the
// layers) and for one made with LibTorch's initialisation (the layers' values concatenated); the
// output is the same with the fusion off (DIFFBENCH_FUSED_TEMB=0); a UNet whose weights have left
// the fused tensor projects block by block and still matches diffusers.
TEST(UNet, TimeProjectionsOfAllBlocksAreOneGemm) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  DIFFBENCH_REQUIRE_FIXTURE(reference());
  c10::InferenceMode guard;
  const auto [noise, context, t, expected] = reference_call();
  for (bool loaded : {true, false}) {
    SCOPED_TRACE(loaded ? "loaded" : "initialised by LibTorch");
    auto unet = loaded ? load_unet(unet_dir())
                       : UNet2DConditionModel(UNetConfig::from_json(JsonConfig::load(unet_dir() / "config.json")));
    const at::Tensor emb = unet->forward_time_embedding(t, noise);
    const TimeEmbedding projected = unet->project_time_embedding(emb);
    ASSERT_TRUE(projected.projected.defined());
    int64_t column = 0;
    for (const auto& r : unet->resnet_blocks()) {
      const at::Tensor own = at::linear(at::silu(emb), r->time_projection()->weight, r->time_projection()->bias);
      EXPECT_TENSOR_NEAR(projected.projected.narrow(1, column, r->out_channels()), own, 1e-6);
      column += r->out_channels();
    }
    EXPECT_EQ(column, projected.projected.size(1));
    EXPECT_EQ(unet->resnet_blocks().size(), 22u);  // tiny-sd: 4 down blocks of 2, the mid block's 2, 4 up blocks of 3
    const at::Tensor fused = unet(noise, t, context);
    {
      test::ScopedEnv off("DIFFBENCH_FUSED_TEMB", "0");
      EXPECT_FALSE(unet->project_time_embedding(emb).projected.defined());
      EXPECT_TENSOR_NEAR(unet(noise, t, context), fused, 1e-5);
    }
    if (!loaded) continue;
    EXPECT_TENSOR_NEAR(fused, expected, 1e-4);
    // A layer given a tensor of its own (as a module moved to another device or dtype gets) has left
    // the fused weight: every block projects for itself again.
    auto layer = unet->resnet_blocks().back()->time_projection();
    layer->weight.set_data(layer->weight.clone());
    EXPECT_FALSE(unet->project_time_embedding(emb).projected.defined());
    EXPECT_TENSOR_NEAR(unet(noise, t, context), expected, 1e-4);
  }
}

// Every cross-attention layer's keys and values come from one GEMM over the text context: each layer's
// columns equal its own to_k / to_v projections, for a loaded UNet and one made with LibTorch's
// initialisation; the output is the same with the fusion off (DIFFBENCH_FUSED_CROSS_KV=0 when the UNet is
// made); a layer that has left the fused tensor makes every layer project for itself again.
TEST(UNet, CrossAttentionKeysAndValuesOfAllLayersAreOneGemm) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  DIFFBENCH_REQUIRE_FIXTURE(reference());
  c10::InferenceMode guard;
  const auto [noise, context, t, expected] = reference_call();
  const auto config = UNetConfig::from_json(JsonConfig::load(unet_dir() / "config.json"));
  for (bool loaded : {true, false}) {
    SCOPED_TRACE(loaded ? "loaded" : "initialised by LibTorch");
    auto unet = loaded ? load_unet(unet_dir()) : UNet2DConditionModel(config);
    const CrossAttentionContext projected = unet->project_context(context);
    ASSERT_TRUE(projected.kv.defined());
    int64_t column = 0;
    for (const auto& a : unet->cross_attentions()) {
      for (const auto& layer : a->key_value_layers()) {
        const int64_t n = layer->weight.size(0);
        EXPECT_TENSOR_NEAR(projected.kv.narrow(-1, column, n), at::linear(context, layer->weight), 1e-6);
        column += n;
      }
    }
    EXPECT_EQ(column, projected.kv.size(-1));
    EXPECT_EQ(unet->cross_attentions().size(), 16u);  // tiny-sd: 3 cross-attention down blocks of 2, mid 1, 3 up of 3
    if (!loaded) continue;
    const at::Tensor fused = unet(noise, t, context);
    EXPECT_TENSOR_NEAR(fused, expected, 1e-4);
    {
      test::ScopedEnv off("DIFFBENCH_FUSED_CROSS_KV", "0");
      auto own = load_unet(unet_dir());
      EXPECT_FALSE(own->project_context(context).kv.defined());
      EXPECT_TENSOR_NEAR(own(noise, t, context), fused, 1e-5);
    }
    auto layer = unet->cross_attentions().back()->key_value_layers()[1];
    layer->weight.set_data(layer->weight.clone());
    EXPECT_FALSE(unet->project_context(context).kv.defined());
    EXPECT_TENSOR_NEAR(unet(noise, t, context), expected, 1e-4);
  }
}

// The sub-pixel upsampler (the default) against the plain one (DIFFBENCH_SUBPIXEL_UPSAMPLE=0 when made: nearest
// doubling, then the 3x3 conv) with the same weights: in double to rounding, in float within 1e-5, in
// bfloat16 (and CUDA half, channels-last, where there is a GPU) as close to float32 as the plain path; for
// contiguous and channels-last inputs, odd non-square sizes, an explicit doubled output size, and after the
// weights change (in place, and as another tensor).
// A size other than twice the input goes the plain way. The UNet and the VAE with it match diffusers.
TEST(Upsample2D, SubpixelConvolutionEqualsNearestThenConv) {
  torch::manual_seed(0);
  Upsample2D plain = [] {
    test::ScopedEnv off("DIFFBENCH_SUBPIXEL_UPSAMPLE", "0");
    return Upsample2D(6, 5);
  }();
  Upsample2D subpixel = [] {
    test::ScopedEnv on("DIFFBENCH_SUBPIXEL_UPSAMPLE", "1");
    return Upsample2D(6, 5);
  }();
  ASSERT_FALSE(plain->subpixel());
  ASSERT_TRUE(subpixel->subpixel());
  torch::NoGradGuard no_grad;
  const auto copy_weights = [&] {
    subpixel->named_parameters()["conv.weight"].copy_(plain->named_parameters()["conv.weight"]);
    subpixel->named_parameters()["conv.bias"].copy_(plain->named_parameters()["conv.bias"]);
  };
  copy_weights();
  for (const auto dtype : {torch::kDouble, torch::kFloat}) {
    plain->to(dtype);
    subpixel->to(dtype);
    const double tolerance = dtype == torch::kDouble ? 1e-12 : 1e-5;
    for (const auto& shape : {std::vector<int64_t>{2, 6, 5, 7}, std::vector<int64_t>{1, 6, 1, 1},
                              std::vector<int64_t>{3, 6, 8, 8}}) {
      for (bool channels_last : {false, true}) {
        SCOPED_TRACE(std::string(c10::toString(dtype)) + " " + c10::str(at::IntArrayRef(shape)) +
                     (channels_last ? " channels-last" : " contiguous"));
        at::Tensor x = torch::randn(shape, torch::TensorOptions().dtype(dtype));
        if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
        const at::Tensor expected = plain(x);
        const at::Tensor out = subpixel(x);
        ASSERT_EQ(out.sizes(), expected.sizes());
        EXPECT_TENSOR_NEAR(out, expected, tolerance);
        EXPECT_EQ(out.is_contiguous(at::MemoryFormat::ChannelsLast) && !out.is_contiguous(), channels_last &&
                  shape[1] > 1 && shape[2] * shape[3] > 1);
        EXPECT_TENSOR_NEAR(subpixel(x, std::vector<int64_t>{2 * shape[2], 2 * shape[3]}), expected, tolerance);
        // Not a doubling: nearest to that size, then the conv, as diffusers does.
        const std::vector<int64_t> odd{2 * shape[2] + 1, 2 * shape[3] - 1};
        EXPECT_TENSOR_NEAR(subpixel(x, odd), plain(x, odd), 0.0);
      }
    }
  }
  // New weights, in place (a fused LoRA) and as other tensors (a dtype or device move), are picked up.
  const at::Tensor x = torch::randn({2, 6, 4, 3});
  plain->named_parameters()["conv.weight"].mul_(-0.5);
  subpixel->named_parameters()["conv.weight"].mul_(-0.5);
  EXPECT_TENSOR_NEAR(subpixel(x), plain(x), 1e-5);
  plain->named_parameters()["conv.bias"].add_(1.0);
  subpixel->named_parameters()["conv.bias"].set_data(subpixel->named_parameters()["conv.bias"] + 1.0);
  EXPECT_TENSOR_NEAR(subpixel(x), plain(x), 1e-5);
  // bfloat16: the four kernels' taps are summed exactly, then rounded once; as close to float32 as
  // the plain path is.
  const at::Tensor reference = plain(x);
  plain->to(torch::kBFloat16);
  subpixel->to(torch::kBFloat16);
  const double plain_error = test::max_abs_diff(plain(x.to(torch::kBFloat16)), reference);
  const double subpixel_error = test::max_abs_diff(subpixel(x.to(torch::kBFloat16)), reference);
  EXPECT_LT(subpixel_error, 2 * plain_error + 1e-2);
  // CUDA, half, channels-last (the fast path's layout): the same closeness to float32.
  if (!torch::cuda::is_available()) return;
  plain->to(torch::kCUDA, torch::kHalf);
  subpixel->to(torch::kCUDA, torch::kHalf);
  for (auto* m : {&plain, &subpixel})
    for (auto& p : (*m)->parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  const at::Tensor xh = x.to(torch::kCUDA, torch::kHalf).contiguous(at::MemoryFormat::ChannelsLast);
  const double plain_half = test::max_abs_diff(plain(xh).cpu().to(torch::kFloat), reference);
  const double subpixel_half = test::max_abs_diff(subpixel(xh).cpu().to(torch::kFloat), reference);
  EXPECT_LT(subpixel_half, 2 * plain_half + 2e-3);
}

// The interleaving pass as one kernel (CUDA, channels-last, the fast path's layout) against LibTorch's
// strided add of the bias (DIFFBENCH_SUBPIXEL_KERNEL=0): the same bits, in half, bfloat16 and float, for
// even, odd and one-pixel-high inputs.
TEST(Upsample2D, InterleaveKernelGivesLibTorchsBits) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!have_fused_group_norm()) GTEST_SKIP() << "built without the CUDA kernels";
  torch::manual_seed(5);
  torch::NoGradGuard no_grad;
  test::ScopedEnv on("DIFFBENCH_SUBPIXEL_UPSAMPLE", "1");
  for (const auto dtype : {torch::kHalf, torch::kBFloat16, torch::kFloat}) {
    Upsample2D up(64, 64);
    ASSERT_TRUE(up->subpixel());
    up->named_parameters()["conv.bias"].uniform_(-1.0, 1.0);
    up->to(torch::kCUDA, dtype);
    for (auto& p : up->parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
    for (const auto& shape : {std::vector<int64_t>{2, 64, 8, 8}, std::vector<int64_t>{1, 64, 5, 7},
                              std::vector<int64_t>{3, 64, 1, 4}}) {
      SCOPED_TRACE(std::string(c10::toString(dtype)) + " " + c10::str(at::IntArrayRef(shape)));
      const at::Tensor x =
          (torch::randn(shape) * 4).to(torch::kCUDA, dtype).contiguous(at::MemoryFormat::ChannelsLast);
      const at::Tensor fast = up(x);
      at::Tensor plain;
      {
        test::ScopedEnv off("DIFFBENCH_SUBPIXEL_KERNEL", "0");
        plain = up(x);
      }
      ASSERT_EQ(fast.sizes(), plain.sizes());
      EXPECT_TRUE(fast.is_contiguous(at::MemoryFormat::ChannelsLast));
      EXPECT_TRUE(at::equal(fast, plain)) << "largest difference " << test::max_abs_diff(fast, plain);
      EXPECT_GT(fast.abs().max().item<double>(), 0.1);  // it did compute something
    }
  }
}

TEST(Upsample2D, SubpixelUNetAndVaeMatchDiffusers) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  DIFFBENCH_REQUIRE_FIXTURE(reference());
  c10::InferenceMode guard;
  const auto [noise, context, t, expected] = reference_call();
  auto ref = load_safetensors(reference());
  for (const char* setting : {"1", "0"}) {  // the default, and the plain path
    SCOPED_TRACE(std::string("DIFFBENCH_SUBPIXEL_UPSAMPLE=") + setting);
    test::ScopedEnv env("DIFFBENCH_SUBPIXEL_UPSAMPLE", setting);
    auto unet = load_unet(unet_dir());
    auto vae = load_vae(vae_dir());
    int subpixel = 0, upsamplers = 0;
    for (const auto& m : unet->modules())
      if (auto* u = dynamic_cast<Upsample2DImpl*>(m.get())) ++upsamplers, subpixel += u->subpixel();
    EXPECT_EQ(upsamplers, 3);  // tiny-sd: the three upper up blocks'
    EXPECT_EQ(subpixel, setting[0] == '1' ? 3 : 0);
    EXPECT_TENSOR_NEAR(unet(noise, t, context), expected, 1e-4);
    EXPECT_TENSOR_NEAR(vae->decode(noise / vae->config().scaling_factor), ref.at("vae.decode.out"), 1e-4);
  }
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
  // bfloat16 keeps 8 significant bits (0.4 % per rounding); through the UNet's normalised layers the
  // output (values up to 2) ends 0.025 from float32's (measured, CPU): bound at twice that.
  EXPECT_LT(diff, 0.05);

  auto vae = load_vae(vae_dir());
  vae->to(torch::kBFloat16);
  at::Tensor image = vae->decode((noise / vae->config().scaling_factor).to(torch::kBFloat16));
  EXPECT_EQ(image.scalar_type(), torch::kBFloat16);
  const double vae_diff = test::max_abs_diff(image, ref.at("vae.decode.out"));
  std::cout << "bfloat16 VAE decode vs float32 reference max abs diff: " << vae_diff << "\n";
  // The same rounding through the decoder (outputs up to 3.2 on this random model): 0.033 measured,
  // bound at twice that.
  EXPECT_LT(vae_diff, 0.07);
}

// dtype "fp8": the transformers' GEMMs over the image's tokens in e4m3 (Fp8Matrix, linear.hpp), the rest in
// float32 here. Every tiny-sd transformer GEMM has e4m3-compatible sizes, so all of them change.
TEST(UNet, RunsWithFp8GemmsCloseToFloat32) {
  DIFFBENCH_REQUIRE_FIXTURE(unet_dir());
  DIFFBENCH_REQUIRE_FIXTURE(reference());
  c10::InferenceMode guard;
  auto unet = load_unet(unet_dir());
  const ReferenceCall call = reference_call();
  unet->use_fp8();
  const at::Tensor out = unet(call.noise, call.t, call.context);
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  const double diff = test::max_abs_diff(out, call.expected);
  std::cout << "fp8 GEMMs UNet vs float32 reference max abs diff: " << diff << "\n";
  EXPECT_GT(diff, 1e-3);  // the fp8 GEMMs ran
  // e4m3 keeps 4 significant bits (6 % per rounding), activations rounded at every GEMM: the output (values
  // up to 2) ends 0.15–0.17 from float32's (measured, CPU), six times bfloat16's distance: bound at about twice.
  EXPECT_LT(diff, 0.3);
  // the weights themselves stay as loaded (the e4m3 forms are copies beside them)
  const auto loaded = load_unet(unet_dir())->named_parameters();
  for (const auto& p : unet->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), loaded[p.key()])) << p.key();
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

// ---- configurations the shared fixture does not cover ----
// tests/models/data/other-configs (made by tools/refs/make_unet_vae_refs.py with diffusers): a random
// UNet with linear projections, per-block heads, transformer_layers_per_block and per-block
// layers_per_block, conv_in/conv_out kernels 5/1, mid and resnet scale factors, run on an odd 9x13
// latent; a VAE with quant_conv and no post_quant_conv, encoded and decoded. Tolerance: the fixture's
// 1e-4 for a single float32 call (../shared/README.md).
TEST(OtherConfigs, UNetAndVaeMatchDiffusers) {
  const fs::path dir = fs::path(DIFFBENCH_SOURCE_DIR) / "tests/models/data/other-configs";
  c10::InferenceMode guard;
  auto io = load_safetensors(dir / "io.safetensors");
  auto unet = load_unet(dir / "unet");
  EXPECT_TRUE(unet->needs_upsample_size(io.at("unet.sample")));
  at::Tensor out = unet(io.at("unet.sample"), io.at("unet.t"), io.at("unet.ctx"));
  std::cout << "UNet (linear proj, list heads, 9x13) max abs diff: " << test::max_abs_diff(out, io.at("unet.out"))
            << "\n";
  EXPECT_TENSOR_NEAR(out, io.at("unet.out"), 1e-4);

  auto vae = load_vae(dir / "vae");
  auto [mean, logvar] = vae->encode(io.at("vae.image"));
  at::Tensor decoded = vae->decode(io.at("vae.z"));
  std::cout << "VAE max abs diff: mean " << test::max_abs_diff(mean, io.at("vae.mean")) << ", logvar "
            << test::max_abs_diff(logvar, io.at("vae.logvar")) << ", decode "
            << test::max_abs_diff(decoded, io.at("vae.decoded")) << "\n";
  EXPECT_TENSOR_NEAR(mean, io.at("vae.mean"), 1e-4);
  EXPECT_TENSOR_NEAR(logvar, io.at("vae.logvar"), 1e-4);
  EXPECT_TENSOR_NEAR(decoded, io.at("vae.decoded"), 1e-4);
}
