#include "core/scoring/novelty_model.h"

#include <filesystem>

#include "absl/strings/str_format.h"
#include "core/bundle/bundle.h"
#include "core/models/safetensors.h"
#include "core/util/status_macros.h"

namespace nearnd {
namespace {

// Images per backbone forward pass when scoring a request.
constexpr int kScoreBatchSize = 64;

// MakeBundleBackbone builds the backbone a manifest describes, before its weights are loaded.
absl::StatusOr<std::shared_ptr<Backbone>> MakeBundleBackbone(const nearnd::v1::Backbone& backbone,
                                                             const std::string& bundle_dir) {
  if (backbone.architecture() == "vit") return MakeVitBackbone(Vit(VitConfigFromBackbone(backbone)));
  if (backbone.architecture() == "torchscript") {
    if (backbone.module_file().empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bundle %s: the backbone is a TorchScript module but manifest.json names no module_file; rebuild the "
          "bundle with `nearnd bundle`",
          bundle_dir));
    }
    return LoadTorchScriptBackbone((std::filesystem::path(bundle_dir) / backbone.module_file()).string());
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "bundle %s: backbone architecture '%s' is unknown; expected vit or torchscript; rebuild the bundle with this "
      "nearnd",
      bundle_dir, backbone.architecture()));
}

}  // namespace

torch::Tensor Embed(Backbone& backbone, const std::vector<Image>& images, const PreprocessConfig& preprocess,
                    int batch_size) {
  torch::InferenceMode inference;
  std::vector<torch::Tensor> features;
  for (size_t begin = 0; begin < images.size(); begin += batch_size) {
    const size_t end = std::min(images.size(), begin + static_cast<size_t>(batch_size));
    features.push_back(backbone.Forward(PreprocessBatch(images, begin, end, preprocess)));
  }
  if (features.empty()) return torch::empty({0, backbone.info().dim});
  return torch::cat(features);
}

absl::StatusOr<std::unique_ptr<NoveltyModel>> NoveltyModel::Load(const std::string& bundle_dir) {
  NEARND_ASSIGN_OR_RETURN(nearnd::v1::Manifest manifest, ReadBundle(bundle_dir));

  const std::filesystem::path dir(bundle_dir);
  NEARND_ASSIGN_OR_RETURN(std::shared_ptr<Backbone> backbone, MakeBundleBackbone(manifest.backbone(), bundle_dir));
  NEARND_RETURN_IF_ERROR(LoadBackboneWeights(*backbone, (dir / manifest.backbone().weights_file()).string()));

  if (backbone->info().dim != static_cast<int>(manifest.embedding_dim())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bundle %s: the backbone's features have dimension %d but the manifest's embedding_dim is %d; rebuild the "
        "bundle with `nearnd bundle`",
        bundle_dir, backbone->info().dim, manifest.embedding_dim()));
  }
  NEARND_ASSIGN_OR_RETURN(KnnIndex index, KnnIndex::Load((dir / manifest.index_file()).string()));
  if (index.dim() != static_cast<int>(manifest.embedding_dim())) {
    return absl::InvalidArgumentError(absl::StrFormat("bundle %s: index dimension %d differs from the manifest's %d",
                                                      bundle_dir, index.dim(), manifest.embedding_dim()));
  }
  return std::make_unique<NoveltyModel>(std::move(manifest), std::move(backbone), std::move(index));
}

NoveltyModel::NoveltyModel(nearnd::v1::Manifest manifest, std::shared_ptr<Backbone> backbone, KnnIndex index)
    : manifest_(std::move(manifest)),
      preprocess_(PreprocessConfigFromPreprocessing(manifest_.preprocessing())),
      backbone_(std::move(backbone)),
      index_(std::move(index)) {
  backbone_->SetTraining(false);
}

absl::StatusOr<std::vector<float>> NoveltyModel::Score(const std::vector<Image>& images) const {
  const torch::Tensor embeddings = Embed(*backbone_, images, preprocess_, kScoreBatchSize);
  NEARND_ASSIGN_OR_RETURN(torch::Tensor scores, index_.Score(embeddings, static_cast<int>(manifest_.k())));
  return std::vector<float>(scores.data_ptr<float>(), scores.data_ptr<float>() + scores.numel());
}

}  // namespace nearnd
