// `nearnd bundle`: assembles the run's fine-tuned backbone, index and threshold into a bundle
// directory, the immutable unit the scorer serves.

#include <cstring>
#include <filesystem>

#include <glog/logging.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/bundle/bundle.h"
#include "core/util/status_macros.h"
#include "trainer/commands.h"
#include "trainer/flags.h"
#include "trainer/run.h"

#ifndef NEARND_SOURCE_REVISION
#define NEARND_SOURCE_REVISION "unknown"
#endif

namespace nearnd {
namespace {

// DatasetSha256 returns the SHA-256 over the pixels of the normal training images, in order.
std::string DatasetSha256(const std::vector<Image>& normals) {
  std::string bytes;
  for (const Image& image : normals) bytes.append(image.pixels.begin(), image.pixels.end());
  return Sha256Hex(bytes);
}

}  // namespace

absl::Status RunBundle(const std::vector<std::string>& args) {
  if (!args.empty()) return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s'", args[0]));
  NEARND_ASSIGN_OR_RETURN(RunContext context, MakeRunContext());
  const StepTimer timer("bundle");
  const RunPaths& paths = context.paths;
  if (std::filesystem::exists(paths.Bundle())) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "bundle %s already exists and bundles are immutable; remove it to rebuild, or use another --out",
        paths.Bundle()));
  }

  NEARND_ASSIGN_OR_RETURN(Dataset train, LoadDataset(context, "train"));
  NEARND_ASSIGN_OR_RETURN(std::shared_ptr<Backbone> backbone, MakeBackbone(context));
  const BackboneInfo& info = backbone->info();
  NEARND_ASSIGN_OR_RETURN(nearnd::v1::Threshold threshold, ReadThreshold(paths));
  NEARND_ASSIGN_OR_RETURN(nearnd::v1::Report report, ReadReport(paths));
  for (const std::string& required : {paths.FinetunedWeights(), paths.Index()}) {
    if (!std::filesystem::exists(required)) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s does not exist; run the earlier steps first (`nearnd pipeline --out %s`)", required,
                          paths.dir()));
    }
  }

  const absl::Time now = absl::Now();
  std::string version = absl::GetFlag(FLAGS_model_version);
  if (version.empty()) version = absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone());

  nearnd::v1::Manifest manifest;
  manifest.set_model_name(absl::StrFormat("%s-class-%d", context.dataset, context.normal_class));
  manifest.set_model_version(version);
  std::map<std::string, std::string> files = {
      {"backbone.safetensors", paths.FinetunedWeights()},
      {"index.faiss", paths.Index()},
  };
  if (!backbone->vit().is_empty()) {
    *manifest.mutable_backbone() = BackboneFromConfig(backbone->vit()->config());
  } else {
    // The module file defines the architecture; the fine-tuned weights replace its own.
    nearnd::v1::Backbone* description = manifest.mutable_backbone();
    description->set_architecture(info.architecture);
    description->set_config_name(info.name);
    description->set_image_size(info.image_size);
    description->set_channels(info.channels);
    description->set_dim(info.dim);
    description->set_module_file("backbone.pt");
    files["backbone.pt"] = BackboneSpec(context).substr(std::strlen(kTorchScriptPrefix));
  }
  manifest.mutable_backbone()->set_weights_file("backbone.safetensors");
  manifest.mutable_backbone()->set_weights_source(report.backbone().weights_source());
  *manifest.mutable_preprocessing() = PreprocessingFromConfig(BackbonePreprocess(context, info));
  manifest.set_embedding_dim(info.dim);
  manifest.set_metric("l2");
  manifest.set_k(absl::GetFlag(FLAGS_k));
  manifest.set_index_type("IndexFlatL2");
  manifest.set_index_file("index.faiss");
  *manifest.mutable_threshold() = threshold;

  nearnd::v1::Provenance* provenance = manifest.mutable_provenance();
  provenance->set_dataset(context.dataset);
  provenance->set_normal_class(context.normal_class);
  provenance->set_dataset_sha256(DatasetSha256(train.ImagesOfClass(context.normal_class)));
  provenance->set_generator_step(report.generator().steps());
  provenance->set_generator_frechet_distance(static_cast<float>(report.generator().frechet_distance()));
  provenance->set_finetune_epochs(FlagOr(absl::GetFlag(FLAGS_epochs), context.profile.finetune_epochs));
  provenance->set_source_revision(NEARND_SOURCE_REVISION);
  provenance->set_created(absl::FormatTime(absl::RFC3339_sec, now, absl::UTCTimeZone()));

  if (std::filesystem::exists(paths.FakesGrid())) files["previews/fakes.png"] = paths.FakesGrid();
  if (std::filesystem::exists(paths.Report())) files["previews/report.json"] = paths.Report();
  NEARND_RETURN_IF_ERROR(WriteBundle(manifest, files, paths.Bundle()));
  LOG(INFO) << absl::StrFormat("bundle: %s version %s in %s", manifest.model_name(), version, paths.Bundle());
  return timer.Finish(paths);
}

}  // namespace nearnd
