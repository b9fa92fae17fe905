// A random-weight FID Inception file for tests of KID and FID end to end.
#pragma once

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <filesystem>

#include "diffbench/io/safetensors.hpp"
#include "diffbench/models/inception_fid.hpp"

namespace diffbench::test {

// A random FID Inception as the user's converted file would hold it: He-scaled convolutions, BatchNorm at
// its identity statistics, the classifier the .pth carries.
inline void write_random_inception(const std::filesystem::path& file) {
  InceptionFid net;
  at::Generator gen = at::detail::createCPUGenerator(7);
  StateDict w;
  for (const auto& p : net->named_parameters()) {
    const auto s = p.value().sizes();
    w[p.key()] = p.value().dim() == 4 ? at::randn(s, gen, at::kFloat) * std::sqrt(2.0 / double(s[1] * s[2] * s[3]))
                                      : p.value().detach().clone();
  }
  for (const auto& b : net->named_buffers()) w[b.key()] = b.value().clone();
  w["fc.weight"] = at::zeros({1008, 2048});
  w["fc.bias"] = at::zeros({1008});
  save_safetensors(file, w);
}

}  // namespace diffbench::test
