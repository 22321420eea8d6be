#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace nearnd {

// Each `nearnd` subcommand reads its flags (defined beside it with ABSL_FLAG) and takes the
// positional arguments that follow the subcommand name.

absl::Status RunPretrain(const std::vector<std::string>& args);
absl::Status RunGenerate(const std::vector<std::string>& args);
absl::Status RunFinetune(const std::vector<std::string>& args);
absl::Status RunIndex(const std::vector<std::string>& args);
absl::Status RunEvaluate(const std::vector<std::string>& args);
absl::Status RunBundle(const std::vector<std::string>& args);
absl::Status RunPipeline(const std::vector<std::string>& args);
absl::Status RunExport(const std::vector<std::string>& args);
absl::Status RunCompare(const std::vector<std::string>& args);
absl::Status RunReport(const std::vector<std::string>& args);

// RunScore sends the image files in `args` to a running scorer and prints one
// "score<TAB>file" line per image on stdout, in argument order.
absl::Status RunScore(const std::vector<std::string>& args);

// RunEmbed writes the --backbone-weights backbone's features of the image files and folders in
// `args`, or of the --preprocessed array, to --out as a float32 [N, dim] .npy file.
absl::Status RunEmbed(const std::vector<std::string>& args);

// RunPreprocess writes the backbone inputs that the test transform makes of the image files
// and folders in `args` to --out as a float32 [N, C, S, S] .npy file.
absl::Status RunPreprocess(const std::vector<std::string>& args);

// RunBenchmark times --steps fine-tuning steps of the starting backbone on the first
// --batch-size rows of the --preprocessed array and logs seconds per step and images/s.
absl::Status RunBenchmark(const std::vector<std::string>& args);

}  // namespace nearnd
