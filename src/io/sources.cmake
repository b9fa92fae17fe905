list(APPEND DIFFBENCH_SOURCES
  src/io/json_config.cpp
  src/io/safetensors.cpp
  src/io/state_dict.cpp
)
