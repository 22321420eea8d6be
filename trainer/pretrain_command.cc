// `nearnd pretrain`: gives the starting backbone real pretrained knowledge when no pretrained
// weights are at hand, by training it to classify a different labelled dataset (MNIST digits by
// default). It never reads the labels of the dataset under test.

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
namespace {

// AdamW weight decay of pretraining.
constexpr double kPretrainWeightDecay = 1e-4;

std::vector<int64_t> Labels(const Dataset& dataset) { return {dataset.labels.begin(), dataset.labels.end()}; }

}  // namespace

absl::Status RunPretrain(const std::vector<std::string>& args) {
  if (!args.empty()) return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s'", args[0]));
  NEARND_ASSIGN_OR_RETURN(RunContext context, MakeRunContext());
  const StepTimer timer("pretrain");

  const std::string source = absl::GetFlag(FLAGS_pretrain_dataset);
  if (source == context.dataset) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--pretrain-dataset=%s is the dataset under test; pretrain on a different dataset, e.g. mnist", source));
  }
  NEARND_ASSIGN_OR_RETURN(Dataset train, ReadNamedDataset(source, context.data_dir, "train"));
  NEARND_ASSIGN_OR_RETURN(Dataset test, ReadNamedDataset(source, context.data_dir, "test"));
  if (IsTorchScriptSpec(BackboneSpec(context))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--backbone=%s: a TorchScript backbone comes pretrained; skip pretrain and run the later steps",
        BackboneSpec(context)));
  }
  NEARND_ASSIGN_OR_RETURN(std::shared_ptr<Backbone> backbone, MakeBackbone(context));
  const PreprocessConfig preprocess = BackbonePreprocess(context, backbone->info());
  LOG(INFO) << absl::StrFormat("pretrain: %s on %s, %d training and %d test images, %d classes",
                               backbone->info().name, source, train.images.size(), test.images.size(),
                               train.class_names.size());

  // Train the backbone with a classification head on the source labels.
  Classifier classifier(backbone, static_cast<int>(train.class_names.size()));
  torch::optim::AdamW optimizer(classifier.TrainableParameters(),
                                torch::optim::AdamWOptions(context.profile.pretrain_lr).weight_decay(kPretrainWeightDecay));
  ClassifierTraining training;
  training.step = "pretrain";
  training.epochs = FlagOr(absl::GetFlag(FLAGS_pretrain_epochs), context.profile.pretrain_epochs);
  training.batch_size = context.profile.pretrain_batch_size;
  TrainClassifier(classifier, train.images, Labels(train), preprocess, optimizer, training);

  const double accuracy = ClassifierAccuracy(classifier, test.images, Labels(test), preprocess);
  LOG(INFO) << absl::StrFormat("pretrain: %s test accuracy %.4f", source, accuracy);

  // Only the backbone is kept; the head belongs to the pretraining task.
  NEARND_RETURN_IF_ERROR(EnsureDirectory(context.paths.Path("pretrain")));
  NEARND_RETURN_IF_ERROR(SaveBackboneWeights(*backbone, context.paths.PretrainedWeights()));
  NEARND_RETURN_IF_ERROR(UpdateReport(context.paths, [&](nearnd::v1::Report& report) {
    report.mutable_backbone()->set_pretrain_accuracy(accuracy);
  }));
  return timer.Finish(context.paths);
}

}  // namespace nearnd
