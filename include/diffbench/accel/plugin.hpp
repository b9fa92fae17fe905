// Shared-library plugins: a plugin is loaded by path (never searched for), must export
//
//   extern "C" int diffbench_plugin_abi_version();                          // == DIFFBENCH_PLUGIN_ABI
//   extern "C" void diffbench_register_methods(diffbench::MethodRegistry*); // calls registry->add(...)
//
// and is built against the same diffbench headers and LibTorch (see docs/plugins.md). The
// DIFFBENCH_PLUGIN macro below defines the version function.
#pragma once

#include <filesystem>
#include <memory>

#include "diffbench/accel/method.hpp"

#define DIFFBENCH_PLUGIN_ABI 2  // 2: StepHooks::single_branch

#define DIFFBENCH_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

// Put once in a plugin's source: defines the ABI version symbol.
#define DIFFBENCH_PLUGIN() \
  DIFFBENCH_PLUGIN_EXPORT int diffbench_plugin_abi_version() { return DIFFBENCH_PLUGIN_ABI; }

namespace diffbench {

// Loads `file`, checks its ABI version and lets it register its methods into `registry`. Errors
// (missing file, not a shared library, missing symbol, wrong version) are InputErrors naming the
// file. The library stays loaded until the process ends (never dlclose'd), so methods it created
// stay valid whatever happens to the registry.
std::shared_ptr<void> load_plugin(const std::filesystem::path& file, MethodRegistry& registry);

}  // namespace diffbench
