// Copying a checkpoint's tensors into a LibTorch module whose parameter names mirror the
// checkpoint's keys (LibTorch has no load_state_dict for Python checkpoints).
#pragma once

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
};

// Copies every parameter and buffer of `module` from `weights`. Missing keys, unexpected keys and
// shape mismatches are reported together, by name, in one ModelError whose where() is `source`.
// Values are converted to each parameter's dtype and device.
void load_into(torch::nn::Module& module, const StateDict& weights, const std::string& source,
               const LoadOptions& options = {});

// The parameter and buffer names of `module`, sorted (for the name-parity tests).
std::vector<std::string> state_names(const torch::nn::Module& module);

}  // namespace diffbench
