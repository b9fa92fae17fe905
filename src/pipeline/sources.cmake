list(APPEND DIFFBENCH_SOURCES
  src/pipeline/txt2img.cpp
  src/pipeline/init_random.cpp
  src/pipeline/outputs.cpp
  src/pipeline/composite_hooks.cpp
)
