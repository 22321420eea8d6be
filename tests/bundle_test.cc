#include "core/bundle/bundle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace nearnd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// SHA-256 test vectors from FIPS 180-2, appendix B.1, and of the empty message.
constexpr char kSha256OfAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kSha256OfEmpty[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

void WriteFile(const fs::path& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  ASSERT_TRUE(out.good()) << "failed to write " << path;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// BundleTest gives each test an empty scratch directory with two source files, and a manifest
// that refers to them by their bundle names.
class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "bundle_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    scratch_ = pattern;

    WriteFile(scratch_ / "weights.src", "abc");
    WriteFile(scratch_ / "index.src", std::string(1000, 'x'));
    sources_ = {{"backbone.safetensors", (scratch_ / "weights.src").string()},
                {"index.faiss", (scratch_ / "index.src").string()}};

    VitConfig vit;
    vit.name = "vit-test";
    vit.image_size = 8;
    vit.dim = 16;
    manifest_.set_model_name("digits-class-3");
    manifest_.set_model_version("4");
    *manifest_.mutable_backbone() = BackboneFromConfig(vit);
    manifest_.mutable_backbone()->set_weights_file("backbone.safetensors");
    *manifest_.mutable_preprocessing() = PreprocessingFromConfig(PreprocessConfig{});
    manifest_.set_embedding_dim(16);
    manifest_.set_metric("l2");
    manifest_.set_k(2);
    manifest_.set_index_type("Flat");
    manifest_.set_index_file("index.faiss");
    manifest_.mutable_threshold()->set_value(1.25f);
    manifest_.mutable_provenance()->set_created("2024-01-02T03:04:05Z");

    bundle_ = scratch_ / "bundle";
  }

  void TearDown() override { fs::remove_all(scratch_); }

  // WriteGoodBundle writes the fixture's bundle and fails the test if writing fails.
  void WriteGoodBundle() {
    const absl::Status status = WriteBundle(manifest_, sources_, bundle_.string());
    ASSERT_TRUE(status.ok()) << status;
  }

  fs::path scratch_;
  fs::path bundle_;
  std::map<std::string, std::string> sources_;
  nearnd::v1::Manifest manifest_;
};

TEST_F(BundleTest, RoundTripKeepsManifest) {
  WriteGoodBundle();

  absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->format_version(), kBundleFormatVersion);
  EXPECT_EQ(read->model_name(), "digits-class-3");
  EXPECT_EQ(read->model_version(), "4");
  EXPECT_EQ(read->backbone().weights_file(), "backbone.safetensors");
  EXPECT_EQ(read->index_file(), "index.faiss");
  EXPECT_EQ(read->k(), 2u);
  EXPECT_FLOAT_EQ(read->threshold().value(), 1.25f);
  EXPECT_EQ(read->provenance().created(), "2024-01-02T03:04:05Z");

  const VitConfig vit = VitConfigFromBackbone(read->backbone());
  EXPECT_EQ(vit.name, "vit-test");
  EXPECT_EQ(vit.image_size, 8);
  EXPECT_EQ(vit.dim, 16);
  EXPECT_EQ(vit.layer_norm_eps, 1e-6);

  const PreprocessConfig preprocess = PreprocessConfigFromPreprocessing(read->preprocessing());
  EXPECT_EQ(preprocess.resize_size, PreprocessConfig{}.resize_size);
  EXPECT_EQ(preprocess.mean, PreprocessConfig{}.mean);
  EXPECT_EQ(preprocess.std, PreprocessConfig{}.std);
}

TEST_F(BundleTest, RoundTripRecordsChecksums) {
  WriteGoodBundle();

  absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->files_size(), 2);
  EXPECT_EQ(read->files(0).path(), "backbone.safetensors");
  EXPECT_EQ(read->files(0).sha256(), kSha256OfAbc);
  EXPECT_EQ(read->files(0).size_bytes(), 3u);
  EXPECT_EQ(read->files(1).path(), "index.faiss");
  EXPECT_EQ(read->files(1).sha256(), Sha256Hex(std::string(1000, 'x')));
  EXPECT_EQ(read->files(1).size_bytes(), 1000u);
  EXPECT_EQ(ReadFile(bundle_ / "backbone.safetensors"), "abc");
}

TEST_F(BundleTest, ManifestIsReadableJson) {
  WriteGoodBundle();

  const std::string json = ReadFile(bundle_ / kManifestFileName);
  EXPECT_THAT(json, HasSubstr("\"format_version\": 2"));
  EXPECT_THAT(json, HasSubstr("\"model_name\": \"digits-class-3\""));
  // Fields at their default value are written too, so the file documents every setting.
  EXPECT_THAT(json, HasSubstr("\"generator_step\": 0"));
}

TEST_F(BundleTest, WriteLeavesNoTemporaryDirectory) {
  WriteGoodBundle();

  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(scratch_)) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("bundle", "weights.src", "index.src"));
}

TEST_F(BundleTest, WriteIntoExistingDirectoryFails) {
  fs::create_directory(bundle_);
  WriteFile(bundle_ / "keep.txt", "old");

  const absl::Status status = WriteBundle(manifest_, sources_, bundle_.string());
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(status.message(), HasSubstr(bundle_.string()));
  EXPECT_EQ(ReadFile(bundle_ / "keep.txt"), "old");
  EXPECT_FALSE(fs::exists(bundle_ / kManifestFileName));
}

