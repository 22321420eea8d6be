#include "core/data/dataset.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/status_macros.h"

namespace nearnd {
namespace {

namespace fs = std::filesystem;

// IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte) and the number
// of dimensions.
constexpr uint32_t kIdxImagesMagic = 0x00000803;
constexpr uint32_t kIdxLabelsMagic = 0x00000801;
constexpr size_t kIdxImagesHeaderSize = 16;
constexpr size_t kIdxLabelsHeaderSize = 8;

constexpr int kCifarSide = 32;
constexpr size_t kCifarPixelBytes = 3 * kCifarSide * kCifarSide;
constexpr int kCifar10Classes = 10;
constexpr int kCifar100Classes = 100;
constexpr int kCifar100CoarseClasses = 20;

const char* const kCifar10Names[kCifar10Classes] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

const char* const kFashionMnistNames[] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                          "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                          "Bag",         "Ankle boot"};

std::vector<std::string> NumberedNames(int count) {
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) names.push_back(absl::StrCat(i));
  return names;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view kind) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(
        absl::StrFormat("cannot open %s %s: %s", kind, path, std::strerror(errno)));
  }
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) return absl::DataLossError(absl::StrFormat("reading %s %s failed", kind, path));
  return bytes;
}

uint32_t ReadBigEndian32(absl::string_view bytes, size_t offset) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[offset + i]);
  }
  return value;
}

void AppendBigEndian32(uint32_t value, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

absl::Status WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) {
    return absl::NotFoundError(absl::StrFormat("cannot create %s: %s", path, std::strerror(errno)));
  }
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  if (!file) {
    return absl::DataLossError(
        absl::StrFormat("writing %s failed: %s", path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// IDX

// ParseIdxImages checks the image file header and size and splits it into images.
absl::StatusOr<std::vector<Image>> ParseIdxImages(absl::string_view bytes,
                                                  const std::string& path) {
  if (bytes.size() < kIdxImagesHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("IDX image file %s is %d bytes, shorter than its %d-byte header", path,
                        bytes.size(), kIdxImagesHeaderSize));
  }
  const uint32_t magic = ReadBigEndian32(bytes, 0);
  if (magic != kIdxImagesMagic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IDX image file %s: magic is 0x%08x, expected 0x%08x (unsigned bytes, 3 dimensions)", path,
        magic, kIdxImagesMagic));
  }
  const uint32_t count = ReadBigEndian32(bytes, 4);
  const uint32_t rows = ReadBigEndian32(bytes, 8);
  const uint32_t cols = ReadBigEndian32(bytes, 12);
  if (rows == 0 || cols == 0 || rows > kMaxImageSide || cols > kMaxImageSide) {
    return absl::InvalidArgumentError(
        absl::StrFormat("IDX image file %s: image size is %dx%d (rows x columns); each side must "
                        "be between 1 and %d",
                        path, rows, cols, kMaxImageSide));
  }

  const uint64_t image_bytes = static_cast<uint64_t>(rows) * cols;
  const uint64_t expected = kIdxImagesHeaderSize + count * image_bytes;
  if (bytes.size() != expected) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IDX image file %s: size is %d bytes, expected %d for %d images of %dx%d (rows x columns); "
        "the file is "
        "truncated or corrupt, so fetch it again",
        path, bytes.size(), expected, count, rows, cols));
  }

  std::vector<Image> images(count);
  for (uint32_t i = 0; i < count; ++i) {
    const char* begin = bytes.data() + kIdxImagesHeaderSize + i * image_bytes;
    images[i].height = static_cast<int>(rows);
    images[i].width = static_cast<int>(cols);
    images[i].channels = 1;
    images[i].pixels.assign(begin, begin + image_bytes);
  }
  return images;
}

