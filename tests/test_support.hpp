// Helpers shared by the test binaries: where the reference fixtures are, tensor comparison.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace diffbench::test {

// ../shared beside the project root, or $DIFFBENCH_SHARED when set.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("DIFFBENCH_SHARED"); env && *env) return env;
  return std::filesystem::path(DIFFBENCH_SOURCE_DIR).parent_path() / "shared";
}

inline std::filesystem::path fixture(const std::string& rel) { return shared_dir() / "fixtures" / rel; }
inline std::filesystem::path shared_data(const std::string& rel) { return shared_dir() / "data" / rel; }

// Why a test of the CUDA build's own kernels cannot run here, "" when it can: no CUDA device, or a build
// without the kernels (`built`: the library's own answer, e.g. have_fused_group_norm()).
inline std::string cuda_kernels_unavailable(bool built) {
  if (!torch::cuda::is_available()) return "no CUDA device";
  if (!built) return "built without the CUDA kernels";
  return "";
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// A fresh empty temporary directory, removed by the caller when wanted.
inline std::filesystem::path temp_dir(const std::string& tag) {
  auto dir = std::filesystem::temp_directory_path() /
             ("diffbench-test-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A file's bytes ("" when it cannot be read).
inline std::string read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// CRC-32 (IEEE, as zlib and PNG compute it).
inline uint32_t crc32(const std::string& bytes) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

inline std::string le32(uint32_t v) {
  return {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16), static_cast<char>(v >> 24)};
}

// One gzip member (RFC 1952) holding `text` (under 64 KiB) in a single stored deflate block (RFC 1951).
inline std::string gzip_stored(const std::string& text) {
  const auto n = static_cast<uint16_t>(text.size());
  const std::string header("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10);
  const std::string block = std::string(1, '\x01') + le32(n | (uint32_t(uint16_t(~n)) << 16)) + text;
  return header + block + le32(crc32(text)) + le32(static_cast<uint32_t>(text.size()));
}

// Flips the bits of a file's last byte in place (a copied fixture made writable first): the same
// size, other content.
inline void flip_last_byte(const std::filesystem::path& file) {
  std::filesystem::permissions(file, std::filesystem::perms::owner_write, std::filesystem::perm_options::add);
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-1, std::ios::end);
  const char last = static_cast<char>(f.get());
  f.seekp(-1, std::ios::end);
  f.put(static_cast<char>(last ^ 0x55));
}

// Sets an environment variable for a scope (an A/B switch, a cache's location); restores the old value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) ::setenv(name_.c_str(), old_.c_str(), 1);
    else ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_, old_;
  bool had_ = false;
};

}  // namespace diffbench::test

namespace diffbench::test {
// Set (to anything but "0") by .ci/run: there a missing fixture is a failure, not a skip.
inline bool fixtures_required() {
  const char* env = std::getenv("DIFFBENCH_REQUIRE_FIXTURES");
  return env && *env && std::string(env) != "0";
}
}  // namespace diffbench::test

// Skips the current test, naming the missing fixture, when `path` does not exist; fails it instead
// when DIFFBENCH_REQUIRE_FIXTURES is set (CI has ../shared, so a missing file there is a defect).
#define DIFFBENCH_REQUIRE_FIXTURE(path)                                                            \
  do {                                                                                             \
    if (!std::filesystem::exists(path)) {                                                          \
      if (::diffbench::test::fixtures_required())                                                  \
        GTEST_FAIL() << "fixture missing: " << (path).string()                                     \
                     << " (DIFFBENCH_REQUIRE_FIXTURES is set; see ../shared/README.md)";           \
      GTEST_SKIP() << "fixture missing: " << (path).string() << " (see ../shared/README.md)";      \
    }                                                                                              \
  } while (0)

// Asserts max |a-b| <= tol and prints the difference when it fails.
#define EXPECT_TENSOR_NEAR(a, b, tol)                                                    \
  do {                                                                                    \
    ASSERT_EQ((a).sizes(), (b).sizes());                                                  \
    const double diffbench_mad_ = ::diffbench::test::max_abs_diff((a), (b));           \
    EXPECT_LE(diffbench_mad_, (tol)) << "max abs diff " << diffbench_mad_ << " > " << (tol); \
  } while (0)
