#include "diffbench/models/inception_fid.hpp"

#include <string>

#include <c10/core/InferenceMode.h>

#include "diffbench/error.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"

namespace diffbench {

namespace nn = torch::nn;

namespace {

// TensorFlow's average pool, which pytorch-fid's FID blocks reproduce: padded zeros are not counted.
at::Tensor tf_avg_pool_3x3(const at::Tensor& x) {
  return at::avg_pool2d(x, {3, 3}, {1, 1}, {1, 1}, /*ceil_mode=*/false, /*count_include_pad=*/false);
}

BasicConv2d conv(nn::Module& parent, const char* name, int64_t in, int64_t out, std::vector<int64_t> kernel,
                 std::vector<int64_t> stride = {1, 1}, std::vector<int64_t> padding = {0, 0}) {
  return parent.register_module(name, BasicConv2d(in, out, std::move(kernel), std::move(stride), std::move(padding)));
}

}  // namespace

InferenceBatchNorm2dImpl::InferenceBatchNorm2dImpl(int64_t channels, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({channels}));
  bias = register_parameter("bias", at::zeros({channels}));
  running_mean = register_buffer("running_mean", at::zeros({channels}));
  running_var = register_buffer("running_var", at::ones({channels}));
}

at::Tensor InferenceBatchNorm2dImpl::forward(const at::Tensor& x) {
  return at::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/false, 0.0, eps,
                        /*cudnn_enabled=*/true);
}

BasicConv2dImpl::BasicConv2dImpl(int64_t in, int64_t out, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                                 std::vector<int64_t> padding) {
  conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false)));
  bn = register_module("bn", InferenceBatchNorm2d(out, 0.001));
}

at::Tensor BasicConv2dImpl::forward(const at::Tensor& x) { return at::relu(bn->forward(conv->forward(x))); }

FidInceptionAImpl::FidInceptionAImpl(int64_t in, int64_t pool_features) {
  branch1x1 = conv(*this, "branch1x1", in, 64, {1, 1});
  branch5x5_1 = conv(*this, "branch5x5_1", in, 48, {1, 1});
  branch5x5_2 = conv(*this, "branch5x5_2", 48, 64, {5, 5}, {1, 1}, {2, 2});
  branch3x3dbl_1 = conv(*this, "branch3x3dbl_1", in, 64, {1, 1});
  branch3x3dbl_2 = conv(*this, "branch3x3dbl_2", 64, 96, {3, 3}, {1, 1}, {1, 1});
  branch3x3dbl_3 = conv(*this, "branch3x3dbl_3", 96, 96, {3, 3}, {1, 1}, {1, 1});
  branch_pool = conv(*this, "branch_pool", in, pool_features, {1, 1});
}

at::Tensor FidInceptionAImpl::forward(const at::Tensor& x) {
  const at::Tensor b1 = branch1x1->forward(x);
  const at::Tensor b5 = branch5x5_2->forward(branch5x5_1->forward(x));
  const at::Tensor b3 = branch3x3dbl_3->forward(branch3x3dbl_2->forward(branch3x3dbl_1->forward(x)));
  const at::Tensor bp = branch_pool->forward(tf_avg_pool_3x3(x));
  return at::cat({b1, b5, b3, bp}, 1);  // [N, 64+64+96+pool_features, H, W]
}

InceptionBImpl::InceptionBImpl(int64_t in) {
  branch3x3 = conv(*this, "branch3x3", in, 384, {3, 3}, {2, 2});
  branch3x3dbl_1 = conv(*this, "branch3x3dbl_1", in, 64, {1, 1});
  branch3x3dbl_2 = conv(*this, "branch3x3dbl_2", 64, 96, {3, 3}, {1, 1}, {1, 1});
  branch3x3dbl_3 = conv(*this, "branch3x3dbl_3", 96, 96, {3, 3}, {2, 2});
}

