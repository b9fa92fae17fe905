diffbench_test(test_cli unit cli/test_cli.cpp cli/test_reliability.cpp)
