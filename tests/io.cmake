diffbench_test(test_io unit io/test_safetensors.cpp io/test_hub_cache.cpp)
