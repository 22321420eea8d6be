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

#include "absl/strings/str_format.h"
#include "core/bundle/bundle.h"
#include "core/data/dataset.h"
#include "nearnd/v1/report.pb.h"
#include "tests/test_support.h"

namespace nearnd {
namespace {

using ::testing::HasSubstr;

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
  const CommandResult result = Nearnd({"generate", "--data-dir=" + DataDir(), "--out=" + RunDir("settings"),
                                       "--fakes=1"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("--fakes=1"));
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
