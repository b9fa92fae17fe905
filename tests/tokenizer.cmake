diffbench_test(test_tokenizer unit tokenizer/test_clip_tokenizer.cpp tokenizer/test_text.cpp)
