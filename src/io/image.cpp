#include "diffbench/io/image.hpp"

#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "diffbench/error.hpp"
#include "diffbench/io/read_file.hpp"
#include "util/parallel.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

// libpng reports errors by longjmp. Everything the decoder/encoder owns lives in these structs,
// outside the frame that calls setjmp, so a longjmp skips no destructor.
struct PngMessages {
  std::string error;
};

void on_png_error(png_structp png, png_const_charp msg) {
  auto* m = static_cast<PngMessages*>(png_get_error_ptr(png));
  if (m) m->error = msg ? msg : "unknown libpng error";
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}  // Pillow ignores what libpng only warns about

struct MemoryReader {
  const std::string* data = nullptr;
  size_t pos = 0;
};

void read_from_memory(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<MemoryReader*>(png_get_io_ptr(png));
  if (n > r->data->size() - r->pos) png_error(png, "file is truncated");
  std::memcpy(out, r->data->data() + r->pos, n);
  r->pos += n;
}

// Bounds on a decoded image: a side of at most 16384 pixels, and no more bytes than deflate can
// expand the file to.
constexpr uint32_t kMaxPngSide = 16384;
constexpr uint64_t kMaxDeflateRatio = 1032;

struct Decoded {
  uint32_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // height * width * channels (3: RGB, 4: RGBA)
  std::vector<png_bytep> rows;
};

// Returns false with `msgs.error` set when libpng gives up. No object with a destructor is created
// between setjmp and the return.
bool decode_png(png_structp png, png_infop info, MemoryReader* reader, Decoded* out) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, reader, read_from_memory);
  png_set_user_limits(png, kMaxPngSide, kMaxPngSide);  // checked when the header is read
  png_read_info(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  const int color_type = png_get_color_type(png, info);
  // To 8-bit RGB as Pillow's convert("RGB") does: expand palettes and low-bit grey, keep the high
  // byte of 16-bit samples, replicate grey; alpha (also from a palette's tRNS) is dropped below,
  // without compositing.
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (bit_depth == 16) png_set_strip_16(png);
  if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out->width = png_get_image_width(png, info);
  out->height = png_get_image_height(png, info);
  out->channels = png_get_channels(png, info);
  if (png_get_bit_depth(png, info) != 8 || (out->channels != 3 && out->channels != 4) ||
      png_get_rowbytes(png, info) != size_t(out->width) * out->channels)
    png_error(png, "unexpected row layout after conversion to 8-bit RGB");
  // Deflate expands at most 1032:1, so a header asking for more pixels than the file's bytes can
  // encode is a lie (or a decompression bomb): refuse before allocating.
  const uint64_t bytes = uint64_t(out->width) * out->height * out->channels;
  if (bytes > uint64_t(kMaxDeflateRatio) * reader->data->size() + 4096)
    png_error(png, "header's image size is more than the file's data can hold");
  out->pixels.resize(size_t(bytes));
  out->rows.resize(out->height);
  for (uint32_t y = 0; y < out->height; ++y)
    out->rows[y] = out->pixels.data() + size_t(y) * out->width * out->channels;
  png_read_image(png, out->rows.data());
  png_read_end(png, nullptr);
  return true;
}

struct Encoder {
  FILE* file = nullptr;
  uint32_t width = 0, height = 0;
  std::vector<png_bytep> rows;
};

bool encode_png(png_structp png, png_infop info, Encoder* enc) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, enc->file);
  png_set_IHDR(png, info, enc->width, enc->height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, enc->rows.data());
  png_write_end(png, nullptr);
  return true;
}

// [3,H,W] or [H,W,3] uint8 -> contiguous HWC uint8 on the CPU.
at::Tensor as_hwc_u8(const at::Tensor& image, const std::string& where) {
  if (!image.defined()) throw UsageError("write_png: image tensor is undefined", where);
  if (image.scalar_type() != at::kByte)
    throw UsageError(std::string("write_png: image must be uint8 (use to_uint8), got ") +
                         std::string(c10::toString(image.scalar_type())),
                     where);
  if (image.dim() != 3 || (image.size(0) != 3 && image.size(2) != 3))
    throw UsageError("write_png: image must be [3,H,W] or [H,W,3], got " + c10::str(image.sizes()), where);
  at::Tensor hwc = image.size(0) == 3 ? image.permute({1, 2, 0}) : image;
  if (hwc.size(0) == 0 || hwc.size(1) == 0)
    throw UsageError("write_png: image is empty " + c10::str(image.sizes()), where);
  if (hwc.size(0) > PNG_UINT_31_MAX || hwc.size(1) > PNG_UINT_31_MAX)
    throw UsageError("write_png: image too large for PNG " + c10::str(image.sizes()), where);
  return hwc.to(at::kCPU).contiguous();
}

}  // namespace

