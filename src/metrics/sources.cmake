list(APPEND DIFFBENCH_SOURCES
  src/metrics/distribution.cpp
  src/metrics/lpips.cpp
  src/metrics/metric_set.cpp
  src/metrics/preprocess.cpp
  src/metrics/psnr.cpp
  src/metrics/ssim.cpp
  src/metrics/stats.cpp
)
