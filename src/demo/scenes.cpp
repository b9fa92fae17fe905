#include "diffbench/demo/scenes.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include <ATen/Parallel.h>

#include "diffbench/error.hpp"

namespace diffbench::demo {

namespace {

constexpr double kPi = 3.14159265358979323846;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A small portable generator: splitmix64 over a counter.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return splitmix64(state_++); }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  float uniform(float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(static_cast<double>(next() >> 40) / 16777216.0);
  }
  // Index drawn with the given (unnormalised) weights.
  int weighted(std::initializer_list<int> weights) {
    int total = 0;
    for (int w : weights) total += w;
    int r = below(total), i = 0;
    for (int w : weights) {
      if (r < w) return i;
      r -= w;
      ++i;
    }
    return i - 1;
  }

 private:
  uint64_t state_;
};

const char* shape_word(ShapeKind k) {
  switch (k) {
    case ShapeKind::Circle: return "circle";
    case ShapeKind::Square: return "square";
    case ShapeKind::Triangle: return "triangle";
    case ShapeKind::Star: return "star";
    case ShapeKind::Diamond: return "diamond";
  }
  return "";
}

const char* region_phrase(Region r) {
  switch (r) {
    case Region::Left: return "on the left";
    case Region::Right: return "on the right";
    case Region::Top: return "at the top";
    case Region::Bottom: return "at the bottom";
    case Region::Centre: return "in the centre";
  }
  return "";
}

// Where a region's shapes go: a box and whether its long side is vertical.
struct RegionBox {
  float x0, y0, x1, y1;
  bool vertical;
};

RegionBox region_box(Region r) {
  switch (r) {
    case Region::Left: return {2, 6, 30, 58, true};
    case Region::Right: return {34, 6, 62, 58, true};
    case Region::Top: return {6, 2, 58, 30, false};
    case Region::Bottom: return {6, 34, 58, 62, false};
    case Region::Centre: return {12, 12, 52, 52, false};
  }
  return {0, 0, 64, 64, false};
}

float base_radius(Size s) { return s == Size::Small ? 5.5f : s == Size::Medium ? 8.0f : 11.0f; }

constexpr float kGap = 2.0f;  // at least this many pixels between shapes of a group

// Whether `count` shapes of size `s` (at their largest jittered radius) fit in the region.
bool fits(Region r, int count, Size s) {
  const RegionBox b = region_box(r);
  const float d = 2.0f * base_radius(s) * 1.06f;
  const float long_side = b.vertical ? b.y1 - b.y0 : b.x1 - b.x0;
  const float short_side = b.vertical ? b.x1 - b.x0 : b.y1 - b.y0;
  return count * d + (count - 1) * kGap <= long_side && d <= short_side;
}

ShapeGroup draw_group(Rng& rng, Region region, int count) {
  ShapeGroup g;
  g.count = count;
  g.region = region;
  std::vector<Size> sizes;
  for (Size s : {Size::Small, Size::Medium, Size::Large})
    if (fits(region, count, s)) sizes.push_back(s);
  g.size = sizes[static_cast<size_t>(rng.below(static_cast<int>(sizes.size())))];
  g.colour = rng.below(static_cast<int>(palette().size()));
  g.kind = static_cast<ShapeKind>(rng.below(5));
  return g;
}

uint8_t jitter(Rng& rng, uint8_t v) {
  return static_cast<uint8_t>(std::clamp(static_cast<int>(v) + rng.below(21) - 10, 0, 255));
}

void place_group(Rng& rng, const ShapeGroup& g, std::vector<PlacedShape>& out) {
  const Colour& c = palette()[static_cast<size_t>(g.colour)];
  const uint8_t rgb[3] = {jitter(rng, c.r), jitter(rng, c.g), jitter(rng, c.b)};
  const RegionBox b = region_box(g.region);
  const float radius = base_radius(g.size) * rng.uniform(0.94f, 1.06f);
  const float long0 = b.vertical ? b.y0 : b.x0, long1 = b.vertical ? b.y1 : b.x1;
  const float short0 = b.vertical ? b.x0 : b.y0, short1 = b.vertical ? b.x1 : b.y1;
  // Equal slots along the long side; each shape moves within its slot's slack.
  const float slot = (long1 - long0) / static_cast<float>(g.count);
  const float long_slack = std::max(0.0f, (slot - 2 * radius - kGap) / 2);
  const float short_slack = std::max(0.0f, (short1 - short0 - 2 * radius) / 2);
  for (int i = 0; i < g.count; ++i) {
    PlacedShape s;
    s.kind = g.kind;
    s.radius = radius;
    const float along = long0 + slot * (static_cast<float>(i) + 0.5f) + rng.uniform(-long_slack, long_slack);
    const float across = (short0 + short1) / 2 + rng.uniform(-short_slack, short_slack);
    s.cx = b.vertical ? across : along;
    s.cy = b.vertical ? along : across;
    s.rotation = g.kind == ShapeKind::Circle ? 0.0f : rng.uniform(-0.15f, 0.15f);
    std::copy(rgb, rgb + 3, s.rgb);
    out.push_back(s);
  }
}

