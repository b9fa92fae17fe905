// The built-in acceleration methods. Each registers itself through one function;
// MethodRegistry::with_builtins() calls them all (src/accel/builtins.cpp).
#pragma once

#include "diffbench/accel/method.hpp"

namespace diffbench {

// DeepCache (src/accel/deepcache.cpp): cache_interval, cache_branch_id, skip_mode, center, pow.
void register_deepcache(MethodRegistry& registry);

// ToMe (src/accel/tome.cpp, tomesd.apply_patch): ratio, max_downsample, sx, sy, use_rand,
// merge_attn, merge_crossattn, merge_mlp.
void register_tome(MethodRegistry& registry);

// T-GATE (src/accel/tgate.cpp): gate_step, sp_interval, fi_interval, warm_up.
void register_tgate(MethodRegistry& registry);

}  // namespace diffbench
