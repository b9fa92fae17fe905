#include "diffbench/io/gzip.hpp"

#include <zlib.h>

#include "diffbench/error.hpp"
#include "diffbench/io/read_file.hpp"

namespace diffbench {

std::string read_gzip_file(const std::filesystem::path& file, uint64_t max_bytes) {
  const std::string packed = read_regular_file(file, max_bytes);
  std::string out;
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw InputError("cannot start gzip decompression", file.string());
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(packed.data()));
  z.avail_in = static_cast<uInt>(packed.size());
  int rc = Z_OK;
  bool too_big = false;
  char buffer[1 << 16];
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(buffer);
    z.avail_out = sizeof buffer;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - z.avail_out);
    too_big = out.size() > max_bytes;
    if (rc == Z_STREAM_END && z.avail_in > 0 && !too_big) rc = inflateReset(&z);  // a further gzip member
    else if (rc != Z_OK || too_big) break;
  }
  const std::string why = too_big ? "decompresses to more than " + std::to_string(max_bytes) + " bytes"
                          : rc == Z_BUF_ERROR ? "the gzip stream is truncated"
                          : rc == Z_STREAM_END ? ""
                                               : std::string("not a valid gzip stream: ") + (z.msg ? z.msg : "corrupt data");
  inflateEnd(&z);
  if (!why.empty()) throw InputError(why, file.string());
  return out;
}

}  // namespace diffbench
