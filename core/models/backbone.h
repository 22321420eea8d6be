#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/models/vit.h"

namespace nearnd {

// Prefix of a --backbone value that names a TorchScript module file.
inline constexpr char kTorchScriptPrefix[] = "torchscript:";

// BackboneInfo is what the rest of nearnd needs to know about a feature extractor.
struct BackboneInfo {
  // "vit" for nearnd's own Vision Transformer, "torchscript" for a module exported from Python.
  std::string architecture;

  // Configuration name ("vit-b16") or, for TorchScript, the module's file name.
  std::string name;

  // Square input size in pixels, input channels and feature dimension.
  int image_size = 0;
  int channels = 0;
  int dim = 0;

  // Per-channel normalisation the backbone was pretrained with.
  std::vector<float> mean;
  std::vector<float> std;
};

// SetImageNetNormalization sets mean and std to ImageNet's per-channel values, the normalisation
// of torchvision's pretrained CNNs. A grayscale input (channels 1) gets their averages.
void SetImageNetNormalization(int channels, std::vector<float>& mean, std::vector<float>& std);

// Backbone maps normalised images [N, channels, image_size, image_size] to features [N, dim].
// Parameters and buffers have stable dotted names ("blocks.0.attn.qkv.weight",
// "layer1.0.conv1.weight"), which --freeze prefixes and weight files use.
// Backbones start in eval mode. Thread-safety: Forward may run concurrently; everything else
// may not.
class Backbone {
 public:
  virtual ~Backbone() = default;

  const BackboneInfo& info() const { return info_; }

  virtual torch::Tensor Forward(const torch::Tensor& images) = 0;

  // SetTraining switches dropout and batch-norm statistics between training and evaluation.
  // Submodules whose parameters are all frozen may stay in evaluation mode.
  virtual void SetTraining(bool training) = 0;

  virtual std::vector<std::pair<std::string, torch::Tensor>> NamedParameters() const = 0;

  // NamedTensors returns parameters and buffers, what a weights file holds.
  virtual std::map<std::string, torch::Tensor> NamedTensors() const = 0;

  // Vit returns the module of a "vit" backbone and a null holder for any other.
  virtual Vit vit() const { return Vit(nullptr); }

 protected:
  explicit Backbone(BackboneInfo info) : info_(std::move(info)) {}

 private:
  BackboneInfo info_;
};

// MakeVitBackbone wraps a Vision Transformer. Its normalisation is mean and std 0.5 per
// channel, as Google's and timm's ViT checkpoints were trained.
std::shared_ptr<Backbone> MakeVitBackbone(Vit vit);

// LoadTorchScriptBackbone loads a module saved by torch.jit.save from a scripted or traced
// model whose forward takes [N, C, H, W] float images and returns features [N, D]. The module
// may carry the attributes image_size (int, default 224), channels (int, default 3), and mean
// and std (List[float], default the ImageNet values). The feature dimension is measured with
// one forward pass of a zero image.
absl::StatusOr<std::shared_ptr<Backbone>> LoadTorchScriptBackbone(const std::string& path);

// SaveBackboneWeights writes NamedTensors() as safetensors.
absl::Status SaveBackboneWeights(const Backbone& backbone, const std::string& path);

// LoadBackboneWeights copies a safetensors file written by SaveBackboneWeights into the
// backbone. Every tensor must be present with its exact shape, and no other may be.
absl::Status LoadBackboneWeights(Backbone& backbone, const std::string& path);

// FreezeParameters stops gradients for every parameter whose name starts with one of
// `prefixes` and enables them for all others. A prefix that matches no parameter is an
// InvalidArgumentError naming it, as it is almost always a typo.
absl::Status FreezeParameters(Backbone& backbone, const std::vector<std::string>& prefixes);

// VitFreezePrefixes returns the prefixes of a ViT's patch embedding, class token, position
// embeddings and first `blocks` encoder blocks.
std::vector<std::string> VitFreezePrefixes(int blocks);

// Classifier is a backbone with a linear head on its feature: it pretrains a backbone on a
// labelled dataset and fine-tunes it on normal (0) vs fake (1).
class Classifier {
 public:
  Classifier(std::shared_ptr<Backbone> backbone, int classes);

  // images -> logits [N, classes].
  torch::Tensor Forward(const torch::Tensor& images);

  void SetTraining(bool training);

  // TrainableParameters returns the head and the backbone parameters that require gradients.
  std::vector<torch::Tensor> TrainableParameters() const;

  Backbone& backbone() const { return *backbone_; }
  torch::nn::Linear head() const { return head_; }

 private:
  std::shared_ptr<Backbone> backbone_;
  torch::nn::Linear head_;
};

}  // namespace nearnd
