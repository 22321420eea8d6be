#include "core/sde/pc_sampler.h"

namespace nearnd {
namespace {

// MeanSampleNorm returns the L2 norm of each sample, averaged over the batch.
double MeanSampleNorm(const torch::Tensor& x) { return x.flatten(1).norm(2, 1).mean().item<double>(); }

}  // namespace

torch::Tensor SamplePc(const VeSde& sde, const ScoreFunction& score, torch::IntArrayRef shape,
                       const PcSamplerOptions& options) {
  TORCH_CHECK(options.steps >= 2, "the PC sampler needs at least 2 steps, got ", options.steps);
  torch::NoGradGuard no_grad;

  const torch::Tensor sigmas = sde.DiscreteSigmas(options.steps);
  const int64_t batch = shape[0];
  torch::Tensor x = sde.PriorSample(shape);
  torch::Tensor mean = x;

  for (int i = 0; i < options.steps; ++i) {
    const double sigma = sigmas[i].item<double>();
    const torch::Tensor sigma_batch = torch::full({batch}, sigma);

    // Langevin corrector: x += eps * score + sqrt(2 eps) z with eps set by the target
    // signal-to-noise ratio, eps = 2 (snr |z| / |score|)^2. The norms are batch means: a
    // per-sample ratio is noisy in few dimensions and inflates the sample variance.
    for (int j = 0; j < options.corrector_steps; ++j) {
      const torch::Tensor grad = score(x, sigma_batch);
      const torch::Tensor noise = torch::randn_like(x);
      const double ratio = options.snr * MeanSampleNorm(noise) / std::max(MeanSampleNorm(grad), 1e-12);
      const double step = 2.0 * ratio * ratio;
      x = x + step * grad + std::sqrt(2.0 * step) * noise;
    }

    // Reverse-diffusion predictor from sigma_i to sigma_{i+1} (zero after the last level):
    // x += (sigma_i^2 - sigma_{i+1}^2) score + sqrt(sigma_i^2 - sigma_{i+1}^2) z.
    const double next_sigma = i + 1 < options.steps ? sigmas[i + 1].item<double>() : 0.0;
    const double variance = sigma * sigma - next_sigma * next_sigma;
    mean = x + variance * score(x, sigma_batch);
    x = mean + std::sqrt(variance) * torch::randn_like(x);
  }
  return options.denoise ? mean : x;
}

}  // namespace nearnd
