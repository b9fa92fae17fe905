#include "diffbench/accel/plugin.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include "diffbench/error.hpp"
#include "diffbench/io/read_file.hpp"

namespace diffbench {

namespace {

std::string dl_error() {
  const char* err = ::dlerror();
  return err ? err : "unknown error";
}

}  // namespace

std::shared_ptr<void> load_plugin(const std::filesystem::path& file, MethodRegistry& registry) {
  const std::string where = file.string();
  if (!std::filesystem::exists(file)) throw InputError("plugin file does not exist", where);
  ::close(open_regular_file(file));  // a FIFO or device is refused before dlopen could block on it
  // A path with a slash is never searched for by dlopen.
  const std::string path = file.is_absolute() ? where : (std::filesystem::current_path() / file).string();
  // First a lazy, local load only to look the two symbols up: no function of the plugin is called
  // before both exist. (dlopen itself runs the library's static constructors: a plugin is trusted
  // code, loaded only from a path the user names; docs/plugins.md.)
  void* probe = ::dlopen(path.c_str(), RTLD_LAZY | RTLD_LOCAL);
  if (!probe) throw InputError("cannot load plugin: " + dl_error(), where);
  const bool has_version = ::dlsym(probe, "diffbench_plugin_abi_version") != nullptr;
  const bool has_entry = ::dlsym(probe, "diffbench_register_methods") != nullptr;
  if (!has_version || !has_entry) {
    ::dlclose(probe);
    throw InputError(!has_version ? "not a diffbench plugin: symbol diffbench_plugin_abi_version is missing"
                                  : "plugin lacks the entry symbol diffbench_register_methods",
                     where);
  }
  // Then bind every symbol now, so that one the plugin needs but diffbench lacks fails here.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ::dlclose(probe);
  if (!handle) throw InputError("cannot load plugin: " + dl_error(), where);
  // Plugins stay loaded until the process ends: methods they created may outlive the registry
  // that loaded them (and unloading code that LibTorch may still reference is unsafe).
  std::shared_ptr<void> lib(handle, [](void*) {});
  using VersionFn = int (*)();
  using RegisterFn = void (*)(MethodRegistry*);
  auto version = reinterpret_cast<VersionFn>(::dlsym(handle, "diffbench_plugin_abi_version"));
  const int v = version();
  if (v != DIFFBENCH_PLUGIN_ABI)
    throw InputError("plugin ABI version " + std::to_string(v) + " does not match diffbench's " +
                         std::to_string(DIFFBENCH_PLUGIN_ABI) + "; rebuild the plugin against this diffbench",
                     where);
  auto reg = reinterpret_cast<RegisterFn>(::dlsym(handle, "diffbench_register_methods"));
  reg(&registry);
  return lib;
}

}  // namespace diffbench
