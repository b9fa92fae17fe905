// Copying a checkpoint's tensors into a LibTorch module whose parameter names mirror the
// checkpoint's keys (LibTorch has no load_state_dict for Python checkpoints).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "diffbench/io/safetensors.hpp"

namespace diffbench {

struct LoadOptions {
  // Prefix stripped from checkpoint keys before matching (e.g. "text_model." for CLIP text
  // encoders saved by older transformers); keys without it are matched as they are.
  std::string strip_prefix;
  // Checkpoint keys that may be present without a matching parameter (exact names or prefixes
  // ending in '.'), e.g. "embeddings.position_ids".
  std::vector<std::string> ignore_unexpected;
  // load_weights' staging: the size of one read, and how many buffers of that size (reads in flight
  // + the one being copied out). Tests make chunks small to cut tensors across reads.
  size_t chunk_bytes = 64ull << 20;
  int buffers = 4;
};

// Copies every parameter and buffer of `module` from `weights`. Missing keys, unexpected keys and
// shape mismatches are reported together, by name, in one ModelError whose where() is `source`.
// Values are converted to each parameter's dtype and device.
void load_into(torch::nn::Module& module, const StateDict& weights, const std::string& source,
               const LoadOptions& options = {});

// Reads the weights of `file` (a `.safetensors` file, or a sharded checkpoint's
// `*.safetensors.index.json`) straight into every parameter and buffer of `module`, in the dtype and
// on the device each already has (make the module under a ParameterTarget so that it has them from
// the start): chunks are read from the file into staging buffers (pinned for CUDA, several reads in
// flight) and copied on, with any dtype conversion done where the parameter lives. No host copy of
// the whole file is made. Names and shapes are checked first, as load_into does, and nothing is
// copied when they disagree. Returns the bytes read.
uint64_t load_weights(torch::nn::Module& module, const std::filesystem::path& file, const LoadOptions& options = {});
// The same from tensors already chosen (and possibly renamed, or narrowed to a byte range and
// reshaped, as a single-file checkpoint's key table does); `source` names them in errors.
uint64_t load_weights(torch::nn::Module& module, const std::vector<CheckpointPart>& parts, const std::string& source,
                      const LoadOptions& options = {});

// The parameter and buffer names of `module`, sorted (for the name-parity tests).
std::vector<std::string> state_names(const torch::nn::Module& module);

}  // namespace diffbench
