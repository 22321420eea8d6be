// `nearnd generate`: trains a score network on the normal class with the variance-exploding SDE
// and stops it early, when the Frechet distance between its samples and the normal images
// falls to the target. The samples of such an early-stopped model look like the normal class
// but are subtly wrong: near-distribution fake anomalies.

#include <filesystem>
#include <fstream>

#include <glog/logging.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "core/data/npy.h"
#include "core/metrics/frechet.h"
#include "core/models/safetensors.h"
#include "core/models/score_net.h"
#include "core/scoring/novelty_model.h"
#include "core/sde/pc_sampler.h"
#include "core/util/status_macros.h"
#include "trainer/commands.h"
#include "trainer/flags.h"
#include "trainer/run.h"

namespace nearnd {
namespace {

// Decay of the exponential moving average of the score network's weights used for sampling.
constexpr double kEmaDecay = 0.995;

// Gradient norm clip of score network training.
constexpr double kGradientClip = 1.0;

// Samples drawn per sampler call, and images per feature extraction batch.
constexpr int kSampleChunk = 256;
constexpr int kFeatureBatch = 256;

// Smallest t of denoising score matching, so sigma(t) stays above sigma_min's neighbourhood.
constexpr double kDsmEpsilon = 1e-5;

struct GeneratorSettings {
  int channels_width;
  int max_steps;
  int check_every;
  int check_samples;
  double lr;
  double target_fd;
  double sigma_max;
  int fakes;
  PcSamplerOptions sampler;
};

GeneratorSettings ResolveSettings(const Profile& profile) {
  GeneratorSettings settings;
  settings.channels_width = FlagOr(absl::GetFlag(FLAGS_generator_channels), profile.generator_channels);
  settings.max_steps = FlagOr(absl::GetFlag(FLAGS_generator_max_steps), profile.generator_max_steps);
  settings.check_every = FlagOr(absl::GetFlag(FLAGS_generator_check_every), profile.generator_check_every);
  settings.check_samples = FlagOr(absl::GetFlag(FLAGS_generator_check_samples), profile.check_samples);
  settings.lr = FlagOr(absl::GetFlag(FLAGS_generator_lr), profile.generator_lr);
  settings.target_fd = FlagOr(absl::GetFlag(FLAGS_target_fd), profile.target_frechet_distance);
  settings.sigma_max = FlagOr(absl::GetFlag(FLAGS_sigma_max), profile.sigma_max);
  settings.fakes = FlagOr(absl::GetFlag(FLAGS_fakes), profile.fakes);
  settings.sampler.steps = FlagOr(absl::GetFlag(FLAGS_sampler_steps), profile.sampler_steps);
  settings.sampler.snr = FlagOr(absl::GetFlag(FLAGS_snr), profile.snr);
  return settings;
}

absl::Status CheckSettings(const GeneratorSettings& settings) {
  if (settings.max_steps < 1 || settings.check_every < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--generator-max-steps=%d and --generator-check-every=%d must both be at least 1", settings.max_steps,
        settings.check_every));
  }
  if (settings.check_samples < 2) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--generator-check-samples=%d; the Frechet distance needs at least 2 samples", settings.check_samples));
  }
  if (settings.fakes < 2) {
    return absl::InvalidArgumentError(absl::StrFormat("--fakes=%d; sample at least 2 fakes", settings.fakes));
  }
  if (settings.sampler.steps < 2) {
    return absl::InvalidArgumentError(absl::StrFormat("--sampler-steps=%d; use at least 2", settings.sampler.steps));
  }
  return absl::OkStatus();
}

// UpdateMovingAverage sets every parameter of `average` to decay * average + (1 - decay) * model
// and copies the buffers, so a decay of 0 makes `average` a copy of `model`.
void UpdateMovingAverage(torch::nn::Module& average, const torch::nn::Module& model, double decay) {
  torch::NoGradGuard no_grad;
  const auto source = model.parameters();
  auto target = average.parameters();
  for (size_t i = 0; i < source.size(); ++i) target[i].mul_(decay).add_(source[i], 1.0 - decay);

  const auto source_buffers = model.buffers();
  auto target_buffers = average.buffers();
  for (size_t i = 0; i < source_buffers.size(); ++i) target_buffers[i].copy_(source_buffers[i]);
}

