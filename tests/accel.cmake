diffbench_test(test_accel parity
  accel/test_hooks.cpp
  accel/test_deepcache.cpp
  accel/test_accel_cli.cpp
)
# Broken plugins for the loader's errors, beside the example plugin (examples/plugins/).
diffbench_plugin(diffbench_test_bad_abi ${CMAKE_CURRENT_LIST_DIR}/accel/plugins/bad_abi.cpp)
diffbench_plugin(diffbench_test_no_entry ${CMAKE_CURRENT_LIST_DIR}/accel/plugins/no_entry.cpp)
target_compile_definitions(test_accel PRIVATE
  DIFFBENCH_SKIP_DEEPEST_PLUGIN="$<TARGET_FILE:skip_deepest>"
  DIFFBENCH_BAD_ABI_PLUGIN="$<TARGET_FILE:diffbench_test_bad_abi>"
  DIFFBENCH_NO_ENTRY_PLUGIN="$<TARGET_FILE:diffbench_test_no_entry>")
add_dependencies(test_accel skip_deepest diffbench_test_bad_abi diffbench_test_no_entry)
