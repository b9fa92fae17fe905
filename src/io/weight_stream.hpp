// Copies tensors' bytes from a safetensors file straight into existing tensors (parameters) on
// any device, in any dtype: the file is read in large chunks (pread, several in flight on reader
// threads) into staging buffers (pinned for CUDA), and each chunk's pieces go to their tensors
// (asynchronous host-to-device copies on a loader stream). A tensor whose dtype differs from the
// file's, or that is not contiguous, is assembled in the file's dtype on its device and converted
// there. Host memory used: the staging buffers and nothing the size of the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "diffbench/io/safetensors.hpp"

namespace diffbench {

struct TensorCopy {
  const TensorInfo* info = nullptr;  // the file's tensor
  at::Tensor dst;                    // same number of elements; any dtype, device and layout
};

struct StreamOptions {
  size_t chunk_bytes = 64ull << 20;  // one staging buffer
  int buffers = 4;                   // staging buffers: buffers - 1 reads in flight while one is copied out
};

// Fills every copy's dst from `file`; returns when all of them hold their values.
void stream_tensors(const SafetensorsFile& file, std::vector<TensorCopy> copies, const StreamOptions& options = {});

}  // namespace diffbench