// Sample draws `count` images from the score network, in chunks, as 8-bit images.
std::vector<Image> Sample(const VeSde& sde, ScoreNet& net, int count, int channels, int size,
                          const PcSamplerOptions& options) {
  Progress progress("generate: sampling", count, "image");
  net->eval();
  const ScoreFunction score = [&](const torch::Tensor& x, const torch::Tensor& sigma) { return net->forward(x, sigma); };
  std::vector<Image> images;
  images.reserve(count);
  for (int begin = 0; begin < count; begin += kSampleChunk) {
    const int n = std::min(kSampleChunk, count - begin);
    const torch::Tensor samples = SamplePc(sde, score, {n, channels, size, size}, options);
    for (int i = 0; i < n; ++i) images.push_back(FromUnitTensor(samples[i]));
    progress.Update(begin + n);
  }
  net->train();
  return images;
}

// TileImages lays out the first rows * columns images (all of one size) in a grid.
Image TileImages(const std::vector<Image>& images, int columns) {
  const int count = static_cast<int>(images.size());
  const int rows = (count + columns - 1) / columns;
  const Image& first = images.front();
  Image grid;
  grid.height = rows * first.height;
  grid.width = columns * first.width;
  grid.channels = first.channels;
  grid.pixels.assign(static_cast<size_t>(grid.height) * grid.width * grid.channels, 0);
  for (int i = 0; i < count; ++i) {
    const int top = (i / columns) * first.height;
    const int left = (i % columns) * first.width;
    for (int y = 0; y < first.height; ++y) {
      const size_t row_bytes = static_cast<size_t>(first.width) * first.channels;
      std::copy_n(images[i].pixels.begin() + y * row_bytes, row_bytes,
                  grid.pixels.begin() + ((top + y) * static_cast<size_t>(grid.width) + left) * grid.channels);
    }
  }
  return grid;
}

absl::Status WriteGrid(const std::string& path, const std::vector<Image>& images) {
  const std::vector<Image> preview(images.begin(), images.begin() + std::min<size_t>(images.size(), 100));
  NEARND_ASSIGN_OR_RETURN(std::string png, EncodePng(TileImages(preview, 10)));
  std::ofstream out(path, std::ios::binary);
  out << png;
  if (!out) return absl::PermissionDeniedError(absl::StrFormat("cannot write %s", path));
  return absl::OkStatus();
}

absl::Status WriteFakes(const RunPaths& paths, const std::vector<Image>& fakes) {
  // N x C x H x W uint8, the exact pixels fine-tuning reads back.
  const Image& first = fakes.front();
  torch::Tensor array = torch::empty({static_cast<int64_t>(fakes.size()), first.channels, first.height, first.width},
                                     torch::kUInt8);
  for (size_t i = 0; i < fakes.size(); ++i) {
    array[i].copy_(torch::from_blob(const_cast<uint8_t*>(fakes[i].pixels.data()),
                                    {first.height, first.width, first.channels}, torch::kUInt8)
                       .permute({2, 0, 1}));
  }
  NEARND_RETURN_IF_ERROR(WriteNpy(array, paths.Fakes()));
  return WriteGrid(paths.FakesGrid(), fakes);
}

absl::Status WriteCurve(const RunPaths& paths, const nearnd::v1::GeneratorReport& generator) {
  std::ofstream out(paths.FrechetCurve());
  out << "step\tfrechet_distance\tloss\n";
  for (const auto& point : generator.curve()) {
    out << point.step() << '\t' << point.frechet_distance() << '\t' << point.loss() << '\n';
  }
  if (!out) return absl::PermissionDeniedError(absl::StrFormat("cannot write %s", paths.FrechetCurve()));
  return absl::OkStatus();
}

}  // namespace

