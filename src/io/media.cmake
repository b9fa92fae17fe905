list(APPEND DIFFBENCH_SOURCES
  src/io/image.cpp
)
