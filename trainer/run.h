#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/data/preprocess.h"
#include "core/models/backbone.h"
#include "nearnd/v1/manifest.pb.h"
#include "nearnd/v1/report.pb.h"
#include "trainer/profile.h"

namespace nearnd {

// RunPaths is the file layout of a run directory. Each step writes its own sub-directory and
// reads those of the steps before it, so a run resumes from any step.
class RunPaths {
 public:
  explicit RunPaths(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  std::string Path(const std::string& relative) const { return dir_ + "/" + relative; }

  std::string PretrainedWeights() const { return Path("pretrain/backbone.safetensors"); }
  std::string ScoreNetWeights() const { return Path("generate/score_net.safetensors"); }
  std::string Fakes() const { return Path("generate/fakes.npy"); }
  std::string FakesGrid() const { return Path("generate/fakes.png"); }
  std::string FrechetCurve() const { return Path("generate/frechet.tsv"); }
  std::string FinetunedWeights() const { return Path("finetune/backbone.safetensors"); }
  std::string Index() const { return Path("index/normal.faiss"); }
  std::string Threshold() const { return Path("index/threshold.json"); }
  std::string Scores(const std::string& backbone) const { return Path("evaluate/" + backbone + "_scores.tsv"); }
  std::string Report() const { return Path("report.json"); }
  std::string Bundle() const { return Path("bundle"); }

 private:
  std::string dir_;
};

// RunContext is what every step needs: the resolved profile, the run paths and the flags
// shared by all steps.
struct RunContext {
  Profile profile;
  RunPaths paths{""};
  std::string dataset;
  std::string data_dir;
  int normal_class = 0;
  int seed = 0;

  // Normalise inputs with the ImageNet mean and std instead of the backbone's own values.
  bool imagenet_normalization = false;
};

// MakeRunContext reads the shared flags, checks them, creates the run directory and seeds
// LibTorch.
absl::StatusOr<RunContext> MakeRunContext();

// ResolveNormalization reads --normalization into the context; other values than "backbone" and
// "imagenet" are an InvalidArgumentError.
absl::Status ResolveNormalization(RunContext& context);

// FlagOr returns `value` unless it is -1, in which case it returns the profile's default.
int FlagOr(int value, int profile_default);
double FlagOr(double value, double profile_default);

// LoadDataset reads a split of the run's dataset and checks that the normal class exists.
absl::StatusOr<Dataset> LoadDataset(const RunContext& context, const std::string& split);

// BackboneSpec returns --backbone, or the profile's backbone when the flag is empty: a ViT
// configuration name such as "vit-b16", or "torchscript:PATH".
std::string BackboneSpec(const RunContext& context);

// IsTorchScriptSpec returns whether a backbone spec names a TorchScript module.
bool IsTorchScriptSpec(const std::string& spec);

// MakeBackbone builds the backbone of BackboneSpec: a ViT with freshly initialised weights, or
// the TorchScript module with the weights it was saved with.
absl::StatusOr<std::shared_ptr<Backbone>> MakeBackbone(const RunContext& context);

// StartingBackbone is the backbone before fine-tuning and where its weights came from.
struct StartingBackbone {
  std::shared_ptr<Backbone> backbone;
  std::string weights_source;
};

// LoadStartingBackbone loads --backbone-weights into the backbone. Without the flag, a
// TorchScript module keeps its own weights and a ViT gets the weights `nearnd pretrain` wrote
// into the run directory.
absl::StatusOr<StartingBackbone> LoadStartingBackbone(const RunContext& context);

// LoadFinetunedBackbone loads the weights `nearnd finetune` wrote into the run directory.
absl::StatusOr<std::shared_ptr<Backbone>> LoadFinetunedBackbone(const RunContext& context);

// BackbonePreprocess returns the test transform of a backbone: resize the shorter side to the
// profile's resize size scaled to the backbone's input, centre crop to the input, normalise
// with the backbone's own mean and std, or the ImageNet values under --normalization=imagenet.
PreprocessConfig BackbonePreprocess(const RunContext& context, const BackboneInfo& info);

// FreezeForFinetuning freezes the parameters that fine-tuning keeps fixed and returns their
// name prefixes: --freeze when given, else a ViT's embeddings and first --freeze-blocks encoder
// blocks (half of them by default), else none.
absl::StatusOr<std::vector<std::string>> FreezeForFinetuning(Backbone& backbone);

// ReadFakes reads the fakes `nearnd generate` wrote, a uint8 [N, C, H, W] array, as images.
absl::StatusOr<std::vector<Image>> ReadFakes(const RunPaths& paths);

// ReadReport returns the run's report.json, or an empty report when there is none yet.
absl::StatusOr<nearnd::v1::Report> ReadReport(const RunPaths& paths);

// UpdateReport applies `update` to the run's report.json and writes it back atomically.
absl::Status UpdateReport(const RunPaths& paths, const std::function<void(nearnd::v1::Report&)>& update);

// ReadThreshold and WriteThreshold store the decision threshold that `nearnd index` sets.
absl::StatusOr<nearnd::v1::Threshold> ReadThreshold(const RunPaths& paths);
absl::Status WriteThreshold(const RunPaths& paths, const nearnd::v1::Threshold& threshold);

// EnsureDirectory creates `dir` and its parents.
absl::Status EnsureDirectory(const std::string& dir);

// Progress logs a long loop's progress to stderr at most every few seconds: the step, how
// far along it is, a detail such as the loss, the rate and the estimated time left.
class Progress {
 public:
  Progress(std::string step, int64_t total, std::string unit);

  // Update records that `done` of `total` units are finished.
  void Update(int64_t done, const std::string& detail = "");

  double ElapsedSeconds() const;

 private:
  std::string step_;
  int64_t total_;
  std::string unit_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_log_;
};

// StepTimer measures a step's wall time and records it in the report when it ends.
class StepTimer {
 public:
  explicit StepTimer(std::string step) : step_(std::move(step)), start_(std::chrono::steady_clock::now()) {}

  // Finish writes the elapsed seconds under report.wall_seconds[step] and logs them.
  absl::Status Finish(const RunPaths& paths) const;

 private:
  std::string step_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace nearnd