at::Tensor InceptionBImpl::forward(const at::Tensor& x) {
  const at::Tensor b3 = branch3x3->forward(x);
  const at::Tensor bd = branch3x3dbl_3->forward(branch3x3dbl_2->forward(branch3x3dbl_1->forward(x)));
  const at::Tensor bp = at::max_pool2d(x, {3, 3}, {2, 2});
  return at::cat({b3, bd, bp}, 1);  // [N, 384+96+in, H/2, W/2]
}

FidInceptionCImpl::FidInceptionCImpl(int64_t in, int64_t c7) {
  branch1x1 = conv(*this, "branch1x1", in, 192, {1, 1});
  branch7x7_1 = conv(*this, "branch7x7_1", in, c7, {1, 1});
  branch7x7_2 = conv(*this, "branch7x7_2", c7, c7, {1, 7}, {1, 1}, {0, 3});
  branch7x7_3 = conv(*this, "branch7x7_3", c7, 192, {7, 1}, {1, 1}, {3, 0});
  branch7x7dbl_1 = conv(*this, "branch7x7dbl_1", in, c7, {1, 1});
  branch7x7dbl_2 = conv(*this, "branch7x7dbl_2", c7, c7, {7, 1}, {1, 1}, {3, 0});
  branch7x7dbl_3 = conv(*this, "branch7x7dbl_3", c7, c7, {1, 7}, {1, 1}, {0, 3});
  branch7x7dbl_4 = conv(*this, "branch7x7dbl_4", c7, c7, {7, 1}, {1, 1}, {3, 0});
  branch7x7dbl_5 = conv(*this, "branch7x7dbl_5", c7, 192, {1, 7}, {1, 1}, {0, 3});
  branch_pool = conv(*this, "branch_pool", in, 192, {1, 1});
}

at::Tensor FidInceptionCImpl::forward(const at::Tensor& x) {
  const at::Tensor b1 = branch1x1->forward(x);
  const at::Tensor b7 = branch7x7_3->forward(branch7x7_2->forward(branch7x7_1->forward(x)));
  at::Tensor bd = branch7x7dbl_1->forward(x);
  bd = branch7x7dbl_3->forward(branch7x7dbl_2->forward(bd));
  bd = branch7x7dbl_5->forward(branch7x7dbl_4->forward(bd));
  const at::Tensor bp = branch_pool->forward(tf_avg_pool_3x3(x));
  return at::cat({b1, b7, bd, bp}, 1);  // [N, 768, 17, 17]
}

InceptionDImpl::InceptionDImpl(int64_t in) {
  branch3x3_1 = conv(*this, "branch3x3_1", in, 192, {1, 1});
  branch3x3_2 = conv(*this, "branch3x3_2", 192, 320, {3, 3}, {2, 2});
  branch7x7x3_1 = conv(*this, "branch7x7x3_1", in, 192, {1, 1});
  branch7x7x3_2 = conv(*this, "branch7x7x3_2", 192, 192, {1, 7}, {1, 1}, {0, 3});
  branch7x7x3_3 = conv(*this, "branch7x7x3_3", 192, 192, {7, 1}, {1, 1}, {3, 0});
  branch7x7x3_4 = conv(*this, "branch7x7x3_4", 192, 192, {3, 3}, {2, 2});
}

at::Tensor InceptionDImpl::forward(const at::Tensor& x) {
  const at::Tensor b3 = branch3x3_2->forward(branch3x3_1->forward(x));
  at::Tensor b7 = branch7x7x3_2->forward(branch7x7x3_1->forward(x));
  b7 = branch7x7x3_4->forward(branch7x7x3_3->forward(b7));
  const at::Tensor bp = at::max_pool2d(x, {3, 3}, {2, 2});
  return at::cat({b3, b7, bp}, 1);  // [N, 320+192+768, 8, 8]
}

