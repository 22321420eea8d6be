#include "core/models/checkpoint.h"

#include <unistd.h>
#include <zip.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "core/data/npy.h"
#include "core/models/safetensors.h"
#include "core/models/vit.h"

namespace nearnd {
namespace {

using ::testing::HasSubstr;

VitConfig TinyConfig(int image_size = 16) {
  VitConfig config;
  config.name = "vit-checkpoint-test";
  config.image_size = image_size;
  config.patch_size = 4;
  config.channels = 3;
  config.dim = 32;
  config.depth = 2;
  config.heads = 4;
  config.mlp_dim = 64;
  return config;
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(testing::TempDir()) / ("checkpoint_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

std::string ReadBytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

torch::Tensor Parameter(const Vit& vit, const std::string& name) { return vit->named_parameters()[name]; }

// GoogleArrays lays out a Vit's parameters as a Google (Flax) checkpoint does, the inverse of
// the mapping under test, plus a classifier head and pre-logits layer of 10 classes.
std::map<std::string, torch::Tensor> GoogleArrays(const Vit& vit) {
  const VitConfig& config = vit->config();
  const int64_t dim = config.dim;
  const int64_t heads = config.heads;
  const int64_t head_dim = dim / heads;
  torch::NoGradGuard no_grad;

  std::map<std::string, torch::Tensor> arrays;
  arrays["embedding/kernel"] = Parameter(vit, "patch_embed.proj.weight").permute({2, 3, 1, 0});
  arrays["embedding/bias"] = Parameter(vit, "patch_embed.proj.bias");
  arrays["cls"] = Parameter(vit, "cls_token");
  arrays["Transformer/posembed_input/pos_embedding"] = Parameter(vit, "pos_embed");
  arrays["Transformer/encoder_norm/scale"] = Parameter(vit, "norm.weight");
  arrays["Transformer/encoder_norm/bias"] = Parameter(vit, "norm.bias");
  for (int i = 0; i < config.depth; ++i) {
    const std::string block = absl::StrCat("Transformer/encoderblock_", i, "/");
    const std::string attention = block + "MultiHeadDotProductAttention_1/";
    const std::string timm = absl::StrCat("blocks.", i, ".");
    arrays[block + "LayerNorm_0/scale"] = Parameter(vit, timm + "norm1.weight");
    arrays[block + "LayerNorm_0/bias"] = Parameter(vit, timm + "norm1.bias");
    arrays[block + "LayerNorm_2/scale"] = Parameter(vit, timm + "norm2.weight");
    arrays[block + "LayerNorm_2/bias"] = Parameter(vit, timm + "norm2.bias");

    const std::vector<torch::Tensor> weights = Parameter(vit, timm + "attn.qkv.weight").chunk(3, 0);
    const std::vector<torch::Tensor> biases = Parameter(vit, timm + "attn.qkv.bias").chunk(3, 0);
    const char* projections[] = {"query", "key", "value"};
    for (int j = 0; j < 3; ++j) {
      arrays[attention + projections[j] + "/kernel"] = weights[j].t().reshape({dim, heads, head_dim});
      arrays[attention + projections[j] + "/bias"] = biases[j].reshape({heads, head_dim});
    }
    arrays[attention + "out/kernel"] = Parameter(vit, timm + "attn.proj.weight").t().reshape({heads, head_dim, dim});
    arrays[attention + "out/bias"] = Parameter(vit, timm + "attn.proj.bias");

    arrays[block + "MlpBlock_3/Dense_0/kernel"] = Parameter(vit, timm + "mlp.fc1.weight").t();
    arrays[block + "MlpBlock_3/Dense_0/bias"] = Parameter(vit, timm + "mlp.fc1.bias");
    arrays[block + "MlpBlock_3/Dense_1/kernel"] = Parameter(vit, timm + "mlp.fc2.weight").t();
    arrays[block + "MlpBlock_3/Dense_1/bias"] = Parameter(vit, timm + "mlp.fc2.bias");
  }
  arrays["pre_logits/kernel"] = torch::randn({dim, dim});
  arrays["pre_logits/bias"] = torch::zeros({dim});
  arrays["head/kernel"] = torch::randn({dim, 10});
  arrays["head/bias"] = torch::zeros({10});
  return arrays;
}

// WriteNpz stores each array as an uncompressed "<name>.npy" member, as numpy.savez does.
void WriteNpz(const std::map<std::string, torch::Tensor>& arrays, const std::string& path) {
  int error = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  ASSERT_NE(archive, nullptr) << "zip_open failed on " << path << " with libzip error " << error;

  // libzip reads the buffers at zip_close, so they must outlive the loop.
  std::deque<std::string> contents;
  const std::string npy_path = path + ".member.npy";
  for (const auto& [name, array] : arrays) {
    ASSERT_TRUE(WriteNpy(array.detach().contiguous(), npy_path).ok()) << name;
    contents.push_back(ReadBytes(npy_path));
    zip_source_t* source = zip_source_buffer(archive, contents.back().data(), contents.back().size(), 0);
    ASSERT_NE(source, nullptr) << name;
    const zip_int64_t index = zip_file_add(archive, (name + ".npy").c_str(), source, ZIP_FL_ENC_UTF_8);
    ASSERT_GE(index, 0) << name << ": " << zip_strerror(archive);
    ASSERT_EQ(zip_set_file_compression(archive, index, ZIP_CM_STORE, 0), 0) << name;
  }
  ASSERT_EQ(zip_close(archive), 0) << zip_strerror(archive);
  std::filesystem::remove(npy_path);
}

torch::Tensor Features(Vit& vit) {
  torch::NoGradGuard no_grad;
  vit->eval();
  torch::manual_seed(123);
  const int size = vit->config().image_size;
  return vit->forward(torch::randn({2, 3, size, size}));
}

Vit RandomVit(int seed, int image_size = 16) {
  torch::manual_seed(seed);
  return Vit(TinyConfig(image_size));
}

TEST(Checkpoint, NpzMatchesOriginalFeatures) {
  Vit saved = RandomVit(1);
  const std::string path = TempPath("google.npz");
  WriteNpz(GoogleArrays(saved), path);

  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  ASSERT_TRUE(status.ok()) << status;

  EXPECT_TRUE(torch::equal(Features(saved), Features(loaded)));
  for (const auto& item : saved->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), Parameter(loaded, item.key()))) << item.key();
  }
}

TEST(Checkpoint, NpzFloat64ArraysConverted) {
  Vit saved = RandomVit(1);
  std::map<std::string, torch::Tensor> arrays = GoogleArrays(saved);
  for (auto& [name, array] : arrays) array = array.to(torch::kFloat64);
  const std::string path = TempPath("float64.npz");
  WriteNpz(arrays, path);

  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_LE((Features(saved) - Features(loaded)).abs().max().item<float>(), 1e-6);
}

TEST(Checkpoint, NpzInt32ArrayRejected) {
  Vit saved = RandomVit(1);
  std::map<std::string, torch::Tensor> arrays = GoogleArrays(saved);
  arrays["embedding/bias"] = arrays["embedding/bias"].to(torch::kInt32);
  const std::string path = TempPath("int32.npz");
  WriteNpz(arrays, path);

  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("'embedding/bias'"));
  EXPECT_THAT(status.message(), HasSubstr("Int"));
}

