// `nearnd embed`: writes the backbone features of image files, or of an array of inputs that
// are already preprocessed, as a float32 [N, dim] .npy file. `nearnd preprocess` writes that
// array: the backbone inputs the test transform makes of image files. Neither needs a run
// directory, so they serve to inspect a backbone and to check it against other implementations.
// `nearnd benchmark` times fine-tuning steps of the backbone on such an array.

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <glog/logging.h>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/data/image.h"
#include "core/data/npy.h"
#include "core/models/safetensors.h"
#include "core/scoring/novelty_model.h"
#include "core/util/status_macros.h"
#include "trainer/commands.h"
#include "trainer/flags.h"
#include "trainer/run.h"

ABSL_FLAG(std::string, preprocessed, "",
          "`nearnd embed` only: a float32 .npy array [N, C, H, W] of inputs already resized and "
          "normalised for the backbone, fed to it unchanged in place of image files.");
ABSL_FLAG(int, embed_batch, 16, "`nearnd embed` only: images per backbone forward pass.");
ABSL_FLAG(int, steps, 3, "`nearnd benchmark` only: timed fine-tuning steps, after one untimed warm-up step.");

namespace nearnd {
namespace {

bool IsImageFileName(const std::filesystem::path& path) {
  const std::string extension = absl::AsciiStrToLower(path.extension().string());
  return extension == ".png" || extension == ".jpg" || extension == ".jpeg";
}

// ListImageFiles expands each argument: a file stays as it is, and a folder becomes its .png,
// .jpg and .jpeg files (any letter case, hidden files skipped, not recursive) in sorted order.
absl::StatusOr<std::vector<std::string>> ListImageFiles(const std::vector<std::string>& args) {
  std::vector<std::string> files;
  for (const std::string& arg : args) {
    std::error_code error;
    if (!std::filesystem::is_directory(arg, error)) {
      if (!std::filesystem::is_regular_file(arg, error)) {
        return absl::NotFoundError(absl::StrFormat("input %s not found: it is neither a file nor a folder; pass PNG or JPEG files or folders of them", arg));
      }
      files.push_back(arg);
      continue;
    }

    std::vector<std::string> folder_files;
    for (const auto& entry : std::filesystem::directory_iterator(arg, error)) {
      const std::filesystem::path& path = entry.path();
      if (absl::StartsWith(path.filename().string(), ".")) continue;
      if (entry.is_regular_file() && IsImageFileName(path)) folder_files.push_back(path.string());
    }
    if (error) {
      return absl::PermissionDeniedError(absl::StrFormat("cannot list folder %s: %s", arg, error.message()));
    }
    if (folder_files.empty()) {
      return absl::NotFoundError(absl::StrFormat("folder %s contains no .png, .jpg or .jpeg file", arg));
    }
    std::sort(folder_files.begin(), folder_files.end());
    files.insert(files.end(), folder_files.begin(), folder_files.end());
  }
  return files;
}

// EmbedImageFiles decodes and embeds the files batch by batch, so that only one batch of
// decoded images is in memory at a time.
absl::StatusOr<torch::Tensor> EmbedImageFiles(Backbone& backbone, const std::vector<std::string>& files,
                                              const PreprocessConfig& preprocess, int batch_size) {
  std::vector<torch::Tensor> features;
  for (size_t begin = 0; begin < files.size(); begin += batch_size) {
    const size_t end = std::min(files.size(), begin + static_cast<size_t>(batch_size));
    std::vector<Image> images;
    for (size_t i = begin; i < end; ++i) {
      NEARND_ASSIGN_OR_RETURN(Image image, ReadImageFile(files[i]));
      images.push_back(std::move(image));
    }
    features.push_back(Embed(backbone, images, preprocess, batch_size));
  }
  return torch::cat(features);
}

// ReadPreprocessed reads the float32 [N, C, H, W] array in `path` and checks that its
// channels and size match the backbone's configuration.
absl::StatusOr<torch::Tensor> ReadPreprocessed(const std::string& path, const BackboneInfo& info) {
  NEARND_ASSIGN_OR_RETURN(torch::Tensor inputs, ReadNpy(path));
  if (inputs.scalar_type() != torch::kFloat32 || inputs.dim() != 4) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--preprocessed=%s contains a %s array of %d dimensions; expected float32 [N, %d, %d, %d]",
                        path, c10::toString(inputs.scalar_type()), inputs.dim(), info.channels,
                        info.image_size, info.image_size));
  }
  if (inputs.size(1) != info.channels || inputs.size(2) != info.image_size ||
      inputs.size(3) != info.image_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--preprocessed=%s has shape [%d, %d, %d, %d], but backbone %s takes [N, %d, %d, %d]; preprocess the "
        "images for this backbone or pass the matching --backbone",
        path, inputs.size(0), inputs.size(1), inputs.size(2), inputs.size(3), info.name, info.channels,
        info.image_size, info.image_size));
  }
  if (inputs.size(0) == 0) return absl::InvalidArgumentError(absl::StrFormat("--preprocessed=%s has no rows", path));
  return inputs;
}

