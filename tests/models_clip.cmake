# diffbench_test(test_models_clip LABEL sources...)
