diffbench_test(test_demo unit demo/test_scenes.cpp demo/test_vocab.cpp demo/test_train.cpp demo/test_bundled.cpp)