TEST(Checkpoint, SafetensorsWithHeadMatchesOriginal) {
  Vit saved = RandomVit(3);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : saved->named_parameters()) tensors[item.key()] = item.value();
  tensors["head.weight"] = torch::randn({10, 32});
  tensors["head.bias"] = torch::zeros({10});
  tensors["pre_logits.fc.weight"] = torch::randn({32, 32});
  const std::string path = TempPath("timm.safetensors");
  ASSERT_TRUE(SaveSafetensors(tensors, path).ok());

  Vit loaded = RandomVit(4);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(torch::equal(Features(saved), Features(loaded)));
}

TEST(Checkpoint, SafetensorsFromSaveModuleWeightsLoads) {
  Vit saved = RandomVit(3);
  const std::string path = TempPath("module.safetensors");
  ASSERT_TRUE(SaveModuleWeights(*saved, path).ok());

  Vit loaded = RandomVit(4);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(torch::equal(Features(saved), Features(loaded)));
}

TEST(Checkpoint, SafetensorsUnknownTensorRejected) {
  Vit saved = RandomVit(3);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : saved->named_parameters()) tensors[item.key()] = item.value();
  tensors["fc_norm.weight"] = torch::ones({32});
  const std::string path = TempPath("fc_norm.safetensors");
  ASSERT_TRUE(SaveSafetensors(tensors, path).ok());

  Vit loaded = RandomVit(4);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("unexpected tensor 'fc_norm.weight'"));
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST(Checkpoint, TruncatedNpzNamesFile) {
  Vit saved = RandomVit(1);
  const std::string path = TempPath("truncated.npz");
  WriteNpz(GoogleArrays(saved), path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);

  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("truncated"));
}

