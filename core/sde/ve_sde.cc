#include "core/sde/ve_sde.h"

#include <cmath>

namespace nearnd {

VeSde::VeSde(double sigma_min, double sigma_max) : sigma_min_(sigma_min), sigma_max_(sigma_max) {
  TORCH_CHECK(0 < sigma_min && sigma_min < sigma_max, "VE SDE needs 0 < sigma_min < sigma_max, got ", sigma_min,
              " and ", sigma_max);
}

torch::Tensor VeSde::Sigma(const torch::Tensor& t) const {
  return sigma_min_ * torch::pow(sigma_max_ / sigma_min_, t);
}

double VeSde::Sigma(double t) const { return sigma_min_ * std::pow(sigma_max_ / sigma_min_, t); }

torch::Tensor VeSde::PriorSample(torch::IntArrayRef shape) const { return torch::randn(shape) * sigma_max_; }

torch::Tensor VeSde::DiscreteSigmas(int steps) const {
  return torch::exp(torch::linspace(std::log(sigma_max_), std::log(sigma_min_), steps, torch::kFloat64))
      .to(torch::kFloat32);
}

torch::Tensor DenoisingScoreMatchingLoss(
    const VeSde& sde, const ScoreFunction& score,
    const torch::Tensor& x0, double eps) {
  const int64_t batch = x0.size(0);
  const torch::Tensor t = torch::rand({batch}, x0.options()) * (1.0 - eps) + eps;
  const torch::Tensor sigma = sde.Sigma(t);

  // Broadcast sigma over the non-batch dimensions.
  std::vector<int64_t> view(x0.dim(), 1);
  view[0] = batch;
  const torch::Tensor sigma_view = sigma.view(view);

  const torch::Tensor z = torch::randn_like(x0);
  const torch::Tensor perturbed = x0 + sigma_view * z;

  // With lambda = sigma^2, lambda * |score + z / sigma|^2 = |sigma * score + z|^2.
  const torch::Tensor residual = sigma_view * score(perturbed, sigma) + z;
  return 0.5 * residual.square().flatten(1).sum(1).mean();
}

}  // namespace nearnd
