diffbench_test(test_accel parity
  accel/test_hooks.cpp
  accel/test_deepcache.cpp
)