// The outline of a non-circular shape as a polygon (pixel coordinates, counter-clockwise on screen
// does not matter: inside-ness comes from the crossing rule).
std::vector<std::array<float, 2>> polygon(const PlacedShape& s) {
  std::vector<std::array<float, 2>> pts;
  auto add = [&](double angle, double r) {
    const double a = angle + s.rotation;
    pts.push_back({static_cast<float>(s.cx + r * std::sin(a)), static_cast<float>(s.cy - r * std::cos(a))});
  };
  switch (s.kind) {
    case ShapeKind::Square:  // half-side 0.85 r: about the area of the circle of radius r
      for (int i = 0; i < 4; ++i) add(kPi / 4 + i * kPi / 2, 0.85 * s.radius * std::sqrt(2.0));
      break;
    case ShapeKind::Diamond:
      for (int i = 0; i < 4; ++i) add(i * kPi / 2, s.radius);
      break;
    case ShapeKind::Triangle:  // pointing up, centred on its bounding box vertically
      for (int i = 0; i < 3; ++i) add(i * 2 * kPi / 3, s.radius * 1.1);
      for (auto& p : pts) p[1] += static_cast<float>(0.25 * s.radius * 1.1);
      break;
    case ShapeKind::Star:
      for (int i = 0; i < 10; ++i) add(i * kPi / 5, i % 2 == 0 ? s.radius * 1.1 : s.radius * 0.48);
      break;
    case ShapeKind::Circle:
      break;
  }
  return pts;
}

// Signed distance from (x, y) to a polygon: negative inside.
float polygon_distance(const std::vector<std::array<float, 2>>& pts, float x, float y) {
  float best = 1e9f;
  bool inside = false;
  for (size_t i = 0, j = pts.size() - 1; i < pts.size(); j = i++) {
    const float ax = pts[j][0], ay = pts[j][1], bx = pts[i][0], by = pts[i][1];
    const float ex = bx - ax, ey = by - ay, wx = x - ax, wy = y - ay;
    const float t = std::clamp((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0f, 1.0f);
    const float dx = wx - t * ex, dy = wy - t * ey;
    best = std::min(best, dx * dx + dy * dy);
    if ((ay > y) != (by > y) && x < ax + (y - ay) * ex / ey) inside = !inside;
  }
  return inside ? -std::sqrt(best) : std::sqrt(best);
}

void draw_shape(const PlacedShape& s, uint8_t* img) {
  const auto pts = polygon(s);
  const int reach = static_cast<int>(std::ceil(s.radius * 1.2f)) + 2;
  const int x0 = std::max(0, static_cast<int>(s.cx) - reach), x1 = std::min(kImageSize, static_cast<int>(s.cx) + reach + 1);
  const int y0 = std::max(0, static_cast<int>(s.cy) - reach), y1 = std::min(kImageSize, static_cast<int>(s.cy) + reach + 1);
  const int plane = kImageSize * kImageSize;
  for (int y = y0; y < y1; ++y) {
    for (int x = x0; x < x1; ++x) {
      const float px = static_cast<float>(x) + 0.5f, py = static_cast<float>(y) + 0.5f;
      const float d = s.kind == ShapeKind::Circle ? std::hypot(px - s.cx, py - s.cy) - s.radius
                                                  : polygon_distance(pts, px, py);
      const float cover = std::clamp(0.5f - d, 0.0f, 1.0f);
      if (cover <= 0) continue;
      for (int c = 0; c < 3; ++c) {
        uint8_t& v = img[c * plane + y * kImageSize + x];
        v = static_cast<uint8_t>(std::lround(v + cover * (static_cast<float>(s.rgb[c]) - v)));
      }
    }
  }
}

}  // namespace

const std::vector<Colour>& palette() {
  static const std::vector<Colour> colours = {
      {"red", 220, 40, 40},     {"green", 40, 170, 60},   {"blue", 40, 80, 220},    {"yellow", 240, 220, 40},
      {"orange", 245, 140, 30}, {"purple", 140, 60, 190}, {"white", 245, 245, 245}, {"black", 20, 20, 20}};
  return colours;
}

// "a" or "an", by the next word's first letter.
std::string article(const std::string& next) {
  return std::string("aeiou").find(next.at(0)) != std::string::npos ? "an" : "a";
}

std::string caption_of(const std::vector<ShapeGroup>& groups, int background) {
  static const char* counts[] = {"", "a", "two", "three"};
  std::string out;
  for (size_t i = 0; i < groups.size(); ++i) {
    const ShapeGroup& g = groups[i];
    if (g.count < 1 || g.count > 3) throw UsageError("a group has one to three shapes", "caption_of");
    if (i > 0) out += " and ";
    const std::string size = g.size == Size::Medium ? "" : g.size == Size::Small ? "small" : "large";
    const std::string colour = palette().at(static_cast<size_t>(g.colour)).name;
    out += g.count == 1 ? article(size.empty() ? colour : size) : counts[g.count];
    if (!size.empty()) out += " " + size;
    out += " " + colour + " " + shape_word(g.kind);
    if (g.count > 1) out += "s";
    out += std::string(" ") + region_phrase(g.region);
  }
  const std::string bg = palette().at(static_cast<size_t>(background)).name;
  return out + " of " + article(bg) + " " + bg + " background";
}

