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

  // ClassTokenForward returns forward(x).select(1, 0), the output of the class token alone,
  // computing queries and attention weights for that token only.
  torch::Tensor ClassTokenForward(const torch::Tensor& x);

  int heads() const { return heads_; }
  const torch::nn::Linear& qkv() const { return qkv_; }
  const torch::nn::Linear& proj() const { return proj_; }

 private:
  int heads_;
  torch::nn::Linear qkv_{nullptr};
  torch::nn::Linear proj_{nullptr};
};
TORCH_MODULE(Attention);

// Pre-norm encoder block: x + attn(norm1(x)), then x + mlp(norm2(x)). Without autograd and with
// an even head count it runs LibTorch's fused encoder layer kernel, the one PyTorch's
// nn.TransformerEncoderLayer runs in inference, which computes the same function faster.
class EncoderBlockImpl : public torch::nn::Module {
 public:
  explicit EncoderBlockImpl(const VitConfig& config);

  torch::Tensor forward(torch::Tensor x);

  // ClassTokenForward returns forward(x).select(1, 0): x [N, T, dim] -> [N, dim]. The last block
  // needs no other token's output, so its MLP and most of its attention run on one token.
  torch::Tensor ClassTokenForward(const torch::Tensor& x);

 private:
  torch::nn::LayerNorm norm1_{nullptr};
  Attention attn_{nullptr};
  torch::nn::LayerNorm norm2_{nullptr};
  torch::nn::Sequential mlp_{nullptr};
  torch::nn::Linear fc1_{nullptr};
  torch::nn::Linear fc2_{nullptr};
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
