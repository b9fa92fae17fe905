// Comparing weight files by content, not by path.
#include "diffbench/io/file_identity.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <iomanip>
#include <sstream>

#include "diffbench/error.hpp"
#include "diffbench/io/read_file.hpp"

namespace diffbench {

namespace fs = std::filesystem;

// 64-bit content hash (FNV-1a over 8-byte words, then the tail bytes), reading through mmap.
std::string content_hash(const fs::path& file) {
  const int fd = open_regular_file(file);
  struct stat st {};
  ::fstat(fd, &st);
  const size_t size = static_cast<size_t>(st.st_size);
  uint64_t h = 1469598103934665603ull ^ size;
  if (size > 0) {
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      ::close(fd);
      throw InputError("cannot map for hashing", file.string());
    }
    ::madvise(map, size, MADV_SEQUENTIAL);
    const auto* p = static_cast<const unsigned char*>(map);
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 1099511628211ull;
      h ^= h >> 29;
    }
    for (; i < size; ++i) h = (h ^ p[i]) * 1099511628211ull;
    ::munmap(map, size);
  }
  ::close(fd);
  std::ostringstream o;
  o << std::hex << std::setw(16) << std::setfill('0') << h;
  return o.str();
}


bool same_content(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (fs::equivalent(a, b, ec)) return true;
  const auto size_a = fs::file_size(a, ec);
  if (ec) content_hash(a);  // throws InputError naming the file (missing, a FIFO, ...)
  const auto size_b = fs::file_size(b, ec);
  if (ec) content_hash(b);
  if (size_a != size_b) return false;
  return content_hash(a) == content_hash(b);
}

}  // namespace diffbench
