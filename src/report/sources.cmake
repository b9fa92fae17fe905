list(APPEND DIFFBENCH_SOURCES
  src/report/report.cpp
)
