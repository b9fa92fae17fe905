# diffbench_test(test_tokenizer LABEL sources...)
