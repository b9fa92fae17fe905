# diffbench_test(test_media LABEL sources...)
