// Tolerances: 1e-6 against transformers'/open_clip's float32 pixel values (../shared/README.md), 0
// where the result is defined exactly (crops, uint8 resizes).
#include <fstream>

#include <nlohmann/json.hpp>

#include "diffbench/error.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/metrics/preprocess.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

// The 6 reference images in the order the fixtures' pixel_values use: images.uint8 (4 pipeline
// images, 128x128), then odd_images.uint8 (2 random 300x180 images). See the reference .json notes.
std::vector<at::Tensor> reference_images(const SafetensorsFile& f) {
  std::vector<at::Tensor> out;
  for (const char* key : {"images.uint8", "odd_images.uint8"}) {
    auto t = f.get(key);
    for (int64_t i = 0; i < t.size(0); ++i) out.push_back(t[i]);
  }
  return out;
}

std::array<double, 3> json3(const nlohmann::json& j) { return {j[0].get<double>(), j[1].get<double>(), j[2].get<double>()}; }

}  // namespace

TEST(ClipPreprocess, MatchesTransformersPilBackend) {
  auto ref_path = test::fixture("tiny-clip-reference.safetensors");
  auto cfg_path = test::fixture("tiny-clip/processor_config.json");
  DIFFBENCH_REQUIRE_FIXTURE(ref_path);
  DIFFBENCH_REQUIRE_FIXTURE(cfg_path);
  auto cfg = nlohmann::json::parse(std::ifstream(cfg_path))["image_processor"];
  const int size = cfg["size"]["shortest_edge"].get<int>();
  ASSERT_EQ(cfg["crop_size"]["height"].get<int>(), size);
  auto ref = SafetensorsFile::open(ref_path);
  auto images = reference_images(*ref);
  auto expected = ref->get("pixel_values", at::kFloat);
  ASSERT_EQ(expected.size(0), int64_t(images.size()));
  for (size_t i = 0; i < images.size(); ++i) {
    SCOPED_TRACE("image " + std::to_string(i) + " " + c10::str(images[i].sizes()));
    auto got = clip_preprocess(images[i], size, json3(cfg["image_mean"]), json3(cfg["image_std"]),
                               CenterCrop::Transformers);
    EXPECT_TENSOR_NEAR(got, expected[int64_t(i)], 1e-6);
  }
}

TEST(ClipPreprocess, MatchesOpenClipPreprocess) {
  auto ref_path = test::fixture("tiny-openclip-reference.safetensors");
  auto imgs_path = test::fixture("tiny-clip-reference.safetensors");
  auto cfg_path = test::fixture("tiny-openclip/open_clip_config.json");
  DIFFBENCH_REQUIRE_FIXTURE(ref_path);
  DIFFBENCH_REQUIRE_FIXTURE(imgs_path);
  DIFFBENCH_REQUIRE_FIXTURE(cfg_path);
  auto cfg = nlohmann::json::parse(std::ifstream(cfg_path));
  const int size = cfg["model_cfg"]["vision_cfg"]["image_size"].get<int>();
  ASSERT_EQ(cfg["preprocess_cfg"]["resize_mode"], "shortest");
  ASSERT_EQ(cfg["preprocess_cfg"]["interpolation"], "bicubic");
  auto images = reference_images(*SafetensorsFile::open(imgs_path));
  auto expected = SafetensorsFile::open(ref_path)->get("pixel_values", at::kFloat);
  ASSERT_EQ(expected.size(0), int64_t(images.size()));
  for (size_t i = 0; i < images.size(); ++i) {
    SCOPED_TRACE("image " + std::to_string(i));
    auto got = clip_preprocess(images[i], size, json3(cfg["preprocess_cfg"]["mean"]), json3(cfg["preprocess_cfg"]["std"]));
    EXPECT_TENSOR_NEAR(got, expected[int64_t(i)], 1e-6);
  }
}

TEST(ResizeBicubicPil, UnchangedSizeIsIdentityAndSolidStaysSolid) {
  auto img = torch::randint(0, 256, {3, 9, 13}, torch::kByte);
  EXPECT_TRUE(torch::equal(resize_bicubic_pil(img, 9, 13), img));
  // Normalised weights: a constant image stays that constant at any size (no 8-bit drift).
  auto solid = torch::full({3, 31, 17}, 200, torch::kByte);
  for (auto [h, w] : std::vector<std::pair<int, int>>{{5, 3}, {64, 40}, {31, 50}, {1, 1}})
    EXPECT_TRUE(torch::equal(resize_bicubic_pil(solid, h, w), torch::full({3, h, w}, 200, torch::kByte)));
  EXPECT_THROW(resize_bicubic_pil(torch::zeros({3, 4, 4}), 2, 2), UsageError);
  EXPECT_THROW(resize_bicubic_pil(torch::zeros({4, 4, 3}, torch::kByte), 2, 2), UsageError);
  EXPECT_THROW(resize_bicubic_pil(img, 0, 2), UsageError);
}

