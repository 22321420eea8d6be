#include "core/metrics/frechet.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace nearnd {
namespace {

TEST(FrechetDistance, IdenticalSetsAreZero) {
  torch::manual_seed(5);
  const torch::Tensor features = torch::randn({300, 16});
  absl::StatusOr<double> distance = FrechetDistance(features, features);
  ASSERT_TRUE(distance.ok()) << distance.status();
  EXPECT_NEAR(*distance, 0.0, 1e-8);
}

TEST(FrechetDistance, OneDimensionalHandCase) {
  // a: mean 1, unbiased variance 2. b: mean 3, variance 8.
  // FD = (1 - 3)^2 + 2 + 8 - 2 sqrt(2 * 8) = 4 + 10 - 8 = 6.
  const torch::Tensor a = torch::tensor({0.0, 2.0}).view({2, 1});
  const torch::Tensor b = torch::tensor({1.0, 5.0}).view({2, 1});
  absl::StatusOr<double> distance = FrechetDistance(a, b);
  ASSERT_TRUE(distance.ok()) << distance.status();
  EXPECT_NEAR(*distance, 6.0, 1e-9);
}

TEST(FrechetDistance, TwoDimensionalHandCase) {
  // a: the corners of a square of side 2, mean (1, 1), covariance (4/3) I.
  // b = 2 a + 1: mean (3, 3), covariance (16/3) I.
  // FD = |(2, 2)|^2 + 8/3 + 32/3 - 2 * 2 * sqrt(64/9) = 8 + 40/3 - 32/3 = 32/3.
  const torch::Tensor a = torch::tensor({0.0, 0.0, 2.0, 0.0, 0.0, 2.0, 2.0, 2.0}).view({4, 2});
  const torch::Tensor b = 2 * a + 1;
  absl::StatusOr<double> distance = FrechetDistance(a, b);
  ASSERT_TRUE(distance.ok()) << distance.status();
  EXPECT_NEAR(*distance, 32.0 / 3.0, 1e-9);
}

TEST(FrechetDistance, GrowsWithMeanShift) {
  torch::manual_seed(6);
  const torch::Tensor a = torch::randn({500, 8});
  absl::StatusOr<double> near = FrechetDistance(a, a + 0.1);
  absl::StatusOr<double> far = FrechetDistance(a, a + 1.0);
  ASSERT_TRUE(near.ok()) << near.status();
  ASSERT_TRUE(far.ok()) << far.status();
  EXPECT_NEAR(*near, 8 * 0.01, 1e-6);
  EXPECT_NEAR(*far, 8 * 1.0, 1e-6);
}

TEST(FrechetDistance, RejectsMismatchedWidths) {
  absl::StatusOr<double> distance = FrechetDistance(torch::zeros({4, 3}), torch::zeros({4, 5}));
  ASSERT_FALSE(distance.ok());
  EXPECT_EQ(distance.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FrechetDistance, RejectsSingleRow) {
  absl::StatusOr<double> distance = FrechetDistance(torch::zeros({1, 3}), torch::zeros({4, 3}));
  ASSERT_FALSE(distance.ok());
  EXPECT_EQ(distance.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nearnd
