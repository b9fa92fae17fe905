// LPIPS, the learned perceptual image distance of Zhang et al. (2018), as the `lpips` package
// computes it with lpips.LPIPS(net='alex', version='0.1'): lower is better, 0 for identical images.
//
// Weights come from the user as one safetensors file holding that module's state dict, converted once
// from the package (its v0.1 linear heads) and torchvision's ImageNet AlexNet:
//   m = lpips.LPIPS(net='alex')
//   safetensors.torch.save_file({k: v.contiguous() for k, v in m.state_dict().items()
//                                if not k.startswith('lins.')}, 'lpips-alex-v0.1.safetensors')
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

namespace diffbench {

// lpips.LPIPS(net='alex', version='0.1') without its parameterless parts: `net` is
// lpips.pretrained_networks.alexnet (torchvision AlexNet `features` cut after each ReLU, as slice1..5
// keeping torchvision's indices: net.slice1.0, net.slice2.3, net.slice3.6, net.slice4.8,
// net.slice5.10), `lin0`..`lin4` are lpips.NetLinLayer (Dropout, then a bias-free 1x1 Conv2d at
// `model.1`). The scaling layer's shift and scale are constants here, not parameters.
struct LpipsAlexImpl : torch::nn::Module {
  LpipsAlexImpl();
  // uint8-derived images in [-1, 1], [N,3,H,W] float32 -> distances [N].
  at::Tensor forward(const at::Tensor& x0, const at::Tensor& x1);

  std::array<torch::nn::Conv2d, 5> convs{nullptr, nullptr, nullptr, nullptr, nullptr};  // net.sliceK.<index>
  std::array<torch::nn::Conv2d, 5> lins{nullptr, nullptr, nullptr, nullptr, nullptr};   // linK.model.1

 private:
  std::array<at::Tensor, 5> features(const at::Tensor& x);  // relu1..relu5 of the scaled input
};
TORCH_MODULE(LpipsAlex);

class Lpips {
 public:
  // Loads the state dict (ModelError naming the file and keys for missing, unexpected or misshapen
  // tensors; `scaling_layer.*` is accepted and ignored) onto `device` in float32.
  static std::unique_ptr<Lpips> load(const std::filesystem::path& file, const at::Device& device = at::kCPU);

  // Distance between two uint8 [3,H,W] images of the same size, each mapped to [-1, 1] as x/127.5 - 1
  // (the package's forward with normalize=False on im2tensor's scaling).
  double distance(const at::Tensor& a_u8, const at::Tensor& b_u8) const;

 private:
  explicit Lpips(LpipsAlex net, at::Device device) : net_(std::move(net)), device_(device) {}
  mutable LpipsAlex net_;  // forward() is not const in LibTorch
  at::Device device_;
};

}  // namespace diffbench