FidInceptionEImpl::FidInceptionEImpl(int64_t in, bool max_pool_) : max_pool(max_pool_) {
  branch1x1 = conv(*this, "branch1x1", in, 320, {1, 1});
  branch3x3_1 = conv(*this, "branch3x3_1", in, 384, {1, 1});
  branch3x3_2a = conv(*this, "branch3x3_2a", 384, 384, {1, 3}, {1, 1}, {0, 1});
  branch3x3_2b = conv(*this, "branch3x3_2b", 384, 384, {3, 1}, {1, 1}, {1, 0});
  branch3x3dbl_1 = conv(*this, "branch3x3dbl_1", in, 448, {1, 1});
  branch3x3dbl_2 = conv(*this, "branch3x3dbl_2", 448, 384, {3, 3}, {1, 1}, {1, 1});
  branch3x3dbl_3a = conv(*this, "branch3x3dbl_3a", 384, 384, {1, 3}, {1, 1}, {0, 1});
  branch3x3dbl_3b = conv(*this, "branch3x3dbl_3b", 384, 384, {3, 1}, {1, 1}, {1, 0});
  branch_pool = conv(*this, "branch_pool", in, 192, {1, 1});
}

at::Tensor FidInceptionEImpl::forward(const at::Tensor& x) {
  const at::Tensor b1 = branch1x1->forward(x);
  const at::Tensor b3_in = branch3x3_1->forward(x);
  const at::Tensor b3 = at::cat({branch3x3_2a->forward(b3_in), branch3x3_2b->forward(b3_in)}, 1);  // [N,768,8,8]
  const at::Tensor bd_in = branch3x3dbl_2->forward(branch3x3dbl_1->forward(x));
  const at::Tensor bd = at::cat({branch3x3dbl_3a->forward(bd_in), branch3x3dbl_3b->forward(bd_in)}, 1);
  const at::Tensor pooled = max_pool ? at::max_pool2d(x, {3, 3}, {1, 1}, {1, 1}) : tf_avg_pool_3x3(x);
  const at::Tensor bp = branch_pool->forward(pooled);
  return at::cat({b1, b3, bd, bp}, 1);  // [N, 320+768+768+192 = 2048, 8, 8]
}

InceptionFidImpl::InceptionFidImpl() {
  Conv2d_1a_3x3 = conv(*this, "Conv2d_1a_3x3", 3, 32, {3, 3}, {2, 2});
  Conv2d_2a_3x3 = conv(*this, "Conv2d_2a_3x3", 32, 32, {3, 3});
  Conv2d_2b_3x3 = conv(*this, "Conv2d_2b_3x3", 32, 64, {3, 3}, {1, 1}, {1, 1});
  Conv2d_3b_1x1 = conv(*this, "Conv2d_3b_1x1", 64, 80, {1, 1});
  Conv2d_4a_3x3 = conv(*this, "Conv2d_4a_3x3", 80, 192, {3, 3});
  Mixed_5b = register_module("Mixed_5b", FidInceptionA(192, 32));
  Mixed_5c = register_module("Mixed_5c", FidInceptionA(256, 64));
  Mixed_5d = register_module("Mixed_5d", FidInceptionA(288, 64));
  Mixed_6a = register_module("Mixed_6a", InceptionB(288));
  Mixed_6b = register_module("Mixed_6b", FidInceptionC(768, 128));
  Mixed_6c = register_module("Mixed_6c", FidInceptionC(768, 160));
  Mixed_6d = register_module("Mixed_6d", FidInceptionC(768, 160));
  Mixed_6e = register_module("Mixed_6e", FidInceptionC(768, 192));
  Mixed_7a = register_module("Mixed_7a", InceptionD(768));
  Mixed_7b = register_module("Mixed_7b", FidInceptionE(1280, /*max_pool=*/false));
  Mixed_7c = register_module("Mixed_7c", FidInceptionE(2048, /*max_pool=*/true));
}

