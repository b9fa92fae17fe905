diffbench_test(test_schedulers unit
  schedulers/test_parity.cpp
  schedulers/test_config.cpp
  schedulers/test_timesteps.cpp
  schedulers/test_state.cpp
)
