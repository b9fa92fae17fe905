list(APPEND DIFFBENCH_SOURCES
  src/metrics/preprocess.cpp
  src/metrics/psnr.cpp
  src/metrics/stats.cpp
)
