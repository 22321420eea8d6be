#include "core/metrics/frechet.h"

#include "absl/strings/str_format.h"

namespace nearnd {
namespace {

// SymmetricSqrt returns the principal square root of a symmetric positive semi-definite
// matrix; eigenvalues that rounding made slightly negative are clamped to zero.
torch::Tensor SymmetricSqrt(const torch::Tensor& matrix) {
  auto [eigenvalues, eigenvectors] = torch::linalg::eigh(matrix, "L");
  return eigenvectors.matmul(torch::diag(eigenvalues.clamp_min(0).sqrt())).matmul(eigenvectors.transpose(0, 1));
}

torch::Tensor Covariance(const torch::Tensor& features, const torch::Tensor& mean) {
  const torch::Tensor centred = features - mean;
  return centred.transpose(0, 1).matmul(centred) / static_cast<double>(features.size(0) - 1);
}

}  // namespace

absl::StatusOr<double> FrechetDistance(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Frechet distance needs two feature matrices of equal width, got %d-D and %d-D tensors of widths %d and %d",
        a.dim(), b.dim(), a.dim() == 2 ? a.size(1) : -1, b.dim() == 2 ? b.size(1) : -1));
  }
  if (a.size(0) < 2 || b.size(0) < 2) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Frechet distance needs at least 2 rows per set, got %d and %d", a.size(0), b.size(0)));
  }

  torch::NoGradGuard no_grad;
  const torch::Tensor x = a.to(torch::kFloat64);
  const torch::Tensor y = b.to(torch::kFloat64);
  const torch::Tensor mean_x = x.mean(0);
  const torch::Tensor mean_y = y.mean(0);
  const torch::Tensor cov_x = Covariance(x, mean_x);
  const torch::Tensor cov_y = Covariance(y, mean_y);

  // tr(sqrt(S_x S_y)) = tr(sqrt(S_x^(1/2) S_y S_x^(1/2))), whose argument is symmetric PSD.
  const torch::Tensor root_x = SymmetricSqrt(cov_x);
  torch::Tensor middle = root_x.matmul(cov_y).matmul(root_x);
  middle = 0.5 * (middle + middle.transpose(0, 1));
  const torch::Tensor trace_root = torch::linalg::eigvalsh(middle, "L").clamp_min(0).sqrt().sum();

  const double distance = (mean_x - mean_y).square().sum().item<double>() + cov_x.trace().item<double>() +
                          cov_y.trace().item<double>() - 2.0 * trace_root.item<double>();
  return std::max(distance, 0.0);
}

}  // namespace nearnd
