// End-to-end and bad-input tests of the `nearnd` command on small datasets the tests write.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "core/bundle/bundle.h"
#include "core/data/dataset.h"
#include "core/data/image.h"
#include "core/data/npy.h"
#include "core/models/backbone.h"
#include "core/models/safetensors.h"
#include "core/scoring/novelty_model.h"
#include "nearnd/v1/report.pb.h"
#include "tests/test_support.h"

namespace nearnd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Classes of Fashion-MNIST and of MNIST digits.
constexpr int kClasses = 10;

// ClassImage returns a 28x28 grayscale image of class `label`: a bright horizontal band whose
// row depends on the class, over a dim pattern that depends on `seed`.
Image ClassImage(int label, int seed) {
  Image image;
  image.height = 28;
  image.width = 28;
  image.channels = 1;
  image.pixels.resize(28 * 28);
  for (int y = 0; y < 28; ++y) {
    for (int x = 0; x < 28; ++x) {
      const bool band = y >= 2 + 2 * label && y < 4 + 2 * label;
      image.pixels[y * 28 + x] = static_cast<uint8_t>(band ? 220 : (x * 3 + y * 5 + seed * 11) % 60);
    }
  }
  return image;
}

// WriteDataset writes IDX files for `name` under data_dir with `train` and `test` images per class.
void WriteDataset(const fs::path& data_dir, const std::string& name, int train, int test) {
  fs::create_directories(data_dir / name);
  for (const auto& [split, count] : {std::pair{std::string("train"), train}, {std::string("t10k"), test}}) {
    Dataset dataset;
    for (int label = 0; label < kClasses; ++label) {
      for (int i = 0; i < count; ++i) {
        dataset.images.push_back(ClassImage(label, i + (split == "t10k" ? 1000 : 0)));
        dataset.labels.push_back(label);
      }
    }
    const absl::Status status = WriteIdx(dataset, (data_dir / name / (split + "-images-idx3-ubyte")).string(),
                                         (data_dir / name / (split + "-labels-idx1-ubyte")).string());
    ASSERT_TRUE(status.ok()) << status;
  }
}

// Nearnd runs the trainer binary with `args`.
CommandResult Nearnd(const std::vector<std::string>& args, std::chrono::seconds timeout = kProcessTimeout) {
  std::vector<std::string> argv = {NEARND_TRAINER_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, "", timeout);
}

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ = new std::string(MakeTempDir("trainer"));
    WriteDataset(fs::path(*work_) / "data", "fashion-mnist", 12, 4);
    WriteDataset(fs::path(*work_) / "data", "mnist", 10, 3);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*work_);
    delete work_;
  }

  static std::string DataDir() { return (fs::path(*work_) / "data").string(); }
  static std::string RunDir(const std::string& name) { return (fs::path(*work_) / name).string(); }

  // Flags that make every step take a second or two on the small datasets.
  static std::vector<std::string> SmallRun(const std::string& out) {
    return {"--data-dir=" + DataDir(), "--out=" + out,         "--normal-class=3",
            "--pretrain-epochs=1",     "--generator-max-steps=4", "--generator-check-every=2",
            "--sampler-steps=3",       "--fakes=8",             "--epochs=1",
            "--heldout-fraction=0.25", "--threads=1"};
  }

  static std::string* work_;
};

std::string* TrainerTest::work_ = nullptr;

// ExpectOnlyUnfrozenChanged checks that the tensors named by `frozen` prefixes are equal in two
// weight files and that every other parameter changed. Batch-norm statistics (running_mean,
// running_var, num_batches_tracked) must stay equal in frozen layers and may change elsewhere.
void ExpectOnlyUnfrozenChanged(const fs::path& before_path, const fs::path& after_path,
                               const std::vector<std::string>& frozen) {
  absl::StatusOr<std::map<std::string, torch::Tensor>> before = LoadSafetensors(before_path.string());
  absl::StatusOr<std::map<std::string, torch::Tensor>> after = LoadSafetensors(after_path.string());
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(before->size(), after->size());
  int frozen_count = 0;
  int trained_count = 0;
  for (const auto& [name, tensor] : *before) {
    ASSERT_EQ(after->count(name), 1u) << name;
    const bool is_frozen = std::any_of(frozen.begin(), frozen.end(),
                                       [&](const std::string& prefix) { return absl::StartsWith(name, prefix); });
    const bool is_statistic = absl::StrContains(name, "running_") || absl::StrContains(name, "num_batches_tracked");
    if (is_statistic && !is_frozen) continue;
    if (is_frozen) {
      EXPECT_TRUE(torch::equal(tensor, after->at(name))) << name << " is frozen but changed";
      ++frozen_count;
    } else {
      EXPECT_FALSE(torch::equal(tensor, after->at(name))) << name << " is trainable but did not change";
      ++trained_count;
    }
  }
  EXPECT_GT(frozen_count, 0);
  EXPECT_GT(trained_count, 0);
}

