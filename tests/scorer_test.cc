// End-to-end tests of nearnd-scorer and `nearnd score`: the real binaries run as child
// processes and talk gRPC and HTTP over 127.0.0.1.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "core/bundle/bundle.h"
#include "core/data/image.h"
#include "core/index/knn_index.h"
#include "core/models/safetensors.h"
#include "core/models/vit.h"
#include "core/scoring/novelty_model.h"
#include "nearnd/v1/novelty.grpc.pb.h"
#include "tests/test_support.h"

extern char** environ;

namespace nearnd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kModelName[] = "test-digits-class-3";
constexpr char kModelVersion[] = "7";
constexpr float kThreshold = 1.5f;

// Largest request the scorer under test accepts, so that the limit is cheap to exceed.
constexpr int kMaxImagesPerRequest = 4;


// ---------------------------------------------------------------------------------------------
// Images, bundle and scorer

std::string Png(const Image& image) {
  absl::StatusOr<std::string> bytes = EncodePng(image);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.value_or("");
}

std::string Jpeg(const Image& image) {
  absl::StatusOr<std::string> bytes = EncodeJpeg(image, 90);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.value_or("");
}

// A PNG signature followed by bytes that are no PNG chunk.
std::string CorruptPng() { return std::string("\x89PNG\r\n\x1a\n", 8) + "not a png chunk at all"; }

// WriteTinyBundle writes a bundle with a small random ViT and an index of six generated normal
// images. Returns an error message, empty on success.
std::string WriteTinyBundle(const fs::path& work, const fs::path& bundle) {
  torch::manual_seed(20240601);
  VitConfig config;
  config.name = "vit-test";
  config.image_size = 8;
  config.patch_size = 4;
  config.channels = 1;
  config.dim = 16;
  config.depth = 2;
  config.heads = 2;
  config.mlp_dim = 32;
  Vit backbone(config);
  const fs::path weights = work / "backbone.safetensors";
  absl::Status status = SaveModuleWeights(*backbone, weights.string());
  if (!status.ok()) return status.ToString();

  PreprocessConfig preprocess;
  preprocess.resize_size = 8;
  preprocess.crop_size = 8;
  preprocess.channels = 1;
  preprocess.mean = {0.5f};
  preprocess.std = {0.5f};
  std::vector<Image> normal;
  for (int seed = 0; seed < 6; ++seed) normal.push_back(MakeImage(8, 8, 1, seed));
  KnnIndex index(config.dim);
  status = index.Add(Embed(*MakeVitBackbone(backbone), normal, preprocess, 4));
  if (!status.ok()) return status.ToString();
  const fs::path index_path = work / "index.faiss";
  status = index.Save(index_path.string());
  if (!status.ok()) return status.ToString();

  nearnd::v1::Manifest manifest;
  manifest.set_model_name(kModelName);
  manifest.set_model_version(kModelVersion);
  *manifest.mutable_backbone() = BackboneFromConfig(config);
  manifest.mutable_backbone()->set_weights_file("backbone.safetensors");
  *manifest.mutable_preprocessing() = PreprocessingFromConfig(preprocess);
  manifest.set_embedding_dim(config.dim);
  manifest.set_metric("l2");
  manifest.set_k(2);
  manifest.set_index_type("Flat");
  manifest.set_index_file("index.faiss");
  manifest.mutable_threshold()->set_value(kThreshold);
  status = WriteBundle(
      manifest, {{"backbone.safetensors", weights.string()}, {"index.faiss", index_path.string()}},
      bundle.string());
  return status.ok() ? "" : status.ToString();
}

