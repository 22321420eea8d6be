#include "core/models/vit.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace nearnd {
namespace {

// RequiresGrad returns whether any parameter of `module` requires a gradient.
bool RequiresGrad(const torch::nn::Module& module) {
  for (const torch::Tensor& parameter : module.parameters()) {
    if (parameter.requires_grad()) return true;
  }
  return false;
}

// Standard deviation of the truncated-normal initialisation of embeddings and linear layers,
// as in the reference ViT.
constexpr double kInitStd = 0.02;

// TruncatedNormal fills `tensor` with N(0, std^2) draws, redrawing any beyond two standard
// deviations. LibTorch 1.13's C++ API has no trunc_normal_.
void TruncatedNormal(torch::Tensor tensor, double std) {
  torch::NoGradGuard no_grad;
  tensor.normal_(0.0, std);
  for (torch::Tensor outside = tensor.abs() > 2 * std; outside.any().item<bool>();
       outside = tensor.abs() > 2 * std) {
    tensor.masked_scatter_(outside, torch::randn_like(tensor).mul_(std).masked_select(outside));
  }
}

VitConfig MakeConfig(const std::string& name, int image_size, int patch_size, int channels,
                     int dim, int depth, int heads, int mlp_dim) {
  VitConfig config;
  config.name = name;
  config.image_size = image_size;
  config.patch_size = patch_size;
  config.channels = channels;
  config.dim = dim;
  config.depth = depth;
  config.heads = heads;
  config.mlp_dim = mlp_dim;
  return config;
}

}  // namespace

absl::StatusOr<VitConfig> VitConfigByName(const std::string& name) {
  if (name == "vit-quick") return MakeConfig(name, 28, 7, 1, 128, 4, 4, 256);
  if (name == "vit-ti16") return MakeConfig(name, 224, 16, 3, 192, 12, 3, 768);
  if (name == "vit-s16") return MakeConfig(name, 224, 16, 3, 384, 12, 6, 1536);
  if (name == "vit-b16") return MakeConfig(name, 224, 16, 3, 768, 12, 12, 3072);
  if (name == "vit-b32") return MakeConfig(name, 224, 32, 3, 768, 12, 12, 3072);
  if (name == "vit-l16") return MakeConfig(name, 224, 16, 3, 1024, 24, 16, 4096);
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown backbone '%s'; use one of vit-quick, vit-ti16, vit-s16, vit-b16, vit-b32, vit-l16",
      name));
}

AttentionImpl::AttentionImpl(int dim, int heads) : heads_(heads) {
  TORCH_CHECK(dim % heads == 0, "attention width ", dim, " is not divisible by ", heads, " heads");
  qkv_ = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj_ = register_module("proj", torch::nn::Linear(dim, dim));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  const int64_t batch = x.size(0);
  const int64_t tokens = x.size(1);
  const int64_t dim = x.size(2);
  const int64_t head_dim = dim / heads_;

  // [N, T, 3 * dim] -> three contiguous [N, heads, T, head_dim] tensors, so the batched
  // matrix products below read them without copies.
  const torch::Tensor qkv =
      qkv_(x).reshape({batch, tokens, 3, heads_, head_dim}).permute({2, 0, 3, 1, 4}).contiguous();
  // Scaling q costs T * head_dim multiplications per head, scaling q k^T would cost T * T.
  const torch::Tensor q = qkv[0] * (1.0 / std::sqrt(static_cast<double>(head_dim)));
  const torch::Tensor k = qkv[1];
  const torch::Tensor v = qkv[2];

  const torch::Tensor attention = torch::matmul(q, k.transpose(-2, -1)).softmax(-1);

  torch::Tensor out = torch::matmul(attention, v).transpose(1, 2).reshape({batch, tokens, dim});
  return proj_(out);
}

torch::Tensor AttentionImpl::ClassTokenForward(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  const int64_t batch = x.size(0);
  const int64_t tokens = x.size(1);
  const int64_t dim = x.size(2);
  const int64_t head_dim = dim / heads_;
  const torch::Tensor& weight = qkv_->weight;
  const torch::Tensor& bias = qkv_->bias;

  // The class token's query [N, heads, 1, head_dim], and keys and values of every token.
  const torch::Tensor q = F::linear(x.select(1, 0), weight.slice(0, 0, dim), bias.slice(0, 0, dim))
                              .reshape({batch, heads_, 1, head_dim}) *
                          (1.0 / std::sqrt(static_cast<double>(head_dim)));
  const torch::Tensor kv = F::linear(x, weight.slice(0, dim, 3 * dim), bias.slice(0, dim, 3 * dim))
                               .reshape({batch, tokens, 2, heads_, head_dim})
                               .permute({2, 0, 3, 1, 4})
                               .contiguous();

  const torch::Tensor attention = torch::matmul(q, kv[0].transpose(-2, -1)).softmax(-1);
  return proj_(torch::matmul(attention, kv[1]).reshape({batch, dim}));
}

