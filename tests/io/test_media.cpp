#include <png.h>

#include <array>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <fstream>

#include "diffbench/error.hpp"
#include "diffbench/io/image.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

// Writes a PNG of any colour type / bit depth straight through libpng, independent of write_png.
// `rows` hold the raw packed samples (16-bit ones big-endian), one string per row.
void write_raw_png(const fs::path& p, uint32_t w, uint32_t h, int depth, int color_type,
                   const std::vector<std::string>& rows, const std::vector<png_color>& palette = {},
                   const std::vector<png_byte>& trns = {}, int interlace = PNG_INTERLACE_NONE) {
  FILE* f = std::fopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    FAIL() << "libpng failed writing the test image";
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, w, h, depth, color_type, interlace, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), int(palette.size()));
  if (!trns.empty()) png_set_tRNS(png, info, trns.data(), int(trns.size()), nullptr);
  png_write_info(png, info);
  std::vector<png_bytep> ptrs;
  for (const auto& r : rows) ptrs.push_back(reinterpret_cast<png_bytep>(const_cast<char*>(r.data())));
  png_write_image(png, ptrs.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
}

std::string bytes(std::initializer_list<int> v) {
  std::string s;
  for (int x : v) s.push_back(static_cast<char>(x));
  return s;
}

// Expected [3,H,W] image from a row-major list of RGB triples.
at::Tensor rgb(int h, int w, const std::vector<std::array<int, 3>>& px) {
  auto t = torch::empty({3, h, w}, torch::kByte);
  for (int i = 0; i < h * w; ++i)
    for (int c = 0; c < 3; ++c) t[c][i / w][i % w] = px[size_t(i)][size_t(c)];
  return t;
}

std::string run_file_command(const fs::path& p) {
  std::string out;
  FILE* pipe = ::popen(("/usr/bin/file -b '" + p.string() + "'").c_str(), "r");
  if (!pipe) return out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, pipe)) out += buf;
  ::pclose(pipe);
  return out;
}

void expect_input_error_naming(const fs::path& p, const std::string& fragment) {
  try {
    read_png(p);
    ADD_FAILURE() << p << ": no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Png, RoundTripChwAndHwc) {
  auto dir = test::temp_dir("png-roundtrip");
  torch::manual_seed(7);
  auto chw = torch::randint(0, 256, {3, 37, 53}, torch::kByte);
  write_png(dir / "chw.png", chw);
  EXPECT_TRUE(torch::equal(read_png(dir / "chw.png"), chw));
  // HWC input and a non-contiguous view give the same file contents back.
  write_png(dir / "hwc.png", chw.permute({1, 2, 0}));
  EXPECT_TRUE(torch::equal(read_png(dir / "hwc.png"), chw));
  // Overwriting an existing file replaces it; no temporary file is left behind.
  auto other = torch::randint(0, 256, {3, 5, 4}, torch::kByte);
  write_png(dir / "chw.png", other);
  EXPECT_TRUE(torch::equal(read_png(dir / "chw.png"), other));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"chw.png", "hwc.png"}));
  fs::remove_all(dir);
}

// The zlib level changes the file's size, never its pixels.
TEST(Png, ZlibLevelKeepsThePixels) {
  auto dir = test::temp_dir("png-level");
  // A smooth image with some noise: compressible, so the levels differ in size.
  auto ramp = torch::arange(0, 96 * 128, torch::kLong).remainder(256).to(torch::kByte).view({1, 96, 128}).repeat({3, 1, 1});
  torch::manual_seed(8);
  auto image = (ramp + torch::randint(0, 2, ramp.sizes(), torch::kByte)).contiguous();
  write_png(dir / "fast.png", image, 1);
  write_png(dir / "small.png", image, 9);
  write_png(dir / "default.png", image);
  for (const char* f : {"fast.png", "small.png", "default.png"}) EXPECT_TRUE(torch::equal(read_png(dir / f), image)) << f;
  EXPECT_LT(fs::file_size(dir / "small.png"), fs::file_size(dir / "fast.png"));
  fs::remove_all(dir);
}

