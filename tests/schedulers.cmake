# diffbench_test(test_schedulers LABEL sources...)
