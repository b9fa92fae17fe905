// The Inception-v3 feature extractor of FID as pytorch-fid computes it: pytorch_fid.inception.InceptionV3
// with its default output block (the 2048-d final average pool), built by fid_inception_v3() — torchvision's
// Inception3 with the FID-specific blocks FIDInceptionA/C/E_1/E_2 that reproduce the TensorFlow graph the
// FID weights come from. Module names are the keys of pytorch-fid's weights file
// (pt_inception-2015-12-05-6726825d.pth, converted once to safetensors: docs/metrics.md), e.g.
// `Mixed_6b.branch7x7_2.conv.weight`; its `fc.*` classifier and `*.num_batches_tracked` counters are
// accepted and ignored.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

namespace diffbench {

// torch.nn.BatchNorm2d in eval mode (running statistics), without the num_batches_tracked counter.
struct InferenceBatchNorm2dImpl : torch::nn::Module {
  InferenceBatchNorm2dImpl(int64_t channels, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight, bias, running_mean, running_var;
  double eps;
};
TORCH_MODULE(InferenceBatchNorm2d);

// torchvision.models.inception.BasicConv2d: bias-free Conv2d, BatchNorm2d(eps=0.001), ReLU.
struct BasicConv2dImpl : torch::nn::Module {
  BasicConv2dImpl(int64_t in, int64_t out, std::vector<int64_t> kernel, std::vector<int64_t> stride = {1, 1},
                  std::vector<int64_t> padding = {0, 0});
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
  InferenceBatchNorm2d bn{nullptr};
};
TORCH_MODULE(BasicConv2d);

// pytorch_fid.inception.FIDInceptionA: the branch pool is avg_pool2d(3, 1, 1, count_include_pad=False).
struct FidInceptionAImpl : torch::nn::Module {
  FidInceptionAImpl(int64_t in, int64_t pool_features);
  at::Tensor forward(const at::Tensor& x);
  BasicConv2d branch1x1{nullptr}, branch5x5_1{nullptr}, branch5x5_2{nullptr}, branch3x3dbl_1{nullptr},
      branch3x3dbl_2{nullptr}, branch3x3dbl_3{nullptr}, branch_pool{nullptr};
};
TORCH_MODULE(FidInceptionA);

// torchvision.models.inception.InceptionB (Mixed_6a, unchanged by pytorch-fid).
struct InceptionBImpl : torch::nn::Module {
  explicit InceptionBImpl(int64_t in);
  at::Tensor forward(const at::Tensor& x);
  BasicConv2d branch3x3{nullptr}, branch3x3dbl_1{nullptr}, branch3x3dbl_2{nullptr}, branch3x3dbl_3{nullptr};
};
TORCH_MODULE(InceptionB);

// pytorch_fid.inception.FIDInceptionC: the branch pool is avg_pool2d(3, 1, 1, count_include_pad=False).
struct FidInceptionCImpl : torch::nn::Module {
  FidInceptionCImpl(int64_t in, int64_t channels_7x7);
  at::Tensor forward(const at::Tensor& x);
  BasicConv2d branch1x1{nullptr}, branch7x7_1{nullptr}, branch7x7_2{nullptr}, branch7x7_3{nullptr},
      branch7x7dbl_1{nullptr}, branch7x7dbl_2{nullptr}, branch7x7dbl_3{nullptr}, branch7x7dbl_4{nullptr},
      branch7x7dbl_5{nullptr}, branch_pool{nullptr};
};
TORCH_MODULE(FidInceptionC);

// torchvision.models.inception.InceptionD (Mixed_7a, unchanged by pytorch-fid).
struct InceptionDImpl : torch::nn::Module {
  explicit InceptionDImpl(int64_t in);
  at::Tensor forward(const at::Tensor& x);
  BasicConv2d branch3x3_1{nullptr}, branch3x3_2{nullptr}, branch7x7x3_1{nullptr}, branch7x7x3_2{nullptr},
      branch7x7x3_3{nullptr}, branch7x7x3_4{nullptr};
};
TORCH_MODULE(InceptionD);

// pytorch_fid.inception.FIDInceptionE_1 (avg_pool2d without padded zeros in the branch pool) or, with
// `max_pool`, FIDInceptionE_2 (max_pool2d(3, 1, 1) there, as the TensorFlow graph has it).
struct FidInceptionEImpl : torch::nn::Module {
  FidInceptionEImpl(int64_t in, bool max_pool);
  at::Tensor forward(const at::Tensor& x);
  BasicConv2d branch1x1{nullptr}, branch3x3_1{nullptr}, branch3x3_2a{nullptr}, branch3x3_2b{nullptr},
      branch3x3dbl_1{nullptr}, branch3x3dbl_2{nullptr}, branch3x3dbl_3a{nullptr}, branch3x3dbl_3b{nullptr},
      branch_pool{nullptr};
  bool max_pool;
};
TORCH_MODULE(FidInceptionE);

// pytorch_fid.inception.InceptionV3(output_blocks=[3]) over fid_inception_v3(): blocks 0-3 up to the final
// average pool.
struct InceptionFidImpl : torch::nn::Module {
  InceptionFidImpl();
  // Images in [0, 1], [N,3,H,W] float32 of any size -> pool features [N,2048]: bilinear resize to 299x299
  // (align_corners=False, no antialiasing), then 2x - 1, as InceptionV3.forward with its defaults.
  at::Tensor forward(const at::Tensor& x);

  BasicConv2d Conv2d_1a_3x3{nullptr}, Conv2d_2a_3x3{nullptr}, Conv2d_2b_3x3{nullptr}, Conv2d_3b_1x1{nullptr},
      Conv2d_4a_3x3{nullptr};
  FidInceptionA Mixed_5b{nullptr}, Mixed_5c{nullptr}, Mixed_5d{nullptr};
  InceptionB Mixed_6a{nullptr};
  FidInceptionC Mixed_6b{nullptr}, Mixed_6c{nullptr}, Mixed_6d{nullptr}, Mixed_6e{nullptr};
  InceptionD Mixed_7a{nullptr};
  FidInceptionE Mixed_7b{nullptr}, Mixed_7c{nullptr};
};
TORCH_MODULE(InceptionFid);

inline constexpr int64_t kInceptionFeatureDim = 2048;
inline constexpr int64_t kInceptionInputSize = 299;

// The loaded extractor, fed uint8 images as pytorch-fid's fid_score feeds it PNG files (ToTensor: x / 255).
class InceptionFeatures {
 public:
  // Loads the converted weights (ModelError naming the file and the missing, unexpected or misshapen keys,
  // with a hint when the file is torchvision's ImageNet Inception or pytorch-fid's InceptionV3 wrapper)
  // onto `device` in float32.
  static std::unique_ptr<InceptionFeatures> load(const std::filesystem::path& file, const at::Device& device = at::kCPU);

  // uint8 [3,H,W] images, sizes may differ -> float32 [N,2048] on the CPU. Each image is resized on its
  // own, so the result does not depend on how images are batched.
  at::Tensor features(const std::vector<at::Tensor>& images_u8) const;
  // uint8 [N,3,H,W] -> float32 [N,2048] on the CPU.
  at::Tensor features(const at::Tensor& batch_u8) const;

 private:
  InceptionFeatures(InceptionFid net, at::Device device) : net_(std::move(net)), device_(device) {}
  mutable InceptionFid net_;  // forward() is not const in LibTorch
  at::Device device_;
};

}  // namespace diffbench
