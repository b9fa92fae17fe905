# diffbench_test(test_metrics LABEL sources...)