std::vector<std::string> Concat(std::vector<std::string> first, const std::vector<std::string>& second) {
  first.insert(first.end(), second.begin(), second.end());
  return first;
}

TEST_F(TrainerTest, PipelineWritesReportAndBundle) {
  const std::string out = RunDir("pipeline");
  const CommandResult result = Nearnd(Concat({"pipeline"}, SmallRun(out)), std::chrono::seconds(600));
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr("generate: step 2 Frechet distance"));

  // The report contains every section, with AUROCs in [0, 1] for all nine anomaly classes.
  std::ifstream in(fs::path(out) / "report.json");
  std::stringstream json;
  json << in.rdbuf();
  nearnd::v1::Report report;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.str(), &report).ok());
  EXPECT_EQ(report.dataset(), "fashion-mnist");
  EXPECT_EQ(report.normal_class(), 3);
  EXPECT_EQ(report.normal_class_name(), "Dress");
  EXPECT_EQ(report.backbone().name(), "vit-quick");
  EXPECT_THAT(report.backbone().weights_source(), HasSubstr("pretrained by nearnd on mnist"));
  EXPECT_EQ(report.generator().steps(), 4u);
  EXPECT_EQ(report.generator().curve_size(), 2);
  EXPECT_EQ(report.generator().fakes(), 8u);
  for (const auto* evaluation : {&report.baseline(), &report.finetuned()}) {
    EXPECT_EQ(evaluation->per_class_auroc_size(), 9);
    EXPECT_GE(evaluation->one_vs_all_auroc(), 0.0);
    EXPECT_LE(evaluation->one_vs_all_auroc(), 1.0);
    EXPECT_NE(evaluation->bottom1_class(), 3);
    double minimum = 1.0;
    for (const auto& [label, auroc] : evaluation->per_class_auroc()) minimum = std::min(minimum, auroc);
    EXPECT_DOUBLE_EQ(evaluation->bottom1_auroc(), minimum);
    EXPECT_DOUBLE_EQ(evaluation->per_class_auroc().at(evaluation->bottom1_class()), minimum);
  }
  for (const char* step : {"pretrain", "generate", "finetune", "index", "evaluate", "bundle", "pipeline"}) {
    EXPECT_GT(report.wall_seconds().count(step), 0u) << step;
  }

  // The bundle verifies and names the model and its threshold.
  absl::StatusOr<nearnd::v1::Manifest> manifest = ReadBundle((fs::path(out) / "bundle").string());
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->model_name(), "fashion-mnist-class-3");
  EXPECT_EQ(manifest->k(), 2u);
  EXPECT_EQ(manifest->threshold().heldout_images(), 3u);
  EXPECT_EQ(manifest->provenance().generator_step(), 4u);
  ASSERT_EQ(manifest->preprocessing().mean_size(), 1);
  EXPECT_FLOAT_EQ(manifest->preprocessing().mean(0), 0.5f);
  EXPECT_FLOAT_EQ(manifest->preprocessing().std(0), 0.5f);

  // Fine-tuning changed the unfrozen half of vit-quick's 4 blocks and kept the frozen parameters.
  ExpectOnlyUnfrozenChanged(fs::path(out) / "pretrain" / "backbone.safetensors",
                            fs::path(out) / "finetune" / "backbone.safetensors",
                            {"patch_embed.", "cls_token", "pos_embed", "blocks.0.", "blocks.1."});

  // A second pipeline resumes: every step with output is skipped.
  const CommandResult again = Nearnd(Concat({"pipeline"}, SmallRun(out)), std::chrono::seconds(120));
  ASSERT_EQ(again.exit_code, 0) << again.stderr_text;
  EXPECT_THAT(again.stderr_text, HasSubstr("skipping generate"));
  EXPECT_THAT(again.stderr_text, HasSubstr("skipping bundle"));

  // `nearnd report` prints the AUROC table.
  const CommandResult printed = Nearnd({"report", "--out=" + out});
  ASSERT_EQ(printed.exit_code, 0) << printed.stderr_text;
  EXPECT_THAT(printed.stdout_text, HasSubstr("fine-tuned"));
  EXPECT_THAT(printed.stdout_text, HasSubstr("bottom-1"));

  // A bundle is immutable: writing it again is rejected.
  const CommandResult rebundle = Nearnd(Concat({"bundle"}, SmallRun(out)));
  EXPECT_EQ(rebundle.exit_code, 1);
  EXPECT_THAT(rebundle.stderr_text, HasSubstr("already exists"));
}

