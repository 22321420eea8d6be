// `nearnd pipeline`: runs pretrain (unless the backbone comes pretrained), generate, finetune,
// index, evaluate and bundle in order. A step whose output is already in the run directory is
// skipped, so an interrupted run resumes where it stopped.

#include <filesystem>

#include <glog/logging.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "core/util/status_macros.h"
#include "trainer/commands.h"
#include "trainer/flags.h"
#include "trainer/run.h"

namespace nearnd {

absl::Status RunPipeline(const std::vector<std::string>& args) {
  if (!args.empty()) return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s'", args[0]));
  NEARND_ASSIGN_OR_RETURN(RunContext context, MakeRunContext());
  const RunPaths& paths = context.paths;
  const StepTimer timer("pipeline");

  struct Step {
    const char* name;
    absl::Status (*run)(const std::vector<std::string>&);
    std::string output;  // Empty: always run.
  };
  std::vector<Step> steps;
  // A TorchScript module or --backbone-weights brings its pretrained weights.
  if (absl::GetFlag(FLAGS_backbone_weights).empty() && !IsTorchScriptSpec(BackboneSpec(context))) {
    steps.push_back({"pretrain", RunPretrain, paths.PretrainedWeights()});
  }
  steps.push_back({"generate", RunGenerate, paths.Fakes()});
  steps.push_back({"finetune", RunFinetune, paths.FinetunedWeights()});
  steps.push_back({"index", RunIndex, paths.Index()});
  steps.push_back({"evaluate", RunEvaluate, ""});
  steps.push_back({"bundle", RunBundle, paths.Bundle()});

  for (const Step& step : steps) {
    if (!step.output.empty() && std::filesystem::exists(step.output)) {
      LOG(INFO) << absl::StrFormat("pipeline: skipping %s, %s exists", step.name, step.output);
      continue;
    }
    LOG(INFO) << absl::StrFormat("pipeline: %s", step.name);
    const absl::Status status = step.run({});
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrFormat("%s: %s", step.name, status.message()));
    }
  }
  return timer.Finish(paths);
}

}  // namespace nearnd
