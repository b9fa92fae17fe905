#include "weight_stream.hpp"

#include <algorithm>
#include <future>
#include <optional>

#if __has_include(<ATen/cuda/CUDAEvent.h>)
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define DIFFBENCH_HAVE_CUDA_STREAMS 1
#endif

#include "diffbench/error.hpp"

namespace diffbench {

namespace {

// Bytes [tensor_off, tensor_off + size) of copy `copy` sit at chunk_off in a chunk.
struct Piece {
  size_t copy;
  uint64_t tensor_off, chunk_off, size;
};

// A contiguous byte range of the data section, read with one pread.
struct Chunk {
  uint64_t begin = 0, size = 0;
  std::vector<Piece> pieces;
};

// The copies' byte ranges (sorted by offset) cut into chunks of at most chunk_bytes; a gap between
// two ranges (a tensor nobody asked for) starts a new chunk, so it is never read.
std::vector<Chunk> plan_chunks(const std::vector<TensorCopy>& copies, uint64_t chunk_bytes) {
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < copies.size(); ++i) {
    const TensorInfo& t = *copies[i].info;
    for (uint64_t at = t.begin; at < t.end;) {
      if (chunks.empty() || chunks.back().begin + chunks.back().size != at || chunks.back().size == chunk_bytes)
        chunks.push_back({at, 0, {}});
      Chunk& c = chunks.back();
      const uint64_t n = std::min(t.end - at, chunk_bytes - c.size);
      c.pieces.push_back({i, at - t.begin, c.size, n});
      c.size += n;
      at += n;
    }
  }
  return chunks;
}

// Where one copy's bytes go while its pieces arrive: its own memory when dtype and layout match,
// else a tensor in the file's dtype on its device, converted into it when complete.
class Target {
 public:
  void put(const TensorCopy& c, const at::Tensor& chunk, const Piece& p) {
    if (!bytes_.defined()) {
      const bool direct = c.dst.scalar_type() == c.info->dtype && c.dst.is_contiguous();
      if (!direct) staged_ = at::empty(c.info->shape, c.dst.options().dtype(c.info->dtype));
      bytes_ = (direct ? c.dst : staged_).reshape({-1}).view(at::kByte);
      remaining_ = c.info->end - c.info->begin;
    }
    bytes_.narrow(0, static_cast<int64_t>(p.tensor_off), static_cast<int64_t>(p.size))
        .copy_(chunk.narrow(0, static_cast<int64_t>(p.chunk_off), static_cast<int64_t>(p.size)), /*non_blocking=*/true);
    remaining_ -= p.size;
    if (remaining_ == 0) {
      if (staged_.defined()) c.dst.copy_(staged_, /*non_blocking=*/true);  // on the device, in stream order
      bytes_ = staged_ = at::Tensor();
    }
  }

 private:
  at::Tensor bytes_, staged_;
  uint64_t remaining_ = 0;
};

}  // namespace

void stream_tensors(const SafetensorsFile& file, std::vector<TensorCopy> copies, const StreamOptions& options) {
  if (options.chunk_bytes == 0 || options.buffers < 1) throw Error(ErrorKind::Runtime, "stream_tensors: bad staging options", file.path().string());
  std::sort(copies.begin(), copies.end(), [](const auto& a, const auto& b) { return a.info->begin < b.info->begin; });
  std::optional<at::Device> cuda;
  for (const auto& c : copies) {
    if (c.dst.numel() != static_cast<int64_t>(c.info->end - c.info->begin) / static_cast<int64_t>(at::elementSize(c.info->dtype)))
      throw Error(ErrorKind::Runtime, "stream_tensors: element counts differ for " + c.info->name, file.path().string());
    if (c.dst.is_cuda()) cuda = c.dst.device();
  }
  const std::vector<Chunk> chunks = plan_chunks(copies, options.chunk_bytes);
  if (chunks.empty()) return;
  file.will_read(chunks.front().begin, chunks.back().begin + chunks.back().size);

#ifdef DIFFBENCH_HAVE_CUDA_STREAMS
  // Copies run on a stream of their own; the caller sees them finished (synchronised) on return.
  std::optional<c10::cuda::CUDAGuard> device_guard;
  std::optional<c10::cuda::CUDAStreamGuard> stream_guard;
  if (cuda) {
    device_guard.emplace(*cuda);
    stream_guard.emplace(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, cuda->index()));
  }
#endif
  uint64_t largest = 0;
  for (const auto& c : chunks) largest = std::max(largest, c.size);
  const size_t count = std::min(static_cast<size_t>(options.buffers), chunks.size());
  // Declared before the reads so that, on an error, the readers are waited for before these go.
  std::vector<at::Tensor> buffers;
  for (size_t i = 0; i < count; ++i)
    buffers.push_back(at::empty({static_cast<int64_t>(largest)}, at::TensorOptions().dtype(at::kByte).pinned_memory(cuda.has_value())));
#ifdef DIFFBENCH_HAVE_CUDA_STREAMS
  std::vector<at::cuda::CUDAEvent> copied(count);  // the copies out of each buffer, once queued
#endif
  std::vector<std::future<void>> reads(count);
  auto start_read = [&](size_t c) {
    const size_t b = c % count;
    reads[b] = std::async(std::launch::async, [&, c, b] {
#ifdef DIFFBENCH_HAVE_CUDA_STREAMS
      if (cuda) copied[b].synchronize();  // the buffer's last chunk has left for the device
#endif
      file.read_data(chunks[c].begin, chunks[c].size, buffers[b].data_ptr());
    });
  };
  for (size_t c = 0; c < count; ++c) start_read(c);
  std::vector<Target> targets(copies.size());
  for (size_t c = 0; c < chunks.size(); ++c) {
    const size_t b = c % count;
    reads[b].get();
    for (const Piece& p : chunks[c].pieces) targets[p.copy].put(copies[p.copy], buffers[b], p);
#ifdef DIFFBENCH_HAVE_CUDA_STREAMS
    if (cuda) copied[b].record(c10::cuda::getCurrentCUDAStream());
#endif
    if (c + count < chunks.size()) start_read(c + count);
  }
#ifdef DIFFBENCH_HAVE_CUDA_STREAMS
  if (cuda) c10::cuda::getCurrentCUDAStream().synchronize();
#endif
}

}  // namespace diffbench
