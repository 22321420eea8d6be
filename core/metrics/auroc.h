#pragma once

#include <vector>

#include "absl/status/statusor.h"

namespace nearnd {

// Auroc returns the area under the ROC curve of scores for separating label 1 (positive,
// novel) from label 0, where a higher score means more positive. Ties between a positive and a
// negative count one half (the Mann-Whitney U statistic divided by n_pos * n_neg).
// Returns InvalidArgumentError when sizes differ, a label is not 0 or 1, or a class is empty.
absl::StatusOr<double> Auroc(const std::vector<float>& scores, const std::vector<int>& labels);

}  // namespace nearnd
