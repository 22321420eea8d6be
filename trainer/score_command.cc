// `nearnd score`: a command-line client of a running nearnd-scorer.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "nearnd/v1/novelty.grpc.pb.h"
#include "trainer/commands.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Address of the scorer, HOST:PORT.");
ABSL_FLAG(int, batch, 64, "Images sent in one Score request.");
ABSL_FLAG(int, timeout, 60, "Deadline of each Score request, in seconds.");
ABSL_FLAG(std::string, model, "",
          "Model name the scorer must serve; empty accepts the model it serves.");

namespace nearnd {
namespace {

constexpr char kScoreUsage[] = "usage: nearnd score --target HOST:PORT FILE...";

absl::StatusOr<std::string> ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrFormat("cannot read image file %s: %s", path, std::strerror(errno)));
  }
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(
        absl::StrFormat("cannot read image file %s: %s", path, std::strerror(errno)));
  }
  return bytes.str();
}

// DescribeFiles names the files of one request, which are consecutive arguments.
std::string DescribeFiles(const std::vector<std::string>& files, size_t begin, size_t end) {
  if (end - begin == 1) return absl::StrFormat("file %s", files[begin]);
  return absl::StrFormat("files %s to %s (%d files)", files[begin], files[end - 1], end - begin);
}

// ImageIndexInMessage returns i when a server message starts with "image i", the form the
// scorer uses to name a request image by its 0-based position, and -1 otherwise.
int ImageIndexInMessage(const std::string& message) {
  constexpr absl::string_view kPrefix = "image ";
  if (!absl::StartsWith(message, kPrefix)) return -1;
  const size_t digits_end = message.find_first_not_of("0123456789", kPrefix.size());
  const absl::string_view digits =
      absl::string_view(message).substr(kPrefix.size(), digits_end - kPrefix.size());
  int index = -1;
  if (digits.empty() || !absl::SimpleAtoi(digits, &index)) return -1;
  return index;
}

// HintFor returns advice for the gRPC failures a user can fix from the command line.
std::string HintFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
      return "; check that nearnd-scorer is running there and that --target is right";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "; raise --timeout or lower --batch";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "; the scorer is busy or the request too large, so retry later or lower --batch";
    default:
      return "";
  }
}

// RpcError turns a failed Score call into a status that names the file of the image the server
// reported, or every file of the request when the server named no image.
absl::Status RpcError(const grpc::Status& rpc, const std::string& target,
                      const std::vector<std::string>& files, size_t begin, size_t end) {
  const std::string code_name =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(rpc.error_code()));
  const int image = ImageIndexInMessage(rpc.error_message());
  std::string subject;
  if (image >= 0 && static_cast<size_t>(image) < end - begin) {
    subject = absl::StrFormat("file %s", files[begin + image]);
  } else {
    subject = DescribeFiles(files, begin, end);
  }
  // gRPC and absl number their status codes identically.
  return absl::Status(static_cast<absl::StatusCode>(rpc.error_code()),
                      absl::StrFormat("scorer at %s failed on %s with %s: %s%s", target, subject,
                                      code_name, rpc.error_message(), HintFor(rpc.error_code())));
}

}  // namespace

absl::Status RunScore(const std::vector<std::string>& args) {
  if (args.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no image files given; ", kScoreUsage));
  }
  const std::string target = absl::GetFlag(FLAGS_target);
  const int batch = absl::GetFlag(FLAGS_batch);
  const int timeout_seconds = absl::GetFlag(FLAGS_timeout);
  if (batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--batch %d is invalid; send at least 1 image per request", batch));
  }
  if (timeout_seconds < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--timeout %d is invalid; use at least 1 second", timeout_seconds));
  }

  // NOTE: plaintext only, matching nearnd-scorer; reach a TLS endpoint through a local proxy.
  const std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  const std::unique_ptr<nearnd::v1::NoveltyService::Stub> stub =
      nearnd::v1::NoveltyService::NewStub(channel);

  for (size_t begin = 0; begin < args.size(); begin += batch) {
    const size_t end = std::min(args.size(), begin + static_cast<size_t>(batch));

    nearnd::v1::ScoreRequest request;
    request.set_model_name(absl::GetFlag(FLAGS_model));
    for (size_t i = begin; i < end; ++i) {
      absl::StatusOr<std::string> bytes = ReadFileBytes(args[i]);
      if (!bytes.ok()) return bytes.status();
      request.add_images(*std::move(bytes));
    }

    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(timeout_seconds)));
    nearnd::v1::ScoreResponse response;
    const grpc::Status rpc = stub->Score(&context, request, &response);
    if (!rpc.ok()) return RpcError(rpc, target, args, begin, end);
    if (static_cast<size_t>(response.scores_size()) != end - begin) {
      return absl::InternalError(
          absl::StrFormat("scorer at %s returned %d scores for %d images of %s", target,
                          response.scores_size(), end - begin, DescribeFiles(args, begin, end)));
    }

    for (size_t i = begin; i < end; ++i) {
      std::printf("%.9g\t%s\n", response.scores(static_cast<int>(i - begin)), args[i].c_str());
    }
    std::fflush(stdout);
  }
  return absl::OkStatus();
}

}  // namespace nearnd
