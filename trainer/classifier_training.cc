#include "trainer/classifier_training.h"

#include <numeric>

#include "absl/strings/str_format.h"
#include "trainer/run.h"

namespace nearnd {
namespace {

// Images per forward pass when measuring accuracy.
constexpr int kEvaluationBatchSize = 256;

torch::Tensor BatchOf(const std::vector<Image>& images, const std::vector<int64_t>& indices, size_t begin,
                      size_t end, const PreprocessConfig& preprocess, bool augment) {
  std::vector<torch::Tensor> inputs;
  inputs.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    const Image& image = images[indices[i]];
    inputs.push_back(augment ? PreprocessForTraining(image, preprocess) : Preprocess(image, preprocess));
  }
  return torch::stack(inputs);
}

}  // namespace

double TrainClassifier(Classifier& model, const std::vector<Image>& images, const std::vector<int64_t>& labels,
                       const PreprocessConfig& preprocess, torch::optim::Optimizer& optimizer,
                       const ClassifierTraining& training,
                       const std::function<std::vector<int64_t>(int epoch)>& sample) {
  const torch::Tensor all_labels = torch::tensor(labels, torch::kInt64);
  const auto epoch_images = [&](int epoch) {
    if (sample) return sample(epoch);
    std::vector<int64_t> every(images.size());
    std::iota(every.begin(), every.end(), 0);
    return every;
  };
  std::vector<int64_t> order = epoch_images(0);
  const int64_t per_epoch = static_cast<int64_t>(order.size());
  const int64_t batches_per_epoch = (per_epoch + training.batch_size - 1) / training.batch_size;
  Progress progress(training.step, batches_per_epoch * training.epochs, "batch");

  model.SetTraining(true);
  double epoch_loss = 0.0;
  for (int epoch = 0; epoch < training.epochs; ++epoch) {
    // The epoch's images in random order.
    if (epoch > 0) order = epoch_images(epoch);
    const torch::Tensor permutation = torch::randperm(static_cast<int64_t>(order.size()), torch::kInt64);
    std::vector<int64_t> shuffled(order.size());
    for (size_t i = 0; i < order.size(); ++i) shuffled[i] = order[permutation[i].item<int64_t>()];

    double loss_sum = 0.0;
    int64_t batches = 0;
    for (size_t begin = 0; begin < shuffled.size(); begin += training.batch_size) {
      const size_t end = std::min(shuffled.size(), begin + static_cast<size_t>(training.batch_size));
      const torch::Tensor inputs = BatchOf(images, shuffled, begin, end, preprocess, training.augment);
      const torch::Tensor index = torch::tensor(std::vector<int64_t>(shuffled.begin() + begin, shuffled.begin() + end));
      const torch::Tensor targets = all_labels.index_select(0, index);

      // Forward, loss, backward, update.
      optimizer.zero_grad();
      const torch::Tensor loss = torch::nn::functional::cross_entropy(model.Forward(inputs), targets);
      loss.backward();
      optimizer.step();

      loss_sum += loss.item<double>();
      ++batches;
      progress.Update(epoch * batches_per_epoch + batches,
                      absl::StrFormat("epoch %d/%d loss %.4f", epoch + 1, training.epochs, loss_sum / batches));
    }
    epoch_loss = batches > 0 ? loss_sum / batches : 0.0;
  }
  return epoch_loss;
}

double ClassifierAccuracy(Classifier& model, const std::vector<Image>& images, const std::vector<int64_t>& labels,
                          const PreprocessConfig& preprocess) {
  model.SetTraining(false);
  torch::InferenceMode inference;
  int64_t correct = 0;
  for (size_t begin = 0; begin < images.size(); begin += kEvaluationBatchSize) {
    const size_t end = std::min(images.size(), begin + kEvaluationBatchSize);
    const torch::Tensor predicted = model.Forward(PreprocessBatch(images, begin, end, preprocess)).argmax(1);
    for (size_t i = begin; i < end; ++i) correct += predicted[i - begin].item<int64_t>() == labels[i];
  }
  return images.empty() ? 0.0 : static_cast<double>(correct) / images.size();
}

}  // namespace nearnd