// StartScorer runs nearnd-scorer on 127.0.0.1 with ports picked by the system and fills the
// bound ports from its log. Returns nullptr, with the reason in `error`, when it does not serve.
std::unique_ptr<ChildProcess> StartScorer(const fs::path& bundle, int* port, int* metrics_port,
                                          std::string* error) {
  std::unique_ptr<ChildProcess> scorer =
      ChildProcess::Start({NEARND_SCORER_BINARY, "--bundle", bundle.string(), "--host", "127.0.0.1",
                           "--port", "0", "--metrics-port", "0", "--threads", "1",
                           "--max-images-per-request", std::to_string(kMaxImagesPerRequest)});
  if (scorer == nullptr) {
    *error = "failed to start " NEARND_SCORER_BINARY;
    return nullptr;
  }
  const std::optional<std::vector<std::string>> serving = scorer->WaitForStderrMatch(
      std::regex("serving nearnd\\.v1\\.NoveltyService on 127\\.0\\.0\\.1:([0-9]+)[\\s\\S]*"
                 "serving metrics on http://127\\.0\\.0\\.1:([0-9]+)/metrics"),
      kProcessTimeout);
  if (!serving.has_value()) {
    *error = "nearnd-scorer did not start serving; its stderr:\n" + scorer->stderr_text();
    return nullptr;
  }
  *port = std::stoi((*serving)[0]);
  *metrics_port = std::stoi((*serving)[1]);
  return scorer;
}

// IsServing sends grpc.health.v1.Health/Check for the whole server. The request is the empty
// HealthCheckRequest; the response {status: SERVING} encodes as the two bytes 0x08 0x01.
bool IsServing(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::Slice empty;
  const grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(status); });
  if (!done.get_future().get().ok()) return false;
  grpc::Slice bytes;
  if (!response.DumpToSingleSlice(&bytes).ok()) return false;
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size()) ==
         std::string("\x08\x01", 2);
}

bool WaitUntilServing(const std::shared_ptr<grpc::Channel>& channel) {
  const auto deadline = std::chrono::steady_clock::now() + kProcessTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (IsServing(channel)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// SharedScorer is one bundle and one running scorer for every test of this file that only sends
// requests. It is built on first use and torn down at exit.
struct SharedScorer {
  ~SharedScorer() {
    scorer.reset();
    if (!work.empty()) fs::remove_all(work);
  }

  std::string error;
  fs::path work;
  fs::path bundle;
  std::unique_ptr<NoveltyModel> model;
  std::unique_ptr<ChildProcess> scorer;
  int port = 0;
  int metrics_port = 0;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<nearnd::v1::NoveltyService::Stub> stub;
};

std::unique_ptr<SharedScorer> CreateSharedScorer() {
  auto shared = std::make_unique<SharedScorer>();
  shared->work = MakeTempDir("scorer_test");
  if (shared->work.empty()) {
    shared->error = "failed to create a temporary directory";
    return shared;
  }
  shared->bundle = shared->work / "bundle";
  shared->error = WriteTinyBundle(shared->work, shared->bundle);
  if (!shared->error.empty()) return shared;

  absl::StatusOr<std::unique_ptr<NoveltyModel>> model = NoveltyModel::Load(shared->bundle.string());
  if (!model.ok()) {
    shared->error = model.status().ToString();
    return shared;
  }
  shared->model = *std::move(model);

  shared->scorer =
      StartScorer(shared->bundle, &shared->port, &shared->metrics_port, &shared->error);
  if (shared->scorer == nullptr) return shared;
  shared->channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(shared->port),
                                        grpc::InsecureChannelCredentials());
  if (!WaitUntilServing(shared->channel)) {
    shared->error =
        "nearnd-scorer never reported SERVING; its stderr:\n" + shared->scorer->stderr_text();
    return shared;
  }
  shared->stub = nearnd::v1::NoveltyService::NewStub(shared->channel);
  return shared;
}

SharedScorer& Shared() {
  static const std::unique_ptr<SharedScorer> shared = CreateSharedScorer();
  return *shared;
}

grpc::Status Score(const nearnd::v1::ScoreRequest& request, nearnd::v1::ScoreResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return Shared().stub->Score(&context, request, response);
}

nearnd::v1::ScoreRequest RequestOf(const std::vector<std::string>& images) {
  nearnd::v1::ScoreRequest request;
  for (const std::string& image : images) request.add_images(image);
  return request;
}

// InProcessScores decodes and scores images with the same bundle in this process.
std::vector<float> InProcessScores(const std::vector<std::string>& encoded) {
  std::vector<Image> images;
  for (const std::string& bytes : encoded) {
    absl::StatusOr<Image> image = DecodeImage(bytes);
    EXPECT_TRUE(image.ok()) << image.status();
    if (image.ok()) images.push_back(*std::move(image));
  }
  absl::StatusOr<std::vector<float>> scores = Shared().model->Score(images);
  EXPECT_TRUE(scores.ok()) << scores.status();
  return scores.value_or(std::vector<float>());
}

double RelativeDifference(double a, double b) {
  return std::abs(a - b) / std::max({std::abs(a), std::abs(b), 1e-12});
}

// ---------------------------------------------------------------------------------------------
// Metrics scrape

// HttpGet fetches http://127.0.0.1:port/path with a plain socket; returns the whole response.
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return "";
  }
  // HTTP/1.0 makes the server close the connection after one plain, unchunked response.
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  std::string response;
  char buffer[4096];
  ssize_t count = 0;
  while ((count = recv(fd, buffer, sizeof(buffer), 0)) > 0) response.append(buffer, count);
  close(fd);
  return response;
}

