diffbench_test(test_tome parity accel/test_tome.cpp)
