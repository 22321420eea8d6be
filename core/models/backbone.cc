#include "core/models/backbone.h"

#include <cmath>
#include <filesystem>
#include <set>

#include <torch/script.h>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/models/safetensors.h"
#include "core/util/status_macros.h"

namespace nearnd {
namespace {

class VitBackbone : public Backbone {
 public:
  explicit VitBackbone(Vit vit) : Backbone(InfoOf(vit->config())), vit_(std::move(vit)) { vit_->eval(); }

  torch::Tensor Forward(const torch::Tensor& images) override { return vit_->forward(images); }

  void SetTraining(bool training) override { vit_->train(training); }

  std::vector<std::pair<std::string, torch::Tensor>> NamedParameters() const override {
    std::vector<std::pair<std::string, torch::Tensor>> parameters;
    for (const auto& item : vit_->named_parameters(/*recurse=*/true)) parameters.emplace_back(item.key(), item.value());
    return parameters;
  }

  std::map<std::string, torch::Tensor> NamedTensors() const override {
    std::map<std::string, torch::Tensor> tensors;
    for (const auto& item : vit_->named_parameters(/*recurse=*/true)) tensors[item.key()] = item.value();
    for (const auto& item : vit_->named_buffers(/*recurse=*/true)) tensors[item.key()] = item.value();
    return tensors;
  }

  Vit vit() const override { return vit_; }

 private:
  static BackboneInfo InfoOf(const VitConfig& config) {
    BackboneInfo info;
    info.architecture = "vit";
    info.name = config.name;
    info.image_size = config.image_size;
    info.channels = config.channels;
    info.dim = config.dim;
    info.mean.assign(config.channels, 0.5f);
    info.std.assign(config.channels, 0.5f);
    return info;
  }

  Vit vit_;
};

class TorchScriptBackbone : public Backbone {
 public:
  TorchScriptBackbone(BackboneInfo info, torch::jit::Module module)
      : Backbone(std::move(info)), module_(std::move(module)) {}

  torch::Tensor Forward(const torch::Tensor& images) override {
    const c10::IValue output = module_.forward({images});
    // Loading checked the output in eval mode only, and a module may return another type in
    // training mode.
    TORCH_CHECK(output.isTensor(), "TorchScript module ", info().name, " returns a ", output.tagKind(),
                " instead of features [N, D]; export a module whose forward returns one tensor in training and "
                "eval mode");
    return output.toTensor();
  }

  // In training, a submodule whose own parameters are all frozen stays in eval mode, so the
  // batch-norm statistics of frozen layers do not change either.
  void SetTraining(bool training) override {
    module_.train(training);
    if (!training) return;
    for (const auto& item : module_.named_modules()) {
      bool has_parameters = false;
      bool all_frozen = true;
      for (const auto& parameter : item.value.named_parameters(/*recurse=*/false)) {
        has_parameters = true;
        all_frozen = all_frozen && !parameter.value.requires_grad();
      }
      // Only the submodule's own flag: its children may hold trainable parameters.
      torch::jit::Module submodule = item.value;  // A handle to the same submodule.
      if (has_parameters && all_frozen && submodule.hasattr("training")) submodule.setattr("training", false);
    }
  }

  std::vector<std::pair<std::string, torch::Tensor>> NamedParameters() const override {
    std::vector<std::pair<std::string, torch::Tensor>> parameters;
    for (const auto& item : module_.named_parameters(/*recurse=*/true)) parameters.emplace_back(item.name, item.value);
    return parameters;
  }

  std::map<std::string, torch::Tensor> NamedTensors() const override {
    std::map<std::string, torch::Tensor> tensors;
    for (const auto& item : module_.named_parameters(/*recurse=*/true)) tensors[item.name] = item.value;
    for (const auto& item : module_.named_buffers(/*recurse=*/true)) tensors[item.name] = item.value;
    return tensors;
  }

 private:
  // A torch::jit::Module is a handle to a shared module, and its accessors are not const.
  mutable torch::jit::Module module_;
};

// IntAttribute reads an int attribute of a TorchScript module, or returns `fallback` when the
// module has none.
absl::StatusOr<int> IntAttribute(const torch::jit::Module& module, const std::string& name, int fallback,
                                 const std::string& path) {
  if (!module.hasattr(name)) return fallback;
  const c10::IValue value = module.attr(name);
  if (!value.isInt()) {
    return absl::InvalidArgumentError(absl::StrFormat("TorchScript module %s: attribute '%s' is a %s; expected int",
                                                      path, name, value.tagKind()));
  }
  return static_cast<int>(value.toInt());
}

// FloatsAttribute reads a List[float] attribute of `channels` values, or returns `fallback`.
absl::StatusOr<std::vector<float>> FloatsAttribute(const torch::jit::Module& module, const std::string& name,
                                                   std::vector<float> fallback, int channels,
                                                   const std::string& path) {
  if (!module.hasattr(name)) return fallback;
  const c10::IValue value = module.attr(name);
  if (!value.isDoubleList()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "TorchScript module %s: attribute '%s' is a %s; expected List[float]", path, name, value.tagKind()));
  }
  std::vector<float> floats;
  for (double element : value.toDoubleList().vec()) floats.push_back(static_cast<float>(element));
  if (static_cast<int>(floats.size()) != channels) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "TorchScript module %s: attribute '%s' has %d values; expected one per channel, %d", path, name,
        floats.size(), channels));
  }
  return floats;
}

}  // namespace

void SetImageNetNormalization(int channels, std::vector<float>& mean, std::vector<float>& std) {
  if (channels == 3) {
    mean = {0.485f, 0.456f, 0.406f};
    std = {0.229f, 0.224f, 0.225f};
  } else {
    mean.assign(channels, 0.449f);
    std.assign(channels, 0.226f);
  }
}

