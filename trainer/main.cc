// nearnd: the command-line jobs of near-distribution novelty detection. Each step of the
// method is a subcommand; `nearnd pipeline` runs them all.

#include <cstring>
#include <iostream>

#include <glog/logging.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "core/util/command_line.h"
#include "core/util/threads.h"
#include "trainer/commands.h"
#include "trainer/flags.h"

namespace {

struct Subcommand {
  const char* name;
  absl::Status (*run)(const std::vector<std::string>&);
  const char* summary;
};

constexpr Subcommand kSubcommands[] = {
    {"pipeline", nearnd::RunPipeline, "run every step below in order, skipping steps already done"},
    {"pretrain", nearnd::RunPretrain, "pretrain the starting backbone on --pretrain-dataset (MNIST digits)"},
    {"generate", nearnd::RunGenerate, "train the score network, stop early, sample fake anomalies"},
    {"finetune", nearnd::RunFinetune, "fine-tune the backbone on normal (0) vs fake (1)"},
    {"index", nearnd::RunIndex, "embed the normal training images into a FAISS index, set the threshold"},
    {"evaluate", nearnd::RunEvaluate, "AUROC one-vs-all, one-vs-one and bottom-1, before and after fine-tuning"},
    {"bundle", nearnd::RunBundle, "write OUT/bundle for the scorer"},
    {"report", nearnd::RunReport, "print the run's AUROC table and step times"},
    {"export", nearnd::RunExport, "write a dataset split as PNG files INDEX_LABEL.png"},
    {"score", nearnd::RunScore, "send image files to a running scorer: nearnd score --target HOST:PORT FILE..."},
    {"compare", nearnd::RunCompare, "check `nearnd score` output against evaluation's scores"},
    {"embed", nearnd::RunEmbed, "write backbone features of FILE|DIR... or --preprocessed to --out FILE.npy"},
    {"preprocess", nearnd::RunPreprocess, "write the backbone inputs of FILE|DIR... to --out FILE.npy"},
    {"benchmark", nearnd::RunBenchmark, "time fine-tuning steps of the backbone on --preprocessed inputs"},
};

std::string Usage() {
  std::string usage =
      "nearnd: near-distribution novelty detection.\n\n"
      "usage: nearnd SUBCOMMAND [--flag=value ...] [ARGS]\n\nsubcommands:\n";
  for (const Subcommand& subcommand : kSubcommands) {
    usage += absl::StrFormat("  %-10s %s\n", subcommand.name, subcommand.summary);
  }
  usage += "\nexample: nearnd pipeline --dataset fashion-mnist --normal-class 6 --out runs/shirt\n";
  usage += "Flags accept dashes or underscores. `nearnd --help` lists every flag.";
  return usage;
}

}  // namespace

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);

  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) { return absl::StrContains(path, "trainer/"); };
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(Usage());

  std::vector<std::string> normalized = nearnd::NormalizeFlagNames(argc, argv);
  std::vector<char*> pointers = nearnd::ArgvPointers(normalized);
  const std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(normalized.size()), pointers.data());
  if (positional.size() < 2) {
    std::cerr << Usage() << std::endl;
    return 2;
  }

  const std::string name = positional[1];
  const Subcommand* subcommand = nullptr;
  for (const Subcommand& candidate : kSubcommands) {
    if (name == candidate.name) subcommand = &candidate;
  }
  if (subcommand == nullptr) {
    std::cerr << absl::StrFormat("nearnd: unknown subcommand '%s'\n\n%s", name, Usage()) << std::endl;
    return 2;
  }

  const int threads = nearnd::ConfigureThreads(absl::GetFlag(FLAGS_threads));
  LOG(INFO) << absl::StrFormat("nearnd %s: %d threads", name, threads);

  const absl::Status status = subcommand->run(std::vector<std::string>(positional.begin() + 2, positional.end()));
  if (!status.ok()) {
    std::cerr << absl::StrFormat("nearnd %s: %s", name, status.message()) << std::endl;
    return 1;
  }
  return 0;
}
