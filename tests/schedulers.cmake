diffbench_test(test_schedulers unit
  schedulers/test_parity.cpp
)
