# diffbench_test(test_models_unet_vae LABEL sources...)
