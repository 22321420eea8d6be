// `nearnd finetune`: fine-tunes the starting backbone to tell the normal training images
// (label 0) from the generator's fakes (label 1) with a 2-way linear head and cross-entropy,
// the leading half of the encoder blocks frozen.

#include <glog/logging.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "core/models/safetensors.h"
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
  const PreprocessConfig preprocess = BackbonePreprocess(context, starting.vit->config());
  const int freeze = FlagOr(absl::GetFlag(FLAGS_freeze_blocks), starting.vit->config().depth / 2);
  if (freeze < 0 || freeze > starting.vit->config().depth) {
    return absl::InvalidArgumentError(absl::StrFormat("--freeze-blocks=%d is outside 0..%d, the backbone's depth",
                                                      freeze, starting.vit->config().depth));
  }
  Classifier classifier(starting.vit, 2);
  classifier->backbone()->FreezeFirstBlocks(freeze);

  std::vector<torch::Tensor> trainable;
  for (const torch::Tensor& parameter : classifier->parameters()) {
    if (parameter.requires_grad()) trainable.push_back(parameter);
  }
  const double lr = absl::GetFlag(FLAGS_lr);
  const double weight_decay = absl::GetFlag(FLAGS_weight_decay);
  torch::optim::SGD optimizer(trainable, torch::optim::SGDOptions(lr).weight_decay(weight_decay));

  ClassifierTraining training;
  training.step = "finetune";
  training.epochs = FlagOr(absl::GetFlag(FLAGS_epochs), context.profile.finetune_epochs);
  training.batch_size = absl::GetFlag(FLAGS_batch_size);
  if (training.epochs < 1 || training.batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("--epochs=%d and --batch-size=%d must both be at least 1",
                                                      training.epochs, training.batch_size));
  }
  LOG(INFO) << absl::StrFormat(
      "finetune: %s, %d normal and %d fake images, first %d of %d blocks frozen, SGD lr %g weight decay %g, batch %d, "
      "%d epochs",
      starting.vit->config().name, normal_count, fake_count, freeze, starting.vit->config().depth, lr, weight_decay,
      training.batch_size, training.epochs);

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
  const double loss = TrainClassifier(classifier, images, labels, preprocess, optimizer, training, balanced_epoch);
  LOG(INFO) << absl::StrFormat("finetune: last epoch loss %.4f", loss);

  NEARND_RETURN_IF_ERROR(EnsureDirectory(context.paths.Path("finetune")));
  NEARND_RETURN_IF_ERROR(SaveModuleWeights(*classifier->backbone(), context.paths.FinetunedWeights()));
  return timer.Finish(context.paths);
}

}  // namespace nearnd
