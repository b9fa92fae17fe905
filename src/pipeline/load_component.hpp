// Pipeline-internal: makes a model component and reads its weights (shared by txt2img.cpp and the
// SDXL text encoders).
#pragma once

#include <filesystem>
#include <optional>

#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/blocks/layers.hpp"
#include "diffbench/pipeline/model_source.hpp"
#include "diffbench/pipeline/txt2img.hpp"

namespace diffbench {

// Makes a component with its parameters allocated once, uninitialised, on the target device and
// dtype (`dtype` overrides the options' one), and reads its weights straight into them (from the
// file, or from a single file's renamed tensors).
template <typename Module, typename Config>
Module load_component(const Config& config, const ComponentSource& source, const ModelOptions& opt,
                      const LoadOptions& lo = {}, std::optional<at::ScalarType> dtype = std::nullopt) {
  Module module{nullptr};
  {
    ParameterTarget target(at::TensorOptions().device(opt.device).dtype(dtype.value_or(opt.dtype)));
    module = Module(config);
  }
  if (source.parts.empty()) load_weights(*module, source.weights, lo);
  else load_weights(*module, source.parts, source.weights.string(), lo);
  module->to(opt.device, dtype.value_or(opt.dtype));  // the buffers the checkpoint does not hold
  module->eval();
  return module;
}

}  // namespace diffbench
