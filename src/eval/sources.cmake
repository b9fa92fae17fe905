list(APPEND DIFFBENCH_SOURCES
  src/eval/spec.cpp
  src/eval/consistency.cpp
  src/eval/evaluator.cpp
  src/eval/quality.cpp
  src/eval/score.cpp
  src/eval/bench.cpp
)
