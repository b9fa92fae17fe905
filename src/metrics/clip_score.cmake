list(APPEND DIFFBENCH_SOURCES
  src/metrics/clip_score.cpp
)