void write_png(const fs::path& file, const at::Tensor& image, int zlib_level) {
  const std::string where = file.string();
  at::Tensor hwc = as_hwc_u8(image, where);

  fs::path tmp = file;
  tmp += ".tmp-" + std::to_string(::getpid());
  Encoder enc;
  enc.file = std::fopen(tmp.c_str(), "wb");
  if (!enc.file) throw InputError(std::string("cannot create file: ") + std::strerror(errno), where);
  enc.height = static_cast<uint32_t>(hwc.size(0));
  enc.width = static_cast<uint32_t>(hwc.size(1));
  auto* base = hwc.data_ptr<uint8_t>();
  enc.rows.resize(enc.height);
  for (uint32_t y = 0; y < enc.height; ++y) enc.rows[y] = base + size_t(y) * enc.width * 3;

  PngMessages msgs;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &msgs, on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  const bool created = png && info;
  if (created && zlib_level >= 0) png_set_compression_level(png, std::min(zlib_level, 9));
  bool ok = created && encode_png(png, info, &enc);
  if (png) png_destroy_write_struct(&png, info ? &info : nullptr);
  if (!created) msgs.error = "out of memory creating the PNG writer";
  const bool io_error = std::ferror(enc.file) != 0;
  const bool close_error = std::fclose(enc.file) != 0;
  if (ok && (io_error || close_error)) {
    ok = false;
    msgs.error = std::string("write failed: ") + std::strerror(errno);
  }
  std::error_code ec;
  if (ok) {
    fs::rename(tmp, file, ec);
    if (ec) msgs.error = "cannot rename " + tmp.string() + " into place: " + ec.message();
  }
  if (!ok || ec) {
    fs::remove(tmp, ec);
    throw RuntimeFailure("writing PNG failed: " + msgs.error, where);
  }
}

at::Tensor to_uint8(const at::Tensor& image01) {
  if (!image01.defined() || !at::isFloatingType(image01.scalar_type()))
    throw UsageError("to_uint8: expects a floating-point image in [0,1]");
  if (!((image01.dim() == 3 && image01.size(0) == 3) || (image01.dim() == 4 && image01.size(1) == 3)))
    throw UsageError("to_uint8: expects [3,H,W] or [B,3,H,W], got " + c10::str(image01.sizes()));
  // float32 like diffusers (it calls .float() before .numpy()); torch.round rounds ties to even.
  // NaN becomes 0 (numpy's cast of NaN is undefined; this keeps ours defined).
  return image01.to(at::kFloat).nan_to_num(0.0).clamp(0.0, 1.0).mul(255.0f).round().to(at::kByte);
}

at::Tensor read_png(const fs::path& file) {
  const std::string where = file.string();
  const std::string data = read_regular_file(file);  // a FIFO or device is refused before it can block
  if (data.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(data.data()), 0, 8) != 0)
    throw InputError("not a PNG file (bad signature)", where);

  PngMessages msgs;
  MemoryReader reader;
  reader.data = &data;
  Decoded out;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &msgs, on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  const bool created = png && info;
  const bool ok = created && decode_png(png, info, &reader, &out);
  if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  if (!created) throw InputError("out of memory creating the PNG reader", where);
  if (!ok) throw InputError("corrupt PNG: " + msgs.error, where);

  auto hwc = at::from_blob(out.pixels.data(), {int64_t(out.height), int64_t(out.width), int64_t(out.channels)},
                           at::kByte);
  // clone, not contiguous(): a 1x1 view may already count as contiguous and would then keep
  // pointing into `out`, which dies here.
  return hwc.narrow(2, 0, 3).permute({2, 0, 1}).clone(at::MemoryFormat::Contiguous);  // [3,H,W] RGB
}

std::string png_sequence_name(size_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "%06zu.png", index);
  return name;
}

void write_png_sequence(const fs::path& dir, const at::Tensor& images) {
  if (!images.defined() || images.dim() != 4)
    throw UsageError("write_png_sequence: images must be [N,3,H,W]", dir.string());
  fs::create_directories(dir);
  std::vector<fs::path> files;
  for (int64_t i = 0; i < images.size(0); ++i) files.push_back(dir / png_sequence_name(static_cast<size_t>(i)));
  write_pngs(files, images.unbind(0));
}

void write_pngs(const std::vector<fs::path>& files, const std::vector<at::Tensor>& images) {
  if (files.size() != images.size()) throw UsageError("write_pngs: one image per file expected");
  parallel_for(files.size(), [&](size_t i) { write_png(files[i], images[i]); });
}

std::vector<at::Tensor> read_pngs(const std::vector<fs::path>& files) {
  std::vector<at::Tensor> out(files.size());
  parallel_for(files.size(), [&](size_t i) { out[i] = read_png(files[i]); });
  return out;
}

std::vector<fs::path> list_pngs(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError("not a folder", dir.string());
  std::vector<fs::path> out;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw InputError("cannot list folder: " + ec.message(), dir.string());
  for (; it != end; it.increment(ec)) {
    if (ec) throw InputError("cannot list folder: " + ec.message(), dir.string());
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (ext == ".png" && it->is_regular_file(ec)) out.push_back(it->path());
  }
  std::sort(out.begin(), out.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });
  return out;
}

}  // namespace diffbench