Scene make_scene(uint64_t seed) {
  Rng rng(seed);
  Scene s;
  s.seed = seed;
  if (rng.weighted({3, 2}) == 0) {
    const auto region = static_cast<Region>(rng.below(5));
    s.groups.push_back(draw_group(rng, region, 1 + rng.weighted({5, 3, 2})));
  } else {
    static const Region pairs[4][2] = {
        {Region::Left, Region::Right}, {Region::Right, Region::Left}, {Region::Top, Region::Bottom}, {Region::Bottom, Region::Top}};
    const auto& pair = pairs[rng.below(4)];
    static const int counts[3][2] = {{1, 1}, {1, 2}, {2, 1}};
    const auto& n = counts[rng.weighted({2, 1, 1})];
    s.groups.push_back(draw_group(rng, pair[0], n[0]));
    s.groups.push_back(draw_group(rng, pair[1], n[1]));
  }
  std::vector<int> free;
  for (int c = 0; c < static_cast<int>(palette().size()); ++c)
    if (std::none_of(s.groups.begin(), s.groups.end(), [c](const ShapeGroup& g) { return g.colour == c; }))
      free.push_back(c);
  s.background = free[static_cast<size_t>(rng.below(static_cast<int>(free.size())))];
  const Colour& bg = palette()[static_cast<size_t>(s.background)];
  s.background_rgb[0] = jitter(rng, bg.r);
  s.background_rgb[1] = jitter(rng, bg.g);
  s.background_rgb[2] = jitter(rng, bg.b);
  for (const auto& g : s.groups) place_group(rng, g, s.shapes);
  s.caption = caption_of(s.groups, s.background);
  return s;
}

namespace {

void render_into(const Scene& scene, uint8_t* img) {
  const int plane = kImageSize * kImageSize;
  for (int c = 0; c < 3; ++c) std::fill(img + c * plane, img + (c + 1) * plane, scene.background_rgb[c]);
  for (const auto& s : scene.shapes) draw_shape(s, img);
}

}  // namespace

at::Tensor render_scene(const Scene& scene) {
  at::Tensor img = at::empty({3, kImageSize, kImageSize}, at::kByte);
  render_into(scene, img.data_ptr<uint8_t>());
  return img;
}

uint64_t scene_seed(Split split, uint64_t index, uint64_t base_seed) {
  return splitmix64((base_seed << 32) + 2 * index + (split == Split::HeldOut ? 1 : 0));
}

at::Tensor render_batch_u8(Split split, uint64_t first, int64_t count, uint64_t base_seed,
                           std::vector<std::string>* captions) {
  at::Tensor out = at::empty({count, 3, kImageSize, kImageSize}, at::kByte);
  if (captions) captions->assign(static_cast<size_t>(count), {});
  uint8_t* data = out.data_ptr<uint8_t>();
  at::parallel_for(0, count, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Scene scene = make_scene(scene_seed(split, first + static_cast<uint64_t>(i), base_seed));
      render_into(scene, data + i * 3 * kImageSize * kImageSize);
      if (captions) (*captions)[static_cast<size_t>(i)] = scene.caption;
    }
  });
  return out;
}

Batch make_batch(Split split, uint64_t first, int64_t count, uint64_t base_seed) {
  Batch b;
  at::Tensor u8 = render_batch_u8(split, first, count, base_seed, &b.captions);
  b.images = u8.to(at::kFloat).div(127.5).sub(1.0);
  return b;
}

std::vector<uint64_t> demo_prompt_seeds(size_t count) {
  std::vector<uint64_t> seeds;
  std::set<std::string> seen;
  for (uint64_t i = 0; seeds.size() < count; ++i) {
    const uint64_t seed = scene_seed(Split::HeldOut, i, 0);
    if (seen.insert(make_scene(seed).caption).second) seeds.push_back(seed);
  }
  return seeds;
}

std::vector<std::string> demo_prompts(size_t count) {
  std::vector<std::string> out;
  for (uint64_t seed : demo_prompt_seeds(count)) out.push_back(make_scene(seed).caption);
  return out;
}

std::vector<std::string> grammar_words() {
  std::set<std::string> words = {"a", "an", "two", "three", "small", "large", "on", "the", "left", "right", "at",
                                 "top", "bottom", "in", "centre", "and", "of", "background"};
  for (const auto& c : palette()) words.insert(c.name);
  for (int k = 0; k < 5; ++k) {
    const std::string w = shape_word(static_cast<ShapeKind>(k));
    words.insert(w);
    words.insert(w + "s");
  }
  return {words.begin(), words.end()};
}

}  // namespace diffbench::demo