// ParseIdxLabels checks the label file header and size and returns the labels.
absl::StatusOr<std::vector<int>> ParseIdxLabels(absl::string_view bytes, const std::string& path) {
  if (bytes.size() < kIdxLabelsHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("IDX label file %s is %d bytes, shorter than its %d-byte header", path,
                        bytes.size(), kIdxLabelsHeaderSize));
  }
  const uint32_t magic = ReadBigEndian32(bytes, 0);
  if (magic != kIdxLabelsMagic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IDX label file %s: magic is 0x%08x, expected 0x%08x (unsigned bytes, 1 dimension)", path,
        magic, kIdxLabelsMagic));
  }
  const uint32_t count = ReadBigEndian32(bytes, 4);
  const uint64_t expected = kIdxLabelsHeaderSize + static_cast<uint64_t>(count);
  if (bytes.size() != expected) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IDX label file %s: size is %d bytes, expected %d for %d labels; the file is truncated "
        "or corrupt, so fetch it again",
        path, bytes.size(), expected, count));
  }

  std::vector<int> labels(count);
  for (uint32_t i = 0; i < count; ++i) {
    labels[i] = static_cast<unsigned char>(bytes[kIdxLabelsHeaderSize + i]);
  }
  return labels;
}

// ---------------------------------------------------------------------------------------
// CIFAR

size_t CifarRecordSize(CifarKind kind) {
  return (kind == CifarKind::kCifar10 ? 1 : 2) + kCifarPixelBytes;
}

// ReadCifarFile appends the records of one batch file to `dataset`.
absl::Status ReadCifarFile(const std::string& path, CifarKind kind, Dataset* dataset) {
  NEARND_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(path, "CIFAR batch file"));

  const size_t record_size = CifarRecordSize(kind);
  if (bytes.empty() || bytes.size() % record_size != 0) {
    const char* format_name = kind == CifarKind::kCifar10 ? "CIFAR-10" : "CIFAR-100";
    return absl::InvalidArgumentError(absl::StrFormat(
        "CIFAR batch file %s: size is %d bytes, not a positive multiple of the %d-byte %s "
        "record; check that it is a complete %s binary batch",
        path, bytes.size(), record_size, format_name, format_name));
  }

  const size_t plane = kCifarSide * kCifarSide;
  for (size_t offset = 0; offset < bytes.size(); offset += record_size) {
    const size_t record = offset / record_size;
    const auto* data = reinterpret_cast<const unsigned char*>(bytes.data() + offset);

    int label = data[0];
    if (kind == CifarKind::kCifar100) {
      if (data[0] >= kCifar100CoarseClasses) {
        return absl::InvalidArgumentError(
            absl::StrFormat("CIFAR batch file %s: record %d has coarse label %d, expected 0..%d",
                            path, record, data[0], kCifar100CoarseClasses - 1));
      }
      label = data[1];
    }
    const int classes = kind == CifarKind::kCifar10 ? kCifar10Classes : kCifar100Classes;
    if (label >= classes) {
      return absl::InvalidArgumentError(
          absl::StrFormat("CIFAR batch file %s: record %d has label %d, expected 0..%d", path,
                          record, label, classes - 1));
    }

    // Records store the red plane, then green, then blue, and Image interleaves them.
    const unsigned char* planes = data + (record_size - kCifarPixelBytes);
    Image image;
    image.height = kCifarSide;
    image.width = kCifarSide;
    image.channels = 3;
    image.pixels.resize(kCifarPixelBytes);
    for (size_t i = 0; i < plane; ++i) {
      for (size_t c = 0; c < 3; ++c) image.pixels[3 * i + c] = planes[c * plane + i];
    }
    dataset->images.push_back(std::move(image));
    dataset->labels.push_back(label);
  }
  return absl::OkStatus();
}

// Cifar100ClassNames reads fine_label_names.txt beside the batch files, one name a line.
absl::StatusOr<std::vector<std::string>> Cifar100ClassNames(const std::string& batch_path) {
  const fs::path names_path = fs::path(batch_path).parent_path() / "fine_label_names.txt";
  std::error_code error;
  if (!fs::exists(names_path, error)) return NumberedNames(kCifar100Classes);

  NEARND_ASSIGN_OR_RETURN(const std::string text,
                          ReadFile(names_path.string(), "CIFAR-100 class name file"));
  std::vector<std::string> names;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) names.emplace_back(line);
  }
  if (names.size() != kCifar100Classes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CIFAR-100 class name file %s has %d names, expected %d; fix or remove it",
                        names_path.string(), names.size(), kCifar100Classes));
  }
  return names;
}

