#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/sde/pc_sampler.h"
#include "core/sde/ve_sde.h"

namespace nearnd {
namespace {

TEST(VeSde, SigmaFollowsGeometricSchedule) {
  const VeSde sde(0.01, 50.0);
  EXPECT_NEAR(sde.Sigma(0.0), 0.01, 1e-12);
  EXPECT_NEAR(sde.Sigma(1.0), 50.0, 1e-9);
  EXPECT_NEAR(sde.Sigma(0.5), std::sqrt(0.01 * 50.0), 1e-9);

  const torch::Tensor t = torch::tensor({0.0, 0.25, 1.0}, torch::kFloat64);
  const torch::Tensor std = sde.MarginalStd(t);
  EXPECT_NEAR(std[1].item<double>(), 0.01 * std::pow(5000.0, 0.25), 1e-9);
}

TEST(VeSde, PerturbationHasMarginalStd) {
  torch::manual_seed(1);
  const VeSde sde(0.01, 50.0);
  const double t = 0.7;

  // x(t) = x(0) + sigma(t) z, so from x(0) = 0 the sample std is sigma(t).
  const torch::Tensor perturbed = sde.Sigma(torch::full({200000}, t, torch::kFloat64)) * torch::randn({200000});
  EXPECT_NEAR(perturbed.std().item<double>() / sde.Sigma(t), 1.0, 0.01);
}

TEST(VeSde, PriorHasSigmaMaxStd) {
  torch::manual_seed(2);
  const VeSde sde(0.01, 50.0);
  const torch::Tensor prior = sde.PriorSample({1000, 100});
  EXPECT_NEAR(prior.mean().item<double>(), 0.0, 0.5);
  EXPECT_NEAR(prior.std().item<double>() / 50.0, 1.0, 0.01);
}

TEST(VeSde, DiscreteSigmasDescend) {
  const VeSde sde(0.01, 50.0);
  const torch::Tensor sigmas = sde.DiscreteSigmas(10);
  ASSERT_EQ(sigmas.size(0), 10);
  EXPECT_NEAR(sigmas[0].item<double>(), 50.0, 1e-4);
  EXPECT_NEAR(sigmas[9].item<double>(), 0.01, 1e-6);
  EXPECT_TRUE((sigmas.slice(0, 1) < sigmas.slice(0, 0, 9)).all().item<bool>());
}

TEST(PcSampler, RecoversGaussianMeanAndVariance) {
  torch::manual_seed(3);
  const VeSde sde(0.01, 20.0);

  // Data N(mean, s^2 I) perturbed to sigma is N(mean, (s^2 + sigma^2) I), whose score is exact.
  const double mean = 1.5;
  const double data_std = 0.5;
  const ScoreFunction score = [&](const torch::Tensor& x, const torch::Tensor& sigma) {
    const torch::Tensor variance = (data_std * data_std + sigma.square()).view({-1, 1});
    return -(x - mean) / variance;
  };

  PcSamplerOptions options;
  options.steps = 500;
  options.corrector_steps = 1;
  options.snr = 0.05;
  const torch::Tensor samples = SamplePc(sde, score, {4000, 8}, options);

  // Tolerances: the standard error of the mean is 0.5 / sqrt(32000) ~ 0.003 and of the variance
  // about 0.8%. A Langevin step of size eps on a Gaussian of variance v has stationary variance
  // v / (1 - eps / 2v); with eps / v = 2 snr^2 = 0.005 that biases the variance by +0.25%.
  EXPECT_NEAR(samples.mean().item<double>(), mean, 0.02);
  EXPECT_NEAR(samples.var().item<double>() / (data_std * data_std), 1.0, 0.02);
}

TEST(DenoisingScoreMatching, ExactScoreReachesNoiseFloor) {
  torch::manual_seed(4);
  const VeSde sde(0.01, 20.0);

  // For data at a single point x0, the score of the perturbed density is -(x - x0) / sigma^2,
  // which makes the weighted residual sigma * score + z exactly zero.
  const torch::Tensor x0 = torch::full({64, 3}, 2.0);
  const auto exact = [&](const torch::Tensor& x, const torch::Tensor& sigma) {
    return -(x - 2.0) / sigma.square().view({-1, 1});
  };
  EXPECT_NEAR(DenoisingScoreMatchingLoss(sde, exact, x0).item<double>(), 0.0, 1e-6);

  // A zero score leaves |z|^2 / 2, whose expectation is dimensions / 2.
  const auto zero = [](const torch::Tensor& x, const torch::Tensor&) { return torch::zeros_like(x); };
  const torch::Tensor big = torch::zeros({20000, 3});
  EXPECT_NEAR(DenoisingScoreMatchingLoss(sde, zero, big).item<double>(), 1.5, 0.05);
}

}  // namespace
}  // namespace nearnd
