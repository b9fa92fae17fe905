# diffbench_test(test_pipeline LABEL sources...)
