// libFuzzer target: read_png (libpng through diffbench's bounds and conversion to 8-bit RGB) on
// arbitrary bytes. The chunk CRCs of the input are recomputed first, so that mutations reach the
// chunks' contents instead of stopping at a checksum. Any exception but InputError is a bug, and so
// is an accepted image that is not uint8 [3,H,W] within the side bound or does not survive write_png.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "diffbench/error.hpp"
#include "diffbench/io/image.hpp"
#include "fuzz_support.hpp"

using diffbench::fuzz::check;

namespace {

uint32_t read_be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// Sets each complete chunk's CRC to the one its type and data have.
void fix_crcs(std::string& png) {
  auto* b = reinterpret_cast<uint8_t*>(png.data());
  for (size_t at = 8; at + 12 <= png.size();) {
    const uint64_t len = read_be32(b + at);
    if (len > png.size() - at - 12) break;
    const uint32_t crc = static_cast<uint32_t>(crc32(0, b + at + 4, static_cast<uInt>(len + 4)));
    for (int i = 0; i < 4; ++i) b[at + 8 + len + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
    at += 12 + len;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  fix_crcs(bytes);
  const auto file = diffbench::fuzz::write_scratch("in.png", bytes.data(), bytes.size());
  at::Tensor image;
  try {
    image = diffbench::read_png(file);
  } catch (const diffbench::InputError&) {
    return 0;
  }
  check(image.scalar_type() == at::kByte && image.dim() == 3 && image.size(0) == 3, "not uint8 [3,H,W]");
  check(image.size(1) >= 1 && image.size(2) >= 1 && image.size(1) <= 16384 && image.size(2) <= 16384,
        "a side outside 1..16384");
  check(image.is_contiguous(), "not contiguous");
  const auto copy = diffbench::fuzz::scratch_dir() / "copy.png";
  diffbench::write_png(copy, image);
  check(diffbench::read_png(copy).equal(image), "write_png then read_png changed the pixels");
  return 0;
}
