list(APPEND DIFFBENCH_SOURCES
  src/metrics/preprocess.cpp
)
