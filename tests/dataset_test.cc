#include "core/data/dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/data/image.h"

namespace nearnd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string MakeTempDir() {
  static int counter = 0;
  const std::string path = testing::TempDir() + "dataset_test_" + std::to_string(getpid()) + "_" +
                           std::to_string(counter++);
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  return path;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream file(path, std::ios::binary);
  file << bytes;
  ASSERT_TRUE(file.good()) << path;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

Image MakeGrayImage(int height, int width, uint8_t first) {
  Image image{height, width, 1, {}};
  for (int i = 0; i < height * width; ++i) image.pixels.push_back(static_cast<uint8_t>(first + i));
  return image;
}

// MakeIdxDataset returns three 4x3 grayscale images labelled 2, 0 and 1.
Dataset MakeIdxDataset() {
  Dataset dataset;
  dataset.images = {MakeGrayImage(4, 3, 0), MakeGrayImage(4, 3, 100), MakeGrayImage(4, 3, 200)};
  dataset.labels = {2, 0, 1};
  return dataset;
}

// CifarRecord returns one record whose red, green and blue planes are constant.
std::string CifarRecord(std::vector<uint8_t> label_bytes, uint8_t red, uint8_t green,
                        uint8_t blue) {
  std::string record(label_bytes.begin(), label_bytes.end());
  record.append(1024, static_cast<char>(red));
  record.append(1024, static_cast<char>(green));
  record.append(1024, static_cast<char>(blue));
  return record;
}

void WriteImageFile(const std::string& path, const Image& image, bool jpeg) {
  absl::StatusOr<std::string> bytes = jpeg ? EncodeJpeg(image, 90) : EncodePng(image);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  WriteBytes(path, *bytes);
}

// ---------------------------------------------------------------------------------------
// IDX

TEST(Idx, RoundTrip) {
  const std::string dir = MakeTempDir();
  const Dataset dataset = MakeIdxDataset();
  ASSERT_TRUE(WriteIdx(dataset, dir + "/images", dir + "/labels").ok());

  absl::StatusOr<Dataset> read = ReadIdx(dir + "/images", dir + "/labels", {"a", "b", "c"});
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->images.size(), 3u);
  EXPECT_EQ(read->labels, dataset.labels);
  EXPECT_THAT(read->class_names, ElementsAre("a", "b", "c"));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(read->images[i].height, 4);
    EXPECT_EQ(read->images[i].width, 3);
    EXPECT_EQ(read->images[i].channels, 1);
    EXPECT_EQ(read->images[i].pixels, dataset.images[i].pixels);
  }
}

TEST(Idx, HeaderIsBigEndian) {
  const std::string dir = MakeTempDir();
  ASSERT_TRUE(WriteIdx(MakeIdxDataset(), dir + "/images", dir + "/labels").ok());

  const std::string images = ReadBytes(dir + "/images");
  ASSERT_EQ(images.size(), 16u + 3 * 12);
  EXPECT_EQ(images.substr(0, 16), std::string("\0\0\x08\x03\0\0\0\x03\0\0\0\x04\0\0\0\x03", 16));
  const std::string labels = ReadBytes(dir + "/labels");
  EXPECT_EQ(labels, std::string("\0\0\x08\x01\0\0\0\x03\x02\x00\x01", 11));
}

TEST(Idx, EmptyClassNamesAreNumbered) {
  const std::string dir = MakeTempDir();
  ASSERT_TRUE(WriteIdx(MakeIdxDataset(), dir + "/images", dir + "/labels").ok());

  absl::StatusOr<Dataset> read = ReadIdx(dir + "/images", dir + "/labels", {});
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(read->class_names, ElementsAre("0", "1", "2"));
}

TEST(Idx, RejectsBadMagic) {
  const std::string dir = MakeTempDir();
  ASSERT_TRUE(WriteIdx(MakeIdxDataset(), dir + "/images", dir + "/labels").ok());
  std::string images = ReadBytes(dir + "/images");
  images[3] = 0x01;
  WriteBytes(dir + "/images", images);

  absl::StatusOr<Dataset> read = ReadIdx(dir + "/images", dir + "/labels", {"a", "b", "c"});
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr(dir + "/images: magic is 0x00000801"));
}

TEST(Idx, RejectsTruncatedFile) {
  const std::string dir = MakeTempDir();
  ASSERT_TRUE(WriteIdx(MakeIdxDataset(), dir + "/images", dir + "/labels").ok());
  const std::string images = ReadBytes(dir + "/images");
  WriteBytes(dir + "/images", images.substr(0, images.size() - 5));

  absl::StatusOr<Dataset> read = ReadIdx(dir + "/images", dir + "/labels", {"a", "b", "c"});
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(),
              HasSubstr(dir + "/images: size is 47 bytes, expected 52 for 3 images of 4x3 "
                              "(rows x columns)"));
}

