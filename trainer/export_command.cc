// `nearnd export`: writes a dataset split as PNG files, INDEX_LABEL.png, so that the same
// images can be sent to the scorer and compared with evaluation's scores.

#include <fstream>

#include <glog/logging.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "core/util/status_macros.h"
#include "trainer/commands.h"
#include "trainer/flags.h"
#include "trainer/run.h"

ABSL_FLAG(std::string, split, "test", "Dataset split that `nearnd export` writes: train or test.");
ABSL_FLAG(std::string, images_dir, "", "Folder `nearnd export` writes PNG files to (default: OUT/SPLIT-images).");

namespace nearnd {

absl::Status RunExport(const std::vector<std::string>& args) {
  if (!args.empty()) return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s'", args[0]));
  NEARND_ASSIGN_OR_RETURN(RunContext context, MakeRunContext());
  const std::string split = absl::GetFlag(FLAGS_split);
  NEARND_ASSIGN_OR_RETURN(Dataset dataset, LoadDataset(context, split));
  std::string dir = absl::GetFlag(FLAGS_images_dir);
  if (dir.empty()) dir = context.paths.Path(split + "-images");
  NEARND_RETURN_IF_ERROR(EnsureDirectory(dir));

  for (size_t i = 0; i < dataset.images.size(); ++i) {
    NEARND_ASSIGN_OR_RETURN(std::string png, EncodePng(dataset.images[i]));
    const std::string path = absl::StrFormat("%s/%05d_%d.png", dir, i, dataset.labels[i]);
    std::ofstream out(path, std::ios::binary);
    out << png;
    if (!out) return absl::PermissionDeniedError(absl::StrFormat("cannot write %s", path));
  }
  LOG(INFO) << absl::StrFormat("export: %d %s images of %s in %s", dataset.images.size(), split, context.dataset, dir);
  return absl::OkStatus();
}

}  // namespace nearnd
