list(APPEND DIFFBENCH_SOURCES
  src/eval/spec.cpp
  src/eval/consistency.cpp
  src/eval/evaluator.cpp
  src/eval/bench.cpp
  src/eval/protocol.cpp
  src/eval/python_ast.cpp
  src/eval/pyimport.cpp
  src/eval/pyimport_forms.cpp
)
