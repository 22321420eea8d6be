#include "core/metrics/auroc.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace nearnd {
namespace {

TEST(Auroc, PerfectSeparationIsOne) {
  absl::StatusOr<double> auroc = Auroc({0.1f, 0.2f, 0.8f, 0.9f}, {0, 0, 1, 1});
  ASSERT_TRUE(auroc.ok()) << auroc.status();
  EXPECT_DOUBLE_EQ(*auroc, 1.0);
}

TEST(Auroc, ReversedSeparationIsZero) {
  absl::StatusOr<double> auroc = Auroc({0.9f, 0.8f, 0.2f, 0.1f}, {0, 0, 1, 1});
  ASSERT_TRUE(auroc.ok()) << auroc.status();
  EXPECT_DOUBLE_EQ(*auroc, 0.0);
}

TEST(Auroc, HandComputedCase) {
  // Positives 0.35 and 0.8 against negatives 0.1, 0.4 and 0.5: 0.35 beats one negative,
  // 0.8 beats three, so 4 of the 6 pairs are ordered correctly.
  absl::StatusOr<double> auroc = Auroc({0.1f, 0.4f, 0.35f, 0.8f, 0.5f}, {0, 0, 1, 1, 0});
  ASSERT_TRUE(auroc.ok()) << auroc.status();
  EXPECT_DOUBLE_EQ(*auroc, 4.0 / 6.0);
}

TEST(Auroc, TiesCountOneHalf) {
  // Pairs: (0.5 pos, 0.5 neg) tie = 0.5, (0.5 pos, 0.2 neg) = 1, (0.9 pos, both) = 2.
  absl::StatusOr<double> auroc = Auroc({0.5f, 0.5f, 0.2f, 0.9f}, {1, 0, 0, 1});
  ASSERT_TRUE(auroc.ok()) << auroc.status();
  EXPECT_DOUBLE_EQ(*auroc, 3.5 / 4.0);
}

TEST(Auroc, AllScoresTiedIsOneHalf) {
  absl::StatusOr<double> auroc = Auroc({1.0f, 1.0f, 1.0f, 1.0f, 1.0f}, {1, 0, 0, 1, 0});
  ASSERT_TRUE(auroc.ok()) << auroc.status();
  EXPECT_DOUBLE_EQ(*auroc, 0.5);
}

TEST(Auroc, RejectsSingleClass) {
  absl::StatusOr<double> auroc = Auroc({0.1f, 0.2f}, {0, 0});
  ASSERT_FALSE(auroc.ok());
  EXPECT_EQ(auroc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(auroc.status().message(), testing::HasSubstr("0 positives"));
}

TEST(Auroc, RejectsSizeMismatch) {
  absl::StatusOr<double> auroc = Auroc({0.1f, 0.2f, 0.3f}, {0, 1});
  ASSERT_FALSE(auroc.ok());
  EXPECT_THAT(auroc.status().message(), testing::HasSubstr("3 scores and 2 labels"));
}

TEST(Auroc, RejectsLabelOutsideZeroOne) {
  absl::StatusOr<double> auroc = Auroc({0.1f, 0.2f}, {0, 2});
  ASSERT_FALSE(auroc.ok());
  EXPECT_THAT(auroc.status().message(), testing::HasSubstr("label 1 is 2"));
}

}  // namespace
}  // namespace nearnd
