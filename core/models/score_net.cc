#include "core/models/score_net.h"

#include <cmath>

namespace nearnd {
namespace {

// Group count of every GroupNorm; widths are multiples of it.
constexpr int kGroups = 8;

torch::nn::Conv2d Conv3x3(int in_channels, int out_channels, int stride = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 3).stride(stride).padding(1));
}

torch::nn::ConvTranspose2d Upsample2x(int in_channels, int out_channels) {
  return torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in_channels, out_channels, 4).stride(2).padding(1));
}

}  // namespace

ResidualBlockImpl::ResidualBlockImpl(int in_channels, int out_channels, int embedding_dim) {
  norm1_ = register_module("norm1", torch::nn::GroupNorm(kGroups, in_channels));
  conv1_ = register_module("conv1", Conv3x3(in_channels, out_channels));
  embedding_projection_ = register_module("embedding_projection", torch::nn::Linear(embedding_dim, out_channels));
  norm2_ = register_module("norm2", torch::nn::GroupNorm(kGroups, out_channels));
  conv2_ = register_module("conv2", Conv3x3(out_channels, out_channels));
  if (in_channels != out_channels) {
    skip_ = register_module("skip", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 1)));
  }
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& embedding) {
  torch::Tensor h = conv1_(torch::silu(norm1_(x)));
  h = h + embedding_projection_(embedding).unsqueeze(-1).unsqueeze(-1);
  h = conv2_(torch::silu(norm2_(h)));
  return (skip_ ? skip_(x) : x) + h;
}

ScoreNetImpl::ScoreNetImpl(const ScoreNetConfig& config) : config_(config) {
  const int c = config.base_channels;
  const int e = config.embedding_dim;
  TORCH_CHECK(c % kGroups == 0, "score network width ", c, " is not a multiple of ", kGroups);

  // Fixed random frequencies; a buffer, so they are saved with the weights but not trained.
  fourier_frequencies_ = register_buffer("fourier_frequencies", torch::randn({e / 2}) * config.fourier_scale);
  embedding_mlp_ = register_module(
      "embedding_mlp", torch::nn::Sequential(torch::nn::Linear(e, e), torch::nn::SiLU(), torch::nn::Linear(e, e)));

  stem_ = register_module("stem", Conv3x3(config.channels, c));
  encoder_full_ = register_module("encoder_full", ResidualBlock(c, c, e));
  down_half_ = register_module("down_half", Conv3x3(c, 2 * c, 2));
  encoder_half_ = register_module("encoder_half", ResidualBlock(2 * c, 2 * c, e));
  down_quarter_ = register_module("down_quarter", Conv3x3(2 * c, 2 * c, 2));
  middle_ = register_module("middle", ResidualBlock(2 * c, 2 * c, e));
  up_half_ = register_module("up_half", Upsample2x(2 * c, 2 * c));
  decoder_half_ = register_module("decoder_half", ResidualBlock(4 * c, 2 * c, e));
  up_full_ = register_module("up_full", Upsample2x(2 * c, c));
  decoder_full_ = register_module("decoder_full", ResidualBlock(2 * c, c, e));
  out_norm_ = register_module("out_norm", torch::nn::GroupNorm(kGroups, c));
  out_ = register_module("out", Conv3x3(c, config.channels));

  // A zero output layer makes the initial score zero, which keeps early training stable.
  torch::NoGradGuard no_grad;
  out_->weight.zero_();
  out_->bias.zero_();
}

torch::Tensor ScoreNetImpl::forward(const torch::Tensor& x, const torch::Tensor& sigma) {
  // Gaussian Fourier features of log(sigma): [N, embedding_dim].
  const torch::Tensor phase = 2.0 * M_PI * torch::log(sigma).unsqueeze(1) * fourier_frequencies_.unsqueeze(0);
  const torch::Tensor embedding = torch::silu(embedding_mlp_->forward(torch::cat({phase.sin(), phase.cos()}, 1)));

  // Encoder at full, half and quarter resolution.
  const torch::Tensor full = encoder_full_(stem_(x), embedding);
  const torch::Tensor half = encoder_half_(down_half_(full), embedding);
  torch::Tensor h = middle_(down_quarter_(half), embedding);

  // Decoder with skip connections.
  h = decoder_half_(torch::cat({up_half_(h), half}, 1), embedding);
  h = decoder_full_(torch::cat({up_full_(h), full}, 1), embedding);
  h = out_(torch::silu(out_norm_(h)));

  // Scale by 1/sigma: the network predicts -z, the score of N(x0, sigma^2) is -z / sigma.
  return h / sigma.view({-1, 1, 1, 1});
}

}  // namespace nearnd
