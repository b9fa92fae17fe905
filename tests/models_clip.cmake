diffbench_test(test_models_clip parity models/test_clip_text.cpp models/test_clip_scorer.cpp)
