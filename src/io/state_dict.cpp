#include "diffbench/io/state_dict.hpp"

#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <c10/core/InferenceMode.h>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "weight_stream.hpp"

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

namespace {

// A checkpoint tensor under its matching name (prefix stripped).
struct Entry {
  at::IntArrayRef shape;
  size_t index;  // caller's numbering
};

// The (entry index, destination) pairs that fill every parameter and buffer of `module`; missing
// keys, unexpected keys and shape mismatches are reported together, by name, in one ModelError.
std::vector<std::pair<size_t, at::Tensor>> match(torch::nn::Module& module, const std::map<std::string, Entry>& src,
                                                 const std::string& source, const LoadOptions& options) {
  std::vector<std::pair<size_t, at::Tensor>> out;
  std::vector<std::string> missing, mismatched;
  std::set<std::string> used;
  auto assign = [&](const std::string& name, const at::Tensor& dst) {
    auto it = src.find(name);
    if (it == src.end()) {
      missing.push_back(name);
      return;
    }
    used.insert(name);
    if (it->second.shape != dst.sizes()) {
      mismatched.push_back(name + " (checkpoint " + shape_str(it->second.shape) + ", model " + shape_str(dst.sizes()) + ")");
      return;
    }
    out.emplace_back(it->second.index, dst);
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
  return out;
}

std::string strip(const std::string& key, const LoadOptions& options) {
  if (!options.strip_prefix.empty() && key.compare(0, options.strip_prefix.size(), options.strip_prefix) == 0)
    return key.substr(options.strip_prefix.size());
  return key;
}

}  // namespace

void load_into(torch::nn::Module& module, const StateDict& weights, const std::string& source,
               const LoadOptions& options) {
  std::vector<const at::Tensor*> values;
  std::map<std::string, Entry> src;
  for (const auto& [k, v] : weights) {
    src[strip(k, options)] = Entry{v.sizes(), values.size()};
    values.push_back(&v);
  }
  const auto pairs = match(module, src, source, options);
  c10::InferenceMode guard;
  for (const auto& [index, dst] : pairs) at::Tensor(dst).copy_(*values[index]);
}

uint64_t load_weights(torch::nn::Module& module, const std::filesystem::path& file, const LoadOptions& options) {
  return load_weights(module, open_checkpoint(file), file.string(), options);
}

uint64_t load_weights(torch::nn::Module& module, const std::vector<CheckpointPart>& parts, const std::string& source,
                      const LoadOptions& options) {
  // The files, and which of their tensors to take (a shard holds those the index assigns to it).
  std::vector<std::shared_ptr<const SafetensorsFile>> files;
  std::vector<const TensorInfo*> infos;
  std::vector<size_t> file_of;
  for (const auto& part : parts) {
    files.push_back(part.file);
    for (const TensorInfo* t : part.tensors) {
      infos.push_back(t);
      file_of.push_back(files.size() - 1);
    }
  }
  std::map<std::string, Entry> src;
  for (size_t i = 0; i < infos.size(); ++i) src[strip(infos[i]->name, options)] = Entry{infos[i]->shape, i};
  const auto pairs = match(module, src, source, options);

  std::vector<std::vector<TensorCopy>> per_file(files.size());
  uint64_t bytes = 0;
  for (const auto& [index, dst] : pairs) {
    per_file[file_of[index]].push_back(TensorCopy{infos[index], dst});
    bytes += infos[index]->end - infos[index]->begin;
  }
  c10::InferenceMode guard;  // writes into parameters in place, whether or not made in inference mode
  for (size_t f = 0; f < files.size(); ++f)
    stream_tensors(*files[f], std::move(per_file[f]), StreamOptions{options.chunk_bytes, options.buffers});
  return bytes;
}

std::vector<std::string> state_names(const torch::nn::Module& module) {
  std::vector<std::string> names;
  for (const auto& item : module.named_parameters(true)) names.push_back(item.key());
  for (const auto& item : module.named_buffers(true)) names.push_back(item.key());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace diffbench
