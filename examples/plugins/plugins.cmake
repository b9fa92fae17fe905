# Example plugins, built as loadable modules (lib<name>.so in the library output folder) and
# loaded by the tests through their full paths.
function(diffbench_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE diffbench)
  target_compile_options(${name} PRIVATE ${DIFFBENCH_WARNINGS})
  target_precompile_headers(${name} REUSE_FROM diffbench)
  set_target_properties(${name} PROPERTIES DEFINE_SYMBOL "" PREFIX "lib")
endfunction()

diffbench_plugin(skip_deepest ${CMAKE_CURRENT_LIST_DIR}/skip_deepest/skip_deepest.cpp)
