#pragma once

#include <torch/torch.h>

namespace nearnd {

// ScoreNetConfig sizes the score network: a U-Net over `channels`-channel images whose side is
// divisible by 4, with base_channels at full resolution, doubled at each of two downsamplings.
struct ScoreNetConfig {
  int channels = 1;
  int base_channels = 32;
  int embedding_dim = 128;
  double fourier_scale = 16.0;
};

// ScoreNetImpl estimates the score grad_x log p_sigma(x) of a variance-exploding SDE. It is
// conditioned on log(sigma) through Gaussian Fourier features and divides its output by sigma,
// as NCSN++ does, so the network itself predicts unit-scale noise.
class ScoreNetImpl : public torch::nn::Module {
 public:
  explicit ScoreNetImpl(const ScoreNetConfig& config);

  // x: [N, C, H, W], sigma: [N] -> score [N, C, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& sigma);

 private:
  struct Block;
  torch::Tensor ApplyBlock(int index, const torch::Tensor& x, const torch::Tensor& embedding);

  ScoreNetConfig config_;
  torch::Tensor fourier_weights_;
  torch::nn::Sequential embed_{nullptr};
  torch::nn::Conv2d stem_{nullptr};
  torch::nn::ModuleList convs_{nullptr};
  torch::nn::ModuleList norms_{nullptr};
  torch::nn::ModuleList projections_{nullptr};
  torch::nn::Conv2d down1_{nullptr};
  torch::nn::Conv2d down2_{nullptr};
  torch::nn::ConvTranspose2d up1_{nullptr};
  torch::nn::ConvTranspose2d up2_{nullptr};
  torch::nn::GroupNorm out_norm_{nullptr};
  torch::nn::Conv2d out_{nullptr};
};
TORCH_MODULE(ScoreNet);

}  // namespace nearnd
