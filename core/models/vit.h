#pragma once

#include <string>

#include <torch/torch.h>

#include "absl/status/statusor.h"

namespace nearnd {

// VitConfig is the shape of a Vision Transformer: square images of image_size pixels cut into
// patch_size patches, `depth` pre-norm encoder blocks of width `dim` with `heads` attention heads
// and a GELU MLP of width mlp_dim.
struct VitConfig {
  std::string name = "vit-quick";
  int image_size = 28;
  int patch_size = 7;
  int channels = 1;
  int dim = 128;
  int depth = 4;
  int heads = 4;
  int mlp_dim = 256;
  double layer_norm_eps = 1e-6;
};

// VitConfigByName returns a named configuration: "vit-quick" (small, for CPU at 28x28),
// "vit-ti16", "vit-s16", "vit-b16", "vit-b32" and "vit-l16" (224x224 RGB).
absl::StatusOr<VitConfig> VitConfigByName(const std::string& name);

// Multi-head self-attention with one fused qkv projection, as in timm's ViT, so that
// checkpoint tensors map onto parameters by name.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int dim, int heads);

  // x: [N, T, dim] -> [N, T, dim].
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int heads_;
  torch::nn::Linear qkv_{nullptr};
  torch::nn::Linear proj_{nullptr};
};
TORCH_MODULE(Attention);

// Pre-norm encoder block: x + attn(norm1(x)), then x + mlp(norm2(x)).
class EncoderBlockImpl : public torch::nn::Module {
 public:
  explicit EncoderBlockImpl(const VitConfig& config);

  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::LayerNorm norm1_{nullptr};
  Attention attn_{nullptr};
  torch::nn::LayerNorm norm2_{nullptr};
  torch::nn::Sequential mlp_{nullptr};
};
TORCH_MODULE(EncoderBlock);

// VitImpl is the backbone: patch embedding, class token, learned position embeddings, encoder
// blocks and a final LayerNorm. Parameter names follow timm ("patch_embed.proj.weight",
// "cls_token", "pos_embed", "blocks.0.attn.qkv.weight", "norm.weight").
class VitImpl : public torch::nn::Module {
 public:
  explicit VitImpl(const VitConfig& config);

  // images: [N, channels, image_size, image_size] -> features [N, dim], the class token after
  // the final LayerNorm.
  torch::Tensor forward(const torch::Tensor& images);

  const VitConfig& config() const { return config_; }

 private:
  VitConfig config_;
  torch::nn::Conv2d patch_embed_{nullptr};
  torch::Tensor cls_token_;
  torch::Tensor pos_embed_;
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(Vit);

}  // namespace nearnd