std::string ScrapeMetrics() {
  const std::string response = HttpGet(Shared().metrics_port, "/metrics");
  EXPECT_THAT(response, ::testing::StartsWith("HTTP/1.1 200")) << response;
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// SampleValue returns the value of the sample written as `series` (name and labels exactly as
// exposed), or NaN when the scrape has no such line.
double SampleValue(const std::string& scrape, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    if (line.size() > series.size() && line.substr(0, series.size()) == series &&
        line[series.size()] == ' ') {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

std::string RequestsWithCode(const std::string& code) {
  return "nearnd_requests_total{code=\"" + code + "\"}";
}

// ---------------------------------------------------------------------------------------------
// Scoring over gRPC

class ScorerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(Shared().error.empty()) << Shared().error; }

  // Images that decode, as PNG and JPEG, gray and RGB, at the model's size and at others.
  std::vector<std::string> GoodImages() {
    return {Png(MakeImage(8, 8, 1, 11)), Jpeg(MakeImage(9, 9, 3, 12)),
            Png(MakeImage(12, 10, 3, 13)), Jpeg(MakeImage(8, 8, 1, 14))};
  }

  // ExpectGoodRequestSucceeds checks that the server still scores after a failed request.
  void ExpectGoodRequestSucceeds() {
    nearnd::v1::ScoreResponse response;
    const grpc::Status status = Score(RequestOf({Png(MakeImage(8, 8, 1, 3))}), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.scores_size(), 1);
  }
};

TEST_F(ScorerTest, ScoresMatchInProcessModel) {
  const std::vector<std::string> images = GoodImages();

  nearnd::v1::ScoreResponse response;
  const grpc::Status status = Score(RequestOf(images), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  const std::vector<float> expected = InProcessScores(images);
  ASSERT_EQ(response.scores_size(), static_cast<int>(images.size()));
  ASSERT_EQ(expected.size(), images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    EXPECT_LE(RelativeDifference(response.scores(i), expected[i]), 1e-4)
        << "image " << i << ": served " << response.scores(i) << ", in-process " << expected[i];
  }
}

TEST_F(ScorerTest, NormalImageScoresBelowOthers) {
  // Image 0 is in the index, so its nearest neighbour is at distance 0.
  const std::vector<std::string> images = {Png(MakeImage(8, 8, 1, 0)), Png(MakeImage(8, 8, 1, 40))};
  nearnd::v1::ScoreResponse response;
  const grpc::Status status = Score(RequestOf(images), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.scores_size(), 2);
  EXPECT_LT(response.scores(0), response.scores(1));
}

TEST_F(ScorerTest, ResponseNamesServedModel) {
  nearnd::v1::ScoreResponse response;
  const grpc::Status status = Score(RequestOf({Png(MakeImage(8, 8, 1, 1))}), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_name(), kModelName);
  EXPECT_EQ(response.model_version(), kModelVersion);
  EXPECT_FLOAT_EQ(response.threshold(), kThreshold);
}

TEST_F(ScorerTest, MatchingModelNameIsAccepted) {
  nearnd::v1::ScoreRequest request = RequestOf({Png(MakeImage(8, 8, 1, 2))});
  request.set_model_name(kModelName);
  nearnd::v1::ScoreResponse response;
  const grpc::Status status = Score(request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(ScorerTest, CorruptImageIsInvalidArgument) {
  nearnd::v1::ScoreResponse response;
  const grpc::Status status =
      Score(RequestOf({Png(MakeImage(8, 8, 1, 1)), CorruptPng()}), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("image 1:"));
  ExpectGoodRequestSucceeds();
}

TEST_F(ScorerTest, ZeroByteImageIsInvalidArgument) {
  nearnd::v1::ScoreResponse response;
  const grpc::Status status =
      Score(RequestOf({Png(MakeImage(8, 8, 1, 1)), Jpeg(MakeImage(8, 8, 1, 2)), ""}), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("image 2:"));
  ExpectGoodRequestSucceeds();
}

TEST_F(ScorerTest, EmptyRequestIsInvalidArgument) {
  nearnd::v1::ScoreResponse response;
  const grpc::Status status = Score(nearnd::v1::ScoreRequest(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("request has no images"));
  ExpectGoodRequestSucceeds();
}

TEST_F(ScorerTest, TooManyImagesIsInvalidArgument) {
  const std::vector<std::string> images(kMaxImagesPerRequest + 1, Png(MakeImage(8, 8, 1, 5)));
  nearnd::v1::ScoreResponse response;
  const grpc::Status status = Score(RequestOf(images), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("has " + std::to_string(kMaxImagesPerRequest + 1) + " images"));
  EXPECT_THAT(status.error_message(),
              HasSubstr("limit is " + std::to_string(kMaxImagesPerRequest)));
  ExpectGoodRequestSucceeds();
}

TEST_F(ScorerTest, UnknownModelIsNotFound) {
  nearnd::v1::ScoreRequest request = RequestOf({Png(MakeImage(8, 8, 1, 1))});
  request.set_model_name("cats-class-0");
  nearnd::v1::ScoreResponse response;
  const grpc::Status status = Score(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("cats-class-0"));
  EXPECT_THAT(status.error_message(), HasSubstr(kModelName));
}

TEST_F(ScorerTest, ReflectionListsService) {
  // ServerReflectionRequest{list_services: ""} is field 7, an empty string: bytes 0x3a 0x00.
  grpc::GenericStub stub(Shared().channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue queue;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &queue);
  grpc::Slice list_services(std::string("\x3a\x00", 2));
  const grpc::ByteBuffer request(&list_services, 1);
  grpc::ByteBuffer response;
  grpc::Status status;

  // Each step waits for its own completion before the next starts.
  const auto await = [&queue](int expected_tag) {
    void* tag = nullptr;
    bool ok = false;
    return queue.Next(&tag, &ok) && ok && tag == reinterpret_cast<void*>(expected_tag);
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(await(1));
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(await(2));
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(await(3));
  call->Read(&response, reinterpret_cast<void*>(4));
  ASSERT_TRUE(await(4));
  call->Finish(&status, reinterpret_cast<void*>(5));
  ASSERT_TRUE(await(5));
  EXPECT_TRUE(status.ok()) << status.error_message();

  grpc::Slice bytes;
  ASSERT_TRUE(response.DumpToSingleSlice(&bytes).ok());
  const std::string text(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  EXPECT_THAT(text, HasSubstr("nearnd.v1.NoveltyService"));
  EXPECT_THAT(text, HasSubstr("grpc.health.v1.Health"));
}

TEST_F(ScorerTest, MetricsCountRequests) {
  const std::string before = ScrapeMetrics();

  nearnd::v1::ScoreResponse response;
  EXPECT_TRUE(Score(RequestOf({Png(MakeImage(8, 8, 1, 1))}), &response).ok());
  EXPECT_TRUE(
      Score(RequestOf({Png(MakeImage(8, 8, 1, 1)), Jpeg(MakeImage(8, 8, 3, 2))}), &response).ok());
  EXPECT_FALSE(Score(RequestOf({""}), &response).ok());
  nearnd::v1::ScoreRequest unknown_model = RequestOf({Png(MakeImage(8, 8, 1, 1))});
  unknown_model.set_model_name("cats-class-0");
  EXPECT_FALSE(Score(unknown_model, &response).ok());

  const std::string after = ScrapeMetrics();
  const auto delta = [&](const std::string& series) {
    return SampleValue(after, series) - SampleValue(before, series);
  };
  EXPECT_EQ(delta(RequestsWithCode("OK")), 2) << after;
  EXPECT_EQ(delta(RequestsWithCode("INVALID_ARGUMENT")), 1) << after;
  EXPECT_EQ(delta(RequestsWithCode("NOT_FOUND")), 1) << after;
  EXPECT_EQ(delta(RequestsWithCode("RESOURCE_EXHAUSTED")), 0) << after;
  EXPECT_EQ(delta("nearnd_images_scored_total"), 3) << after;
  EXPECT_EQ(delta("nearnd_request_duration_seconds_count"), 4) << after;
  EXPECT_EQ(SampleValue(after, "nearnd_inflight_requests"), 0) << after;
  EXPECT_EQ(SampleValue(after, "nearnd_model_info{model_name=\"" + std::string(kModelName) +
                                   "\",model_version=\"" + kModelVersion + "\"}"),
            1)
      << after;
  EXPECT_GE(SampleValue(after, "nearnd_request_duration_seconds_bucket{le=\"10\"}"), 4) << after;
  EXPECT_GE(SampleValue(after, "nearnd_request_duration_seconds_bucket{le=\"+Inf\"}"), 4) << after;
}

TEST_F(ScorerTest, MetricsPassPromtool) {
  constexpr char kPromtool[] = "/usr/bin/promtool";
  if (!fs::exists(kPromtool)) {
    GTEST_SKIP() << kPromtool << " is not installed (Debian package prometheus); the scrape "
                 << "format is not checked";
  }
  const std::string scrape = ScrapeMetrics();
  const fs::path path = Shared().work / "scrape.txt";
  WriteFile(path, scrape);

  const CommandResult check = RunCommand({kPromtool, "check", "metrics"}, path.string());
  EXPECT_EQ(check.exit_code, 0) << check.stdout_text << check.stderr_text << "\nscrape:\n"
                                << scrape;
}

// ---------------------------------------------------------------------------------------------
// Process lifecycle

TEST(ScorerProcess, DamagedBundleExitsNonZero) {
  ASSERT_TRUE(Shared().error.empty()) << Shared().error;
  const fs::path work = MakeTempDir("scorer_damaged");
  ASSERT_FALSE(work.empty());
  const fs::path bundle = work / "bundle";
  fs::copy(Shared().bundle, bundle, fs::copy_options::recursive);
  {
    // Flip one byte in the middle of the index file; its size stays the same.
    std::fstream index(bundle / "index.faiss", std::ios::in | std::ios::out | std::ios::binary);
    index.seekg(40);
    const char byte = static_cast<char>(index.get());
    index.seekp(40);
    index.put(static_cast<char>(byte ^ 0x5a));
  }

  std::unique_ptr<ChildProcess> scorer =
      ChildProcess::Start({NEARND_SCORER_BINARY, "--bundle", bundle.string(), "--host", "127.0.0.1",
                           "--port", "0", "--metrics-port", "0", "--threads", "1"});
  ASSERT_NE(scorer, nullptr);
  const std::optional<int> exit_code = scorer->Wait(kProcessTimeout);
  fs::remove_all(work);
  ASSERT_TRUE(exit_code.has_value()) << "nearnd-scorer kept running on a damaged bundle";
  EXPECT_NE(*exit_code, 0);
  EXPECT_THAT(scorer->stderr_text(), HasSubstr("index.faiss"));
  EXPECT_THAT(scorer->stderr_text(), HasSubstr("SHA-256"));
}

TEST(ScorerProcess, MissingBundleFlagExitsNonZero) {
  const CommandResult result = RunCommand({NEARND_SCORER_BINARY, "--port", "0"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.stderr_text, HasSubstr("--bundle"));
}

TEST(ScorerProcess, BusyPortExitsNonZero) {
  ASSERT_TRUE(Shared().error.empty()) << Shared().error;
  const int holder = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(holder, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(holder, 1), 0);
  ASSERT_EQ(getsockname(holder, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string busy_port = std::to_string(ntohs(address.sin_port));

  const CommandResult result =
      RunCommand({NEARND_SCORER_BINARY, "--bundle", Shared().bundle.string(), "--host", "127.0.0.1",
                  "--port", busy_port, "--metrics-port", "0", "--threads", "1"});
  close(holder);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.stderr_text, HasSubstr("127.0.0.1:" + busy_port));
  EXPECT_THAT(result.stderr_text, HasSubstr("choose another --port"));
}

TEST(ScorerProcess, SigtermExitsZero) {
  ASSERT_TRUE(Shared().error.empty()) << Shared().error;
  int port = 0;
  int metrics_port = 0;
  std::string error;
  std::unique_ptr<ChildProcess> scorer = StartScorer(Shared().bundle, &port, &metrics_port, &error);
  ASSERT_NE(scorer, nullptr) << error;

  scorer->Signal(SIGTERM);
  const std::optional<int> exit_code = scorer->Wait(kProcessTimeout);
  ASSERT_TRUE(exit_code.has_value()) << "nearnd-scorer did not stop after SIGTERM";
  EXPECT_EQ(*exit_code, 0) << scorer->stderr_text();
  EXPECT_THAT(scorer->stderr_text(), HasSubstr("shut down"));
}

TEST(ScorerProcess, BusyServerIsResourceExhausted) {
  ASSERT_TRUE(Shared().error.empty()) << Shared().error;
  std::unique_ptr<ChildProcess> scorer = ChildProcess::Start(
      {NEARND_SCORER_BINARY, "--bundle", Shared().bundle.string(), "--host", "127.0.0.1", "--port",
       "0", "--metrics-port", "0", "--threads", "1", "--max-inflight", "1"});
  ASSERT_NE(scorer, nullptr);
  const std::optional<std::vector<std::string>> serving = scorer->WaitForStderrMatch(
      std::regex("serving nearnd\\.v1\\.NoveltyService on 127\\.0\\.0\\.1:([0-9]+)"),
      kProcessTimeout);
  ASSERT_TRUE(serving.has_value()) << scorer->stderr_text();
  const std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel("127.0.0.1:" + (*serving)[0], grpc::InsecureChannelCredentials());
  ASSERT_TRUE(WaitUntilServing(channel));
  const std::unique_ptr<nearnd::v1::NoveltyService::Stub> stub =
      nearnd::v1::NoveltyService::NewStub(channel);

  // Large images take long enough to decode that requests sent together overlap, so with one
  // admission slot some of them must be rejected. A burst is retried in case a fast machine
  // finishes every request before the next arrives.
  const nearnd::v1::ScoreRequest slow_request =
      RequestOf(std::vector<std::string>(kMaxImagesPerRequest, Png(MakeImage(1536, 1536, 3, 9))));
  constexpr int kConcurrentRequests = 8;
  int ok_count = 0;
  int exhausted_count = 0;
  std::vector<std::string> other_errors;
  for (int burst = 0; burst < 3 && exhausted_count == 0; ++burst) {
    std::vector<std::future<grpc::Status>> results;
    for (int i = 0; i < kConcurrentRequests; ++i) {
      results.push_back(std::async(std::launch::async, [&stub, &slow_request] {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        nearnd::v1::ScoreResponse response;
        return stub->Score(&context, slow_request, &response);
      }));
    }
    for (std::future<grpc::Status>& result : results) {
      const grpc::Status status = result.get();
      if (status.ok()) {
        ++ok_count;
      } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++exhausted_count;
        EXPECT_THAT(status.error_message(), HasSubstr("--max-inflight"));
      } else {
        other_errors.push_back(status.error_message());
      }
    }
  }
  EXPECT_GE(ok_count, 1);
  EXPECT_GE(exhausted_count, 1);
  EXPECT_THAT(other_errors, ::testing::IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// `nearnd score`

class ScoreClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Shared().error.empty()) << Shared().error;
    work_ = MakeTempDir("score_client");
    ASSERT_FALSE(work_.empty());
  }

  void TearDown() override { fs::remove_all(work_); }

  std::string WriteImage(const std::string& name, const std::string& bytes) {
    const fs::path path = work_ / name;
    WriteFile(path, bytes);
    return path.string();
  }

  CommandResult RunScore(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {NEARND_TRAINER_BINARY, "score", "--target",
                                     "127.0.0.1:" + std::to_string(Shared().port)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunCommand(argv);
  }

  fs::path work_;
};

TEST_F(ScoreClientTest, PrintsScoresInArgumentOrder) {
  const std::vector<std::string> images = {
      Png(MakeImage(8, 8, 1, 21)), Jpeg(MakeImage(9, 9, 3, 22)), Png(MakeImage(8, 8, 1, 23))};
  const std::vector<std::string> files = {WriteImage("f1.png", images[0]),
                                          WriteImage("f2.jpg", images[1]),
                                          WriteImage("f3.png", images[2])};

  // Two images per request, so the files span two requests.
  const CommandResult result = RunScore({"--batch", "2", files[0], files[1], files[2]});
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;

  const std::vector<float> expected = InProcessScores(images);
  ASSERT_EQ(expected.size(), files.size());
  std::vector<std::string> lines = absl::StrSplit(result.stdout_text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), files.size()) << result.stdout_text;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::vector<std::string> fields = absl::StrSplit(lines[i], '\t');
    ASSERT_EQ(fields.size(), 2u) << lines[i];
    EXPECT_EQ(fields[1], files[i]);
    EXPECT_LE(RelativeDifference(std::stod(fields[0]), expected[i]), 1e-4)
        << files[i] << ": printed " << fields[0] << ", in-process " << expected[i];
  }
}

TEST_F(ScoreClientTest, MissingFileNamesIt) {
  const std::string good = WriteImage("good.png", Png(MakeImage(8, 8, 1, 1)));
  const std::string missing = (work_ / "missing.png").string();

  const CommandResult result = RunScore({good, missing});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.stderr_text, HasSubstr(missing));
}

TEST_F(ScoreClientTest, CorruptFileNamesIt) {
  const std::string first = WriteImage("first.png", Png(MakeImage(8, 8, 1, 1)));
  const std::string second = WriteImage("second.png", Png(MakeImage(8, 8, 1, 2)));
  const std::string third = WriteImage("third.png", Png(MakeImage(8, 8, 1, 3)));
  const std::string corrupt = WriteImage("corrupt.png", CorruptPng());

  // The corrupt file is image 1 of the second request, so the client must map the server's
  // index back to the right argument.
  const CommandResult result = RunScore({"--batch", "2", first, second, third, corrupt});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.stderr_text, HasSubstr(corrupt));
  EXPECT_THAT(result.stderr_text, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(result.stderr_text, ::testing::Not(HasSubstr(third)));
}

TEST_F(ScoreClientTest, NoFilesIsUsageError) {
  const CommandResult result = RunScore({});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.stderr_text, HasSubstr("no image files given"));
}

}  // namespace
}  // namespace nearnd
