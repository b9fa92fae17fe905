diffbench_test(test_eval unit eval/test_spec.cpp eval/test_timing.cpp eval/test_eval_cli.cpp eval/test_eval_guards.cpp)
