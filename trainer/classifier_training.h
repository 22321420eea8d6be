#pragma once

#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "core/data/image.h"
#include "core/data/preprocess.h"
#include "core/models/backbone.h"

namespace nearnd {

// ClassifierTraining configures one supervised training run of a Classifier.
struct ClassifierTraining {
  std::string step;  // Name in progress lines, e.g. "pretrain".
  int epochs = 1;
  int batch_size = 16;

  // Preprocess with the train transform (random crop, horizontal flip) instead of the test one.
  bool augment = false;
};

// TrainClassifier trains `model` with cross-entropy on images and their labels, reshuffled each
// epoch and preprocessed per batch. The optimizer contains the parameters that change. `sample`, if
// set, returns the image indices of an epoch, the same count for every epoch, so callers can
// balance classes. Without it every image is used once per epoch. Returns the last epoch's
// mean loss.
double TrainClassifier(Classifier& model, const std::vector<Image>& images, const std::vector<int64_t>& labels,
                       const PreprocessConfig& preprocess, torch::optim::Optimizer& optimizer,
                       const ClassifierTraining& training,
                       const std::function<std::vector<int64_t>(int epoch)>& sample = nullptr);

// ClassifierAccuracy returns the fraction of images whose arg-max logit is their label.
double ClassifierAccuracy(Classifier& model, const std::vector<Image>& images, const std::vector<int64_t>& labels,
                          const PreprocessConfig& preprocess);

}  // namespace nearnd
