#include "diffbench/accel/plugin.hpp"

#include <dlfcn.h>

#include "diffbench/error.hpp"

namespace diffbench {

std::shared_ptr<void> load_plugin(const std::filesystem::path& file, MethodRegistry& registry) {
  const std::string where = file.string();
  if (!std::filesystem::exists(file)) throw InputError("plugin file does not exist", where);
  // A path with a slash is never searched for by dlopen.
  const std::string path = file.is_absolute() ? where : (std::filesystem::current_path() / file).string();
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = ::dlerror();
    throw InputError(std::string("cannot load plugin: ") + (err ? err : "unknown error"), where);
  }
  // Plugins stay loaded until the process ends: methods they created may outlive the registry
  // that loaded them (and unloading code that LibTorch may still reference is unsafe).
  std::shared_ptr<void> lib(handle, [](void*) {});
  using VersionFn = int (*)();
  using RegisterFn = void (*)(MethodRegistry*);
  auto version = reinterpret_cast<VersionFn>(::dlsym(handle, "diffbench_plugin_abi_version"));
  if (!version) throw InputError("not a diffbench plugin: symbol diffbench_plugin_abi_version is missing", where);
  const int v = version();
  if (v != DIFFBENCH_PLUGIN_ABI)
    throw InputError("plugin ABI version " + std::to_string(v) + " does not match diffbench's " +
                         std::to_string(DIFFBENCH_PLUGIN_ABI) + "; rebuild the plugin against this diffbench",
                     where);
  auto reg = reinterpret_cast<RegisterFn>(::dlsym(handle, "diffbench_register_methods"));
  if (!reg) throw InputError("plugin lacks the entry symbol diffbench_register_methods", where);
  reg(&registry);
  return lib;
}

}  // namespace diffbench