std::shared_ptr<Backbone> MakeVitBackbone(Vit vit) { return std::make_shared<VitBackbone>(std::move(vit)); }

absl::StatusOr<std::shared_ptr<Backbone>> LoadTorchScriptBackbone(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) {
    return absl::NotFoundError(absl::StrFormat(
        "TorchScript module %s does not exist; save one from Python with torch.jit.save(torch.jit.script(model), "
        "PATH)",
        path));
  }
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& error) {
    return absl::DataLossError(absl::StrFormat(
        "%s is not a loadable TorchScript module (%s); save it again with torch.jit.save", path,
        error.what_without_backtrace()));
  }

  BackboneInfo info;
  info.architecture = "torchscript";
  info.name = std::filesystem::path(path).filename().string();
  NEARND_ASSIGN_OR_RETURN(info.image_size, IntAttribute(module, "image_size", 224, path));
  NEARND_ASSIGN_OR_RETURN(info.channels, IntAttribute(module, "channels", 3, path));
  if (info.image_size < 1 || (info.channels != 1 && info.channels != 3)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "TorchScript module %s: image_size %d or channels %d is invalid; set a positive size and 1 or 3 "
        "channels",
        path, info.image_size, info.channels));
  }
  std::vector<float> default_mean;
  std::vector<float> default_std;
  SetImageNetNormalization(info.channels, default_mean, default_std);
  NEARND_ASSIGN_OR_RETURN(info.mean, FloatsAttribute(module, "mean", default_mean, info.channels, path));
  NEARND_ASSIGN_OR_RETURN(info.std, FloatsAttribute(module, "std", default_std, info.channels, path));
  for (size_t c = 0; c < info.std.size(); ++c) {
    if (!(std::isfinite(info.mean[c]) && std::isfinite(info.std[c]) && info.std[c] > 0.0f)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "TorchScript module %s: channel %d has mean %g and std %g; set finite values with a positive std", path,
          c, info.mean[c], info.std[c]));
    }
  }

  // One forward pass of a zero image measures the feature dimension and checks that forward
  // returns [N, D].
  module.eval();
  c10::IValue output;
  try {
    torch::NoGradGuard no_grad;
    output = module.forward({torch::zeros({1, info.channels, info.image_size, info.image_size})});
  } catch (const std::exception& error) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "TorchScript module %s fails on a [1, %d, %d, %d] image: %s", path, info.channels, info.image_size,
        info.image_size, error.what()));
  }
  if (!output.isTensor() || output.toTensor().dim() != 2 || output.toTensor().size(0) != 1) {
    const std::string returned = output.isTensor() ? absl::StrFormat("a tensor of shape [%s]",
                                                                absl::StrJoin(output.toTensor().sizes(), ", "))
                                              : std::string(output.tagKind());
    return absl::InvalidArgumentError(absl::StrFormat(
        "TorchScript module %s returns %s for one image; forward must return features [N, D]", path, returned));
  }
  info.dim = static_cast<int>(output.toTensor().size(1));
  return std::shared_ptr<Backbone>(std::make_shared<TorchScriptBackbone>(std::move(info), std::move(module)));
}

absl::Status SaveBackboneWeights(const Backbone& backbone, const std::string& path) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, tensor] : backbone.NamedTensors()) tensors[name] = tensor.detach();
  return SaveSafetensors(tensors, path);
}

absl::Status LoadBackboneWeights(Backbone& backbone, const std::string& path) {
  NEARND_ASSIGN_OR_RETURN(auto tensors, LoadSafetensors(path));
  return CopyNamedTensors(backbone.NamedTensors(), tensors, path);
}

absl::Status FreezeParameters(Backbone& backbone, const std::vector<std::string>& prefixes) {
  std::set<std::string> unused(prefixes.begin(), prefixes.end());
  for (auto& [name, parameter] : backbone.NamedParameters()) {
    bool frozen = false;
    for (const std::string& prefix : prefixes) {
      if (absl::StartsWith(name, prefix)) {
        frozen = true;
        unused.erase(prefix);
      }
    }
    parameter.set_requires_grad(!frozen);
  }
  if (!unused.empty()) {
    const auto parameters = backbone.NamedParameters();
    return absl::InvalidArgumentError(absl::StrFormat(
        "freeze prefix '%s' matches no parameter of backbone %s; parameter names look like '%s'", *unused.begin(),
        backbone.info().name, parameters.empty() ? "" : parameters.front().first));
  }
  return absl::OkStatus();
}

std::vector<std::string> VitFreezePrefixes(int blocks) {
  std::vector<std::string> prefixes = {"patch_embed.", "cls_token", "pos_embed"};
  for (int i = 0; i < blocks; ++i) prefixes.push_back(absl::StrFormat("blocks.%d.", i));
  return prefixes;
}

Classifier::Classifier(std::shared_ptr<Backbone> backbone, int classes)
    : backbone_(std::move(backbone)), head_(backbone_->info().dim, classes) {}

torch::Tensor Classifier::Forward(const torch::Tensor& images) { return head_(backbone_->Forward(images)); }

void Classifier::SetTraining(bool training) {
  backbone_->SetTraining(training);
  head_->train(training);
}

std::vector<torch::Tensor> Classifier::TrainableParameters() const {
  std::vector<torch::Tensor> parameters;
  for (const auto& [name, parameter] : backbone_->NamedParameters()) {
    if (parameter.requires_grad()) parameters.push_back(parameter);
  }
  for (const torch::Tensor& parameter : head_->parameters()) parameters.push_back(parameter);
  return parameters;
}

}  // namespace nearnd
