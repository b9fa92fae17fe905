// safetensors reading: memory-mapped, validated, never trusting the header.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// then the data. Offsets are relative to the end of the header.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace diffbench {

struct TensorInfo {
  std::string name;
  std::string dtype_name;  // as in the file: F32, F16, BF16, I64, U8, ...
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte range, relative to the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws InputError naming it when anything is off.
  static std::shared_ptr<const SafetensorsFile> open(const std::filesystem::path& file);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const nlohmann::json& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;

  // The tensor on the CPU, converted to `dtype` when given. The result owns its memory.
  at::Tensor get(const std::string& name, std::optional<at::ScalarType> dtype = std::nullopt) const;

  // Reads `size` bytes of the data section from `offset` into `dst` (pread: no page faults on a
  // mapping, safe from several threads at once); InputError on a read error or a file that shrank.
  void read_data(uint64_t offset, size_t size, void* dst) const;
  // Tells the kernel that [begin, end) of the data section will be read soon, in order.
  void will_read(uint64_t begin, uint64_t end) const;

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  int fd_ = -1;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  size_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  nlohmann::json metadata_;
};

// Name -> tensor, ordered by name.
using StateDict = std::map<std::string, at::Tensor>;

// Loads every tensor of a `.safetensors` file or of a sharded checkpoint given by its
// `*.safetensors.index.json`. Pickle formats (.bin, .ckpt, .pt, .pth) are refused, never unpickled.
StateDict load_safetensors(const std::filesystem::path& file,
                           std::optional<at::ScalarType> dtype = std::nullopt);

// Writes tensors (contiguous CPU copies are made as needed) to a `.safetensors` file via a
// temporary name and a rename, so a failed write never leaves a half-written file.
void save_safetensors(const std::filesystem::path& file, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace diffbench