// EmbedPreprocessed runs the backbone on inputs [N, C, H, W] in batches.
torch::Tensor EmbedPreprocessed(Backbone& backbone, const torch::Tensor& inputs, int batch_size) {
  torch::InferenceMode inference;
  std::vector<torch::Tensor> features;
  for (int64_t begin = 0; begin < inputs.size(0); begin += batch_size) {
    features.push_back(backbone.Forward(inputs.slice(0, begin, begin + batch_size)));
  }
  return torch::cat(features);
}

// CheckOutPath checks that --out names the .npy file `subcommand` writes.
absl::Status CheckOutPath(const std::string& subcommand, const std::string& content) {
  if (absl::EndsWith(absl::GetFlag(FLAGS_out), ".npy")) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "--out=%s does not end in .npy; for `nearnd %s`, --out is the .npy file the %s are written to, e.g. "
      "--out %s.npy",
      absl::GetFlag(FLAGS_out), subcommand, content, content));
}

// MakeToolContext returns the profile and normalisation flags as a context, without the run
// directory that these subcommands neither read nor create.
absl::StatusOr<RunContext> MakeToolContext() {
  RunContext context;
  NEARND_ASSIGN_OR_RETURN(context.profile, ProfileByName(absl::GetFlag(FLAGS_profile)));
  NEARND_RETURN_IF_ERROR(ResolveNormalization(context));
  return context;
}

