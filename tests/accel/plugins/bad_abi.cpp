// A plugin built for another ABI: loading it must fail with a clear error.
#include <diffbench/accel/plugin.hpp>

DIFFBENCH_PLUGIN_EXPORT int diffbench_plugin_abi_version() { return 999; }

DIFFBENCH_PLUGIN_EXPORT void diffbench_register_methods(diffbench::MethodRegistry*) {}