TEST(Idx, RejectsLabelCountMismatch) {
  const std::string dir = MakeTempDir();
  Dataset two = MakeIdxDataset();
  two.images.pop_back();
  two.labels.pop_back();
  ASSERT_TRUE(WriteIdx(MakeIdxDataset(), dir + "/images", dir + "/unused").ok());
  ASSERT_TRUE(WriteIdx(two, dir + "/unused", dir + "/labels").ok());

  absl::StatusOr<Dataset> read = ReadIdx(dir + "/images", dir + "/labels", {"a", "b", "c"});
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(),
              HasSubstr(dir + "/labels has 2 labels but image file " + dir + "/images has 3"));
}

TEST(Idx, RejectsLabelOutsideClasses) {
  const std::string dir = MakeTempDir();
  ASSERT_TRUE(WriteIdx(MakeIdxDataset(), dir + "/images", dir + "/labels").ok());

  absl::StatusOr<Dataset> read = ReadIdx(dir + "/images", dir + "/labels", {"a", "b"});
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("label 2 of image 0 is outside the 2 classes"));
}

TEST(Idx, MissingFileIsNotFound) {
  const std::string dir = MakeTempDir();
  absl::StatusOr<Dataset> read = ReadIdx(dir + "/images", dir + "/labels", {});
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr(dir + "/images"));
}

TEST(Idx, WriteRejectsColorImage) {
  const std::string dir = MakeTempDir();
  Dataset dataset = MakeIdxDataset();
  dataset.images[1] = Image{4, 3, 3, std::vector<uint8_t>(36, 0)};

  const absl::Status status = WriteIdx(dataset, dir + "/images", dir + "/labels");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("image 1 is 4x3 (height x width) with 3 channels"));
}

// ---------------------------------------------------------------------------------------
// CIFAR

TEST(Cifar, ReadsCifar10Records) {
  const std::string dir = MakeTempDir();
  WriteBytes(dir + "/a.bin", CifarRecord({3}, 10, 20, 30) + CifarRecord({9}, 1, 2, 3));
  WriteBytes(dir + "/b.bin", CifarRecord({0}, 255, 0, 128));

  absl::StatusOr<Dataset> read =
      ReadCifarBatches({dir + "/a.bin", dir + "/b.bin"}, CifarKind::kCifar10);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->labels, (std::vector<int>{3, 9, 0}));
  ASSERT_EQ(read->class_names.size(), 10u);
  EXPECT_EQ(read->class_names[0], "airplane");
  EXPECT_EQ(read->class_names[3], "cat");
  EXPECT_EQ(read->class_names[9], "truck");

  ASSERT_EQ(read->images.size(), 3u);
  const Image& first = read->images[0];
  EXPECT_EQ(first.height, 32);
  EXPECT_EQ(first.width, 32);
  EXPECT_EQ(first.channels, 3);
  ASSERT_EQ(first.pixels.size(), 3072u);
  EXPECT_THAT(std::vector<uint8_t>(first.pixels.begin(), first.pixels.begin() + 6),
              ElementsAre(10, 20, 30, 10, 20, 30));
  EXPECT_THAT(std::vector<uint8_t>(read->images[2].pixels.end() - 3, read->images[2].pixels.end()),
              ElementsAre(255, 0, 128));
}

TEST(Cifar, PlanesBecomeInterleavedPixels) {
  const std::string dir = MakeTempDir();
  std::string record(1, '\x01');
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 1024; ++i) record.push_back(static_cast<char>((i + 50 * c) % 256));
  }
  WriteBytes(dir + "/batch.bin", record);

  absl::StatusOr<Dataset> read = ReadCifarBatches({dir + "/batch.bin"}, CifarKind::kCifar10);
  ASSERT_TRUE(read.ok()) << read.status();
  // Pixel 33 is row 1, column 1.
  const std::vector<uint8_t>& pixels = read->images[0].pixels;
  EXPECT_THAT(std::vector<uint8_t>(pixels.begin() + 3 * 33, pixels.begin() + 3 * 34),
              ElementsAre(33, 83, 133));
}

TEST(Cifar, ReadsCifar100FineLabels) {
  const std::string dir = MakeTempDir();
  WriteBytes(dir + "/train.bin", CifarRecord({4, 72}, 0, 0, 0) + CifarRecord({19, 99}, 9, 9, 9));

  absl::StatusOr<Dataset> read = ReadCifarBatches({dir + "/train.bin"}, CifarKind::kCifar100);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->labels, (std::vector<int>{72, 99}));
  ASSERT_EQ(read->class_names.size(), 100u);
  EXPECT_EQ(read->class_names[0], "0");
  EXPECT_EQ(read->class_names[99], "99");
  EXPECT_EQ(read->images[1].pixels[0], 9);
}