absl::Status CheckFlags(const std::vector<std::string>& args) {
  const bool torchscript = absl::StartsWith(absl::GetFlag(FLAGS_backbone), kTorchScriptPrefix);
  if (absl::GetFlag(FLAGS_backbone_weights).empty() && !torchscript) {
    return absl::InvalidArgumentError(
        "--backbone-weights is empty; give a Google ViT .npz or a timm .safetensors checkpoint, or "
        "--backbone torchscript:PATH, because the features of a randomly initialised ViT are meaningless");
  }
  NEARND_RETURN_IF_ERROR(CheckOutPath("embed", "features"));
  if (absl::GetFlag(FLAGS_embed_batch) < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--embed-batch=%d is invalid; give a positive number of images per forward pass",
                        absl::GetFlag(FLAGS_embed_batch)));
  }
  const bool preprocessed = !absl::GetFlag(FLAGS_preprocessed).empty();
  if (preprocessed && !args.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "both --preprocessed and image arguments (%s, ...) are given; pass one or the other", args[0]));
  }
  if (!preprocessed && args.empty()) {
    return absl::InvalidArgumentError(
        "no input; pass image files or folders after `embed`, or --preprocessed FILE.npy");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunEmbed(const std::vector<std::string>& args) {
  NEARND_RETURN_IF_ERROR(CheckFlags(args));

  NEARND_ASSIGN_OR_RETURN(const RunContext context, MakeToolContext());
  NEARND_ASSIGN_OR_RETURN(StartingBackbone starting, LoadStartingBackbone(context));
  Backbone& backbone = *starting.backbone;
  const BackboneInfo& info = backbone.info();
  const int batch_size = absl::GetFlag(FLAGS_embed_batch);

  // For --preprocessed the timed span is the forward passes alone; for image files it also
  // covers decoding and preprocessing.
  torch::Tensor features;
  std::chrono::steady_clock::time_point start;
  const std::string preprocessed = absl::GetFlag(FLAGS_preprocessed);
  if (!preprocessed.empty()) {
    NEARND_ASSIGN_OR_RETURN(torch::Tensor inputs, ReadPreprocessed(preprocessed, info));
    start = std::chrono::steady_clock::now();
    features = EmbedPreprocessed(backbone, inputs, batch_size);
  } else {
    start = std::chrono::steady_clock::now();
    NEARND_ASSIGN_OR_RETURN(std::vector<std::string> files, ListImageFiles(args));
    const PreprocessConfig preprocess = BackbonePreprocess(context, info);
    NEARND_ASSIGN_OR_RETURN(features, EmbedImageFiles(backbone, files, preprocess, batch_size));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const std::string out = absl::GetFlag(FLAGS_out);
  NEARND_RETURN_IF_ERROR(WriteNpy(features.contiguous(), out));

  // scripts/bench-backbone reads the images/s figure from this line.
  LOG(INFO) << absl::StrFormat("embed: %d images, %d features each, %s %s, batch %d, %.3f s, %.2f images/s -> %s",
                               features.size(0), features.size(1), info.name, starting.weights_source,
                               batch_size, seconds, features.size(0) / seconds, out);
  return absl::OkStatus();
}

absl::Status RunPreprocess(const std::vector<std::string>& args) {
  NEARND_RETURN_IF_ERROR(CheckOutPath("preprocess", "inputs"));
  if (args.empty()) return absl::InvalidArgumentError("no input; pass image files or folders after `preprocess`");

  NEARND_ASSIGN_OR_RETURN(const RunContext context, MakeToolContext());
  NEARND_ASSIGN_OR_RETURN(std::shared_ptr<Backbone> backbone, MakeBackbone(context));
  const PreprocessConfig preprocess = BackbonePreprocess(context, backbone->info());

  NEARND_ASSIGN_OR_RETURN(std::vector<std::string> files, ListImageFiles(args));
  std::vector<torch::Tensor> inputs;
  for (const std::string& file : files) {
    NEARND_ASSIGN_OR_RETURN(Image image, ReadImageFile(file));
    inputs.push_back(Preprocess(image, preprocess));
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  NEARND_RETURN_IF_ERROR(WriteNpy(torch::stack(inputs), out));
  LOG(INFO) << absl::StrFormat("preprocess: %d images for %s: resize %d, centre crop %d, %d channels -> %s",
                               files.size(), backbone->info().name, preprocess.resize_size, preprocess.crop_size,
                               preprocess.channels, out);
  return absl::OkStatus();
}

absl::Status RunBenchmark(const std::vector<std::string>& args) {
  if (!args.empty()) return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s'", args[0]));
  const std::string preprocessed = absl::GetFlag(FLAGS_preprocessed);
  if (preprocessed.empty()) {
    return absl::InvalidArgumentError(
        "--preprocessed is empty; give the .npy inputs to train on, e.g. from `nearnd preprocess`");
  }
  const int steps = absl::GetFlag(FLAGS_steps);
  const int batch_size = absl::GetFlag(FLAGS_batch_size);
  if (steps < 1 || batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--steps=%d and --batch-size=%d must both be at least 1", steps, batch_size));
  }

  NEARND_ASSIGN_OR_RETURN(const RunContext context, MakeToolContext());
  NEARND_ASSIGN_OR_RETURN(StartingBackbone starting, LoadStartingBackbone(context));
  Backbone& backbone = *starting.backbone;
  NEARND_ASSIGN_OR_RETURN(torch::Tensor inputs, ReadPreprocessed(preprocessed, backbone.info()));
  if (inputs.size(0) < batch_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--preprocessed=%s has %d rows, fewer than --batch-size=%d; pass more inputs or a smaller "
                        "--batch-size",
                        preprocessed, inputs.size(0), batch_size));
  }

  // The fine-tuning step of `nearnd finetune`: frozen prefixes, 2-way head, cross-entropy, SGD.
  NEARND_ASSIGN_OR_RETURN(std::vector<std::string> frozen_prefixes, FreezeForFinetuning(backbone));
  Classifier classifier(starting.backbone, 2);
  torch::optim::SGD optimizer(
      classifier.TrainableParameters(),
      torch::optim::SGDOptions(absl::GetFlag(FLAGS_lr)).weight_decay(absl::GetFlag(FLAGS_weight_decay)));
  const torch::Tensor batch = inputs.slice(0, 0, batch_size);
  const torch::Tensor labels = torch::arange(batch_size, torch::kInt64).remainder(2);
  classifier.SetTraining(true);

  double seconds = 0.0;
  double loss = 0.0;
  for (int step = 0; step <= steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    optimizer.zero_grad();
    const torch::Tensor step_loss = torch::nn::functional::cross_entropy(classifier.Forward(batch), labels);
    step_loss.backward();
    optimizer.step();
    loss = step_loss.item<double>();
    // Step 0 warms up allocators and caches and is not timed.
    if (step > 0) seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  // scripts/bench-backbone reads the images/s figure from this line.
  LOG(INFO) << absl::StrFormat(
      "benchmark: %s, fine-tuning step of batch %d with %s frozen: %d steps, %.3f s per step, %.2f images/s, last "
      "loss %.4f",
      backbone.info().name, batch_size, frozen_prefixes.empty() ? "nothing" : absl::StrJoin(frozen_prefixes, ","),
      steps, seconds / steps, steps * batch_size / seconds, loss);
  return absl::OkStatus();
}

}  // namespace nearnd
