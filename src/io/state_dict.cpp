#include "diffbench/io/state_dict.hpp"

#include <set>
#include <sstream>

#include "diffbench/error.hpp"

namespace diffbench {

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

bool ignored(const std::string& key, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) {
    if (key == p) return true;
    if (!p.empty() && p.back() == '.' && key.compare(0, p.size(), p) == 0) return true;
  }
  return false;
}

std::string join_some(const std::vector<std::string>& names, size_t limit = 8) {
  std::ostringstream o;
  for (size_t i = 0; i < names.size() && i < limit; ++i) o << (i ? ", " : "") << names[i];
  if (names.size() > limit) o << ", … (" << names.size() << " in all)";
  return o.str();
}

}  // namespace

void load_into(torch::nn::Module& module, const StateDict& weights, const std::string& source,
               const LoadOptions& options) {
  // Checkpoint key -> tensor after prefix stripping.
  std::map<std::string, const at::Tensor*> src;
  for (const auto& [k, v] : weights) {
    std::string key = k;
    if (!options.strip_prefix.empty() && key.compare(0, options.strip_prefix.size(), options.strip_prefix) == 0)
      key = key.substr(options.strip_prefix.size());
    src[key] = &v;
  }
  std::vector<std::string> missing, mismatched;
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  auto assign = [&](const std::string& name, at::Tensor& dst) {
    auto it = src.find(name);
    if (it == src.end()) {
      missing.push_back(name);
      return;
    }
    used.insert(name);
    const at::Tensor& value = *it->second;
    if (value.sizes() != dst.sizes()) {
      mismatched.push_back(name + " (checkpoint " + shape_str(value.sizes()) + ", model " + shape_str(dst.sizes()) + ")");
      return;
    }
    dst.copy_(value.to(dst.device(), dst.scalar_type()));
  };
  for (auto& item : module.named_parameters(/*recurse=*/true)) assign(item.key(), item.value());
  for (auto& item : module.named_buffers(/*recurse=*/true)) assign(item.key(), item.value());

  std::vector<std::string> unexpected;
  for (const auto& [k, v] : src)
    if (!used.count(k) && !ignored(k, options.ignore_unexpected)) unexpected.push_back(k);

  if (!mismatched.empty())
    throw ModelError("tensor shape disagrees with config.json: " + join_some(mismatched), source);
  if (!missing.empty()) throw ModelError("checkpoint lacks tensors the config needs: " + join_some(missing), source);
  if (!unexpected.empty())
    throw ModelError("checkpoint has tensors the config does not describe: " + join_some(unexpected), source);
}

std::vector<std::string> state_names(const torch::nn::Module& module) {
  std::vector<std::string> names;
  for (const auto& item : module.named_parameters(true)) names.push_back(item.key());
  for (const auto& item : module.named_buffers(true)) names.push_back(item.key());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace diffbench