TEST(Png, FileIsAValidPng) {
  auto dir = test::temp_dir("png-valid");
  auto img = torch::randint(0, 256, {3, 21, 34}, torch::kByte);
  write_png(dir / "x.png", img);
  // The signature and IHDR as the PNG specification lays them out.
  std::ifstream in(dir / "x.png", std::ios::binary);
  std::string head(33, '\0');
  in.read(head.data(), 33);
  EXPECT_EQ(head.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(head.substr(12, 4), "IHDR");
  auto be32 = [&](size_t o) {
    return (uint32_t(uint8_t(head[o])) << 24) | (uint32_t(uint8_t(head[o + 1])) << 16) |
           (uint32_t(uint8_t(head[o + 2])) << 8) | uint32_t(uint8_t(head[o + 3]));
  };
  EXPECT_EQ(be32(16), 34u);          // width
  EXPECT_EQ(be32(20), 21u);          // height
  EXPECT_EQ(uint8_t(head[24]), 8);   // bit depth
  EXPECT_EQ(uint8_t(head[25]), 2);   // colour type RGB
  if (fs::exists("/usr/bin/file")) {
    auto desc = run_file_command(dir / "x.png");
    EXPECT_NE(desc.find("PNG image data, 34 x 21, 8-bit/color RGB"), std::string::npos) << desc;
  }
  fs::remove_all(dir);
}

TEST(Png, WriteRejectsBadTensors) {
  auto dir = test::temp_dir("png-badtensor");
  EXPECT_THROW(write_png(dir / "f.png", torch::rand({3, 4, 4})), UsageError);
  EXPECT_THROW(write_png(dir / "f.png", torch::zeros({4, 4, 4}, torch::kByte)), UsageError);
  EXPECT_THROW(write_png(dir / "f.png", torch::zeros({1, 3, 4, 4}, torch::kByte)), UsageError);
  EXPECT_THROW(write_png(dir / "no-such-dir" / "f.png", torch::zeros({3, 4, 4}, torch::kByte)), InputError);
  EXPECT_FALSE(fs::exists(dir / "f.png"));
  fs::remove_all(dir);
}

TEST(Png, ToUint8RoundsLikeNumpy) {
  // diffusers: (images * 255).round().astype("uint8") on float32 after clamp to [0,1].
  std::vector<float> xs = {0.0f, 1.0f, -0.25f, 1.5f, 0.5f, 0.25f, 0.75f, 0.5f / 255, 1.5f / 255, 2.5f / 255,
                           0.49f / 255, 0.51f / 255, 254.5f / 255, 254.49f / 255, 127.5f / 255, 128.5f / 255};
  auto in = torch::tensor(xs).reshape({1, 1, -1}).expand({3, 1, int64_t(xs.size())}).contiguous();
  auto out = to_uint8(in);
  ASSERT_EQ(out.scalar_type(), torch::kByte);
  ASSERT_EQ(out.sizes(), in.sizes());
  for (size_t i = 0; i < xs.size(); ++i) {
    const float c = std::min(std::max(xs[i], 0.0f), 1.0f);
    const int expect = int(std::nearbyint(c * 255.0f));  // default rounding mode: ties to even
    EXPECT_EQ(out[2][0][int64_t(i)].item<int>(), expect) << "x = " << xs[i];
  }
  // A few values spelled out: 0.5 -> 127.5 -> 128 (tie to even), 0.25 -> 63.75 -> 64, 0.75 -> 191.
  EXPECT_EQ(out[0][0][4].item<int>(), 128);
  EXPECT_EQ(out[0][0][5].item<int>(), 64);
  EXPECT_EQ(out[0][0][6].item<int>(), 191);
  EXPECT_EQ(out[0][0][2].item<int>(), 0);
  EXPECT_EQ(out[0][0][3].item<int>(), 255);
  EXPECT_EQ(out[0][0][7].item<int>(), 0);  // 0.5/255 -> 0.5 -> 0
  // Batched input and double input.
  auto batch = torch::rand({2, 3, 4, 5}, torch::kDouble);
  auto ub = to_uint8(batch);
  EXPECT_EQ(ub.sizes(), batch.sizes());
  EXPECT_TRUE(torch::equal(ub, (batch.to(torch::kFloat) * 255.0f).round().to(torch::kByte)));
  EXPECT_THROW(to_uint8(torch::zeros({3, 2, 2}, torch::kByte)), UsageError);
  EXPECT_THROW(to_uint8(torch::zeros({2, 2, 2})), UsageError);
}

TEST(Png, ReadsOtherColourTypesAsPillowConvertRgb) {
  auto dir = test::temp_dir("png-types");
  // 8-bit grey: replicated.
  write_raw_png(dir / "g8.png", 3, 1, 8, PNG_COLOR_TYPE_GRAY, {bytes({0, 77, 255})});
  EXPECT_TRUE(torch::equal(read_png(dir / "g8.png"), rgb(1, 3, {{0, 0, 0}, {77, 77, 77}, {255, 255, 255}})));
  // 1-bit and 4-bit grey scale to 0..255 (Pillow's L;1 and L;4 unpackers: *255 and *17).
  write_raw_png(dir / "g1.png", 4, 1, 1, PNG_COLOR_TYPE_GRAY, {bytes({0xA0})});  // 1 0 1 0
  EXPECT_TRUE(torch::equal(read_png(dir / "g1.png"),
                           rgb(1, 4, {{255, 255, 255}, {0, 0, 0}, {255, 255, 255}, {0, 0, 0}})));
  write_raw_png(dir / "g4.png", 2, 1, 4, PNG_COLOR_TYPE_GRAY, {bytes({0x3F})});
  EXPECT_TRUE(torch::equal(read_png(dir / "g4.png"), rgb(1, 2, {{51, 51, 51}, {255, 255, 255}})));
  // Grey + alpha: alpha dropped, not composited.
  write_raw_png(dir / "ga.png", 2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, {bytes({100, 7, 200, 0})});
  EXPECT_TRUE(torch::equal(read_png(dir / "ga.png"), rgb(1, 2, {{100, 100, 100}, {200, 200, 200}})));
  // RGBA: alpha dropped.
  write_raw_png(dir / "rgba.png", 2, 1, 8, PNG_COLOR_TYPE_RGB_ALPHA, {bytes({10, 20, 30, 0, 40, 50, 60, 128})});
  EXPECT_TRUE(torch::equal(read_png(dir / "rgba.png"), rgb(1, 2, {{10, 20, 30}, {40, 50, 60}})));
  // Palette with tRNS transparency: colours looked up, transparency ignored.
  std::vector<png_color> pal = {{1, 2, 3}, {250, 128, 0}, {9, 99, 199}};
  write_raw_png(dir / "pal.png", 2, 2, 2, PNG_COLOR_TYPE_PALETTE, {bytes({0x60}), bytes({0x80})}, pal, {0, 255});
  EXPECT_TRUE(torch::equal(read_png(dir / "pal.png"),
                           rgb(2, 2, {{250, 128, 0}, {9, 99, 199}, {9, 99, 199}, {1, 2, 3}})));
  // 16-bit RGB and RGBA keep the high byte (Pillow's RGB;16B / RGBA;16B raw modes).
  write_raw_png(dir / "rgb16.png", 2, 1, 16, PNG_COLOR_TYPE_RGB,
                {bytes({0x12, 0xff, 0x12, 0x80, 0x12, 0x7f, 0xff, 0xff, 0x00, 0x80, 0x00, 0xff})});
  EXPECT_TRUE(torch::equal(read_png(dir / "rgb16.png"), rgb(1, 2, {{0x12, 0x12, 0x12}, {255, 0, 0}})));
  write_raw_png(dir / "rgba16.png", 1, 1, 16, PNG_COLOR_TYPE_RGB_ALPHA,
                {bytes({0x80, 0xff, 0x01, 0x02, 0xfe, 0x01, 0x00, 0x00})});
  EXPECT_TRUE(torch::equal(read_png(dir / "rgba16.png"), rgb(1, 1, {{0x80, 0x01, 0xfe}})));
  // 16-bit grey: high byte too (see image.hpp on how Pillow differs here).
  write_raw_png(dir / "g16.png", 2, 1, 16, PNG_COLOR_TYPE_GRAY, {bytes({0xab, 0xcd, 0x00, 0xff})});
  EXPECT_TRUE(torch::equal(read_png(dir / "g16.png"), rgb(1, 2, {{0xab, 0xab, 0xab}, {0, 0, 0}})));
  // Adam7 interlacing decodes to the same pixels.
  torch::manual_seed(3);
  auto img = torch::randint(0, 256, {3, 13, 11}, torch::kByte);
  auto hwc = img.permute({1, 2, 0}).contiguous();
  std::vector<std::string> rows;
  for (int y = 0; y < 13; ++y) rows.emplace_back(reinterpret_cast<const char*>(hwc[y].data_ptr<uint8_t>()), 33);
  write_raw_png(dir / "adam7.png", 11, 13, 8, PNG_COLOR_TYPE_RGB, rows, {}, {}, PNG_INTERLACE_ADAM7);
  EXPECT_TRUE(torch::equal(read_png(dir / "adam7.png"), img));
  fs::remove_all(dir);
}

TEST(Png, CorruptOrMissingFilesAreInputErrors) {
  auto dir = test::temp_dir("png-corrupt");
  auto img = torch::randint(0, 256, {3, 32, 32}, torch::kByte);
  write_png(dir / "good.png", img);
  std::ifstream in(dir / "good.png", std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  expect_input_error_naming(dir / "missing.png", "no such file");
  std::ofstream(dir / "text.png") << "hello, not a png";
  expect_input_error_naming(dir / "text.png", "not a PNG");
  std::ofstream(dir / "cut.png", std::ios::binary) << data.substr(0, data.size() / 2);
  expect_input_error_naming(dir / "cut.png", "corrupt PNG");
  std::ofstream(dir / "sig-only.png", std::ios::binary) << data.substr(0, 8);
  expect_input_error_naming(dir / "sig-only.png", "corrupt PNG");
  std::string flipped = data;
  const size_t idat = flipped.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  flipped[idat + 10] = static_cast<char>(flipped[idat + 10] ^ 0x55);  // inside the data: CRC mismatch
  std::ofstream(dir / "flipped.png", std::ios::binary) << flipped;
  expect_input_error_naming(dir / "flipped.png", "corrupt PNG");
  fs::create_directories(dir / "folder.png");
  expect_input_error_naming(dir / "folder.png", "not a regular file");
  fs::remove_all(dir);
}

TEST(Png, ListPngsSortedByName) {
  auto dir = test::temp_dir("png-list");
  auto img = torch::zeros({3, 2, 2}, torch::kByte);
  for (const char* n : {"0010.png", "0002.png", "b.PNG", "a.png"}) write_png(dir / n, img);
  std::ofstream(dir / "notes.txt") << "x";
  std::ofstream(dir / "png") << "x";
  fs::create_directories(dir / "sub.png");
  auto got = list_pngs(dir);
  std::vector<std::string> names;
  for (const auto& p : got) names.push_back(p.filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"0002.png", "0010.png", "a.png", "b.PNG"}));
  EXPECT_EQ(got[0].parent_path(), dir);
  EXPECT_THROW(list_pngs(dir / "nope"), InputError);
  fs::remove_all(dir);
}

