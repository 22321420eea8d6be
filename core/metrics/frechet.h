#pragma once

#include <torch/torch.h>

#include "absl/status/statusor.h"

namespace nearnd {

// FrechetDistance returns the Frechet distance between Gaussians fitted to two feature sets
// a [N, D] and b [M, D]:
//   |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)),
// in double precision with unbiased covariances. Needs N, M >= 2.
absl::StatusOr<double> FrechetDistance(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace nearnd
