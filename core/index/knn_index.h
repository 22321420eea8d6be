#pragma once

#include <memory>
#include <string>

#include <faiss/IndexFlat.h>
#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nearnd {

// KnnIndex keeps the normal embeddings in a FAISS IndexFlatL2 and scores queries by the sum of
// squared L2 distances to their k nearest normal embeddings.
// Thread-safety: Score may run concurrently; Add may not run with anything else.
class KnnIndex {
 public:
  explicit KnnIndex(int dim);

  // Load reads an index written by Save; errors name the path.
  static absl::StatusOr<KnnIndex> Load(const std::string& path);

  // Add appends embeddings [N, dim] (float32, CPU).
  absl::Status Add(const torch::Tensor& embeddings);

  // Score returns [N] novelty scores of queries [N, dim]: the sum of squared distances to the
  // k nearest stored embeddings. REQUIRES: 1 <= k <= size().
  absl::StatusOr<torch::Tensor> Score(const torch::Tensor& queries, int k) const;

  absl::Status Save(const std::string& path) const;

  int dim() const { return static_cast<int>(index_->d); }
  int64_t size() const { return index_->ntotal; }

 private:
  explicit KnnIndex(std::unique_ptr<faiss::Index> index);

  std::unique_ptr<faiss::Index> index_;
};

}  // namespace nearnd