// Each single-axis resize is one Pillow pass, so a two-axis resize equals the two single-axis
// resizes in Pillow 13's order: vertical first only when the height loses more than twice as many
// pixels as the width (python-pillow/Pillow#9549).
TEST(ResizeBicubicPil, PassOrderFollowsPillow13) {
  torch::manual_seed(11);
  auto img = torch::randint(0, 256, {3, 261, 150}, torch::kByte);
  auto both = resize_bicubic_pil(img, 60, 50);  // loses 201 rows vs 100 columns: vertical first
  EXPECT_TRUE(torch::equal(both, resize_bicubic_pil(resize_bicubic_pil(img, 60, 150), 60, 50)));
  EXPECT_FALSE(torch::equal(both, resize_bicubic_pil(resize_bicubic_pil(img, 261, 50), 60, 50)));
  auto img2 = img.narrow(1, 0, 260);
  auto both2 = resize_bicubic_pil(img2, 60, 50);  // loses exactly 2x: horizontal first
  EXPECT_TRUE(torch::equal(both2, resize_bicubic_pil(resize_bicubic_pil(img2, 260, 50), 60, 50)));
}

TEST(ClipPreprocess, CentreCropOffsets) {
  // 3 x 227 x 224: no resize is needed; torchvision's top = int(round(3 / 2.0)) = 2,
  // transformers' top = 3 // 2 = 1.
  torch::manual_seed(5);
  const int size = 224;
  auto img = torch::randint(0, 256, {3, size + 3, size}, torch::kByte);
  auto got = clip_preprocess(img, size, kOpenAiClipMean, kOpenAiClipStd);
  auto mean = torch::tensor({float(kOpenAiClipMean[0]), float(kOpenAiClipMean[1]), float(kOpenAiClipMean[2])});
  auto std = torch::tensor({float(kOpenAiClipStd[0]), float(kOpenAiClipStd[1]), float(kOpenAiClipStd[2])});
  auto expect = (img.narrow(1, 2, size).to(torch::kFloat) / 255.0f - mean.view({3, 1, 1})) / std.view({3, 1, 1});
  EXPECT_TENSOR_NEAR(got, expect, 0.0);
  auto expect_tf = (img.narrow(1, 1, size).to(torch::kFloat) / 255.0f - mean.view({3, 1, 1})) / std.view({3, 1, 1});
  EXPECT_TENSOR_NEAR(clip_preprocess(img, size, kOpenAiClipMean, kOpenAiClipStd, CenterCrop::Transformers), expect_tf,
                     0.0);
  // 1 extra row: round(0.5) = 0.
  auto img1 = img.narrow(1, 0, size + 1);
  EXPECT_TENSOR_NEAR(clip_preprocess(img1, size, kOpenAiClipMean, kOpenAiClipStd),
                     (img1.narrow(1, 0, size).to(torch::kFloat) / 255.0f - mean.view({3, 1, 1})) / std.view({3, 1, 1}),
                     0.0);
}

// Against Pillow's Image.resize(..., Image.BICUBIC) on random images and sizes, up and down
// (tests/metrics/data/pil_resize.safetensors, made by tools/refs/make_pil_resize_refs.py): uint8
// results equal, as Pillow's fixed-point arithmetic is exact on any CPU.
TEST(ResizeBicubicPil, MatchesPillow) {
  const auto p = std::filesystem::path(DIFFBENCH_SOURCE_DIR) / "tests/metrics/data/pil_resize.safetensors";
  auto f = SafetensorsFile::open(p);
  int n = 0;
  for (int i = 0; f->contains("in" + std::to_string(i)); ++i, ++n) {
    auto in = f->get("in" + std::to_string(i));
    auto out = f->get("out" + std::to_string(i));
    auto got = resize_bicubic_pil(in, int(out.size(1)), int(out.size(2)));
    EXPECT_TRUE(torch::equal(got, out)) << "case " << i << " " << in.sizes() << " -> " << out.sizes()
                                        << " max diff " << test::max_abs_diff(got, out);
  }
  EXPECT_GT(n, 0);
}