EncoderBlockImpl::EncoderBlockImpl(const VitConfig& config) {
  const auto norm_options = torch::nn::LayerNormOptions({config.dim}).eps(config.layer_norm_eps);
  norm1_ = register_module("norm1", torch::nn::LayerNorm(norm_options));
  attn_ = register_module("attn", Attention(config.dim, config.heads));
  norm2_ = register_module("norm2", torch::nn::LayerNorm(norm_options));

  // Named like timm's Mlp (fc1, fc2) so checkpoints map by name.
  fc1_ = torch::nn::Linear(config.dim, config.mlp_dim);
  fc2_ = torch::nn::Linear(config.mlp_dim, config.dim);
  mlp_ = torch::nn::Sequential();
  mlp_->push_back("fc1", fc1_);
  mlp_->push_back("act", torch::nn::GELU());
  mlp_->push_back("fc2", fc2_);
  register_module("mlp", mlp_);
}

torch::Tensor EncoderBlockImpl::forward(torch::Tensor x) {
  // PyTorch's nn.TransformerEncoderLayer leaves the fused kernel out for an odd head count, as
  // its CUDA version needs an even one, so nearnd does too.
  if (torch::GradMode::is_enabled() || attn_->heads() % 2 == 1) {
    x = x + attn_(norm1_(x));
    return x + mlp_->forward(norm2_(x));
  }
  // The fused kernel: pre-norm (norm_first), exact GELU, no attention mask.
  return at::_transformer_encoder_layer_fwd(
      x, x.size(2), attn_->heads(), attn_->qkv()->weight, attn_->qkv()->bias, attn_->proj()->weight,
      attn_->proj()->bias, /*use_gelu=*/true, /*norm_first=*/true, norm1_->options.eps(), norm1_->weight,
      norm1_->bias, norm2_->weight, norm2_->bias, fc1_->weight, fc1_->bias, fc2_->weight, fc2_->bias);
}

torch::Tensor EncoderBlockImpl::ClassTokenForward(const torch::Tensor& x) {
  const torch::Tensor attended = x.select(1, 0) + attn_->ClassTokenForward(norm1_(x));
  return attended + mlp_->forward(norm2_(attended));
}

VitImpl::VitImpl(const VitConfig& config) : config_(config) {
  TORCH_CHECK(config.image_size % config.patch_size == 0, "image size ", config.image_size,
              " is not a multiple of the patch size ", config.patch_size);
  const int64_t patches = (config.image_size / config.patch_size) * (config.image_size / config.patch_size);

  // A container module named "patch_embed" holding "proj", as timm names it.
  auto patch_embed = std::make_shared<torch::nn::Module>();
  patch_embed_ = patch_embed->register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(config.channels, config.dim, config.patch_size)
                                    .stride(config.patch_size)));
  register_module("patch_embed", patch_embed);

  cls_token_ = register_parameter("cls_token", torch::zeros({1, 1, config.dim}));
  pos_embed_ = register_parameter("pos_embed", torch::empty({1, patches + 1, config.dim}));
  TruncatedNormal(pos_embed_, kInitStd);

  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < config.depth; ++i) blocks_->push_back(EncoderBlock(config));
  norm_ = register_module(
      "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim}).eps(config.layer_norm_eps)));

  // Linear layers: truncated normal weights and zero biases.
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::Linear>()) {
      TruncatedNormal(linear->weight, kInitStd);
      torch::nn::init::zeros_(linear->bias);
    }
  }
}

torch::Tensor VitImpl::forward(const torch::Tensor& images) {
  // [N, C, H, W] -> [N, patches, dim].
  torch::Tensor x = patch_embed_(images).flatten(2).transpose(1, 2);

  // Prepend the class token and add position embeddings.
  x = torch::cat({cls_token_.expand({x.size(0), -1, -1}), x}, 1) + pos_embed_;

  // The feature is the class token after the final norm, so the last block computes only the
  // class token's output.
  const int64_t depth = static_cast<int64_t>(blocks_->size());
  for (int64_t i = 0; i + 1 < depth; ++i) {
    EncoderBlockImpl* block = blocks_[i]->as<EncoderBlock>();
    // A block that nothing upstream or inside trains (a frozen one during fine-tuning) needs no
    // autograd graph, so it runs without one and so on the fused kernel. The blocks have no
    // dropout, so training mode computes the same function.
    if (torch::GradMode::is_enabled() && !x.requires_grad() && !RequiresGrad(*block)) {
      torch::NoGradGuard no_grad;
      x = block->forward(x);
    } else {
      x = block->forward(x);
    }
  }
  const torch::Tensor token = depth > 0 ? blocks_[depth - 1]->as<EncoderBlock>()->ClassTokenForward(x) : x.select(1, 0);
  return norm_(token);
}

}  // namespace nearnd
