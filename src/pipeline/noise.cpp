#include "diffbench/pipeline/noise.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>

#include "diffbench/error.hpp"

namespace diffbench {

NoiseMode parse_noise_mode(const std::string& name) {
  if (name == "per-prompt") return NoiseMode::PerPrompt;
  if (name == "diffusers") return NoiseMode::Diffusers;
  throw UsageError("unknown noise mode '" + name + "' (use per-prompt or diffusers)", "--noise");
}

std::string to_string(NoiseMode mode) { return mode == NoiseMode::PerPrompt ? "per-prompt" : "diffusers"; }

NoiseSource::NoiseSource(NoiseMode mode, uint64_t seed) : mode_(mode), seed_(seed) {
  if (mode_ == NoiseMode::Diffusers) shared_ = at::make_generator<at::CPUGeneratorImpl>(seed);
}

void NoiseSource::begin_batch(size_t first, size_t count) {
  if (mode_ != NoiseMode::PerPrompt) return;
  per_prompt_.clear();
  for (size_t i = 0; i < count; ++i) per_prompt_.push_back(at::make_generator<at::CPUGeneratorImpl>(seed_ + first + i));
}

at::Tensor NoiseSource::draw(std::vector<int64_t> shape, at::ScalarType dtype, const at::Device& device) {
  auto opts = at::TensorOptions().dtype(at::kFloat);
  at::Tensor out;
  if (mode_ == NoiseMode::Diffusers) {
    out = at::randn(shape, shared_, opts);
  } else {
    std::vector<at::Tensor> parts;
    shape[0] = 1;
    for (auto& g : per_prompt_) parts.push_back(at::randn(shape, g, opts));
    out = at::cat(parts, 0);
  }
  return out.to(device, dtype);
}

std::vector<uint8_t> NoiseSource::state() const {
  if (mode_ != NoiseMode::Diffusers) return {};
  const at::Tensor t = shared_.get_state().contiguous();  // uint8 bytes of the CPU generator
  const auto* p = t.data_ptr<uint8_t>();
  return std::vector<uint8_t>(p, p + t.numel());
}

void NoiseSource::set_state(const std::vector<uint8_t>& state) {
  if (mode_ != NoiseMode::Diffusers) return;
  at::Tensor t = at::empty({static_cast<int64_t>(state.size())}, at::TensorOptions().dtype(at::kByte));
  std::copy(state.begin(), state.end(), t.data_ptr<uint8_t>());
  try {
    shared_.set_state(t);
  } catch (const c10::Error& e) {
    throw InputError(std::string("not a noise generator state: ") + e.what_without_backtrace(), "noise_state");
  }
}

}  // namespace diffbench