// ScriptedBackbone writes tests/parity/make_scripted_backbone.py's module to `path` with
// `args`, or returns the script's error output. An empty result means success.
std::string ScriptedBackbone(const fs::path& path, const std::vector<std::string>& args = {}) {
  std::vector<std::string> argv = {"/usr/bin/python3", NEARND_SOURCE_DIR "/tests/parity/make_scripted_backbone.py",
                                   "--out", path.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  const CommandResult result = RunCommand(argv, "", std::chrono::seconds(120));
  return result.exit_code == 0 ? "" : result.stderr_text + " (exit code " + std::to_string(result.exit_code) + ")";
}

bool PythonHasTorch() {
  return RunCommand({"/usr/bin/python3", "-c", "import numpy, torch"}, "", std::chrono::seconds(60)).exit_code == 0;
}

TEST_F(TrainerTest, TorchScriptBackboneRunsPipelineAndServes) {
  if (!PythonHasTorch()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch; install python3-torch (scripts/setup)";
  const std::string out = RunDir("torchscript");
  fs::create_directories(out);
  const fs::path module = fs::path(out) / "small_convnet.pt";
  ASSERT_EQ(ScriptedBackbone(module, {"--image-size=28", "--channels=3", "--mean=0.25", "--std=0.5"}), "");

  // conv1 and bn2 (with its statistics) frozen by prefix; conv2 and fc trained.
  const CommandResult result = Nearnd(
      Concat({"pipeline", "--backbone=torchscript:" + module.string(), "--freeze=conv1.,bn2."}, SmallRun(out)),
      std::chrono::seconds(600));
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_THAT(result.stderr_text, Not(HasSubstr("pipeline: pretrain")));
  EXPECT_THAT(result.stderr_text, HasSubstr("parameters frozen (conv1.,bn2.)"));

  // The module's own weights, saved in nearnd's format, are the "before" of fine-tuning.
  absl::StatusOr<std::shared_ptr<Backbone>> original = LoadTorchScriptBackbone(module.string());
  ASSERT_TRUE(original.ok()) << original.status();
  const fs::path original_weights = fs::path(out) / "original.safetensors";
  ASSERT_TRUE(SaveBackboneWeights(**original, original_weights.string()).ok());
  ExpectOnlyUnfrozenChanged(original_weights, fs::path(out) / "finetune" / "backbone.safetensors",
                            {"conv1.", "bn2."});

  // The bundle contains the module and takes the normalisation from its attributes.
  const std::string bundle = (fs::path(out) / "bundle").string();
  absl::StatusOr<nearnd::v1::Manifest> manifest = ReadBundle(bundle);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->backbone().architecture(), "torchscript");
  EXPECT_EQ(manifest->backbone().module_file(), "backbone.pt");
  EXPECT_EQ(manifest->embedding_dim(), 16u);
  EXPECT_EQ(manifest->preprocessing().channels(), 3u);
  ASSERT_EQ(manifest->preprocessing().mean_size(), 3);
  EXPECT_FLOAT_EQ(manifest->preprocessing().mean(0), 0.25f);

  // The served model scores the test images as evaluation did.
  absl::StatusOr<std::unique_ptr<NoveltyModel>> model = NoveltyModel::Load(bundle);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<Dataset> test = ReadNamedDataset("fashion-mnist", DataDir(), "test");
  ASSERT_TRUE(test.ok()) << test.status();
  absl::StatusOr<std::vector<float>> scores = (*model)->Score(test->images);
  ASSERT_TRUE(scores.ok()) << scores.status();
  std::ifstream evaluated(fs::path(out) / "evaluate" / "finetuned_scores.tsv");
  std::string line;
  std::getline(evaluated, line);  // Header.
  for (size_t i = 0; i < scores->size(); ++i) {
    ASSERT_TRUE(std::getline(evaluated, line)) << "row " << i;
    const float expected = std::stof(line.substr(line.rfind('\t') + 1));
    EXPECT_NEAR((*scores)[i], expected, 1e-4 * std::max(1.0f, std::abs(expected))) << "image " << i;
  }
}

TEST_F(TrainerTest, TorchScriptFeaturesMatchPython) {
  if (!PythonHasTorch()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch; install python3-torch (scripts/setup)";
  const fs::path dir = RunDir("torchscript-embed");
  fs::create_directories(dir);
  for (const std::string mode : {"script", "trace"}) {
    const fs::path module = dir / (mode + ".pt");
    ASSERT_EQ(ScriptedBackbone(module, {"--mode=" + mode, "--image-size=20", "--inputs", (dir / "inputs.npy").string(),
                                        "--features", (dir / "expected.npy").string()}),
              "");
    const CommandResult result = Nearnd({"embed", "--backbone=torchscript:" + module.string(),
                                         "--preprocessed=" + (dir / "inputs.npy").string(),
                                         "--out=" + (dir / "features.npy").string()});
    if (mode == "trace") {
      // A traced module has no attributes, so nearnd expects the default 224x224 input.
      EXPECT_EQ(result.exit_code, 1);
      EXPECT_THAT(result.stderr_text, HasSubstr("takes [N, 3, 224, 224]"));
      continue;
    }
    ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
    absl::StatusOr<torch::Tensor> features = ReadNpy((dir / "features.npy").string());
    absl::StatusOr<torch::Tensor> expected = ReadNpy((dir / "expected.npy").string());
    ASSERT_TRUE(features.ok()) << features.status();
    ASSERT_TRUE(expected.ok()) << expected.status();
    ASSERT_EQ(features->sizes(), expected->sizes());
    EXPECT_LT((*features - *expected).abs().max().item<float>(), 1e-5);
  }
}

TEST_F(TrainerTest, TorchScriptBackboneErrorsNameTheFile) {
  const std::string out = RunDir("torchscript-errors");
  fs::create_directories(out);
  const std::string missing = out + "/absent.pt";
  CommandResult result = Nearnd({"generate", "--data-dir=" + DataDir(), "--out=" + out, "--backbone=torchscript:" + missing});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr(missing + " does not exist"));

  const std::string corrupt = out + "/corrupt.pt";
  WriteFile(corrupt, "PK\x03\x04 this is no TorchScript archive");
  result = Nearnd({"generate", "--data-dir=" + DataDir(), "--out=" + out, "--backbone=torchscript:" + corrupt});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr(corrupt + " is not a loadable TorchScript module"));

  result = Nearnd({"generate", "--data-dir=" + DataDir(), "--out=" + out, "--backbone=vit-huge"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("--backbone=vit-huge"));
  EXPECT_THAT(result.stderr_text, HasSubstr("torchscript:PATH"));

  if (!PythonHasTorch()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch; install python3-torch (scripts/setup)";
  const fs::path module = fs::path(out) / "small_convnet.pt";
  ASSERT_EQ(ScriptedBackbone(module), "");
  result = Nearnd({"pretrain", "--data-dir=" + DataDir(), "--out=" + out, "--backbone=torchscript:" + module.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("comes pretrained"));
}

TEST_F(TrainerTest, BadFreezeFlagsAreRejected) {
  if (!PythonHasTorch()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch; install python3-torch (scripts/setup)";
  const std::string out = RunDir("freeze");
  fs::create_directories(out);
  const fs::path module = fs::path(out) / "small_convnet.pt";
  ASSERT_EQ(ScriptedBackbone(module), "");
  fs::create_directories(fs::path(out) / "generate");
  ASSERT_TRUE(WriteNpy(torch::zeros({2, 1, 28, 28}, torch::kUInt8), out + "/generate/fakes.npy").ok());
  const std::vector<std::string> finetune = {"finetune", "--data-dir=" + DataDir(), "--out=" + out,
                                             "--backbone=torchscript:" + module.string()};

  const struct {
    std::string flag;
    std::string message;
  } cases[] = {
      {"--freeze=conv1.,conv9.", "'conv9.' matches no parameter of backbone small_convnet.pt"},
      {"--freeze=conv1.,,fc.", "contains an empty prefix"},
      {"--freeze-blocks=2", "--freeze-blocks=2 applies to ViT backbones only"},
      {"--backbone-weights=" + out + "/vit.npz", "a TorchScript backbone takes .safetensors weights"},
  };
  for (const auto& [flag, message] : cases) {
    const CommandResult result = Nearnd(Concat(finetune, {flag}));
    EXPECT_EQ(result.exit_code, 1) << flag;
    EXPECT_THAT(result.stderr_text, HasSubstr(message)) << flag;
  }

  // A ViT with random weights, for the flags that concern ViTs.
  absl::StatusOr<VitConfig> quick = VitConfigByName("vit-quick");
  ASSERT_TRUE(quick.ok()) << quick.status();
  ASSERT_TRUE(SaveBackboneWeights(*MakeVitBackbone(Vit(*quick)), out + "/vit.safetensors").ok());
  const CommandResult both = Nearnd({"finetune", "--data-dir=" + DataDir(), "--out=" + out,
                                     "--backbone-weights=" + out + "/vit.safetensors", "--freeze=blocks.0.",
                                     "--freeze-blocks=2"});
  EXPECT_EQ(both.exit_code, 1);
  EXPECT_THAT(both.stderr_text, HasSubstr("--freeze and --freeze-blocks=2 are both given"));
}

TEST_F(TrainerTest, UnknownFlagIsRejected) {
  const CommandResult result = Nearnd({"pipeline", "--no-such-flag=1"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.stderr_text, HasSubstr("no_such_flag"));
}

TEST_F(TrainerTest, UnknownSubcommandIsRejected) {
  const CommandResult result = Nearnd({"trian"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.stderr_text, HasSubstr("unknown subcommand 'trian'"));
  EXPECT_THAT(result.stderr_text, HasSubstr("pipeline"));
}

TEST_F(TrainerTest, MissingSubcommandPrintsUsage) {
  const CommandResult result = Nearnd({});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.stderr_text, HasSubstr("usage: nearnd SUBCOMMAND"));
}

TEST_F(TrainerTest, NormalClassOutOfRangeIsRejected) {
  const CommandResult result =
      Nearnd({"generate", "--data-dir=" + DataDir(), "--out=" + RunDir("range"), "--normal-class=12"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("--normal-class=12 is out of range"));
  EXPECT_THAT(result.stderr_text, HasSubstr("classes 0 to 9"));
}

TEST_F(TrainerTest, UnknownProfileIsRejected) {
  const CommandResult result = Nearnd({"pipeline", "--out=" + RunDir("profile"), "--profile=turbo"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("unknown profile 'turbo'"));
}

TEST_F(TrainerTest, UnknownNormalizationIsRejected) {
  const CommandResult result = Nearnd({"pipeline", "--out=" + RunDir("normalization"), "--normalization=cifar"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("--normalization=cifar is invalid"));
}

TEST_F(TrainerTest, ImagenetNormalizationReachesBundle) {
  const std::string out = RunDir("imagenet");
  const CommandResult result =
      Nearnd(Concat({"pipeline", "--normalization=imagenet"}, SmallRun(out)), std::chrono::seconds(600));
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  absl::StatusOr<nearnd::v1::Manifest> manifest = ReadBundle((fs::path(out) / "bundle").string());
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ASSERT_EQ(manifest->preprocessing().mean_size(), 1);
  EXPECT_FLOAT_EQ(manifest->preprocessing().mean(0), 0.449f);
  EXPECT_FLOAT_EQ(manifest->preprocessing().std(0), 0.226f);
}

TEST_F(TrainerTest, MissingDataNamesFetchScript) {
  const CommandResult result =
      Nearnd({"generate", "--data-dir=" + RunDir("no-data"), "--out=" + RunDir("missing-data")});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("scripts/fetch-data"));
}

TEST_F(TrainerTest, StepWithoutPreviousStepNamesIt) {
  const CommandResult finetune = Nearnd({"finetune", "--data-dir=" + DataDir(), "--out=" + RunDir("order"),
                                         "--backbone-weights=" + RunDir("order") + "/none.safetensors"});
  EXPECT_EQ(finetune.exit_code, 1);
  EXPECT_THAT(finetune.stderr_text, HasSubstr("run `nearnd generate"));

  const CommandResult generate = Nearnd({"generate", "--data-dir=" + DataDir(), "--out=" + RunDir("order")});
  EXPECT_EQ(generate.exit_code, 1);
  EXPECT_THAT(generate.stderr_text, HasSubstr("run `nearnd pretrain"));
}

TEST_F(TrainerTest, MissingBackboneWeightsAreNamed) {
  const std::string missing = RunDir("weights") + "/absent.safetensors";
  const CommandResult result = Nearnd({"generate", "--data-dir=" + DataDir(), "--out=" + RunDir("weights"),
                                       "--backbone-weights=" + missing});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr(missing));
}

TEST_F(TrainerTest, PretrainOnDatasetUnderTestIsRejected) {
  const CommandResult result = Nearnd({"pretrain", "--data-dir=" + DataDir(), "--out=" + RunDir("pretrain"),
                                       "--pretrain-dataset=fashion-mnist"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("is the dataset under test"));
}

TEST_F(TrainerTest, InvalidGeneratorSettingsAreRejected) {
  for (const std::string flag : {"--fakes=1", "--generator-check-samples=1", "--sampler-steps=1"}) {
    const CommandResult result =
        Nearnd({"generate", "--data-dir=" + DataDir(), "--out=" + RunDir("settings"), flag});
    EXPECT_EQ(result.exit_code, 1) << flag;
    EXPECT_THAT(result.stderr_text, HasSubstr(flag));
  }
}

TEST_F(TrainerTest, PreprocessRejectsBadArguments) {
  const std::string out = RunDir("preprocess");
  fs::create_directories(out);
  CommandResult result = Nearnd({"preprocess", "--out=" + out + "/inputs.npy"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("no input"));

  absl::StatusOr<std::string> png = EncodePng(ClassImage(2, 1));
  ASSERT_TRUE(png.ok()) << png.status();
  WriteFile(fs::path(out) / "a.png", *png);
  result = Nearnd({"preprocess", "--out=" + out + "/inputs.bin", out + "/a.png"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("--out=" + out + "/inputs.bin does not end in .npy"));

  result = Nearnd({"preprocess", "--out=" + out + "/inputs.npy", out + "/missing.png"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr(out + "/missing.png not found"));

  result = Nearnd({"preprocess", "--out=" + out + "/inputs.npy", out + "/a.png"});
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  absl::StatusOr<torch::Tensor> inputs = ReadNpy(out + "/inputs.npy");
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  EXPECT_EQ(inputs->sizes(), (std::vector<int64_t>{1, 1, 28, 28}));
}

TEST_F(TrainerTest, BenchmarkRejectsBadArguments) {
  const std::string out = RunDir("benchmark");
  fs::create_directories(out);
  CommandResult result = Nearnd({"benchmark", "--backbone-weights=" + out + "/w.safetensors"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("--preprocessed is empty"));

  result = Nearnd({"benchmark", "--preprocessed=" + out + "/inputs.npy", "--steps=0"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("--steps=0"));
}

TEST_F(TrainerTest, CompareRejectsMalformedScores) {
  const std::string out = RunDir("compare");
  fs::create_directories(fs::path(out) / "evaluate");
  WriteFile(fs::path(out) / "evaluate" / "finetuned_scores.tsv", "index\tlabel\tscore\n0\t1\t2.5\n1\t0\t1.0\n");
  WriteFile(fs::path(out) / "scores.tsv", "2.5\timages/00000_1.png\nnot-a-score\timages/00001_0.png\n");
  const CommandResult result = Nearnd({"compare", "--out=" + out, (fs::path(out) / "scores.tsv").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("not-a-score"));
}

TEST_F(TrainerTest, CompareDetectsDisagreement) {
  const std::string out = RunDir("disagree");
  fs::create_directories(fs::path(out) / "evaluate");
  WriteFile(fs::path(out) / "evaluate" / "finetuned_scores.tsv", "index\tlabel\tscore\n0\t1\t2.5\n1\t0\t1.0\n");
  WriteFile(fs::path(out) / "scores.tsv", "2.5\timages/00000_1.png\n1.01\timages/00001_0.png\n");
  const CommandResult result = Nearnd({"compare", "--out=" + out, (fs::path(out) / "scores.tsv").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("scorer and evaluation disagree"));
  EXPECT_THAT(result.stderr_text, HasSubstr("00001_0.png"));
}

}  // namespace
}  // namespace nearnd
