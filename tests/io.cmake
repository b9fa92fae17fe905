diffbench_test(test_io unit io/test_safetensors.cpp io/test_staging_dir.cpp io/test_untrusted_input.cpp)
