list(APPEND DIFFBENCH_SOURCES
  src/io/image.cpp
  src/io/prompts.cpp
)
