// libFuzzer target: the safetensors reader (header length, JSON header, dtypes, shapes, byte ranges,
// __metadata__) on arbitrary bytes. Any exception but InputError is a bug, and so is an accepted file
// whose tensors do not hold exactly the file's bytes or that does not survive save_safetensors and a
// second open unchanged.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>

#include "diffbench/error.hpp"
#include "diffbench/io/safetensors.hpp"
#include "fuzz_support.hpp"

using diffbench::fuzz::check;

namespace {

bool same_bytes(const at::Tensor& t, const void* bytes, size_t n) {
  return static_cast<size_t>(t.numel() * t.element_size()) == n && (n == 0 || std::memcmp(t.data_ptr(), bytes, n) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = diffbench::fuzz::write_scratch("in.safetensors", data, size);
  std::shared_ptr<const diffbench::SafetensorsFile> st;
  try {
    st = diffbench::SafetensorsFile::open(file);
  } catch (const diffbench::InputError&) {
    return 0;
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  const uint8_t* section = data + 8 + header_len;
  const uint64_t section_size = size - 8 - header_len;

  diffbench::StateDict tensors;
  for (const auto& info : st->tensors()) {
    check(info.begin <= info.end && info.end <= section_size, "an accepted byte range lies outside the data");
    const at::Tensor t = st->get(info.name);
    check(t.sizes().vec() == info.shape && t.scalar_type() == info.dtype, "get() differs from the header");
    check(same_bytes(t, section + info.begin, info.end - info.begin), "get() differs from the file's bytes");
    if (at::isFloatingType(info.dtype)) (void)st->get(info.name, at::kFloat);
    tensors[info.name] = t;
  }
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : st->metadata().items()) metadata[key] = value.get<std::string>();

  // What was read is written back and read again, unchanged.
  const auto copy = diffbench::fuzz::scratch_dir() / "copy.safetensors";
  diffbench::save_safetensors(copy, tensors, metadata);
  const auto again = diffbench::SafetensorsFile::open(copy);
  check(again->tensors().size() == tensors.size(), "the copy has another number of tensors");
  for (const auto& [name, t] : tensors) {
    const at::Tensor u = again->get(name);
    check(u.sizes() == t.sizes() && u.scalar_type() == t.scalar_type() &&
              same_bytes(u, t.data_ptr(), static_cast<size_t>(t.numel() * t.element_size())),
          "a tensor changed in the copy");
  }
  check(again->metadata() == st->metadata() || (metadata.empty() && again->metadata().is_null()),
        "__metadata__ changed in the copy");
  return 0;
}
