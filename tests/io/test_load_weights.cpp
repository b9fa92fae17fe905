// load_weights: a safetensors file read chunk by chunk straight into a module's parameters, in
// their dtype (bit for bit what the file's values convert to), with names and shapes checked first.
#include <cmath>
#include <fstream>
#include <limits>

#include <torch/torch.h>

#include "diffbench/error.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

// A module with parameters of the given dtype and a buffer, registered under nested names.
struct ToyImpl : torch::nn::Module {
  ToyImpl(at::ScalarType dtype, int64_t n) {
    auto inner = register_module("inner", std::make_shared<torch::nn::Module>());
    w = inner->register_parameter("w", at::full({n, 3}, 7, dtype));
    b = register_parameter("b", at::full({5}, 7, dtype));
    s = register_parameter("s", at::full({}, 7, dtype));
    ids = register_buffer("ids", at::zeros({4}, at::kLong));
  }
  at::Tensor w, b, s, ids;
};
TORCH_MODULE(Toy);

// Random values in `dtype` plus the awkward ones: infinities, NaN, signed zero, values that round
// or overflow when narrowed to float16, subnormals of every width.
at::Tensor awkward(at::ScalarType dtype, int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor x = at::randn({n * 3}, gen, at::TensorOptions().dtype(at::kDouble)) * 1000.0;
  const double specials[] = {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                             std::nan(""), -0.0, 65504.0, 65520.0, 1e6, 3e-8, 1e-40, 1.0 + 1.0 / 4096, -5.960464477539063e-08};
  for (int64_t i = 0; i < static_cast<int64_t>(std::size(specials)) && i < x.numel(); ++i) x[i] = specials[i];
  return x.to(dtype).view({n, 3});
}

at::ScalarType same_width_int(at::ScalarType t) { return at::elementSize(t) == 4 ? at::kInt : at::kShort; }

// Bitwise equality (NaN payloads included).
void expect_bits_equal(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const auto it = same_width_int(got.scalar_type());
  EXPECT_TRUE(at::equal(got.contiguous().view(it), want.contiguous().view(it))) << what;
}

// The file: an odd-length byte tensor first ("a.pad"), so every later tensor starts at an odd offset.
StateDict toy_file(at::ScalarType dtype, int64_t n, uint64_t seed) {
  StateDict sd;
  sd["a.pad"] = at::arange(3, at::kByte);
  sd["inner.w"] = awkward(dtype, n, seed);
  sd["b"] = awkward(dtype, 2, seed + 1).flatten().narrow(0, 0, 5).contiguous();
  sd["s"] = awkward(dtype, 2, seed + 2).flatten()[4].clone();  // 65504: the largest float16
  sd["ids"] = at::arange(4, at::kLong) * 1000003;
  return sd;
}

}  // namespace

TEST(LoadWeights, EveryDtypeConversionIsBitExact) {
  const auto dir = test::temp_dir("load-weights-dtypes");
  const at::ScalarType types[] = {at::kFloat, at::kHalf, at::kBFloat16};
  uint64_t seed = 1;
  for (auto file_type : types) {
    const StateDict sd = toy_file(file_type, 37, seed++);
    const fs::path file = dir / "toy.safetensors";
    save_safetensors(file, sd);
    for (auto model_type : types) {
      Toy toy(model_type, 37);
      LoadOptions lo;
      lo.ignore_unexpected = {"a.pad"};
      lo.chunk_bytes = 40;  // tensors cut across reads, pieces at odd offsets
      lo.buffers = 3;
      load_weights(*toy, file, lo);
      const std::string what = std::string(c10::toString(file_type)) + " -> " + c10::toString(model_type);
      expect_bits_equal(toy->w, sd.at("inner.w").to(model_type), what + " inner.w");
      expect_bits_equal(toy->b, sd.at("b").to(model_type), what + " b");
      expect_bits_equal(toy->s, sd.at("s").to(model_type), what + " s");
      EXPECT_TRUE(at::equal(toy->ids, sd.at("ids"))) << what;
    }
  }
  fs::remove_all(dir);
}

TEST(LoadWeights, SameValuesForAnyChunkingAndLayout) {
  const auto dir = test::temp_dir("load-weights-chunks");
  const StateDict sd = toy_file(at::kFloat, 1000, 9);
  save_safetensors(dir / "toy.safetensors", sd);
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, size_t{64} << 20})
    for (int buffers : {1, 2, 4}) {
      Toy toy(at::kFloat, 1000);
      toy->w.set_data(at::full({3, 1000}, 7.0f).t());  // not contiguous: assembled, then copied in
      LoadOptions lo;
      lo.ignore_unexpected = {"a.pad"};
      lo.chunk_bytes = chunk;
      lo.buffers = buffers;
      EXPECT_EQ(load_weights(*toy, dir / "toy.safetensors", lo), 1000u * 3 * 4 + 5 * 4 + 4 + 4 * 8);
      expect_bits_equal(toy->w, sd.at("inner.w"), "chunk " + std::to_string(chunk));
      expect_bits_equal(toy->b, sd.at("b"), "chunk " + std::to_string(chunk));
    }
  fs::remove_all(dir);
}

TEST(LoadWeights, ShardedCheckpointAndPrefix) {
  const auto dir = test::temp_dir("load-weights-shards");
  const StateDict sd = toy_file(at::kHalf, 4, 3);
  save_safetensors(dir / "m-1.safetensors", {{"model.inner.w", sd.at("inner.w")}, {"model.ids", sd.at("ids")}});
  save_safetensors(dir / "m-2.safetensors", {{"model.b", sd.at("b")}, {"model.s", sd.at("s")}});
  std::ofstream(dir / "m.safetensors.index.json")
      << R"({"weight_map": {"model.inner.w": "m-1.safetensors", "model.ids": "m-1.safetensors",
             "model.b": "m-2.safetensors", "model.s": "m-2.safetensors"}})";
  Toy toy(at::kFloat, 4);
  LoadOptions lo;
  lo.strip_prefix = "model.";
  load_weights(*toy, dir / "m.safetensors.index.json", lo);
  expect_bits_equal(toy->w, sd.at("inner.w").to(at::kFloat), "sharded");
  expect_bits_equal(toy->s, sd.at("s").to(at::kFloat), "sharded");
  fs::remove_all(dir);
}

TEST(LoadWeights, DisagreementsAreReportedByNameAndNothingIsCopied) {
  const auto dir = test::temp_dir("load-weights-errors");
  StateDict sd = toy_file(at::kFloat, 4, 5);
  sd["b"] = at::ones({6});       // wrong shape
  sd.erase("s");                 // missing
  sd["extra.weight"] = at::ones({2});  // unexpected (and so is a.pad)
  save_safetensors(dir / "bad.safetensors", sd);
  Toy toy(at::kFloat, 4);
  try {
    load_weights(*toy, dir / "bad.safetensors");
    FAIL() << "expected a ModelError";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("b (checkpoint [6], model [5])"), std::string::npos) << e.what();
    EXPECT_NE(e.where().find("bad.safetensors"), std::string::npos);
  }
  EXPECT_TRUE(at::equal(toy->w, at::full({4, 3}, 7.0f)));  // checked before anything was copied
  sd["b"] = at::ones({5});
  save_safetensors(dir / "bad.safetensors", sd);
  try {
    load_weights(*toy, dir / "bad.safetensors");
    FAIL() << "expected a ModelError";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("lacks tensors the config needs: s"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_weights(*toy, dir / "missing.safetensors"), InputError);
  fs::remove_all(dir);
}
