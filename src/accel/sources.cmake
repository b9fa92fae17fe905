list(APPEND DIFFBENCH_SOURCES
  src/accel/registry.cpp
  src/accel/plugin.cpp
  # T-GATE
  src/accel/tgate.cpp
)
