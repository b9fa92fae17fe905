// The FID Inception-v3 against pytorch-fid's InceptionV3 (tests/models/data/inception-fid-expected.*, made by
// tools/refs/make_inception_fid_refs.py). The random weights are regenerated here from the seed the script
// used. Tolerance: features within 1e-4 absolute (float32 through 94 convolutions on the same ATen kernels).
#include <ATen/CPUGeneratorImpl.h>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/inception_fid.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

fs::path data(const std::string& name) { return fs::path(DIFFBENCH_SOURCE_DIR) / "tests" / "models" / "data" / name; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The script's weights, key by key in its order from one generator (see its docstring for the rule).
StateDict script_weights(const nlohmann::json& ref) {
  InceptionFid net;
  std::map<std::string, at::Tensor> shapes;
  for (const auto& p : net->named_parameters()) shapes[p.key()] = p.value();
  for (const auto& b : net->named_buffers()) shapes[b.key()] = b.value();
  at::Generator gen = at::detail::createCPUGenerator(ref["weights_seed"].get<uint64_t>());
  StateDict w;
  for (const auto& key_json : ref["weight_keys_in_order"]) {
    const std::string key = key_json;
    const auto shape = shapes.at(key).sizes();
    if (ends_with(key, "conv.weight"))
      w[key] = at::randn(shape, gen, at::kFloat) * std::sqrt(2.0 / double(shape[1] * shape[2] * shape[3]));
    else if (ends_with(key, "bn.weight"))
      w[key] = at::randn(shape, gen, at::kFloat) * 0.1 + 1;
    else if (ends_with(key, "bn.running_var"))
      w[key] = at::rand(shape, gen, at::kFloat) + 0.5;
    else
      w[key] = at::randn(shape, gen, at::kFloat) * 0.1;  // bn.bias, bn.running_mean
  }
  return w;
}

}  // namespace

TEST(InceptionFid, ParameterNamesAreTheFidWeightsKeys) {
  const auto ref = read_json_file(data("inception-fid-expected.json"));
  std::vector<std::string> keys = ref["weight_keys_in_order"];
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(state_names(*InceptionFid()), keys);
}

TEST(InceptionFid, FeaturesMatchPytorchFid) {
  const auto ref = read_json_file(data("inception-fid-expected.json"));
  const auto dir = test::temp_dir("inception");
  StateDict w = script_weights(ref);
  // As the .pth holds them: the 1008-way classifier and the BatchNorm counters, both ignored.
  w["fc.weight"] = at::zeros({1008, 2048});
  w["fc.bias"] = at::zeros({1008});
  w["Mixed_7c.branch_pool.bn.num_batches_tracked"] = at::zeros({}, at::kLong);
  save_safetensors(dir / "inception.safetensors", w);
  const auto net = InceptionFeatures::load(dir / "inception.safetensors");

  const StateDict expected = load_safetensors(data("inception-fid-expected.safetensors"));
  std::vector<at::Tensor> images;
  for (size_t k = 0; k < ref["images"].size(); ++k) images.push_back(expected.at("image." + std::to_string(k)));
  const at::Tensor got = net->features(images);  // sizes differ: 40x56 up to 24x400
  EXPECT_TENSOR_NEAR(got, expected.at("features"), 1e-4);
  // Batching does not change an image's features.
  EXPECT_TENSOR_NEAR(net->features(std::vector<at::Tensor>{images[1]}), expected.at("features").narrow(0, 1, 1), 1e-4);
  EXPECT_THROW(net->features(std::vector<at::Tensor>{images[0].to(at::kFloat)}), UsageError);
  fs::remove_all(dir);
}

TEST(InceptionFid, WrongCheckpointsAreNamed) {
  const auto dir = test::temp_dir("inception-bad");
  InceptionFid net;
  StateDict w;
  for (const auto& p : net->named_parameters()) w[p.key()] = p.value().detach().clone();
  for (const auto& b : net->named_buffers()) w[b.key()] = b.value().clone();
  w.erase("Mixed_6b.branch7x7_2.conv.weight");
  save_safetensors(dir / "missing.safetensors", w);
  try {
    InceptionFeatures::load(dir / "missing.safetensors");
    ADD_FAILURE() << "loaded weights without Mixed_6b.branch7x7_2";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("Mixed_6b.branch7x7_2.conv.weight"), std::string::npos) << e.what();
  }
  save_safetensors(dir / "wrapper.safetensors", {{"blocks.0.0.conv.weight", at::zeros({32, 3, 3, 3})}});
  try {
    InceptionFeatures::load(dir / "wrapper.safetensors");
    ADD_FAILURE() << "loaded InceptionV3's wrapper keys";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("pt_inception"), std::string::npos) << e.what();
  }
  save_safetensors(dir / "imagenet.safetensors", {{"AuxLogits.fc.weight", at::zeros({1000, 768})}});
  EXPECT_THROW(InceptionFeatures::load(dir / "imagenet.safetensors"), ModelError);
  fs::remove_all(dir);
}
