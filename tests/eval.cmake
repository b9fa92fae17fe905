diffbench_test(test_eval unit eval/test_spec.cpp eval/test_eval_cli.cpp eval/test_pyimport.cpp eval/test_protocol_defaults.cpp)