// ---------------------------------------------------------------------------------------
// Image folders

bool IsHidden(const fs::path& path) { return absl::StartsWith(path.filename().string(), "."); }

bool IsImageFile(const fs::path& path) {
  const std::string extension = absl::AsciiStrToLower(path.extension().string());
  return extension == ".png" || extension == ".jpg" || extension == ".jpeg";
}

// ListSorted returns the non-hidden entries of `folder` that pass `keep`, sorted by name.
template <typename Keep>
absl::StatusOr<std::vector<fs::path>> ListSorted(const fs::path& folder, Keep keep) {
  std::error_code error;
  fs::directory_iterator it(folder, error);
  if (error) {
    return absl::NotFoundError(
        absl::StrFormat("cannot list folder %s: %s", folder.string(), error.message()));
  }
  std::vector<fs::path> entries;
  for (const fs::directory_entry& entry : it) {
    if (!IsHidden(entry.path()) && keep(entry)) entries.push_back(entry.path());
  }
  std::sort(entries.begin(), entries.end());
  return entries;
}

absl::StatusOr<std::vector<fs::path>> ListClassFolders(const std::string& root) {
  std::error_code error;
  if (!fs::is_directory(root, error)) {
    return absl::NotFoundError(absl::StrFormat(
        "image folder %s not found or not a folder; pass a folder with one sub-folder per class",
        root));
  }
  NEARND_ASSIGN_OR_RETURN(
      std::vector<fs::path> folders,
      ListSorted(root, [](const fs::directory_entry& entry) { return entry.is_directory(); }));
  if (folders.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "image folder %s has no class sub-folders; put each class's images in its own "
        "sub-folder",
        root));
  }
  return folders;
}

std::vector<std::string> FolderNames(const std::vector<fs::path>& folders) {
  std::vector<std::string> names;
  for (const fs::path& folder : folders) names.push_back(folder.filename().string());
  return names;
}

// ---------------------------------------------------------------------------------------
// Named datasets

// RequireFile returns NotFoundError with `remedy` when `path` is not a regular file.
absl::Status RequireFile(const std::string& path, absl::string_view remedy) {
  std::error_code error;
  if (fs::is_regular_file(path, error)) return absl::OkStatus();
  return absl::NotFoundError(absl::StrFormat("data file %s not found; %s", path, remedy));
}

absl::StatusOr<Dataset> ReadMnistLike(const std::string& name, const std::string& data_dir,
                                      const std::string& split) {
  const std::string prefix = split == "train" ? "train" : "t10k";
  const fs::path folder = fs::path(data_dir) / name;
  const std::string images_path = (folder / (prefix + "-images-idx3-ubyte")).string();
  const std::string labels_path = (folder / (prefix + "-labels-idx1-ubyte")).string();
  const std::string remedy =
      absl::StrFormat("run scripts/fetch-data --data-dir %s to download %s", data_dir, name);
  NEARND_RETURN_IF_ERROR(RequireFile(images_path, remedy));
  NEARND_RETURN_IF_ERROR(RequireFile(labels_path, remedy));

  std::vector<std::string> class_names;
  if (name == "fashion-mnist") {
    class_names.assign(std::begin(kFashionMnistNames), std::end(kFashionMnistNames));
  } else {
    class_names = NumberedNames(10);
  }
  return ReadIdx(images_path, labels_path, std::move(class_names));
}

