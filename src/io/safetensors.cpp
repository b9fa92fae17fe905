#include "diffbench/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/read_file.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

// Header bound used by the reference implementation (100 MB).
constexpr uint64_t kMaxHeader = 100ull * 1024 * 1024;

struct DtypeEntry {
  const char* name;
  at::ScalarType type;
  size_t size;
};

constexpr DtypeEntry kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},   {"BF16", at::kBFloat16, 2},
    {"I64", at::kLong, 8},   {"I32", at::kInt, 4},   {"I16", at::kShort, 2},  {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1},
};

const DtypeEntry* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  return nullptr;
}

bool is_pickle_path(const fs::path& p) {
  const auto ext = p.extension().string();
  return ext == ".bin" || ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".pkl";
}

}  // namespace

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const fs::path& file) {
  const std::string where = file.string();
  if (is_pickle_path(file))
    throw InputError("pickle checkpoints are not loaded (they can run code); convert it to .safetensors "
                     "(e.g. with diffusers' save_pretrained(safe_serialization=True))",
                     where);
  const int fd = open_regular_file(file);  // a FIFO fails here instead of blocking
  struct stat st {};
  ::fstat(fd, &st);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    throw InputError("file too short for a safetensors header (" + std::to_string(size) + " bytes)", where);
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    throw InputError(std::string("cannot map: ") + std::strerror(err), where);
  }

  std::shared_ptr<SafetensorsFile> out(new SafetensorsFile());
  out->fd_ = fd;  // kept for read_data
  out->path_ = file;
  out->map_ = static_cast<const uint8_t*>(map);
  out->map_size_ = size;

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | out->map_[i];
  if (header_len > kMaxHeader)
    throw InputError("header length " + std::to_string(header_len) + " exceeds the 100 MB bound", where);
  if (header_len > size - 8)
    throw InputError("header length " + std::to_string(header_len) + " runs past the end of the file (" +
                         std::to_string(size) + " bytes): truncated or not a safetensors file",
                     where);
  out->data_start_ = 8 + header_len;
  const uint64_t data_size = size - out->data_start_;

  // Nesting bounded and duplicate names refused (JSON would keep the last one silently).
  const auto* text = reinterpret_cast<const char*>(out->map_ + 8);
  const nlohmann::json header = parse_json(text, text + header_len, where + " (header)", /*unique_keys=*/true);
  if (!header.is_object()) throw InputError("header is not a JSON object", where);

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it.value().is_object()) throw InputError("__metadata__ must be an object of strings", where);
      for (auto m = it.value().begin(); m != it.value().end(); ++m)
        if (!m.value().is_string())
          throw InputError("__metadata__['" + m.key() + "'] must be a string, not " + std::string(m.value().type_name()),
                           where);
      out->metadata_ = it.value();
      continue;
    }
    const auto& v = it.value();
    const std::string tw = where + " [tensor " + name + "]";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw InputError("entry needs dtype, shape and data_offsets", tw);
    TensorInfo info;
    info.name = name;
    // JSON would convert 1.5 or -1 to an integer silently: every number must be a non-negative integer.
    auto is_count = [](const nlohmann::json& x) { return x.is_number_unsigned(); };
    const auto& shape = v.at("shape");
    const auto& offs = v.at("data_offsets");
    if (!v.at("dtype").is_string()) throw InputError("dtype must be a string", tw);
    if (!shape.is_array() || !std::all_of(shape.begin(), shape.end(), is_count))
      throw InputError("shape must be a list of non-negative integers, not " + shape.dump().substr(0, 200), tw);
    if (!offs.is_array() || offs.size() != 2 || !is_count(offs[0]) || !is_count(offs[1]))
      throw InputError("data_offsets must be two non-negative integers, not " + offs.dump().substr(0, 200), tw);
    if (shape.size() > 16) throw InputError("shape has more than 16 dimensions", tw);
    info.dtype_name = v.at("dtype").get<std::string>();
    for (const auto& d : shape) {
      if (d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) throw InputError("shape overflows", tw);
      info.shape.push_back(d.get<int64_t>());
    }
    info.begin = offs[0].get<uint64_t>();
    info.end = offs[1].get<uint64_t>();
    const DtypeEntry* dt = find_dtype(info.dtype_name);
    if (!dt) throw InputError("unsupported dtype '" + info.dtype_name + "'", tw);
    info.dtype = dt->type;
    // Element count and byte size must fit in 64 bits (a zero dimension makes the count 0).
    uint64_t numel = 1;
    bool overflow = false;
    for (auto d : info.shape) {
      if (d != 0 && numel > UINT64_MAX / static_cast<uint64_t>(d)) overflow = true;
      numel *= static_cast<uint64_t>(d);
    }
    if (std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end()) numel = 0, overflow = false;
    if (overflow || numel > static_cast<uint64_t>(INT64_MAX) / dt->size)
      throw InputError("shape's element count × dtype size overflows 64 bits", tw);
    if (info.end < info.begin) throw InputError("data_offsets end before they begin", tw);
    if (info.end > data_size)
      throw InputError("byte range [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                           ") lies outside the data section (" + std::to_string(data_size) + " bytes)",
                       tw);
    if (numel * dt->size != info.end - info.begin)
      throw InputError("shape × dtype size is " + std::to_string(numel * dt->size) + " bytes but the byte range holds " +
                           std::to_string(info.end - info.begin),
                       tw);
    out->tensors_.push_back(std::move(info));
  }
  // Ranges must not overlap. All of them, sorted, empty ones included at their offset: an empty
  // tensor between two others must not hide their overlap, nor lie inside another tensor.
  std::vector<const TensorInfo*> sorted;
  for (const auto& t : out->tensors_) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](auto* a, auto* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
  const TensorInfo* furthest = nullptr;  // the range ending last so far
  for (const TensorInfo* t : sorted) {
    if (furthest && t->begin < furthest->end)
      throw InputError("tensors " + furthest->name + " and " + t->name + " overlap", where);
    if (!furthest || t->end >= furthest->end) furthest = t;
  }
  std::sort(out->tensors_.begin(), out->tensors_.end(), [](auto& a, auto& b) { return a.name < b.name; });
  for (size_t i = 0; i < out->tensors_.size(); ++i) out->index_[out->tensors_[i].name] = i;
  return out;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), map_size_);
  if (fd_ >= 0) ::close(fd_);
}

