// `nearnd index`: embeds every normal training image with the fine-tuned backbone into a FAISS
// IndexFlatL2 and sets the decision threshold on held-out normal images.

#include <algorithm>
#include <cmath>

#include <glog/logging.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "core/index/knn_index.h"
#include "core/scoring/novelty_model.h"
#include "core/util/status_macros.h"
#include "trainer/commands.h"
#include "trainer/flags.h"
#include "trainer/run.h"

namespace nearnd {
namespace {

// Images per backbone forward pass.
constexpr int kEmbedBatch = 256;

// SetThreshold holds out a random fraction of the normal embeddings, indexes the rest, and
// returns the score that the held-out normals exceed at the target false positive rate.
absl::StatusOr<nearnd::v1::Threshold> SetThreshold(const torch::Tensor& embeddings, int k, double heldout_fraction,
                                                   double target_fpr) {
  const int64_t count = embeddings.size(0);
  const int64_t heldout = static_cast<int64_t>(std::round(count * heldout_fraction));
  if (heldout < 1 || count - heldout < k) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--heldout-fraction=%g of %d normal images leaves %d held out and %d indexed; both need at least 1 and k=%d",
        heldout_fraction, count, heldout, count - heldout, k));
  }
  const torch::Tensor permutation = torch::randperm(count, torch::kInt64);
  KnnIndex index(static_cast<int>(embeddings.size(1)));
  NEARND_RETURN_IF_ERROR(index.Add(embeddings.index_select(0, permutation.slice(0, heldout))));
  NEARND_ASSIGN_OR_RETURN(torch::Tensor scores,
                          index.Score(embeddings.index_select(0, permutation.slice(0, 0, heldout)), k));

  // The (1 - fpr) quantile: a fraction fpr of held-out normals score above it.
  nearnd::v1::Threshold threshold;
  threshold.set_value(torch::quantile(scores.to(torch::kFloat64), 1.0 - target_fpr).item<float>());
  threshold.set_target_false_positive_rate(static_cast<float>(target_fpr));
  threshold.set_heldout_images(static_cast<uint32_t>(heldout));
  return threshold;
}

}  // namespace

absl::Status RunIndex(const std::vector<std::string>& args) {
  if (!args.empty()) return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s'", args[0]));
  NEARND_ASSIGN_OR_RETURN(RunContext context, MakeRunContext());
  const StepTimer timer("index");
  const int k = absl::GetFlag(FLAGS_k);
  const double target_fpr = absl::GetFlag(FLAGS_target_fpr);
  if (k < 1) return absl::InvalidArgumentError(absl::StrFormat("--k=%d; use at least 1 neighbour", k));
  if (!(target_fpr > 0 && target_fpr < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat("--target-fpr=%g is outside (0, 1)", target_fpr));
  }

  NEARND_ASSIGN_OR_RETURN(Dataset train, LoadDataset(context, "train"));
  const std::vector<Image> normals = train.ImagesOfClass(context.normal_class);
  NEARND_ASSIGN_OR_RETURN(std::shared_ptr<Backbone> backbone, LoadFinetunedBackbone(context));
  const torch::Tensor embeddings =
      Embed(*backbone, normals, BackbonePreprocess(context, backbone->info()), kEmbedBatch);

  NEARND_ASSIGN_OR_RETURN(nearnd::v1::Threshold threshold,
                          SetThreshold(embeddings, k, absl::GetFlag(FLAGS_heldout_fraction), target_fpr));
  LOG(INFO) << absl::StrFormat("index: threshold %.6g at false positive rate %.3f on %d held-out normal images",
                               threshold.value(), threshold.target_false_positive_rate(), threshold.heldout_images());

  KnnIndex index(static_cast<int>(embeddings.size(1)));
  NEARND_RETURN_IF_ERROR(index.Add(embeddings));
  NEARND_RETURN_IF_ERROR(EnsureDirectory(context.paths.Path("index")));
  NEARND_RETURN_IF_ERROR(index.Save(context.paths.Index()));
  NEARND_RETURN_IF_ERROR(WriteThreshold(context.paths, threshold));
  LOG(INFO) << absl::StrFormat("index: %d normal embeddings of dimension %d in %s", index.size(), index.dim(),
                               context.paths.Index());
  return timer.Finish(context.paths);
}

}  // namespace nearnd