absl::StatusOr<Dataset> ReadCifarDataset(const std::string& name, const std::string& data_dir,
                                         const std::string& split) {
  const bool cifar10 = name == "cifar10";
  const fs::path folder =
      fs::path(data_dir) / (cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary");
  std::vector<std::string> paths;
  if (cifar10 && split == "train") {
    for (int i = 1; i <= 5; ++i)
      paths.push_back((folder / absl::StrCat("data_batch_", i, ".bin")).string());
  } else if (cifar10) {
    paths.push_back((folder / "test_batch.bin").string());
  } else {
    paths.push_back((folder / (split + ".bin")).string());
  }

  const std::string remedy = absl::StrFormat(
      "download the %s binary version and extract it into %s (scripts/fetch-data fetches only "
      "fashion-mnist and mnist)",
      cifar10 ? "CIFAR-10" : "CIFAR-100", data_dir);
  for (const std::string& path : paths) NEARND_RETURN_IF_ERROR(RequireFile(path, remedy));
  return ReadCifarBatches(paths, cifar10 ? CifarKind::kCifar10 : CifarKind::kCifar100);
}

absl::StatusOr<Dataset> ReadFolderDataset(const std::string& root, const std::string& split) {
  const std::string split_root = (fs::path(root) / split).string();
  NEARND_ASSIGN_OR_RETURN(Dataset dataset, ReadImageFolder(split_root));

  // Labels index the sorted class sub-folders, so both splits must have the same ones.
  const std::string other_root = (fs::path(root) / (split == "train" ? "test" : "train")).string();
  NEARND_ASSIGN_OR_RETURN(const std::vector<fs::path> other_folders, ListClassFolders(other_root));
  const std::vector<std::string> other_names = FolderNames(other_folders);
  if (other_names != dataset.class_names) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s has classes [%s] but %s has [%s]; give both splits the same class sub-folders",
        split_root, absl::StrJoin(dataset.class_names, ", "), other_root,
        absl::StrJoin(other_names, ", ")));
  }
  return dataset;
}

}  // namespace

std::vector<Image> Dataset::ImagesOfClass(int label) const {
  std::vector<Image> selected;
  for (size_t i = 0; i < images.size(); ++i) {
    if (labels[i] == label) selected.push_back(images[i]);
  }
  return selected;
}

absl::StatusOr<Dataset> ReadIdx(const std::string& images_path, const std::string& labels_path,
                                std::vector<std::string> class_names) {
  NEARND_ASSIGN_OR_RETURN(const std::string image_bytes, ReadFile(images_path, "IDX image file"));
  NEARND_ASSIGN_OR_RETURN(const std::string label_bytes, ReadFile(labels_path, "IDX label file"));

  Dataset dataset;
  NEARND_ASSIGN_OR_RETURN(dataset.images, ParseIdxImages(image_bytes, images_path));
  NEARND_ASSIGN_OR_RETURN(dataset.labels, ParseIdxLabels(label_bytes, labels_path));
  if (dataset.images.size() != dataset.labels.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IDX label file %s has %d labels but image file %s has %d images; use files from the "
        "same split",
        labels_path, dataset.labels.size(), images_path, dataset.images.size()));
  }

  if (class_names.empty()) {
    const int max_label = dataset.labels.empty()
                              ? -1
                              : *std::max_element(dataset.labels.begin(), dataset.labels.end());
    class_names = NumberedNames(max_label + 1);
  }
  for (size_t i = 0; i < dataset.labels.size(); ++i) {
    if (static_cast<size_t>(dataset.labels[i]) >= class_names.size()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("IDX label file %s: label %d of image %d is outside the %d classes",
                          labels_path, dataset.labels[i], i, class_names.size()));
    }
  }
  dataset.class_names = std::move(class_names);
  return dataset;
}