void SafetensorsFile::read_data(uint64_t offset, size_t size, void* dst) const {
  auto* out = static_cast<uint8_t*>(dst);
  uint64_t at = data_start_ + offset;
  while (size > 0) {
    const ssize_t n = ::pread(fd_, out, size, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw InputError(std::string("read error: ") + std::strerror(errno), path_.string());
    if (n == 0) throw InputError("file ended early (changed while being read?)", path_.string());
    out += n;
    at += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
}

void SafetensorsFile::will_read(uint64_t begin, uint64_t end) const {
  if (end <= begin) return;
  const auto off = static_cast<off_t>(data_start_ + begin), len = static_cast<off_t>(end - begin);
  ::posix_fadvise(fd_, off, len, POSIX_FADV_SEQUENTIAL);
  ::posix_fadvise(fd_, off, len, POSIX_FADV_WILLNEED);  // readahead starts now, in the background
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw InputError("no tensor named '" + name + "'", path_.string());
  return tensors_[it->second];
}

at::Tensor SafetensorsFile::get(const std::string& name, std::optional<at::ScalarType> dtype) const {
  const TensorInfo& t = info(name);
  auto out = at::empty(t.shape, at::TensorOptions().dtype(t.dtype));
  if (t.end > t.begin) std::memcpy(out.data_ptr(), map_ + data_start_ + t.begin, t.end - t.begin);
  if (dtype && *dtype != t.dtype) out = out.to(*dtype);
  return out;
}

StateDict load_safetensors(const fs::path& file, std::optional<at::ScalarType> dtype) {
  StateDict out;
  const std::string name = file.filename().string();
  const std::string suffix = ".safetensors.index.json";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    auto index = read_json_file(file);
    if (!index.contains("weight_map") || !index["weight_map"].is_object())
      throw InputError("sharded index has no 'weight_map' object", file.string());
    std::map<std::string, std::vector<std::string>> by_shard;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw InputError("weight_map['" + it.key() + "'] is not a file name", file.string());
      by_shard[it.value().get<std::string>()].push_back(it.key());
    }
    for (const auto& [shard, names] : by_shard) {
      auto f = SafetensorsFile::open(file.parent_path() / shard);
      for (const auto& n : names) {
        if (!f->contains(n))
          throw InputError("index lists tensor '" + n + "' but the shard does not hold it", f->path().string());
        out[n] = f->get(n, dtype);
      }
    }
    return out;
  }
  auto f = SafetensorsFile::open(file);
  for (const auto& t : f->tensors()) out[t.name] = f->get(t.name, dtype);
  return out;
}

void save_safetensors(const fs::path& file, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    auto c = t.detach().to(at::kCPU).contiguous();
    const char* dn = dtype_name(c.scalar_type());
    if (!dn) throw InputError("cannot save dtype " + std::string(c.dtype().name()), name);
    const uint64_t bytes = c.numel() * c.element_size();
    header[name] = {{"dtype", dn}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    blobs.push_back(c);
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError("cannot write", tmp.string());
    uint64_t n = h.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out.write(len, 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& b : blobs)
      out.write(static_cast<const char*>(b.data_ptr()), static_cast<std::streamsize>(b.numel() * b.element_size()));
    if (!out) throw InputError("write failed", tmp.string());
  }
  fs::rename(tmp, file);
}

}  // namespace diffbench
