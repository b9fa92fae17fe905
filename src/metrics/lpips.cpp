#include "diffbench/metrics/lpips.hpp"

#include <string>

#include <c10/core/InferenceMode.h>
#include <torch/nn/functional/pooling.h>

#include "diffbench/error.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"

namespace diffbench {

namespace {

namespace nn = torch::nn;

constexpr std::array<int64_t, 5> kChannels = {64, 192, 384, 256, 256};

// torchvision AlexNet's five convolutions (features.0, .3, .6, .8, .10).
nn::Conv2dOptions alexnet_conv(int k) {
  switch (k) {
    case 0: return nn::Conv2dOptions(3, 64, 11).stride(4).padding(2);
    case 1: return nn::Conv2dOptions(64, 192, 5).padding(2);
    case 2: return nn::Conv2dOptions(192, 384, 3).padding(1);
    case 3: return nn::Conv2dOptions(384, 256, 3).padding(1);
    default: return nn::Conv2dOptions(256, 256, 3).padding(1);
  }
}

// lpips.normalize_tensor: unit length along channels (eps 1e-10 added to the norm).
at::Tensor normalize_channels(const at::Tensor& x) {
  return x / (x.square().sum(1, true).sqrt() + 1e-10);
}

}  // namespace

LpipsAlexImpl::LpipsAlexImpl() {
  auto net = register_module("net", std::make_shared<nn::Module>());
  const std::array<const char*, 5> index = {"0", "3", "6", "8", "10"};
  for (int k = 0; k < 5; ++k) {
    auto slice = net->register_module("slice" + std::to_string(k + 1), std::make_shared<nn::Module>());
    convs[k] = slice->register_module(index[k], nn::Conv2d(alexnet_conv(k)));
    auto lin = register_module("lin" + std::to_string(k), std::make_shared<nn::Module>());
    auto model = lin->register_module("model", std::make_shared<nn::Module>());
    lins[k] = model->register_module("1", nn::Conv2d(nn::Conv2dOptions(kChannels[k], 1, 1).bias(false)));
  }
}

std::array<at::Tensor, 5> LpipsAlexImpl::features(const at::Tensor& x) {
  // lpips.ScalingLayer: (x - shift) / scale per channel.
  const at::Tensor shift = at::tensor({-.030, -.088, -.188}, x.options()).view({1, 3, 1, 1});
  const at::Tensor scale = at::tensor({.458, .448, .450}, x.options()).view({1, 3, 1, 1});
  std::array<at::Tensor, 5> out;
  at::Tensor h = (x - shift) / scale;
  for (int k = 0; k < 5; ++k) {
    if (k == 1 || k == 2) h = at::max_pool2d(h, {3, 3}, {2, 2});  // features.2 and features.5
    h = at::relu(convs[k]->forward(h));
    out[k] = h;  // relu1 [N,64,..], relu2 [N,192,..], relu3 [N,384,..], relu4, relu5 [N,256,..]
  }
  return out;
}

at::Tensor LpipsAlexImpl::forward(const at::Tensor& x0, const at::Tensor& x1) {
  const auto f0 = features(x0), f1 = features(x1);
  at::Tensor total;
  for (int k = 0; k < 5; ++k) {
    const at::Tensor diff = (normalize_channels(f0[k]) - normalize_channels(f1[k])).square();
    const at::Tensor layer = lins[k]->forward(diff).mean({2, 3});  // [N,1]: spatial average
    total = k == 0 ? layer : total + layer;
  }
  return total.flatten();
}

std::unique_ptr<Lpips> Lpips::load(const std::filesystem::path& file, const at::Device& device) {
  LpipsAlex net;
  LoadOptions lo;
  lo.ignore_unexpected = {"scaling_layer."};
  load_weights(*net, file, lo);
  net->to(device, at::kFloat);
  net->eval();
  return std::unique_ptr<Lpips>(new Lpips(net, device));
}

double Lpips::distance(const at::Tensor& a, const at::Tensor& b) const {
  if (a.sizes() != b.sizes() || a.dim() != 3 || a.size(0) != 3 || a.scalar_type() != at::kByte ||
      b.scalar_type() != at::kByte)
    throw UsageError("LPIPS needs two uint8 images [3,H,W] of the same size, got " + std::string(c10::str(a.sizes())) +
                         " and " + std::string(c10::str(b.sizes())),
                     "lpips");
  c10::InferenceMode guard;
  auto prep = [&](const at::Tensor& u8) { return (u8.to(device_, at::kFloat) / 127.5 - 1.0).unsqueeze(0); };
  return net_->forward(prep(a), prep(b)).cpu().item<double>();
}

}  // namespace diffbench
