list(APPEND DIFFBENCH_SOURCES
  src/models/blocks/attention.cpp
  src/models/blocks/embeddings.cpp
  src/models/blocks/norm.cpp
  src/models/blocks/resnet.cpp
  src/models/blocks/sampling.cpp
  src/models/blocks/transformer.cpp
  src/models/unet_blocks.cpp
  src/models/unet.cpp
  src/models/vae.cpp
)
