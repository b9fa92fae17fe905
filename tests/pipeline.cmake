diffbench_test(test_pipeline parity pipeline/test_txt2img.cpp pipeline/test_fast_path.cpp)
