#include "core/models/vit.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/models/backbone.h"
#include "core/models/safetensors.h"

namespace nearnd {
namespace {

VitConfig TinyConfig() {
  VitConfig config;
  config.name = "vit-tiny-test";
  config.image_size = 16;
  config.patch_size = 4;
  config.channels = 3;
  config.dim = 32;
  config.depth = 4;
  config.heads = 4;
  config.mlp_dim = 64;
  return config;
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(testing::TempDir()) / (std::to_string(::getpid()) + "_" + name)).string();
}

TEST(Vit, FeatureShapeIsBatchByDim) {
  Vit vit(TinyConfig());
  const torch::Tensor features = vit->forward(torch::randn({5, 3, 16, 16}));
  EXPECT_EQ(features.sizes(), (std::vector<int64_t>{5, 32}));
}

TEST(Vit, ParameterNamesFollowTimm) {
  Vit vit(TinyConfig());
  std::vector<std::string> names;
  for (const auto& item : vit->named_parameters()) names.push_back(item.key());
  EXPECT_THAT(names, testing::IsSupersetOf({"patch_embed.proj.weight", "cls_token", "pos_embed",
                                            "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight",
                                            "blocks.0.attn.proj.bias", "blocks.3.mlp.fc1.weight",
                                            "blocks.3.mlp.fc2.bias", "norm.weight"}));
  EXPECT_EQ(vit->named_parameters()["pos_embed"].sizes(), (std::vector<int64_t>{1, 17, 32}));
}

TEST(Vit, InferenceAndTrainingPathsAgree) {
  // Without autograd the blocks run LibTorch's fused encoder layer; with it, nearnd's own layers.
  // Fine-tuning trains the second path and indexing serves the first, so they must agree.
  // Every parameter is random, so that a LayerNorm or bias passed to the wrong place shows.
  for (int heads : {4, 3}) {
    torch::manual_seed(5);
    VitConfig config = TinyConfig();
    config.heads = heads;
    config.dim = 8 * heads;
    Vit vit(config);
    {
      torch::NoGradGuard no_grad;
      for (auto& parameter : vit->parameters()) parameter.normal_(0.0, 0.3);
    }
    vit->eval();
    const torch::Tensor images = torch::randn({3, 3, 16, 16});
    torch::Tensor inference;
    {
      torch::InferenceMode inference_mode;
      inference = vit->forward(images).clone();
    }
    const torch::Tensor training = vit->forward(images).detach();
    ASSERT_EQ(inference.sizes(), training.sizes()) << heads << " heads";
    EXPECT_LT((inference - training).abs().max().item<float>(), 1e-5f) << heads << " heads";
  }
}

TEST(Vit, FrozenBlocksWithoutGraphGiveSameGradients) {
  // Frozen leading blocks run without an autograd graph (and so fused). An input that requires
  // a gradient forces the graph through every block, which gives the reference gradients.
  torch::manual_seed(8);
  Vit vit(TinyConfig());
  {
    torch::NoGradGuard no_grad;
    for (auto& parameter : vit->parameters()) parameter.normal_(0.0, 0.3);
  }
  std::shared_ptr<Backbone> backbone = MakeVitBackbone(vit);
  ASSERT_TRUE(FreezeParameters(*backbone, VitFreezePrefixes(2)).ok());
  const torch::Tensor images = torch::randn({3, 3, 16, 16});

  const auto gradients = [&](const torch::Tensor& input) {
    vit->zero_grad();
    vit->forward(input).pow(2).sum().backward();
    std::map<std::string, torch::Tensor> result;
    for (const auto& item : vit->named_parameters()) {
      if (item.value().requires_grad()) result[item.key()] = item.value().grad().clone();
    }
    return result;
  };
  const std::map<std::string, torch::Tensor> without_graph = gradients(images);
  const std::map<std::string, torch::Tensor> with_graph = gradients(images.clone().requires_grad_(true));
  ASSERT_EQ(without_graph.size(), with_graph.size());
  EXPECT_GT(without_graph.size(), 0u);
  for (const auto& [name, gradient] : with_graph) {
    EXPECT_LT((without_graph.at(name) - gradient).abs().max().item<float>(), 1e-4f) << name;
  }
}

TEST(Vit, ClassTokenBlockMatchesFullBlock) {
  torch::manual_seed(6);
  EncoderBlock block(TinyConfig());
  {
    torch::NoGradGuard no_grad;
    for (auto& parameter : block->parameters()) parameter.normal_(0.0, 0.3);
  }
  const torch::Tensor tokens = torch::randn({2, 17, 32});
  const torch::Tensor full = block->forward(tokens).select(1, 0).detach();
  const torch::Tensor token = block->ClassTokenForward(tokens).detach();
  ASSERT_EQ(token.sizes(), (std::vector<int64_t>{2, 32}));
  EXPECT_LT((full - token).abs().max().item<float>(), 1e-5f);
}

TEST(Vit, ClassifierLogitShape) {
  Classifier classifier(MakeVitBackbone(Vit(TinyConfig())), 2);
  EXPECT_EQ(classifier.Forward(torch::randn({3, 3, 16, 16})).sizes(), (std::vector<int64_t>{3, 2}));
}

TEST(Vit, FrozenBlocksReceiveNoGradient) {
  torch::manual_seed(7);
  Classifier classifier(MakeVitBackbone(Vit(TinyConfig())), 2);
  ASSERT_TRUE(FreezeParameters(classifier.backbone(), VitFreezePrefixes(2)).ok());

  const torch::Tensor logits = classifier.Forward(torch::randn({4, 3, 16, 16}));
  torch::nn::functional::cross_entropy(logits, torch::tensor({0, 1, 0, 1})).backward();

  for (const auto& [name, parameter] : classifier.backbone().NamedParameters()) {
    const bool frozen = name.rfind("blocks.0.", 0) == 0 || name.rfind("blocks.1.", 0) == 0 ||
                        name.rfind("patch_embed.", 0) == 0 || name == "cls_token" || name == "pos_embed";
    if (frozen) {
      EXPECT_FALSE(parameter.requires_grad()) << name;
      EXPECT_FALSE(parameter.grad().defined()) << name;
    } else {
      EXPECT_TRUE(parameter.requires_grad()) << name;
      ASSERT_TRUE(parameter.grad().defined()) << name;
      EXPECT_GT(parameter.grad().abs().sum().item<double>(), 0.0) << name;
    }
  }
}

TEST(Vit, UnknownConfigNameIsRejected) {
  absl::StatusOr<VitConfig> config = VitConfigByName("vit-huge-typo");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), testing::HasSubstr("vit-huge-typo"));
  EXPECT_THAT(config.status().message(), testing::HasSubstr("vit-b16"));
}

