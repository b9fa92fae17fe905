# diffbench_test(test_cli LABEL sources...)
