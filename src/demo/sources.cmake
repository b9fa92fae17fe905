list(APPEND DIFFBENCH_SOURCES
  src/demo/scenes.cpp
  src/demo/vocab.cpp
  src/demo/models.cpp
  src/demo/train_loops.cpp
  src/demo/train.cpp
  src/demo/evaluate.cpp
)