TEST(Checkpoint, MissingNpzFileIsNotFound) {
  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, TempPath("absent.npz"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("absent.npz"));
}

TEST(Checkpoint, NpzWrongShapeNamesBothShapes) {
  Vit saved = RandomVit(1);
  std::map<std::string, torch::Tensor> arrays = GoogleArrays(saved);
  arrays["Transformer/encoder_norm/scale"] = torch::ones({33});
  const std::string path = TempPath("wrong_shape.npz");
  WriteNpz(arrays, path);

  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("'norm.weight'"));
  EXPECT_THAT(status.message(), HasSubstr("[33]"));
  EXPECT_THAT(status.message(), HasSubstr("[32]"));
}

TEST(Checkpoint, NpzWrongRankNamesArray) {
  Vit saved = RandomVit(1);
  std::map<std::string, torch::Tensor> arrays = GoogleArrays(saved);
  arrays["Transformer/encoderblock_1/MlpBlock_3/Dense_0/kernel"] = torch::ones({32, 64, 1});
  const std::string path = TempPath("wrong_rank.npz");
  WriteNpz(arrays, path);

  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("'Transformer/encoderblock_1/MlpBlock_3/Dense_0/kernel'"));
  EXPECT_THAT(status.message(), HasSubstr("[32, 64, 1]"));
}

TEST(Checkpoint, NpzMissingArrayNamesTensor) {
  Vit saved = RandomVit(1);
  std::map<std::string, torch::Tensor> arrays = GoogleArrays(saved);
  arrays.erase("Transformer/encoder_norm/bias");
  const std::string path = TempPath("missing.npz");
  WriteNpz(arrays, path);

  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("missing tensor 'norm.bias'"));
}

TEST(Checkpoint, NpzMissingValueKernelNamesArray) {
  Vit saved = RandomVit(1);
  std::map<std::string, torch::Tensor> arrays = GoogleArrays(saved);
  arrays.erase("Transformer/encoderblock_1/MultiHeadDotProductAttention_1/value/kernel");
  const std::string path = TempPath("missing_value.npz");
  WriteNpz(arrays, path);

  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(),
              HasSubstr("missing array 'Transformer/encoderblock_1/MultiHeadDotProductAttention_1/value/kernel'"));
}

TEST(Checkpoint, NpzUnknownArrayRejected) {
  Vit saved = RandomVit(1);
  std::map<std::string, torch::Tensor> arrays = GoogleArrays(saved);
  arrays["Transformer/encoderblock_0/Extra_9/scale"] = torch::ones({32});
  const std::string path = TempPath("unknown.npz");
  WriteNpz(arrays, path);

  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("unexpected array 'Transformer/encoderblock_0/Extra_9/scale'"));
}

TEST(Checkpoint, NpzExtraBlockRejected) {
  // A checkpoint deeper than the model carries blocks the model does not have.
  Vit saved = RandomVit(1);
  std::map<std::string, torch::Tensor> arrays = GoogleArrays(saved);
  for (const char* suffix : {"LayerNorm_0/scale", "LayerNorm_0/bias"}) {
    arrays[absl::StrCat("Transformer/encoderblock_2/", suffix)] = torch::ones({32});
  }
  const std::string path = TempPath("deeper.npz");
  WriteNpz(arrays, path);

  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("unexpected tensor 'blocks.2.norm1."));
}

