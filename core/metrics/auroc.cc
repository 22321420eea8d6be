#include "core/metrics/auroc.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_format.h"

namespace nearnd {

absl::StatusOr<double> Auroc(const std::vector<float>& scores, const std::vector<int>& labels) {
  if (scores.size() != labels.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "AUROC needs one label per score, got %d scores and %d labels", scores.size(), labels.size()));
  }
  int64_t positives = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != 0 && labels[i] != 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("AUROC label %d is %d; labels must be 0 (normal) or 1 (novel)", i, labels[i]));
    }
    positives += labels[i];
  }
  const int64_t negatives = static_cast<int64_t>(labels.size()) - positives;
  if (positives == 0 || negatives == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "AUROC needs both classes, got %d positives and %d negatives", positives, negatives));
  }

  // Rank the scores, giving each run of ties the mean of its ranks, then apply Mann-Whitney:
  // U = (sum of positive ranks) - n_pos (n_pos + 1) / 2, and AUROC = U / (n_pos n_neg).
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });

  double positive_rank_sum = 0.0;
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin + 1;
    while (end < order.size() && scores[order[end]] == scores[order[begin]]) ++end;
    const double mean_rank = 0.5 * static_cast<double>(begin + 1 + end);  // Ranks begin+1 .. end.
    for (size_t i = begin; i < end; ++i) {
      if (labels[order[i]] == 1) positive_rank_sum += mean_rank;
    }
    begin = end;
  }

  const double p = static_cast<double>(positives);
  const double u = positive_rank_sum - p * (p + 1.0) / 2.0;
  return u / (p * static_cast<double>(negatives));
}

}  // namespace nearnd
