list(APPEND DIFFBENCH_SOURCES
  src/models/clip_common.cpp
  src/models/clip_text.cpp
  src/models/clip_vision.cpp
  src/models/clip_model.cpp
  src/models/open_clip.cpp
  src/models/clip_scorer.cpp
)
