list(APPEND DIFFBENCH_SOURCES
  src/util/error.cpp
  src/util/log.cpp
)
