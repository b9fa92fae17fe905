list(APPEND DIFFBENCH_SOURCES
  src/io/json_config.cpp
  src/io/safetensors.cpp
  src/io/state_dict.cpp
  src/io/diffusers_folder.cpp
  src/io/staging_dir.cpp
)
