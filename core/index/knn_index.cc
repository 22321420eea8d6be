#include "core/index/knn_index.h"

#include <exception>

#include <faiss/index_io.h>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace nearnd {
namespace {

torch::Tensor AsFaissInput(const torch::Tensor& rows) {
  return rows.detach().to(torch::kCPU, torch::kFloat32).contiguous();
}

}  // namespace

KnnIndex::KnnIndex(int dim) : index_(std::make_unique<faiss::IndexFlatL2>(dim)) {}

KnnIndex::KnnIndex(std::unique_ptr<faiss::Index> index) : index_(std::move(index)) {}

absl::StatusOr<KnnIndex> KnnIndex::Load(const std::string& path) {
  try {
    std::unique_ptr<faiss::Index> index(faiss::read_index(path.c_str()));
    if (dynamic_cast<faiss::IndexFlatL2*>(index.get()) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrFormat("index file %s holds a FAISS index of another type; expected IndexFlatL2", path));
    }
    return KnnIndex(std::move(index));
  } catch (const std::exception& error) {
    return absl::DataLossError(absl::StrFormat("cannot read index file %s: %s", path, error.what()));
  }
}

absl::Status KnnIndex::Add(const torch::Tensor& embeddings) {
  if (embeddings.dim() != 2 || embeddings.size(1) != dim()) {
    return absl::InvalidArgumentError(absl::StrFormat("embeddings have shape [%s]; the index expects [N, %d]",
                                                      absl::StrJoin(embeddings.sizes(), ", "), dim()));
  }
  const torch::Tensor rows = AsFaissInput(embeddings);
  index_->add(rows.size(0), rows.data_ptr<float>());
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> KnnIndex::Score(const torch::Tensor& queries, int k) const {
  if (queries.dim() != 2 || queries.size(1) != dim()) {
    return absl::InvalidArgumentError(absl::StrFormat("queries have shape [%s]; the index expects [N, %d]",
                                                      absl::StrJoin(queries.sizes(), ", "), dim()));
  }
  if (k < 1 || k > size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("k = %d neighbours requested but the index holds %d embeddings", k, size()));
  }
  const torch::Tensor rows = AsFaissInput(queries);
  const int64_t n = rows.size(0);
  torch::Tensor distances = torch::empty({n, k}, torch::kFloat32);
  std::vector<faiss::Index::idx_t> labels(static_cast<size_t>(n * k));
  index_->search(n, rows.data_ptr<float>(), k, distances.data_ptr<float>(), labels.data());

  // IndexFlatL2 returns squared L2 distances; the score is their sum over the k neighbours.
  return distances.sum(1);
}

absl::Status KnnIndex::Save(const std::string& path) const {
  try {
    faiss::write_index(index_.get(), path.c_str());
  } catch (const std::exception& error) {
    return absl::PermissionDeniedError(absl::StrFormat("cannot write index file %s: %s", path, error.what()));
  }
  return absl::OkStatus();
}

}  // namespace nearnd
