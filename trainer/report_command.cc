// `nearnd compare` checks a scorer's scores against evaluation's for the same images;
// `nearnd report` prints a run's AUROC table, generator figures and step times.

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <glog/logging.h>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/util/status_macros.h"
#include "trainer/commands.h"
#include "trainer/flags.h"
#include "trainer/run.h"

ABSL_FLAG(double, tolerance, 1e-4,
          "Largest relative difference `nearnd compare` accepts between scorer and evaluation scores.");

namespace nearnd {
namespace {

// ReadEvaluationScores reads evaluate/finetuned_scores.tsv: index, label, score per line.
absl::StatusOr<std::vector<double>> ReadEvaluationScores(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrFormat("%s not found; run `nearnd evaluate` first", path));
  }
  std::vector<double> scores;
  std::string line;
  std::getline(in, line);  // Header.
  while (std::getline(in, line)) {
    const std::vector<std::string> fields = absl::StrSplit(line, '\t');
    double score;
    if (fields.size() != 3 || !absl::SimpleAtod(fields[2], &score)) {
      return absl::DataLossError(absl::StrFormat("%s: malformed line '%s'", path, line));
    }
    scores.push_back(score);
  }
  return scores;
}

std::string Auroc(double value) { return absl::StrFormat("%.4f", value); }

}  // namespace

absl::Status RunCompare(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    return absl::InvalidArgumentError(
        "usage: nearnd compare --out RUN SCORES.tsv, where SCORES.tsv is `nearnd score` output for files named "
        "INDEX_LABEL.png by `nearnd export`");
  }
  NEARND_ASSIGN_OR_RETURN(RunContext context, MakeRunContext());
  NEARND_ASSIGN_OR_RETURN(std::vector<double> expected, ReadEvaluationScores(context.paths.Scores("finetuned")));

  std::ifstream in(args[0]);
  if (!in) return absl::NotFoundError(absl::StrFormat("scorer output %s not found", args[0]));
  double max_abs = 0.0;
  double max_rel = 0.0;
  std::string worst;
  uint32_t count = 0;
  std::string line;
  while (std::getline(in, line)) {
    // "score<TAB>path", where the file name starts with the test index.
    const std::vector<std::string> fields = absl::StrSplit(line, '\t');
    double score;
    size_t index;
    const std::string name = fields.size() == 2 ? std::filesystem::path(fields[1]).filename().string() : "";
    if (fields.size() != 2 || !absl::SimpleAtod(fields[0], &score) ||
        !absl::SimpleAtoi(name.substr(0, name.find('_')), &index) || index >= expected.size()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: line '%s' is not 'score<TAB>INDEX_LABEL.png' with an index below %d", args[0], line, expected.size()));
    }
    const double abs_diff = std::abs(score - expected[index]);
    const double rel_diff = abs_diff / std::max(std::abs(expected[index]), 1e-12);
    max_abs = std::max(max_abs, abs_diff);
    if (rel_diff > max_rel) {
      max_rel = rel_diff;
      worst = absl::StrFormat("%s: scorer %.9g, evaluation %.9g", name, score, expected[index]);
    }
    ++count;
  }
  if (count == 0) return absl::InvalidArgumentError(absl::StrFormat("scorer output %s has no scores", args[0]));

  NEARND_RETURN_IF_ERROR(UpdateReport(context.paths, [&](nearnd::v1::Report& report) {
    report.mutable_scorer()->set_images(count);
    report.mutable_scorer()->set_max_abs_diff_vs_evaluate(max_abs);
    report.mutable_scorer()->set_max_rel_diff_vs_evaluate(max_rel);
  }));
  LOG(INFO) << absl::StrFormat("compare: %d images, max absolute difference %.3g, max relative difference %.3g", count,
                               max_abs, max_rel);
  const double tolerance = absl::GetFlag(FLAGS_tolerance);
  if (max_rel > tolerance) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "scorer and evaluation disagree: relative difference %.3g exceeds --tolerance=%g (%s)", max_rel, tolerance,
        worst));
  }
  return absl::OkStatus();
}

absl::Status RunReport(const std::vector<std::string>& args) {
  if (!args.empty()) return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s'", args[0]));
  NEARND_ASSIGN_OR_RETURN(RunContext context, MakeRunContext());
  if (!std::filesystem::exists(context.paths.Report())) {
    return absl::NotFoundError(absl::StrFormat("%s not found; run `nearnd pipeline --out %s` first",
                                               context.paths.Report(), context.paths.dir()));
  }
  NEARND_ASSIGN_OR_RETURN(nearnd::v1::Report report, ReadReport(context.paths));

  std::ostringstream out;
  out << absl::StrFormat("%s, normal class %d (%s)\n", report.dataset(), report.normal_class(),
                         report.normal_class_name());
  out << absl::StrFormat("backbone: %s, starting weights: %s", report.backbone().name(),
                         report.backbone().weights_source());
  if (report.backbone().pretrain_accuracy() > 0) {
    out << absl::StrFormat(", pretraining test accuracy %.4f", report.backbone().pretrain_accuracy());
  }
  out << absl::StrFormat("\ngenerator: stopped at step %d, Frechet distance %.2f (target %.2f), %d fakes\n\n",
                         report.generator().steps(), report.generator().frechet_distance(),
                         report.generator().target_frechet_distance(), report.generator().fakes());

  out << absl::StrFormat("%-11s %-11s %-9s %-18s %s\n", "backbone", "one-vs-all", "bottom-1", "bottom-1 class",
                         "fakes");
  for (const auto& [name, evaluation] : {std::pair{"baseline", report.baseline()}, {"fine-tuned", report.finetuned()}}) {
    out << absl::StrFormat("%-11s %-11s %-9s %-18s %s\n", name, Auroc(evaluation.one_vs_all_auroc()),
                           Auroc(evaluation.bottom1_auroc()),
                           absl::StrFormat("%d %s", evaluation.bottom1_class(), evaluation.bottom1_class_name()),
                           Auroc(evaluation.fakes_auroc()));
  }

  out << absl::StrFormat("\n%-16s %-9s %s\n", "one-vs-one", "baseline", "fine-tuned");
  const std::map<int32_t, double> baseline(report.baseline().per_class_auroc().begin(),
                                           report.baseline().per_class_auroc().end());
  for (const auto& [label, auroc] : baseline) {
    const auto& finetuned = report.finetuned().per_class_auroc();
    out << absl::StrFormat("class %-10d %-9s %s\n", label, Auroc(auroc),
                           finetuned.count(label) ? Auroc(finetuned.at(label)) : "-");
  }

  if (report.scorer().images() > 0) {
    out << absl::StrFormat("\nscorer: %d images, max absolute difference %.3g, max relative difference %.3g\n",
                           report.scorer().images(), report.scorer().max_abs_diff_vs_evaluate(),
                           report.scorer().max_rel_diff_vs_evaluate());
  }
  out << "\nwall seconds:";
  const std::map<std::string, double> seconds(report.wall_seconds().begin(), report.wall_seconds().end());
  for (const auto& [step, value] : seconds) out << absl::StrFormat(" %s %.1f", step, value);
  std::cout << out.str() << std::endl;
  return absl::OkStatus();
}

}  // namespace nearnd
