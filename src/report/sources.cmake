list(APPEND DIFFBENCH_SOURCES
  src/report/report.cpp
  src/report/quality_markdown.cpp
)
