// A plugin with the right ABI version but no diffbench_register_methods: loading it must fail.
#include <diffbench/accel/plugin.hpp>

DIFFBENCH_PLUGIN()
