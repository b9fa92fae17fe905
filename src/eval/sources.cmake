list(APPEND DIFFBENCH_SOURCES
  src/eval/spec.cpp
  src/eval/consistency.cpp
  src/eval/evaluator.cpp
  src/eval/timed_runs.cpp
  src/eval/timing.cpp
  src/eval/bench.cpp
)
