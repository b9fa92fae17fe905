// The demo's procedural data set: 64×64 RGB pictures of one to three flat shapes on a plain
// background, each with a caption from a small grammar, everything deterministic from a seed.
//
//   caption := group " " position [" and " group " " position] " of " article " " colour " background"
//   group   := (article | "two" | "three") [" small" | " large"] " " colour " " shape["s"]
//   article := "a", or "an" before a vowel ("an orange square")
//   e.g. "two small red circles on the left of a blue background",
//        "a large green star at the top and a yellow square at the bottom of a black background"
//
// A scene with two groups puts them in opposite regions (left/right or top/bottom) and has at most
// three shapes; a group of several shapes shares size, colour and shape, placed side by side along
// the region's long side. Shapes are rasterised with one-pixel analytic anti-aliasing (coverage
// from the signed distance to the outline) and a little per-scene colour jitter.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace diffbench::demo {

inline constexpr int kImageSize = 64;

enum class ShapeKind { Circle, Square, Triangle, Star, Diamond };
enum class Region { Left, Right, Top, Bottom, Centre };
enum class Size { Small, Medium, Large };  // Medium is the caption without a size word

struct Colour {
  const char* name;
  uint8_t r, g, b;
};
// The palette, in caption-word order: red, green, blue, yellow, orange, purple, white, black.
const std::vector<Colour>& palette();

struct PlacedShape {
  ShapeKind kind;
  float cx, cy;    // centre, pixels (0,0 = top-left corner of the top-left pixel)
  float radius;    // half the extent, pixels
  float rotation;  // radians, for triangles, stars and diamonds (small jitter)
  uint8_t rgb[3];  // colour after jitter
};

struct ShapeGroup {
  int count = 1;
  Size size = Size::Medium;
  int colour = 0;  // index into palette()
  ShapeKind kind = ShapeKind::Circle;
  Region region = Region::Centre;
};

struct Scene {
  uint64_t seed = 0;
  std::vector<ShapeGroup> groups;  // one or two
  int background = 0;              // index into palette(), never a group's colour
  uint8_t background_rgb[3] = {0, 0, 0};
  std::vector<PlacedShape> shapes;  // drawn in order
  std::string caption;
};

// The scene drawn from `seed`: same seed, same scene, on every platform (own PRNG, no std
// distributions).
Scene make_scene(uint64_t seed);

// The caption of a list of groups and a background, per the grammar above.
std::string caption_of(const std::vector<ShapeGroup>& groups, int background);

// uint8 [3, 64, 64].
at::Tensor render_scene(const Scene& scene);

// Train and held-out samples use disjoint seeds: sample `index` of a split with data-set seed
// `base_seed` is scene_seed(...) = splitmix64(base_seed · 2^32 + 2·index + (held-out ? 1 : 0)).
enum class Split { Train, HeldOut };
uint64_t scene_seed(Split split, uint64_t index, uint64_t base_seed = 0);

struct Batch {
  at::Tensor images;                  // float32 [B, 3, 64, 64] in [-1, 1]
  std::vector<std::string> captions;  // B captions
};
// Samples first .. first+count-1 of a split. Renders in parallel (at::parallel_for).
Batch make_batch(Split split, uint64_t first, int64_t count, uint64_t base_seed = 0);
// The same as uint8 [B, 3, 64, 64] (what a pool keeps in memory).
at::Tensor render_batch_u8(Split split, uint64_t first, int64_t count, uint64_t base_seed,
                           std::vector<std::string>* captions = nullptr);

// The fixed demo prompt set (`--prompts demo`): the captions of held-out samples 0, 1, ... of
// data-set seed 0, skipping a caption already taken, until there are `count`.
// demo_prompt_seeds() gives the scene seeds they came from (to render the matching pictures).
std::vector<std::string> demo_prompts(size_t count = 32);
std::vector<uint64_t> demo_prompt_seeds(size_t count = 32);

// Every word the grammar can produce (count words, sizes, colours, shapes and plurals, region
// words, linking words), sorted, each once.
std::vector<std::string> grammar_words();

}  // namespace diffbench::demo
