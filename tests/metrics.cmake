diffbench_test(test_metrics unit metrics/test_preprocess.cpp metrics/test_stats.cpp metrics/test_fidelity.cpp metrics/test_distribution.cpp metrics/test_lpips.cpp)
