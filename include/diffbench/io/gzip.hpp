// Reading gzip files a user names (zlib), bounded as read_file.hpp's readers are.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace diffbench {

// The decompressed bytes of a gzip file (one or more members), at most `max_bytes` of them (and at
// most that many compressed); a corrupt, truncated or oversized stream is an InputError naming the
// file (the gzip trailer's CRC and length are checked).
std::string read_gzip_file(const std::filesystem::path& file, uint64_t max_bytes = 256ull << 20);

}  // namespace diffbench
