// Are baseline and candidate really the same model? Compare weight files by content, not path.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <iomanip>
#include <sstream>

#include "diffbench/error.hpp"
#include "diffbench/eval/evaluator.hpp"
#include "diffbench/io/diffusers_folder.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

// 64-bit content hash (FNV-1a over 8-byte words, then the tail bytes), reading through mmap.
std::string content_hash(const fs::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError("cannot open for hashing", file.string());
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

}  // namespace

nlohmann::json check_consistency(const PipelineSpec& baseline, const PipelineSpec& candidate, bool allow_mismatch) {
  const std::vector<std::string> parts = {"text_encoder", "unet", "vae"};
  auto a = DiffusersFolder::open(baseline.model, parts);
  auto b = DiffusersFolder::open(candidate.model, parts);
  nlohmann::json out;
  out["pipeline_type"] = {{"baseline", a.pipeline_class()}, {"candidate", b.pipeline_class()}};
  bool same = a.pipeline_class() == b.pipeline_class();
  std::vector<std::string> mismatched;
  for (const auto& part : parts) {
    const fs::path fa = fs::weakly_canonical(a.weights_file(part)), fb = fs::weakly_canonical(b.weights_file(part));
    nlohmann::json c = {{"baseline_file", fa.string()}, {"candidate_file", fb.string()}};
    bool equal = fa == fb;
    if (!equal) {
      const auto ha = content_hash(fa), hb = content_hash(fb);
      c["baseline_hash"] = ha;
      c["candidate_hash"] = hb;
      equal = ha == hb && fs::file_size(fa) == fs::file_size(fb);
    }
    c["identical"] = equal;
    if (!equal) mismatched.push_back(part);
    out["components"][part] = c;
  }
  same = same && mismatched.empty();
  out["same_model"] = same;
  out["differences"] = spec_differences(baseline, candidate);
  if (!same && !allow_mismatch) {
    std::string what = mismatched.empty() ? "pipeline types differ" : "weights differ in";
    for (const auto& m : mismatched) what += " " + m;
    throw InputError("baseline and candidate do not use the same model (" + what +
                         "); pass --allow-model-mismatch to compare them anyway",
                     candidate.model.string());
  }
  return out;
}

}  // namespace diffbench
