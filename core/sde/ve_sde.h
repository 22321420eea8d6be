#pragma once

#include <functional>

#include <torch/torch.h>

namespace nearnd {

// ScoreFunction maps (x [N, ...], sigma [N]) to the score estimate, shaped like x.
using ScoreFunction = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>;

// VeSde is the variance-exploding SDE dx = sqrt(d[sigma^2(t)]/dt) dw on t in [0, 1] with the
// geometric noise schedule sigma(t) = sigma_min * (sigma_max / sigma_min)^t.
//
// Its perturbation kernel is p_t(x | x0) = N(x0, sigma(t)^2 I), so the marginal standard
// deviation added to the data at time t is sigma(t) and the prior is N(0, sigma_max^2 I).
class VeSde {
 public:
  VeSde(double sigma_min, double sigma_max);

  double sigma_min() const { return sigma_min_; }
  double sigma_max() const { return sigma_max_; }

  // Sigma returns sigma(t) elementwise for t in [0, 1].
  torch::Tensor Sigma(const torch::Tensor& t) const;
  double Sigma(double t) const;

  // MarginalStd returns the standard deviation of x(t) given x(0): sigma(t).
  torch::Tensor MarginalStd(const torch::Tensor& t) const { return Sigma(t); }

  // PriorSample draws from N(0, sigma_max^2 I).
  torch::Tensor PriorSample(torch::IntArrayRef shape) const;

  // DiscreteSigmas returns the `steps` noise levels of the reverse sampler, geometric from
  // sigma_max down to sigma_min (t from 1 to 0).
  torch::Tensor DiscreteSigmas(int steps) const;

 private:
  double sigma_min_;
  double sigma_max_;
};

// DenoisingScoreMatchingLoss returns the loss of a score model on clean data x0 [N, ...] with
// weighting lambda(t) = sigma(t)^2 and t ~ U(eps, 1):
//   mean over the batch of || sigma * score(x0 + sigma z, sigma) + z ||^2 / 2, summed over pixels.
torch::Tensor DenoisingScoreMatchingLoss(
    const VeSde& sde, const ScoreFunction& score,
    const torch::Tensor& x0, double eps = 1e-5);

}  // namespace nearnd