TEST(Checkpoint, UnsupportedExtensionRejected) {
  Vit loaded = RandomVit(2);
  const absl::Status status = LoadVitCheckpoint(loaded, TempPath("weights.pth"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(".safetensors"));
  EXPECT_THAT(status.message(), HasSubstr(".npz"));
}

TEST(Checkpoint, OtherImageSizeResizesPositions) {
  Vit saved = RandomVit(1, /*image_size=*/16);
  const std::string path = TempPath("resized.npz");
  WriteNpz(GoogleArrays(saved), path);

  Vit loaded = RandomVit(2, /*image_size=*/24);
  const absl::Status status = LoadVitCheckpoint(loaded, path);
  ASSERT_TRUE(status.ok()) << status;

  const torch::Tensor saved_positions = Parameter(saved, "pos_embed");
  const torch::Tensor loaded_positions = Parameter(loaded, "pos_embed");
  ASSERT_EQ(loaded_positions.sizes(), torch::IntArrayRef({1, 1 + 6 * 6, 32}));
  EXPECT_TRUE(torch::equal(loaded_positions.slice(1, 0, 1), saved_positions.slice(1, 0, 1)));
  EXPECT_TRUE(torch::equal(Parameter(loaded, "blocks.1.attn.qkv.weight"), Parameter(saved, "blocks.1.attn.qkv.weight")));
  EXPECT_EQ(Features(loaded).sizes(), torch::IntArrayRef({2, 32}));
}

TEST(Checkpoint, ResizeKeepsConstantGridConstant) {
  torch::Tensor positions = torch::full({1, 1 + 4 * 4, 8}, 0.5);
  positions.slice(1, 0, 1).fill_(-3.0);

  const auto resized = ResizePositionEmbedding(positions, 7);
  ASSERT_TRUE(resized.ok()) << resized.status();
  ASSERT_EQ(resized->sizes(), torch::IntArrayRef({1, 1 + 7 * 7, 8}));
  EXPECT_TRUE(torch::equal(resized->slice(1, 0, 1), positions.slice(1, 0, 1)));
  EXPECT_LE((resized->slice(1, 1) - 0.5).abs().max().item<float>(), 1e-6);
}

TEST(Checkpoint, ResizeRejectsNonSquareGrid) {
  const auto resized = ResizePositionEmbedding(torch::zeros({1, 1 + 12, 8}), 4);
  EXPECT_FALSE(resized.ok());
  EXPECT_THAT(resized.status().message(), HasSubstr("12 patches"));
}

// FindPythonWithNumpy returns the first interpreter that can import numpy, or "".
std::string FindPythonWithNumpy() {
  // PATH may put a Python without numpy (such as a pyenv shim) before the Debian interpreter.
  for (const char* candidate : {"python3", "/usr/bin/python3"}) {
    const std::string probe = absl::StrCat(candidate, " -c 'import numpy' >/dev/null 2>&1");
    if (std::system(probe.c_str()) == 0) return candidate;
  }
  return "";
}

TEST(Checkpoint, ScriptCheckpointLoadsIntoVitTi16) {
  const std::string python = FindPythonWithNumpy();
  if (python.empty()) GTEST_SKIP() << "python3 with numpy is not installed";

  const std::filesystem::path script =
      std::filesystem::path(__FILE__).parent_path().parent_path() / "scripts" / "make-random-vit-npz";
  const std::string path = TempPath("vit-ti16.npz");
  const std::string command =
      absl::StrCat(python, " ", script.string(), " --config vit-ti16 --classes 10 --pre-logits ", path);
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  auto config = VitConfigByName("vit-ti16");
  ASSERT_TRUE(config.ok()) << config.status();
  Vit vit(*config);
  const absl::Status status = LoadVitCheckpoint(vit, path);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Parameter(vit, "blocks.11.attn.qkv.weight").sizes(), torch::IntArrayRef({3 * 192, 192}));
  EXPECT_TRUE(torch::equal(Parameter(vit, "norm.weight"), torch::ones({192})));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace nearnd
