#include "diffbench/accel/builtins.hpp"

namespace diffbench {

MethodRegistry MethodRegistry::with_builtins() {
  MethodRegistry registry;
  register_deepcache(registry);
  register_tome(registry);
  register_tgate(registry);
  return registry;
}

}  // namespace diffbench