TEST_F(BundleTest, WriteWithMissingSourceFailsCleanly) {
  sources_["extra.bin"] = (scratch_ / "absent.bin").string();

  const absl::Status status = WriteBundle(manifest_, sources_, bundle_.string());
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(status.message(), HasSubstr("absent.bin"));
  EXPECT_FALSE(fs::exists(bundle_));

  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(scratch_)) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("weights.src", "index.src"));
}

TEST_F(BundleTest, WriteRejectsNameOutsideBundle) {
  sources_["../escape.bin"] = (scratch_ / "weights.src").string();

  const absl::Status status = WriteBundle(manifest_, sources_, bundle_.string());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("../escape.bin"));
  EXPECT_FALSE(fs::exists(bundle_));
  EXPECT_FALSE(fs::exists(scratch_ / "escape.bin"));
}

TEST_F(BundleTest, MissingDirectoryIsNotFound) {
  const absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr(bundle_.string()));
}

TEST_F(BundleTest, MissingFileIsNotFound) {
  WriteGoodBundle();
  fs::remove(bundle_ / "index.faiss");

  const absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr("index.faiss"));
  EXPECT_THAT(read.status().message(), HasSubstr(bundle_.string()));
  EXPECT_THAT(read.status().message(), HasSubstr("nearnd bundle"));
}

TEST_F(BundleTest, ChangedByteIsDataLoss) {
  WriteGoodBundle();
  WriteFile(bundle_ / "backbone.safetensors", "abd");

  const absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr("backbone.safetensors"));
  EXPECT_THAT(read.status().message(), HasSubstr("SHA-256"));
}

TEST_F(BundleTest, SizeMismatchIsDataLoss) {
  WriteGoodBundle();
  WriteFile(bundle_ / "index.faiss", std::string(1001, 'x'));

  const absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr("index.faiss"));
  EXPECT_THAT(read.status().message(), HasSubstr("1001 bytes"));
}

TEST_F(BundleTest, MissingManifestIsNotFound) {
  WriteGoodBundle();
  fs::remove(bundle_ / kManifestFileName);

  const absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr(kManifestFileName));
  EXPECT_THAT(read.status().message(), HasSubstr(bundle_.string()));
}

TEST_F(BundleTest, GarbledManifestIsInvalidArgument) {
  WriteGoodBundle();
  WriteFile(bundle_ / kManifestFileName, "{\"format_version\": 1, \"model_name\": ");

  const absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr(kManifestFileName));
}

TEST_F(BundleTest, UnknownManifestFieldIsInvalidArgument) {
  WriteGoodBundle();
  std::string json = ReadFile(bundle_ / kManifestFileName);
  json.insert(json.find('{') + 1, "\"colour\": \"blue\",");
  WriteFile(bundle_ / kManifestFileName, json);

  const absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr("colour"));
}

TEST_F(BundleTest, VersionOneBundleIsAccepted) {
  WriteGoodBundle();
  std::string json = ReadFile(bundle_ / kManifestFileName);
  const std::string version_field = "\"format_version\": 2";
  const size_t position = json.find(version_field);
  ASSERT_NE(position, std::string::npos) << json;
  json.replace(position, version_field.size(), "\"format_version\": 1");
  WriteFile(bundle_ / kManifestFileName, json);

  const absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->format_version(), 1u);
}

TEST_F(BundleTest, UnlistedModuleFileIsInvalidArgument) {
  manifest_.mutable_backbone()->set_architecture("torchscript");
  manifest_.mutable_backbone()->set_module_file("backbone.pt");
  WriteGoodBundle();

  const absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr("module file \"backbone.pt\" but lists no checksum"));
}

TEST_F(BundleTest, WrongFormatVersionIsInvalidArgument) {
  WriteGoodBundle();
  std::string json = ReadFile(bundle_ / kManifestFileName);
  const std::string version_field = "\"format_version\": 2";
  const size_t position = json.find(version_field);
  ASSERT_NE(position, std::string::npos) << json;
  json.replace(position, version_field.size(), "\"format_version\": 99");
  WriteFile(bundle_ / kManifestFileName, json);

  const absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr("format version 99"));
  EXPECT_THAT(read.status().message(), HasSubstr(kManifestFileName));
}

TEST_F(BundleTest, UnlistedWeightsFileIsInvalidArgument) {
  manifest_.mutable_backbone()->set_weights_file("other.safetensors");
  WriteGoodBundle();

  const absl::StatusOr<nearnd::v1::Manifest> read = ReadBundle(bundle_.string());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr("other.safetensors"));
}

TEST(BundleSha256, KnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"), kSha256OfAbc);
  EXPECT_EQ(Sha256Hex(""), kSha256OfEmpty);
}

TEST(BundleSha256, FileMatchesBytes) {
  const fs::path path =
      fs::path(::testing::TempDir()) / ("sha256_test_" + std::to_string(getpid()) + ".bin");
  // Larger than one read chunk of Sha256File, so the streaming path is exercised.
  std::string contents(3 * (1 << 20) + 17, '\0');
  for (size_t i = 0; i < contents.size(); ++i) contents[i] = static_cast<char>(i * 31 % 251);
  WriteFile(path, contents);

  const absl::StatusOr<std::string> from_file = Sha256File(path.string());
  fs::remove(path);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ(*from_file, Sha256Hex(contents));
}

TEST(BundleSha256, MissingFileIsNotFound) {
  const absl::StatusOr<std::string> digest = Sha256File("/nonexistent/nearnd/file.bin");
  EXPECT_EQ(digest.status().code(), absl::StatusCode::kNotFound) << digest.status();
  EXPECT_THAT(digest.status().message(), HasSubstr("/nonexistent/nearnd/file.bin"));
}

}  // namespace
}  // namespace nearnd
