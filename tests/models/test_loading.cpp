// Models made for loading: parameters allocated once, in the target dtype, and never written before
// the load (no initialisation pass: a full-size UNet's 3.4 GB stay untouched), values equal to the
// file bit for bit after load_weights.
#include <unistd.h>

#include <fstream>
#include <map>
#include <string>

#include <torch/torch.h>

#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/blocks/attention.hpp"
#include "diffbench/models/blocks/layers.hpp"
#include "diffbench/models/clip_text.hpp"
#include "diffbench/models/unet.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

// Resident memory of this process, in bytes (/proc/self/statm).
int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

// diffusers' UNet2DConditionModel config of Stable Diffusion 1.5 (859.5 M parameters).
JsonConfig sd15_unet_config() {
  const nlohmann::json j = {
      {"attention_head_dim", 8}, {"block_out_channels", {320, 640, 1280, 1280}}, {"cross_attention_dim", 768},
      {"down_block_types", {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}},
      {"up_block_types", {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"}},
      {"in_channels", 4}, {"out_channels", 4}, {"layers_per_block", 2}, {"norm_num_groups", 32}, {"sample_size", 64}};
  return JsonConfig(j, "sd15 unet config");
}

// A small attention layer: self-attention (cross = 0) or cross-attention to a context of `cross` channels.
Attention small_attention(int64_t cross) {
  AttentionOptions o;
  o.query_dim = 32;
  o.cross_attention_dim = cross;
  o.heads = 2;
  o.dim_head = 16;
  return Attention(o);
}

int64_t parameter_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace

TEST(Loading, MadeUnderATargetInTheTargetDtype) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/unet/config.json"));
  const auto config = UNetConfig::from_json(JsonConfig::load(test::fixture("tiny-sd/unet/config.json")));
  UNet2DConditionModel initialised(config);
  UNet2DConditionModel made{nullptr};
  {
    ParameterTarget target(at::TensorOptions().dtype(at::kHalf));
    made = UNet2DConditionModel(config);
  }
  EXPECT_FALSE(ParameterTarget::current().has_value());
  // Same parameters, by name and shape, each in the target dtype in storage of exactly its size (or,
  // for the attention projections that share one weight, of exactly the sizes of those sharing it).
  const auto a = initialised->named_parameters(), b = made->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  std::map<const void*, std::pair<size_t, size_t>> storages;  // bytes used by parameters, storage bytes
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].key(), b[i].key());
    EXPECT_EQ(a[i].value().sizes(), b[i].value().sizes()) << b[i].key();
    EXPECT_EQ(b[i].value().scalar_type(), at::kHalf) << b[i].key();
    auto& [used, total] = storages[b[i].value().storage().data()];
    used += static_cast<size_t>(b[i].value().numel()) * 2;
    total = b[i].value().storage().nbytes();
  }
  for (const auto& [data, sizes] : storages) EXPECT_EQ(sizes.first, sizes.second);
  EXPECT_LT(storages.size(), b.size());  // the shared projection weights
}

// Self-attention's q, k, v (and cross-attention's k, v) share one weight, so that one GEMM computes
// them; the outputs equal those of separate projections (a module moved to another dtype and back
// has separate weights again and runs them one by one).
TEST(Loading, FusedAttentionProjectionsEqualSeparateOnes) {
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;  // with gradients the projections run one by one
  for (int64_t cross : {int64_t{0}, int64_t{24}}) {
    Attention attn = small_attention(cross);
    const auto params = attn->named_parameters();
    ASSERT_TRUE(params["to_k.weight"].is_alias_of(params["to_v.weight"]));
    EXPECT_EQ(params["to_q.weight"].is_alias_of(params["to_k.weight"]), cross == 0);
    const at::Tensor x = at::randn({2, 10, 32});
    const at::Tensor context = cross ? at::randn({2, 7, cross}) : at::Tensor();
    const at::Tensor fused = attn(x, context);
    attn->to(at::kDouble);
    attn->to(at::kFloat);
    ASSERT_FALSE(attn->named_parameters()["to_k.weight"].is_alias_of(attn->named_parameters()["to_v.weight"]));
    const at::Tensor separate = attn(x, context);
    EXPECT_TRUE(at::allclose(fused, separate, 1e-5, 1e-6)) << "cross_attention_dim " << cross;
  }
}

// The transformer block's attentions can leave to_out's bias to the add + LayerNorm that follows
// (Attention::forward_without_out_bias): adding out_bias() gives forward's output, for self- and
// cross-attention; an input it does not take is refused.
TEST(Attention, WithoutOutBiasPlusOutBiasIsForward) {
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  for (int64_t cross : {int64_t{0}, int64_t{24}}) {
    Attention attn = small_attention(cross);
    ASSERT_TRUE(attn->out_bias().defined());
    attn->out_bias().uniform_(-1.0, 1.0);
    const at::Tensor x = at::randn({2, 10, 32});
    CrossAttentionContext context;
    if (cross) context.states = at::randn({2, 7, cross});
    const at::Tensor full = attn(x, context);
    const at::Tensor without = attn->forward_without_out_bias(x, context);
    EXPECT_GT(test::max_abs_diff(without, full), 0.1) << "cross_attention_dim " << cross;
    EXPECT_TENSOR_NEAR(without + attn->out_bias(), full, 1e-6);
    EXPECT_THROW(attn->forward_without_out_bias(x.view({2, 32, 10, 1}), context), c10::Error);
  }
}

TEST(Loading, FullSizeUnetIsAllocatedButNeverWritten) {
  const auto config = UNetConfig::from_json(sd15_unet_config());
  const int64_t rss = resident_bytes();
  UNet2DConditionModel unet{nullptr};
  {
    ParameterTarget target(at::TensorOptions().dtype(at::kFloat));
    unet = UNet2DConditionModel(config);
  }
  EXPECT_EQ(parameter_count(*unet), 859520964);
  // 3.4 GB of float32 parameters; an initialisation pass would have made all of it resident.
  EXPECT_LT(resident_bytes() - rss, int64_t{256} << 20);
}

TEST(Loading, LoadedValuesEqualTheFileInEveryDtype) {
  const fs::path dir = test::fixture("tiny-sd/text_encoder");
  DIFFBENCH_REQUIRE_FIXTURE(dir / "model.safetensors");
  const auto config = ClipTextConfig::from_json(JsonConfig::load(dir / "config.json"));
  const auto file = SafetensorsFile::open(dir / "model.safetensors");
  for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
    ClipTextModel model{nullptr};
    {
      ParameterTarget target(at::TensorOptions().dtype(dtype));
      model = ClipTextModel(config);
    }
    LoadOptions lo;
    lo.ignore_unexpected = {"embeddings.position_ids"};
    lo.chunk_bytes = 1 << 16;
    load_weights(*model, dir / "model.safetensors", lo);
    for (const auto& p : model->named_parameters()) {
      const at::Tensor want = file->get(p.key()).to(dtype);
      const auto bits = dtype == at::kFloat ? at::kInt : at::kShort;
      EXPECT_TRUE(at::equal(p.value().view(bits), want.view(bits))) << p.key() << " as " << c10::toString(dtype);
    }
  }
}