TEST(Cifar, ReadsCifar100ClassNameFile) {
  const std::string dir = MakeTempDir();
  WriteBytes(dir + "/test.bin", CifarRecord({0, 1}, 0, 0, 0));
  std::string names;
  for (int i = 0; i < 100; ++i) names += "class_" + std::to_string(i) + "\n";
  WriteBytes(dir + "/fine_label_names.txt", names + "\n");

  absl::StatusOr<Dataset> read = ReadCifarBatches({dir + "/test.bin"}, CifarKind::kCifar100);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->class_names.size(), 100u);
  EXPECT_EQ(read->class_names[1], "class_1");
  EXPECT_EQ(read->class_names[99], "class_99");
}

TEST(Cifar, RejectsShortClassNameFile) {
  const std::string dir = MakeTempDir();
  WriteBytes(dir + "/test.bin", CifarRecord({0, 1}, 0, 0, 0));
  WriteBytes(dir + "/fine_label_names.txt", "apple\nbanana\n");

  absl::StatusOr<Dataset> read = ReadCifarBatches({dir + "/test.bin"}, CifarKind::kCifar100);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("fine_label_names.txt has 2 names, expected 100"));
}

TEST(Cifar, RejectsWrongSize) {
  const std::string dir = MakeTempDir();
  WriteBytes(dir + "/batch.bin", CifarRecord({1}, 0, 0, 0) + "extra");

  absl::StatusOr<Dataset> read = ReadCifarBatches({dir + "/batch.bin"}, CifarKind::kCifar10);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(),
              HasSubstr(dir + "/batch.bin: size is 3078 bytes, not a positive multiple of the "
                              "3073-byte CIFAR-10 record"));

  // A CIFAR-10 record is one byte short of a CIFAR-100 record.
  read = ReadCifarBatches({dir + "/batch.bin"}, CifarKind::kCifar100);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("3074-byte CIFAR-100 record"));
}

TEST(Cifar, RejectsLabelOutOfRange) {
  const std::string dir = MakeTempDir();
  WriteBytes(dir + "/batch.bin", CifarRecord({1}, 0, 0, 0) + CifarRecord({10}, 0, 0, 0));

  absl::StatusOr<Dataset> read = ReadCifarBatches({dir + "/batch.bin"}, CifarKind::kCifar10);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("record 1 has label 10, expected 0..9"));
}

// ---------------------------------------------------------------------------------------
// Image folders

TEST(ImageFolder, ReadsSortedClassesAndFiles) {
  const std::string dir = MakeTempDir();
  const Image dark = MakeGrayImage(8, 8, 0);
  const Image bright{8, 8, 3, std::vector<uint8_t>(192, 200)};
  WriteImageFile(dir + "/dog/b.jpg", bright, /*jpeg=*/true);
  WriteImageFile(dir + "/dog/a.PNG", dark, /*jpeg=*/false);
  WriteImageFile(dir + "/cat/z.png", bright, /*jpeg=*/false);
  WriteImageFile(dir + "/cat/y.jpeg", dark, /*jpeg=*/true);
  WriteBytes(dir + "/cat/notes.txt", "not an image");
  WriteBytes(dir + "/cat/.hidden.png", "hidden files are skipped");

  absl::StatusOr<Dataset> read = ReadImageFolder(dir);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(read->class_names, ElementsAre("cat", "dog"));
  EXPECT_EQ(read->labels, (std::vector<int>{0, 0, 1, 1}));
  ASSERT_EQ(read->images.size(), 4u);

  // Sorted order: cat/y.jpeg, cat/z.png, dog/a.PNG, dog/b.jpg.
  EXPECT_EQ(read->images[0].channels, 1);
  EXPECT_EQ(read->images[1].channels, 3);
  EXPECT_EQ(read->images[1].pixels, bright.pixels);
  EXPECT_EQ(read->images[2].pixels, dark.pixels);
  EXPECT_EQ(read->images[3].channels, 3);
  EXPECT_NEAR(read->images[3].pixels[0], 200, 3);
}

TEST(ImageFolder, RejectsCorruptFileNamingIt) {
  const std::string dir = MakeTempDir();
  WriteImageFile(dir + "/a/good.png", MakeGrayImage(4, 4, 0), /*jpeg=*/false);
  WriteBytes(dir + "/a/broken.png", std::string("\x89PNG\r\n\x1a\n", 8) + "garbage");

  absl::StatusOr<Dataset> read = ReadImageFolder(dir);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr(dir + "/a/broken.png: PNG data is"));
}

TEST(ImageFolder, RejectsEmptyRoot) {
  const std::string dir = MakeTempDir();
  absl::StatusOr<Dataset> read = ReadImageFolder(dir);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr(dir + " has no class sub-folders"));
}