at::Tensor InceptionFidImpl::forward(const at::Tensor& input) {
  at::Tensor x = input;
  if (x.size(2) != kInceptionInputSize || x.size(3) != kInceptionInputSize)  // resize_input
    x = at::upsample_bilinear2d(x, {kInceptionInputSize, kInceptionInputSize}, /*align_corners=*/false);
  x = 2 * x - 1;  // normalize_input: [0, 1] -> [-1, 1]
  // block 0
  x = Conv2d_2b_3x3->forward(Conv2d_2a_3x3->forward(Conv2d_1a_3x3->forward(x)));  // [N,64,147,147]
  x = at::max_pool2d(x, {3, 3}, {2, 2});                                           // [N,64,73,73]
  // block 1
  x = Conv2d_4a_3x3->forward(Conv2d_3b_1x1->forward(x));  // [N,192,71,71]
  x = at::max_pool2d(x, {3, 3}, {2, 2});                   // [N,192,35,35]
  // block 2
  x = Mixed_5d->forward(Mixed_5c->forward(Mixed_5b->forward(x)));  // [N,288,35,35]
  x = Mixed_6a->forward(x);                                        // [N,768,17,17]
  x = Mixed_6e->forward(Mixed_6d->forward(Mixed_6c->forward(Mixed_6b->forward(x))));
  // block 3
  x = Mixed_7c->forward(Mixed_7b->forward(Mixed_7a->forward(x)));  // [N,2048,8,8]
  return at::adaptive_avg_pool2d(x, {1, 1}).flatten(1);             // [N,2048]
}

std::unique_ptr<InceptionFeatures> InceptionFeatures::load(const std::filesystem::path& file, const at::Device& device) {
  StateDict weights = load_safetensors(file);
  const std::string where = file.string();
  if (weights.count("blocks.0.0.conv.weight"))
    throw ModelError("this is the state dict of pytorch_fid.inception.InceptionV3 (keys blocks.N.M...); save the "
                     "FID weights file's own keys instead (pt_inception-2015-12-05-*.pth, see docs/metrics.md)",
                     where);
  if (weights.count("AuxLogits.fc.weight") || (weights.count("fc.weight") && weights.at("fc.weight").size(0) == 1000))
    throw ModelError("these look like torchvision's ImageNet Inception-v3 weights; FID needs pytorch-fid's FID "
                     "Inception weights (pt_inception-2015-12-05-*.pth, see docs/metrics.md)",
                     where);
  for (auto it = weights.begin(); it != weights.end();) {
    const std::string& k = it->first;
    const std::string suffix = ".num_batches_tracked";
    const bool counter = k.size() > suffix.size() && k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0;
    it = counter ? weights.erase(it) : std::next(it);
  }
  InceptionFid net;
  LoadOptions lo;
  lo.ignore_unexpected = {"fc."};
  load_into(*net, weights, where, lo);
  net->to(device, at::kFloat);
  net->eval();
  return std::unique_ptr<InceptionFeatures>(new InceptionFeatures(net, device));
}

at::Tensor InceptionFeatures::features(const std::vector<at::Tensor>& images) const {
  if (images.empty()) return at::empty({0, kInceptionFeatureDim});
  c10::InferenceMode guard;
  std::vector<at::Tensor> resized;
  for (const auto& u8 : images) {
    if (u8.dim() != 3 || u8.size(0) != 3 || u8.scalar_type() != at::kByte || u8.size(1) < 1 || u8.size(2) < 1)
      throw UsageError("Inception features need uint8 RGB images [3,H,W], got " + std::string(c10::str(u8.sizes())),
                       "inception");
    at::Tensor x = (u8.to(device_, at::kFloat) / 255.0).unsqueeze(0);  // ToTensor: [1,3,H,W] in [0,1]
    if (x.size(2) != kInceptionInputSize || x.size(3) != kInceptionInputSize)
      x = at::upsample_bilinear2d(x, {kInceptionInputSize, kInceptionInputSize}, /*align_corners=*/false);
    resized.push_back(x);
  }
  return net_->forward(at::cat(resized, 0)).to(at::kCPU);
}

at::Tensor InceptionFeatures::features(const at::Tensor& batch_u8) const {
  if (batch_u8.dim() != 4)
    throw UsageError("Inception features need a uint8 batch [N,3,H,W], got " + std::string(c10::str(batch_u8.sizes())),
                     "inception");
  std::vector<at::Tensor> images;
  for (int64_t i = 0; i < batch_u8.size(0); ++i) images.push_back(batch_u8[i]);
  return features(images);
}

}  // namespace diffbench
