#pragma once

#include <torch/torch.h>

namespace nearnd {

// ScoreNetConfig sizes the score network: a two-level U-Net over `channels`-channel images
// whose side is divisible by 4, with base_channels at full resolution and twice that below.
struct ScoreNetConfig {
  int channels = 1;
  int base_channels = 32;
  int embedding_dim = 128;

  // Standard deviation of the random Fourier frequencies that embed log(sigma).
  double fourier_scale = 16.0;
};

// Residual block conditioned on the noise embedding. Its first half is GroupNorm, SiLU and a
// 3x3 conv plus a projection of the embedding, its second half GroupNorm, SiLU and a 3x3 conv,
// and a 1x1 conv skip matches widths when they differ.
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int in_channels, int out_channels, int embedding_dim);

  // x: [N, in, H, W], embedding: [N, embedding_dim] -> [N, out, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& embedding);

 private:
  torch::nn::GroupNorm norm1_{nullptr};
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::Linear embedding_projection_{nullptr};
  torch::nn::GroupNorm norm2_{nullptr};
  torch::nn::Conv2d conv2_{nullptr};
  torch::nn::Conv2d skip_{nullptr};
};
TORCH_MODULE(ResidualBlock);

// ScoreNetImpl estimates the score grad_x log p_sigma(x) of the variance-exploding SDE. As in
// NCSN++, it embeds log(sigma) with Gaussian Fourier features and divides its output by sigma,
// so the network itself predicts unit-scale noise.
class ScoreNetImpl : public torch::nn::Module {
 public:
  explicit ScoreNetImpl(const ScoreNetConfig& config);

  // x: [N, C, H, W], sigma: [N] -> score [N, C, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& sigma);

  const ScoreNetConfig& config() const { return config_; }

 private:
  ScoreNetConfig config_;
  torch::Tensor fourier_frequencies_;
  torch::nn::Sequential embedding_mlp_{nullptr};
  torch::nn::Conv2d stem_{nullptr};
  ResidualBlock encoder_full_{nullptr};
  torch::nn::Conv2d down_half_{nullptr};
  ResidualBlock encoder_half_{nullptr};
  torch::nn::Conv2d down_quarter_{nullptr};
  ResidualBlock middle_{nullptr};
  torch::nn::ConvTranspose2d up_half_{nullptr};
  ResidualBlock decoder_half_{nullptr};
  torch::nn::ConvTranspose2d up_full_{nullptr};
  ResidualBlock decoder_full_{nullptr};
  torch::nn::GroupNorm out_norm_{nullptr};
  torch::nn::Conv2d out_{nullptr};
};
TORCH_MODULE(ScoreNet);

}  // namespace nearnd
