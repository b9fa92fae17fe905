list(APPEND DIFFBENCH_SOURCES
  src/tokenizer/text.cpp
  src/tokenizer/html_entities.cpp
  src/tokenizer/tokenizer_files.cpp
  src/tokenizer/clip_tokenizer.cpp
)