TEST(Safetensors, ModuleWeightsRoundTrip) {
  torch::manual_seed(8);
  Vit saved(TinyConfig());
  const std::string path = TempPath("round_trip.safetensors");
  ASSERT_TRUE(SaveModuleWeights(*saved, path).ok());

  torch::manual_seed(9);
  Vit loaded(TinyConfig());
  const absl::Status status = LoadModuleWeights(*loaded, path);
  ASSERT_TRUE(status.ok()) << status;

  saved->eval();
  loaded->eval();
  const torch::Tensor input = torch::randn({2, 3, 16, 16});
  EXPECT_TRUE(torch::equal(saved->forward(input), loaded->forward(input)));
}

TEST(Safetensors, ShapeMismatchNamesTensorAndShapes) {
  Vit saved(TinyConfig());
  const std::string path = TempPath("shape.safetensors");
  ASSERT_TRUE(SaveModuleWeights(*saved, path).ok());

  VitConfig wider = TinyConfig();
  wider.mlp_dim = 96;
  Vit loaded(wider);
  const absl::Status status = LoadModuleWeights(*loaded, path);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), testing::HasSubstr("blocks.0.mlp.fc1.bias"));
  EXPECT_THAT(status.message(), testing::HasSubstr("[64]"));
  EXPECT_THAT(status.message(), testing::HasSubstr("[96]"));
}

TEST(Safetensors, MissingTensorIsNamed) {
  VitConfig shallow = TinyConfig();
  shallow.depth = 2;
  Vit saved(shallow);
  const std::string path = TempPath("missing.safetensors");
  ASSERT_TRUE(SaveModuleWeights(*saved, path).ok());

  Vit loaded(TinyConfig());
  const absl::Status status = LoadModuleWeights(*loaded, path);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), testing::HasSubstr("missing tensor 'blocks.2."));
}

TEST(Safetensors, UnexpectedTensorIsRejectedUnlessIgnored) {
  Vit backbone(TinyConfig());
  const std::string path = TempPath("classifier.safetensors");
  ASSERT_TRUE(SaveSafetensors(
                  [&] {
                    std::map<std::string, torch::Tensor> tensors;
                    for (const auto& item : backbone->named_parameters()) tensors[item.key()] = item.value();
                    tensors["head.weight"] = torch::zeros({2, 32});
                    return tensors;
                  }(),
                  path)
                  .ok());

  Vit loaded(TinyConfig());
  const absl::Status rejected = LoadModuleWeights(*loaded, path);
  ASSERT_FALSE(rejected.ok());
  EXPECT_THAT(rejected.message(), testing::HasSubstr("unexpected tensor 'head.weight'"));
  EXPECT_TRUE(LoadModuleWeights(*loaded, path, {"head."}).ok());
}

TEST(Safetensors, TruncatedFileIsRejected) {
  Vit saved(TinyConfig());
  const std::string path = TempPath("truncated.safetensors");
  ASSERT_TRUE(SaveModuleWeights(*saved, path).ok());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);

  absl::StatusOr<std::map<std::string, torch::Tensor>> loaded = LoadSafetensors(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().message(), testing::HasSubstr("truncated"));
  EXPECT_THAT(loaded.status().message(), testing::HasSubstr(path));
}

}  // namespace
}  // namespace nearnd
