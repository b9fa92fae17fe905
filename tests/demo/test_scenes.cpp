// The procedural data set: determinism, split by seed, captions that describe the pictures.
#include <fstream>
#include <set>

#include "diffbench/demo/scenes.hpp"
#include "diffbench/io/assets.hpp"
#include "test_support.hpp"

namespace {

using namespace diffbench::demo;

TEST(DemoScenes, SameSeedSameSceneAndPixels) {
  for (uint64_t seed : {0ull, 1ull, 12345ull, 0xFFFFFFFFFFull}) {
    const Scene a = make_scene(seed), b = make_scene(seed);
    EXPECT_EQ(a.caption, b.caption);
    EXPECT_TRUE(render_scene(a).equal(render_scene(b)));
  }
  std::set<std::string> captions;
  for (uint64_t seed = 0; seed < 200; ++seed) captions.insert(make_scene(seed).caption);
  EXPECT_GT(captions.size(), 190u) << "captions should vary with the seed";
}

TEST(DemoScenes, CaptionGrammar) {
  ShapeGroup g;
  g.count = 2, g.size = Size::Small, g.colour = 0, g.kind = ShapeKind::Circle, g.region = Region::Left;
  EXPECT_EQ(caption_of({g}, 2), "two small red circles on the left of a blue background");
  ShapeGroup h;
  h.count = 1, h.size = Size::Medium, h.colour = 3, h.kind = ShapeKind::Star, h.region = Region::Right;
  EXPECT_EQ(caption_of({h, g}, 7),
            "a yellow star on the right and two small red circles on the left of a black background");
  h.colour = 4;
  EXPECT_EQ(caption_of({h}, 0), "an orange star on the right of a red background");
  h.size = Size::Large;
  EXPECT_EQ(caption_of({h}, 4), "a large orange star on the right of an orange background");
  // Every caption uses only grammar words.
  const auto words = grammar_words();
  const std::set<std::string> vocab(words.begin(), words.end());
  for (uint64_t seed = 0; seed < 500; ++seed) {
    std::istringstream in(make_scene(seed).caption);
    for (std::string w; in >> w;) EXPECT_TRUE(vocab.count(w)) << w;
  }
}

TEST(DemoScenes, PicturesShowWhatCaptionsSay) {
  const int n = 64;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    const Scene s = make_scene(seed);
    const at::Tensor img = render_scene(s).to(at::kInt);  // [3, 64, 64]
    ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, n, n}));
    int shapes = 0;
    for (const auto& g : s.groups) shapes += g.count;
    ASSERT_EQ(static_cast<int>(s.shapes.size()), shapes) << s.caption;
    EXPECT_LE(shapes, 3);
    size_t k = 0;
    for (const auto& g : s.groups) {
      const Colour& c = palette()[static_cast<size_t>(g.colour)];
      for (int i = 0; i < g.count; ++i, ++k) {
        const PlacedShape& p = s.shapes[k];
        // The pixel under the shape's centre has the caption's colour (up to the jitter of 10).
        const int x = static_cast<int>(p.cx), y = static_cast<int>(p.cy);
        const int rgb[3] = {c.r, c.g, c.b};
        for (int ch = 0; ch < 3; ++ch)
          EXPECT_NEAR(img[ch][y][x].item<int>(), rgb[ch], 10) << s.caption << " shape " << k;
        // And it sits in the captioned region.
        switch (g.region) {
          case Region::Left: EXPECT_LT(p.cx, 32) << s.caption; break;
          case Region::Right: EXPECT_GT(p.cx, 32) << s.caption; break;
          case Region::Top: EXPECT_LT(p.cy, 32) << s.caption; break;
          case Region::Bottom: EXPECT_GT(p.cy, 32) << s.caption; break;
          case Region::Centre:
            EXPECT_GT(p.cx, 12) << s.caption;
            EXPECT_LT(p.cx, 52) << s.caption;
            EXPECT_GT(p.cy, 12) << s.caption;
            EXPECT_LT(p.cy, 52) << s.caption;
            break;
        }
      }
      EXPECT_NE(g.colour, s.background) << s.caption;
    }
    // Most of the picture is the captioned background colour.
    const Colour& bg = palette()[static_cast<size_t>(s.background)];
    const at::Tensor ref = at::tensor({bg.r, bg.g, bg.b}, at::kInt).view({3, 1, 1});
    const double share = (img - ref).abs().le(10).all(0).to(at::kDouble).mean().item<double>();
    EXPECT_GT(share, 0.4) << s.caption;
  }
}

TEST(DemoScenes, SplitsUseDisjointSeeds) {
  std::set<uint64_t> train, held_out;
  for (uint64_t i = 0; i < 20000; ++i) {
    train.insert(scene_seed(Split::Train, i, 0));
    held_out.insert(scene_seed(Split::HeldOut, i, 0));
  }
  EXPECT_EQ(train.size(), 20000u);
  for (uint64_t s : held_out) EXPECT_EQ(train.count(s), 0u);
  EXPECT_NE(scene_seed(Split::Train, 0, 0), scene_seed(Split::Train, 0, 1)) << "the data-set seed matters";
}

TEST(DemoScenes, BatchesAreDeterministicAndInRange) {
  const Batch a = make_batch(Split::Train, 10, 12, 3);
  ASSERT_EQ(a.images.sizes(), (std::vector<int64_t>{12, 3, 64, 64}));
  ASSERT_EQ(a.captions.size(), 12u);
  EXPECT_GE(a.images.min().item<float>(), -1.0f);
  EXPECT_LE(a.images.max().item<float>(), 1.0f);
  // The same samples from another batch split.
  const Batch b = make_batch(Split::Train, 14, 3, 3);
  EXPECT_TRUE(a.images.narrow(0, 4, 3).equal(b.images));
  EXPECT_EQ(a.captions[4], b.captions[0]);
  const Scene s = make_scene(scene_seed(Split::Train, 10, 3));
  EXPECT_EQ(a.captions[0], s.caption);
  EXPECT_TRUE(a.images[0].equal(render_scene(s).to(at::kFloat).div(127.5).sub(1.0)));
}

TEST(DemoScenes, DemoPromptsAreFixedHeldOutCaptions) {
  const auto prompts = demo_prompts();
  ASSERT_EQ(prompts.size(), 32u);
  EXPECT_EQ(std::set<std::string>(prompts.begin(), prompts.end()).size(), 32u);
  EXPECT_EQ(prompts, demo_prompts());
  const auto seeds = demo_prompt_seeds();
  for (size_t i = 0; i < seeds.size(); ++i) EXPECT_EQ(make_scene(seeds[i]).caption, prompts[i]);
  EXPECT_EQ(seeds[0], scene_seed(Split::HeldOut, 0, 0));
  // The bundled prompt set (`--prompts demo`) is this list.
  const auto file = diffbench::assets_dir() / "demo" / "prompts.txt";
  if (!std::filesystem::exists(file)) GTEST_SKIP() << "no " << file;
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  EXPECT_EQ(lines, prompts);
}

}  // namespace
