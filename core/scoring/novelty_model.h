#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "core/data/image.h"
#include "core/data/preprocess.h"
#include "core/index/knn_index.h"
#include "core/models/backbone.h"
#include "nearnd/v1/manifest.pb.h"

namespace nearnd {

// Embed returns the backbone features [N, dim] of images, preprocessed with `preprocess` and
// run in batches of batch_size under inference mode. It leaves the backbone's mode alone, so
// concurrent calls do not race, and the caller keeps the backbone in eval mode.
torch::Tensor Embed(Backbone& backbone, const std::vector<Image>& images,
                    const PreprocessConfig& preprocess, int batch_size);

// NoveltyModel scores decoded images: preprocess, backbone feature, sum of squared distances
// to the k nearest normal embeddings. The trainer's evaluation and the scorer share it.
// Thread-safety: Score may run concurrently.
class NoveltyModel {
 public:
  // Load reads and verifies a bundle directory, then loads its backbone and index.
  static absl::StatusOr<std::unique_ptr<NoveltyModel>> Load(const std::string& bundle_dir);

  NoveltyModel(nearnd::v1::Manifest manifest, std::shared_ptr<Backbone> backbone, KnnIndex index);

  // Score returns one novelty score per image, in order.
  absl::StatusOr<std::vector<float>> Score(const std::vector<Image>& images) const;

  const nearnd::v1::Manifest& manifest() const { return manifest_; }
  const PreprocessConfig& preprocess() const { return preprocess_; }

 private:
  nearnd::v1::Manifest manifest_;
  PreprocessConfig preprocess_;
  std::shared_ptr<Backbone> backbone_;
  KnnIndex index_;
};

}  // namespace nearnd