TEST(ImageFolder, RejectsEmptyClassFolder) {
  const std::string dir = MakeTempDir();
  WriteImageFile(dir + "/a/good.png", MakeGrayImage(4, 4, 0), /*jpeg=*/false);
  std::filesystem::create_directories(dir + "/b");

  absl::StatusOr<Dataset> read = ReadImageFolder(dir);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr(dir + "/b has no .png, .jpg or .jpeg files"));
}

TEST(ImageFolder, MissingRootIsNotFound) {
  const std::string dir = MakeTempDir() + "/missing";
  absl::StatusOr<Dataset> read = ReadImageFolder(dir);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr(dir));
}

// ---------------------------------------------------------------------------------------
// Dataset and named datasets

TEST(Dataset, ImagesOfClassKeepsOrder) {
  Dataset dataset;
  dataset.images = {MakeGrayImage(1, 1, 1), MakeGrayImage(1, 1, 2), MakeGrayImage(1, 1, 3)};
  dataset.labels = {1, 0, 1};

  const std::vector<Image> selected = dataset.ImagesOfClass(1);
  ASSERT_EQ(selected.size(), 2u);
  EXPECT_EQ(selected[0].pixels[0], 1);
  EXPECT_EQ(selected[1].pixels[0], 3);
  EXPECT_TRUE(dataset.ImagesOfClass(5).empty());
}

TEST(Dataset, NamedFashionMnistReadsTestSplit) {
  const std::string dir = MakeTempDir();
  std::filesystem::create_directories(dir + "/fashion-mnist");
  ASSERT_TRUE(WriteIdx(MakeIdxDataset(), dir + "/fashion-mnist/t10k-images-idx3-ubyte",
                       dir + "/fashion-mnist/t10k-labels-idx1-ubyte")
                  .ok());

  absl::StatusOr<Dataset> read = ReadNamedDataset("fashion-mnist", dir, "test");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->images.size(), 3u);
  ASSERT_EQ(read->class_names.size(), 10u);
  EXPECT_EQ(read->class_names[0], "T-shirt/top");
  EXPECT_EQ(read->class_names[9], "Ankle boot");
}

TEST(Dataset, NamedMissingFileSaysFetchData) {
  const std::string dir = MakeTempDir();
  absl::StatusOr<Dataset> read = ReadNamedDataset("mnist", dir, "train");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr(dir + "/mnist/train-images-idx3-ubyte"));
  EXPECT_THAT(read.status().message(), HasSubstr("run scripts/fetch-data"));
}

TEST(Dataset, NamedCifarMissingFileSaysWhere) {
  const std::string dir = MakeTempDir();
  absl::StatusOr<Dataset> read = ReadNamedDataset("cifar10", dir, "test");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr(dir + "/cifar-10-batches-bin/test_batch.bin"));
}

TEST(Dataset, NamedCifar100ReadsBatch) {
  const std::string dir = MakeTempDir();
  WriteBytes(dir + "/cifar-100-binary/train.bin", CifarRecord({2, 41}, 1, 1, 1));

  absl::StatusOr<Dataset> read = ReadNamedDataset("cifar100", dir, "train");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->labels, (std::vector<int>{41}));
}

TEST(Dataset, NamedFolderReadsSplit) {
  const std::string dir = MakeTempDir();
  WriteImageFile(dir + "/parts/train/ok/1.png", MakeGrayImage(4, 4, 0), /*jpeg=*/false);
  WriteImageFile(dir + "/parts/test/ok/1.png", MakeGrayImage(4, 4, 9), /*jpeg=*/false);

  absl::StatusOr<Dataset> read = ReadNamedDataset("folder:" + dir + "/parts", "unused", "test");
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->images.size(), 1u);
  EXPECT_EQ(read->images[0].pixels[0], 9);
  EXPECT_THAT(read->class_names, ElementsAre("ok"));
}

TEST(Dataset, NamedFolderRejectsDifferentClasses) {
  const std::string dir = MakeTempDir();
  WriteImageFile(dir + "/train/a/1.png", MakeGrayImage(4, 4, 0), /*jpeg=*/false);
  WriteImageFile(dir + "/train/b/1.png", MakeGrayImage(4, 4, 0), /*jpeg=*/false);
  WriteImageFile(dir + "/test/b/1.png", MakeGrayImage(4, 4, 0), /*jpeg=*/false);

  absl::StatusOr<Dataset> read = ReadNamedDataset("folder:" + dir, "unused", "test");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("has classes [b] but"));
}

TEST(Dataset, NamedRejectsUnknownNameAndSplit) {
  absl::StatusOr<Dataset> read = ReadNamedDataset("imagenet", "/tmp", "train");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("unknown dataset \"imagenet\""));

  read = ReadNamedDataset("mnist", "/tmp", "validation");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("split is \"validation\""));
}

}  // namespace
}  // namespace nearnd
