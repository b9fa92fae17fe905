diffbench_test(test_media unit io/test_media.cpp io/test_prompts.cpp)
# The tests write PNGs of every colour type straight through libpng.
target_link_libraries(test_media PRIVATE PNG::PNG)
