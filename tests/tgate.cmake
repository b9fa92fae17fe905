diffbench_test(test_tgate parity accel/test_tgate.cpp)