absl::Status WriteIdx(const Dataset& dataset, const std::string& images_path,
                      const std::string& labels_path) {
  if (dataset.images.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot write %s: the dataset has no images, and IDX takes the image size from them",
        images_path));
  }
  if (dataset.images.size() != dataset.labels.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot write %s: the dataset has %d images but %d labels", images_path,
                        dataset.images.size(), dataset.labels.size()));
  }

  const Image& first = dataset.images.front();
  std::string image_bytes;
  AppendBigEndian32(kIdxImagesMagic, &image_bytes);
  AppendBigEndian32(static_cast<uint32_t>(dataset.images.size()), &image_bytes);
  AppendBigEndian32(static_cast<uint32_t>(first.height), &image_bytes);
  AppendBigEndian32(static_cast<uint32_t>(first.width), &image_bytes);
  for (size_t i = 0; i < dataset.images.size(); ++i) {
    const Image& image = dataset.images[i];
    NEARND_RETURN_IF_ERROR(ValidateImage(image));
    if (image.channels != 1 || image.height != first.height || image.width != first.width) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "cannot write %s: image %d is %dx%d (height x width) with %d channels, but IDX "
          "needs every image grayscale and %dx%d like image 0",
          images_path, i, image.height, image.width, image.channels, first.height, first.width));
    }
    image_bytes.append(image.pixels.begin(), image.pixels.end());
  }

  std::string label_bytes;
  AppendBigEndian32(kIdxLabelsMagic, &label_bytes);
  AppendBigEndian32(static_cast<uint32_t>(dataset.labels.size()), &label_bytes);
  for (size_t i = 0; i < dataset.labels.size(); ++i) {
    if (dataset.labels[i] < 0 || dataset.labels[i] > 255) {
      return absl::InvalidArgumentError(
          absl::StrFormat("cannot write %s: label %d of image %d does not fit in a byte",
                          labels_path, dataset.labels[i], i));
    }
    label_bytes.push_back(static_cast<char>(dataset.labels[i]));
  }

  NEARND_RETURN_IF_ERROR(WriteFile(images_path, image_bytes));
  return WriteFile(labels_path, label_bytes);
}

absl::StatusOr<Dataset> ReadCifarBatches(const std::vector<std::string>& paths, CifarKind kind) {
  if (paths.empty()) {
    return absl::InvalidArgumentError("ReadCifarBatches needs at least one batch file");
  }

  Dataset dataset;
  for (const std::string& path : paths) NEARND_RETURN_IF_ERROR(ReadCifarFile(path, kind, &dataset));

  if (kind == CifarKind::kCifar10) {
    dataset.class_names.assign(std::begin(kCifar10Names), std::end(kCifar10Names));
  } else {
    NEARND_ASSIGN_OR_RETURN(dataset.class_names, Cifar100ClassNames(paths.front()));
  }
  return dataset;
}

absl::StatusOr<Dataset> ReadImageFolder(const std::string& root) {
  NEARND_ASSIGN_OR_RETURN(const std::vector<fs::path> class_folders, ListClassFolders(root));

  Dataset dataset;
  dataset.class_names = FolderNames(class_folders);
  for (size_t label = 0; label < class_folders.size(); ++label) {
    NEARND_ASSIGN_OR_RETURN(const std::vector<fs::path> files,
                            ListSorted(class_folders[label], [](const fs::directory_entry& entry) {
                              return entry.is_regular_file() && IsImageFile(entry.path());
                            }));
    if (files.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "class folder %s has no .png, .jpg or .jpeg files; add images or remove the folder",
          class_folders[label].string()));
    }

    for (const fs::path& file : files) {
      NEARND_ASSIGN_OR_RETURN(Image image, ReadImageFile(file.string()));
      dataset.images.push_back(std::move(image));
      dataset.labels.push_back(static_cast<int>(label));
    }
  }
  return dataset;
}

absl::StatusOr<Dataset> ReadNamedDataset(const std::string& name, const std::string& data_dir,
                                         const std::string& split) {
  if (split != "train" && split != "test") {
    return absl::InvalidArgumentError(
        absl::StrFormat("split is \"%s\"; expected \"train\" or \"test\"", split));
  }

  if (name == "fashion-mnist" || name == "mnist") return ReadMnistLike(name, data_dir, split);
  if (name == "cifar10" || name == "cifar100") return ReadCifarDataset(name, data_dir, split);
  absl::string_view folder = name;
  if (absl::ConsumePrefix(&folder, "folder:")) {
    if (folder.empty()) {
      return absl::InvalidArgumentError(
          "dataset \"folder:\" has no path; write folder:PATH, e.g. folder:/data/parts");
    }
    return ReadFolderDataset(std::string(folder), split);
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown dataset \"%s\"; expected fashion-mnist, mnist, cifar10, cifar100 or folder:PATH",
      name));
}

}  // namespace nearnd
