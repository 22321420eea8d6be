#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/image.h"

namespace nearnd {

// Dataset is a labelled image set. labels[i] indexes class_names.
struct Dataset {
  std::vector<Image> images;
  std::vector<int> labels;
  std::vector<std::string> class_names;

  // ImagesOfClass returns the images whose label is `label`, in order.
  std::vector<Image> ImagesOfClass(int label) const;
};

// ReadIdx reads a pair of IDX files (the MNIST format): an unsigned-byte image file of
// shape [N, H, W] and an unsigned-byte label file of shape [N]. Errors name the file and the
// field that is wrong. Every label must index class_names. When class_names is empty, the
// classes are named "0" up to the largest label.
absl::StatusOr<Dataset> ReadIdx(const std::string& images_path, const std::string& labels_path,
                                std::vector<std::string> class_names);

// WriteIdx writes grayscale images and labels as IDX files; the inverse of ReadIdx. All images
// must be 1-channel and the same size, and labels must fit in a byte.
absl::Status WriteIdx(const Dataset& dataset, const std::string& images_path,
                      const std::string& labels_path);

// CifarKind selects the record layout of a CIFAR binary batch.
enum class CifarKind {
  kCifar10,   // 1 label byte, then 3072 pixel bytes.
  kCifar100,  // 1 coarse label byte, 1 fine label byte, then 3072 pixel bytes; the fine label is used.
};

// ReadCifarBatches reads CIFAR-10 or CIFAR-100 binary batch files (32x32 RGB, planar
// channels) and concatenates them in order. Each file must contain a whole number of records.
// CIFAR-10 classes get their standard names. CIFAR-100 classes are named from
// fine_label_names.txt in the folder of the first file when it exists, else "0" to "99".
absl::StatusOr<Dataset> ReadCifarBatches(const std::vector<std::string>& paths, CifarKind kind);

// ReadImageFolder reads a folder with one sub-folder per class, each holding PNG or JPEG
// files. Classes are the sub-folder names in sorted order; files are read in sorted order.
// Only .png, .jpg and .jpeg files (in any letter case) are read, and hidden entries are
// skipped. A root with no class, a class with no image and a file that does not decode are
// errors naming the folder or file.
absl::StatusOr<Dataset> ReadImageFolder(const std::string& root);

// ReadNamedDataset reads a named dataset from data_dir:
//   "fashion-mnist" and "mnist": IDX files written by scripts/fetch-data,
//   "cifar10" and "cifar100": the binary batches under data_dir/cifar-10-batches-bin or
//   data_dir/cifar-100-binary,
//   "folder:PATH": an image folder with "train" and "test" sub-folders.
// split is "train" or "test". Both splits of an image folder must have the same class
// sub-folders, so a label means the same class in each.
absl::StatusOr<Dataset> ReadNamedDataset(const std::string& name, const std::string& data_dir,
                                         const std::string& split);

}  // namespace nearnd