TEST(Png, SequenceIsNumberedInBatchOrder) {
  auto dir = test::temp_dir("png-sequence") / "images";  // created by the writer
  torch::manual_seed(3);
  const auto images = torch::randint(0, 256, {3, 3, 5, 4}, torch::kByte);
  write_png_sequence(dir, images);
  const auto files = list_pngs(dir);
  ASSERT_EQ(files.size(), 3u);
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(files[i].filename(), png_sequence_name(i));
    EXPECT_TRUE(torch::equal(read_png(files[i]), images[static_cast<int64_t>(i)])) << files[i];
  }
  EXPECT_EQ(png_sequence_name(0), "000000.png");
  EXPECT_EQ(png_sequence_name(123456), "123456.png");
  EXPECT_EQ(png_sequence_name(1234567), "1234567.png");  // past six digits the name grows, and still sorts after
  EXPECT_THROW(write_png_sequence(dir, torch::zeros({3, 5, 4}, torch::kByte)), UsageError);
  fs::remove_all(dir.parent_path());
}

// Many images at once, on several threads: each file holds its own image, results come back in the
// files' order, and a bad image or file among them is reported as the single call would.
TEST(Png, ManyAtOnceKeepTheirOrderAndErrors) {
  const auto dir = test::temp_dir("png-many");
  torch::manual_seed(4);
  std::vector<fs::path> files;
  std::vector<at::Tensor> images;
  for (int i = 0; i < 23; ++i) {
    files.push_back(dir / ("img" + std::to_string(i) + ".png"));
    images.push_back(torch::randint(0, 256, {3, 4 + i % 5, 3 + i % 7}, torch::kByte));
  }
  write_pngs(files, images);
  const std::vector<at::Tensor> back = read_pngs(files);
  ASSERT_EQ(back.size(), images.size());
  for (size_t i = 0; i < images.size(); ++i) EXPECT_TRUE(torch::equal(back[i], images[i])) << files[i];
  EXPECT_THROW(write_pngs(files, {images.front()}), UsageError);  // one image per file
  images[17] = torch::zeros({3, 4, 4});                           // float: refused as by write_png
  EXPECT_THROW(write_pngs(files, images), UsageError);
  files[9] = dir / "missing.png";
  EXPECT_THROW(read_pngs(files), InputError);
  fs::remove_all(dir);
}
