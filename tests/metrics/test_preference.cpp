// PickScore and HPS v2 on the shared random-weight scorers against tests/metrics/data/preference-expected.json
// (tools/refs/make_preference_refs.py: PickScore by transformers as PickScore's code scores, HPS v2's diagonal
// from open_clip's features). Tolerance: 1e-3 relative plus the CLIP scores' 0.01/100 per unit of cosine.
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/metrics/preference.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

nlohmann::json expected() {
  return read_json_file(fs::path(DIFFBENCH_SOURCE_DIR) / "tests" / "metrics" / "data" / "preference-expected.json");
}

// The 6 images of the fixtures, in their order (4 pipeline images, 2 of 300x180).
std::vector<at::Tensor> reference_images() {
  auto f = SafetensorsFile::open(test::fixture("tiny-clip-reference.safetensors"));
  std::vector<at::Tensor> out;
  for (const char* key : {"images.uint8", "odd_images.uint8"}) {
    auto t = f->get(key);
    for (int64_t i = 0; i < t.size(0); ++i) out.push_back(t[i]);
  }
  return out;
}

void expect_scores(PreferenceModel model, const fs::path& dir, const char* key) {
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-clip-reference.safetensors"));
  const auto ref = expected();
  const auto scorer = PreferenceScorer::load(model, dir);
  const std::vector<double> got = scorer->score(reference_images(), ref["texts"].get<std::vector<std::string>>(), 4);
  ASSERT_EQ(got.size(), ref[key].size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double want = ref[key][i].get<double>();
    EXPECT_NEAR(got[i], want, 1e-3 * std::abs(want) + 1e-4 * scorer->scale()) << key << " " << i;
  }
}

}  // namespace

TEST(Preference, PickScoreIsTheTemperatureTimesTheCosine) {
  expect_scores(PreferenceModel::PickScore, test::fixture("tiny-clip"), "pickscore");
  const auto scorer = PreferenceScorer::load(PreferenceModel::PickScore, test::fixture("tiny-clip"));
  EXPECT_NEAR(scorer->scale(), expected()["logit_scale_exp"].get<double>(), 1e-5);
  EXPECT_EQ(to_string(scorer->model()), "pickscore");
}

TEST(Preference, HpsIsTheRawCosine) {
  expect_scores(PreferenceModel::Hps, test::fixture("tiny-openclip"), "hps");
  EXPECT_EQ(PreferenceScorer::load(PreferenceModel::Hps, test::fixture("tiny-openclip"))->scale(), 1.0);
}
