diffbench_test(test_metrics unit metrics/test_preprocess.cpp metrics/test_stats.cpp)
