// LPIPS (AlexNet, v0.1) against the `lpips` package (tests/metrics/data/lpips-expected.*, made by
// tools/make-lpips-reference.py). The weights are regenerated here from the seed the script used.
#include <ATen/CPUGeneratorImpl.h>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/metrics/lpips.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

fs::path data(const std::string& name) { return fs::path(DIFFBENCH_SOURCE_DIR) / "tests" / "metrics" / "data" / name; }

// The script's weights: for each key in order, randn(shape) * 0.05 (weights; |.| for the linear heads)
// or * 0.01 (biases) from one generator seeded with `seed`.
StateDict script_weights(const nlohmann::json& ref) {
  LpipsAlex net;
  std::map<std::string, at::Tensor> shapes;
  for (const auto& p : net->named_parameters()) shapes[p.key()] = p.value();
  at::Generator gen = at::detail::createCPUGenerator(ref["weights_seed"].get<uint64_t>());
  StateDict w;
  for (const auto& key_json : ref["weight_keys_in_order"]) {
    const std::string key = key_json;
    const bool weight = key.size() >= 6 && key.compare(key.size() - 6, 6, "weight") == 0;
    at::Tensor t = at::randn(shapes.at(key).sizes(), gen, at::kFloat) * (weight ? 0.05 : 0.01);
    w[key] = key.rfind("lin", 0) == 0 ? t.abs() : t;
  }
  return w;
}

}  // namespace

TEST(Lpips, ParameterNamesAreThePackagesStateDictKeys) {
  const auto ref = read_json_file(data("lpips-expected.json"));
  std::vector<std::string> keys = ref["weight_keys_in_order"];
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(state_names(*LpipsAlex()), keys);
}

TEST(Lpips, MatchesTheLpipsPackage) {
  const auto ref = read_json_file(data("lpips-expected.json"));
  const auto dir = test::temp_dir("lpips");
  StateDict w = script_weights(ref);
  w["scaling_layer.shift"] = at::tensor({-.030f, -.088f, -.188f}).view({1, 3, 1, 1});  // as the package saves it
  w["scaling_layer.scale"] = at::tensor({.458f, .448f, .450f}).view({1, 3, 1, 1});
  save_safetensors(dir / "lpips.safetensors", w);
  const auto lpips = Lpips::load(dir / "lpips.safetensors");
  const StateDict images = load_safetensors(data("lpips-expected.safetensors"));
  for (const auto& p : ref["pairs"]) {
    const std::string name = p["name"];
    const double expected = p["lpips"].get<double>();
    const double got = lpips->distance(images.at(name + ".a"), images.at(name + ".b"));
    EXPECT_NEAR(got, expected, 1e-6 + 1e-3 * expected) << name;
  }
  EXPECT_THROW(lpips->distance(images.at("noise.a"), images.at("smooth_shift.a")), UsageError);

  w.erase("lin2.model.1.weight");
  save_safetensors(dir / "missing.safetensors", w);
  try {
    Lpips::load(dir / "missing.safetensors");
    ADD_FAILURE() << "loaded weights without lin2";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("lin2.model.1.weight"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
