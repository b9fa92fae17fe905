list(APPEND DIFFBENCH_SOURCES
  src/io/json_config.cpp
  src/io/safetensors.cpp
  src/io/state_dict.cpp
  src/io/diffusers_folder.cpp
  src/io/staging_dir.cpp
  src/io/file_identity.cpp
  src/io/assets.cpp
  src/io/hub_cache.cpp
)
# The bundled assets (demo models) of this source tree; $DIFFBENCH_ASSETS overrides it at run time.
set_source_files_properties(src/io/assets.cpp PROPERTIES
  COMPILE_DEFINITIONS "DIFFBENCH_ASSETS_DIR=\"${CMAKE_CURRENT_SOURCE_DIR}/assets\"")