absl::Status RunGenerate(const std::vector<std::string>& args) {
  if (!args.empty()) return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s'", args[0]));
  NEARND_ASSIGN_OR_RETURN(RunContext context, MakeRunContext());
  const StepTimer timer("generate");
  const GeneratorSettings settings = ResolveSettings(context.profile);
  NEARND_RETURN_IF_ERROR(CheckSettings(settings));

  NEARND_RETURN_IF_ERROR(EnsureDirectory(context.paths.Path("generate")));

  // The normal training images in the generator's input form: [N, C, S, S] in [0, 1].
  NEARND_ASSIGN_OR_RETURN(Dataset train, LoadDataset(context, "train"));
  const std::vector<Image> normals = train.ImagesOfClass(context.normal_class);
  const int channels = normals.front().channels;
  const int size = context.profile.generator_size;
  std::vector<torch::Tensor> unit_images;
  unit_images.reserve(normals.size());
  for (const Image& image : normals) unit_images.push_back(ToUnitTensor(image, channels, size));
  const torch::Tensor data = torch::stack(unit_images);

  // Frechet distances use the starting backbone's features.
  NEARND_ASSIGN_OR_RETURN(StartingBackbone starting, LoadStartingBackbone(context));
  const PreprocessConfig preprocess = BackbonePreprocess(context, starting.backbone->info());
  const torch::Tensor normal_features = Embed(*starting.backbone, normals, preprocess, kFeatureBatch);

  ScoreNetConfig net_config;
  net_config.channels = channels;
  net_config.base_channels = settings.channels_width;
  ScoreNet net(net_config);
  ScoreNet ema(net_config);
  UpdateMovingAverage(*ema, *net, 0.0);
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(settings.lr));
  const VeSde sde(context.profile.sigma_min, settings.sigma_max);
  LOG(INFO) << absl::StrFormat(
      "generate: %d normal images of class %d at %dx%d, score network width %d, sigma %.3g..%.3g, target Frechet "
      "distance %.2f, at most %d steps",
      normals.size(), context.normal_class, size, size, settings.channels_width, context.profile.sigma_min,
      settings.sigma_max, settings.target_fd, settings.max_steps);

  nearnd::v1::GeneratorReport generator;
  generator.set_target_frechet_distance(settings.target_fd);
  generator.set_feature_extractor(absl::StrFormat("%s class token, %s", starting.backbone->info().name,
                                                  starting.weights_source));
  const auto score = [&](const torch::Tensor& x, const torch::Tensor& sigma) { return net->forward(x, sigma); };
  Progress progress("generate", settings.max_steps, "step");
  double loss_sum = 0.0;
  int loss_count = 0;
  for (int step = 1; step <= settings.max_steps; ++step) {
    // One denoising score matching step on a random batch.
    const torch::Tensor batch = data.index_select(0, torch::randint(data.size(0), {context.profile.generator_batch_size},
                                                                    torch::kInt64));
    optimizer.zero_grad();
    const torch::Tensor loss = DenoisingScoreMatchingLoss(sde, score, batch, kDsmEpsilon);
    loss.backward();
    torch::nn::utils::clip_grad_norm_(net->parameters(), kGradientClip);
    optimizer.step();
    UpdateMovingAverage(*ema, *net, kEmaDecay);
    loss_sum += loss.item<double>();
    ++loss_count;
    progress.Update(step, absl::StrFormat("loss %.2f", loss_sum / loss_count));

    // Every check_every steps, sample and measure how far the samples are from the normal class.
    if (step % settings.check_every != 0 && step != settings.max_steps) continue;
    const std::vector<Image> samples = Sample(sde, ema, settings.check_samples, channels, size, settings.sampler);
    NEARND_ASSIGN_OR_RETURN(double distance,
                            FrechetDistance(Embed(*starting.backbone, samples, preprocess, kFeatureBatch), normal_features));
    NEARND_RETURN_IF_ERROR(WriteGrid(context.paths.Path(absl::StrFormat("generate/samples_step_%d.png", step)), samples));
    nearnd::v1::FrechetPoint* point = generator.add_curve();
    point->set_step(step);
    point->set_frechet_distance(distance);
    point->set_loss(loss_sum / loss_count);
    LOG(INFO) << absl::StrFormat("generate: step %d Frechet distance %.2f (target %.2f), loss %.2f", step, distance,
                                 settings.target_fd, loss_sum / loss_count);
    loss_sum = 0.0;
    loss_count = 0;
    generator.set_steps(step);
    generator.set_frechet_distance(distance);
    if (distance <= settings.target_fd) break;
  }
  if (generator.frechet_distance() > settings.target_fd) {
    LOG(WARNING) << absl::StrFormat(
        "generate: stopped at --generator-max-steps=%d with Frechet distance %.2f above the target %.2f; the fakes are "
        "farther from the normal class than intended (raise --generator-max-steps or --target-fd)",
        settings.max_steps, generator.frechet_distance(), settings.target_fd);
  }

  // Sample the fake anomalies from the stopped model and save them with the model.
  LOG(INFO) << absl::StrFormat("generate: sampling %d fakes with %d predictor-corrector steps", settings.fakes,
                               settings.sampler.steps);
  const std::vector<Image> fakes = Sample(sde, ema, settings.fakes, channels, size, settings.sampler);
  generator.set_fakes(settings.fakes);

  NEARND_RETURN_IF_ERROR(SaveModuleWeights(*ema, context.paths.ScoreNetWeights()));
  NEARND_RETURN_IF_ERROR(WriteFakes(context.paths, fakes));
  NEARND_RETURN_IF_ERROR(WriteCurve(context.paths, generator));
  NEARND_RETURN_IF_ERROR(UpdateReport(context.paths, [&](nearnd::v1::Report& report) {
    *report.mutable_generator() = generator;
  }));
  return timer.Finish(context.paths);
}

}  // namespace nearnd
