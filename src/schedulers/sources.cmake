list(APPEND DIFFBENCH_SOURCES
  src/schedulers/common.cpp
  src/schedulers/factory.cpp
  src/schedulers/pndm.cpp
  src/schedulers/ddim.cpp
  src/schedulers/euler.cpp
  src/schedulers/euler_ancestral.cpp
  src/schedulers/dpm_solver_multistep.cpp
)
