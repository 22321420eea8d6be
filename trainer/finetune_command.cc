// `nearnd finetune`: fine-tunes the starting backbone to tell the normal training images
// (label 0) from the generator's fakes (label 1) with a 2-way linear head and cross-entropy:
// SGD, the train transform, and the leading half of a ViT's encoder blocks frozen.

#include <glog/logging.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "trainer/classifier_training.h"
#include "trainer/commands.h"
#include "trainer/flags.h"
#include "trainer/run.h"

namespace nearnd {
absl::Status RunFinetune(const std::vector<std::string>& args) {
  if (!args.empty()) return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s'", args[0]));
  NEARND_ASSIGN_OR_RETURN(RunContext context, MakeRunContext());
  const StepTimer timer("finetune");

  NEARND_ASSIGN_OR_RETURN(Dataset train, LoadDataset(context, "train"));
  std::vector<Image> images = train.ImagesOfClass(context.normal_class);
  const int64_t normal_count = static_cast<int64_t>(images.size());
  NEARND_ASSIGN_OR_RETURN(std::vector<Image> fakes, ReadFakes(context.paths));
  const int64_t fake_count = static_cast<int64_t>(fakes.size());
  images.insert(images.end(), std::make_move_iterator(fakes.begin()), std::make_move_iterator(fakes.end()));
  std::vector<int64_t> labels(images.size(), 0);
  std::fill(labels.begin() + normal_count, labels.end(), 1);

  NEARND_ASSIGN_OR_RETURN(StartingBackbone starting, LoadStartingBackbone(context));
  Backbone& backbone = *starting.backbone;
  const PreprocessConfig preprocess = BackbonePreprocess(context, backbone.info());
  NEARND_ASSIGN_OR_RETURN(std::vector<std::string> frozen_prefixes, FreezeForFinetuning(backbone));
  Classifier classifier(starting.backbone, 2);

  int64_t frozen = 0;
  int64_t total = 0;
  for (const auto& [name, parameter] : backbone.NamedParameters()) {
    total += parameter.numel();
    if (!parameter.requires_grad()) frozen += parameter.numel();
  }
  const double lr = absl::GetFlag(FLAGS_lr);
  const double weight_decay = absl::GetFlag(FLAGS_weight_decay);
  torch::optim::SGD optimizer(classifier.TrainableParameters(),
                              torch::optim::SGDOptions(lr).weight_decay(weight_decay));

  ClassifierTraining training;
  training.step = "finetune";
  training.epochs = FlagOr(absl::GetFlag(FLAGS_epochs), context.profile.finetune_epochs);
  training.batch_size = absl::GetFlag(FLAGS_batch_size);
  training.augment = true;
  if (training.epochs < 1 || training.batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("--epochs=%d and --batch-size=%d must both be at least 1",
                                                      training.epochs, training.batch_size));
  }
  LOG(INFO) << absl::StrFormat(
      "finetune: %s, %d normal and %d fake images, %d of %d parameters frozen (%s), SGD lr %g weight decay %g, "
      "batch %d, %d epochs, resize %d and random crop %d with horizontal flips",
      backbone.info().name, normal_count, fake_count, frozen, total, absl::StrJoin(frozen_prefixes, ","), lr,
      weight_decay, training.batch_size, training.epochs, preprocess.resize_size, preprocess.crop_size);

  // Each epoch uses every fake and as many normal images drawn at random, so the classes stay
  // balanced however many fakes there are.
  const auto balanced_epoch = [&](int) {
    std::vector<int64_t> indices;
    const int64_t normals_per_epoch = std::min(normal_count, fake_count);
    const torch::Tensor chosen = torch::randperm(normal_count, torch::kInt64).slice(0, 0, normals_per_epoch);
    for (int64_t i = 0; i < normals_per_epoch; ++i) indices.push_back(chosen[i].item<int64_t>());
    for (int64_t i = 0; i < fake_count; ++i) indices.push_back(normal_count + i);
    return indices;
  };
  double loss = 0.0;
  try {
    loss = TrainClassifier(classifier, images, labels, preprocess, optimizer, training, balanced_epoch);
  } catch (const c10::Error& error) {
    // A TorchScript module can fail in training mode in ways that loading it cannot see.
    return absl::InvalidArgumentError(absl::StrFormat("fine-tuning %s failed: %s", backbone.info().name,
                                                      error.what_without_backtrace()));
  }
  LOG(INFO) << absl::StrFormat("finetune: last epoch loss %.4f", loss);

  NEARND_RETURN_IF_ERROR(EnsureDirectory(context.paths.Path("finetune")));
  NEARND_RETURN_IF_ERROR(SaveBackboneWeights(backbone, context.paths.FinetunedWeights()));
  return timer.Finish(context.paths);
}

}  // namespace nearnd
