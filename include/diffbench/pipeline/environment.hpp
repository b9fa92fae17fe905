// What a report records about where it ran: versions, the device, and the fast paths that apply there.
#pragma once

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace diffbench {

// Versions and device description for reports: the GPU's name on CUDA, and how many planned GEMM
// shapes (models/blocks/linear.hpp) apply to it, so that caches and resumed runs keyed by it change with them.
nlohmann::json environment_info(const at::Device& device);

}  // namespace diffbench
