// `nearnd evaluate`: AUROC of the novelty score on the test split, for the starting backbone and
// for the fine-tuned one. It measures one-vs-all, one-vs-one against each other class (whose
// minimum is the near-distribution "bottom-1" figure), and the generator's fakes as anomalies.

#include <filesystem>
#include <fstream>
#include <limits>

#include <glog/logging.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "core/index/knn_index.h"
#include "core/metrics/auroc.h"
#include "core/scoring/novelty_model.h"
#include "core/util/status_macros.h"
#include "trainer/commands.h"
#include "trainer/flags.h"
#include "trainer/run.h"

namespace nearnd {
namespace {

// Images per backbone forward pass.
constexpr int kEmbedBatch = 256;

// ScoreImages returns the novelty scores of images under a backbone and an index of normal
// embeddings.
absl::StatusOr<std::vector<float>> ScoreImages(Backbone& backbone, const KnnIndex& index, const std::vector<Image>& images,
                                               const PreprocessConfig& preprocess, int k) {
  const torch::Tensor embeddings = Embed(backbone, images, preprocess, kEmbedBatch);
  NEARND_ASSIGN_OR_RETURN(torch::Tensor scores, index.Score(embeddings, k));
  return std::vector<float>(scores.data_ptr<float>(), scores.data_ptr<float>() + scores.numel());
}

// Evaluate computes the AUROC figures from test scores and, when given, scores of fakes.
absl::StatusOr<nearnd::v1::EvaluationReport> Evaluate(const Dataset& test, const std::vector<float>& scores,
                                                      const std::vector<float>& fake_scores, int normal_class) {
  nearnd::v1::EvaluationReport evaluation;
  std::vector<int> novel(test.labels.size());
  for (size_t i = 0; i < test.labels.size(); ++i) novel[i] = test.labels[i] != normal_class;
  NEARND_ASSIGN_OR_RETURN(double one_vs_all, Auroc(scores, novel));
  evaluation.set_one_vs_all_auroc(one_vs_all);

  // One-vs-one: the normal test images against one other class at a time.
  double bottom = std::numeric_limits<double>::infinity();
  for (int label = 0; label < static_cast<int>(test.class_names.size()); ++label) {
    if (label == normal_class) continue;
    std::vector<float> pair_scores;
    std::vector<int> pair_labels;
    for (size_t i = 0; i < test.labels.size(); ++i) {
      if (test.labels[i] != normal_class && test.labels[i] != label) continue;
      pair_scores.push_back(scores[i]);
      pair_labels.push_back(test.labels[i] == label);
    }
    NEARND_ASSIGN_OR_RETURN(double auroc, Auroc(pair_scores, pair_labels));
    (*evaluation.mutable_per_class_auroc())[label] = auroc;
    if (auroc < bottom) {
      bottom = auroc;
      evaluation.set_bottom1_auroc(auroc);
      evaluation.set_bottom1_class(label);
      evaluation.set_bottom1_class_name(test.class_names[label]);
    }
  }

  // Generated fakes as the anomalies, against the normal test images.
  if (!fake_scores.empty()) {
    std::vector<float> pair_scores;
    std::vector<int> pair_labels;
    for (size_t i = 0; i < test.labels.size(); ++i) {
      if (test.labels[i] != normal_class) continue;
      pair_scores.push_back(scores[i]);
      pair_labels.push_back(0);
    }
    pair_scores.insert(pair_scores.end(), fake_scores.begin(), fake_scores.end());
    pair_labels.resize(pair_scores.size(), 1);
    NEARND_ASSIGN_OR_RETURN(double auroc, Auroc(pair_scores, pair_labels));
    evaluation.set_fakes_auroc(auroc);
  }
  return evaluation;
}

absl::Status WriteScores(const std::string& path, const Dataset& test, const std::vector<float>& scores) {
  std::ofstream out(path);
  out << "index\tlabel\tscore\n";
  for (size_t i = 0; i < scores.size(); ++i) {
    out << i << '\t' << test.labels[i] << '\t' << absl::StrFormat("%.9g", scores[i]) << '\n';
  }
  if (!out) return absl::PermissionDeniedError(absl::StrFormat("cannot write %s", path));
  return absl::OkStatus();
}

void LogEvaluation(const std::string& name, const nearnd::v1::EvaluationReport& evaluation) {
  LOG(INFO) << absl::StrFormat("evaluate: %s one-vs-all AUROC %.4f, bottom-1 AUROC %.4f (class %d, %s), fakes AUROC %.4f",
                               name, evaluation.one_vs_all_auroc(), evaluation.bottom1_auroc(),
                               evaluation.bottom1_class(), evaluation.bottom1_class_name(), evaluation.fakes_auroc());
}

}  // namespace

absl::Status RunEvaluate(const std::vector<std::string>& args) {
  if (!args.empty()) return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s'", args[0]));
  NEARND_ASSIGN_OR_RETURN(RunContext context, MakeRunContext());
  const StepTimer timer("evaluate");
  const int k = absl::GetFlag(FLAGS_k);

  NEARND_ASSIGN_OR_RETURN(Dataset train, LoadDataset(context, "train"));
  NEARND_ASSIGN_OR_RETURN(Dataset test, LoadDataset(context, "test"));
  const std::vector<Image> normals = train.ImagesOfClass(context.normal_class);
  std::vector<Image> fakes;
  if (std::filesystem::exists(context.paths.Fakes())) {
    NEARND_ASSIGN_OR_RETURN(fakes, ReadFakes(context.paths));
  }

  // Baseline: the starting backbone, with an index of its own normal embeddings.
  NEARND_ASSIGN_OR_RETURN(StartingBackbone starting, LoadStartingBackbone(context));
  const PreprocessConfig preprocess = BackbonePreprocess(context, starting.backbone->info());
  KnnIndex baseline_index(starting.backbone->info().dim);
  NEARND_RETURN_IF_ERROR(baseline_index.Add(Embed(*starting.backbone, normals, preprocess, kEmbedBatch)));
  NEARND_ASSIGN_OR_RETURN(std::vector<float> baseline_scores,
                          ScoreImages(*starting.backbone, baseline_index, test.images, preprocess, k));
  std::vector<float> baseline_fake_scores;
  if (!fakes.empty()) {
    NEARND_ASSIGN_OR_RETURN(baseline_fake_scores, ScoreImages(*starting.backbone, baseline_index, fakes, preprocess, k));
  }
  NEARND_ASSIGN_OR_RETURN(nearnd::v1::EvaluationReport baseline,
                          Evaluate(test, baseline_scores, baseline_fake_scores, context.normal_class));
  LogEvaluation("baseline", baseline);

  // Fine-tuned: the backbone and index the bundle will hold.
  NEARND_ASSIGN_OR_RETURN(std::shared_ptr<Backbone> finetuned, LoadFinetunedBackbone(context));
  NEARND_ASSIGN_OR_RETURN(KnnIndex index, KnnIndex::Load(context.paths.Index()));
  NEARND_ASSIGN_OR_RETURN(std::vector<float> scores, ScoreImages(*finetuned, index, test.images, preprocess, k));
  std::vector<float> fake_scores;
  if (!fakes.empty()) {
    NEARND_ASSIGN_OR_RETURN(fake_scores, ScoreImages(*finetuned, index, fakes, preprocess, k));
  }
  NEARND_ASSIGN_OR_RETURN(nearnd::v1::EvaluationReport evaluation,
                          Evaluate(test, scores, fake_scores, context.normal_class));
  LogEvaluation("fine-tuned", evaluation);

  NEARND_RETURN_IF_ERROR(EnsureDirectory(context.paths.Path("evaluate")));
  NEARND_RETURN_IF_ERROR(WriteScores(context.paths.Scores("baseline"), test, baseline_scores));
  NEARND_RETURN_IF_ERROR(WriteScores(context.paths.Scores("finetuned"), test, scores));
  NEARND_RETURN_IF_ERROR(UpdateReport(context.paths, [&](nearnd::v1::Report& report) {
    report.set_dataset(context.dataset);
    report.set_normal_class(context.normal_class);
    report.set_normal_class_name(test.class_names[context.normal_class]);
    report.mutable_backbone()->set_name(starting.backbone->info().name);
    report.mutable_backbone()->set_weights_source(starting.weights_source);
    *report.mutable_baseline() = baseline;
    *report.mutable_finetuned() = evaluation;
  }));
  return timer.Finish(context.paths);
}

}  // namespace nearnd
