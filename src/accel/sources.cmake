list(APPEND DIFFBENCH_SOURCES
  src/accel/registry.cpp
  src/accel/plugin.cpp
  src/accel/builtins.cpp
  src/accel/deepcache.cpp
  # T-GATE
  src/accel/tgate.cpp
)
# ToMe (tomesd)
list(APPEND DIFFBENCH_SOURCES
  src/accel/tome.cpp
  src/accel/tome_merge.cpp
)
