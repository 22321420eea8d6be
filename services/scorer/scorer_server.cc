#include "services/scorer/scorer_server.h"

#include <glog/logging.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <exception>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "core/util/status_macros.h"

namespace nearnd {
namespace {

absl::Status CheckOptions(const ScorerOptions& options) {
  if (options.bundle_dir.empty()) {
    return absl::InvalidArgumentError(
        "no bundle given; pass --bundle with a directory written by `nearnd bundle`");
  }
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--port %d is invalid; use 0 to 65535", options.port));
  }
  if (options.metrics_port < 0 || options.metrics_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--metrics-port %d is invalid; use 0 to 65535", options.metrics_port));
  }
  if (options.limits.max_inflight < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--max-inflight %d is invalid; it must be at least 1", options.limits.max_inflight));
  }
  if (options.limits.max_images_per_request < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--max-images-per-request %d is invalid; it must be at least 1",
                        options.limits.max_images_per_request));
  }
  if (options.max_request_bytes < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--max-request-bytes %d is invalid; it must be at least 1", options.max_request_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

std::string FormatHostPort(const std::string& host, int port) {
  if (absl::StrContains(host, ':')) return absl::StrFormat("[%s]:%d", host, port);
  return absl::StrFormat("%s:%d", host, port);
}

absl::StatusOr<std::unique_ptr<ScorerServer>> ScorerServer::Start(const ScorerOptions& options) {
  NEARND_RETURN_IF_ERROR(CheckOptions(options));
  std::unique_ptr<ScorerServer> scorer(new ScorerServer());

  NEARND_ASSIGN_OR_RETURN(scorer->model_, NoveltyModel::Load(options.bundle_dir));
  const nearnd::v1::Manifest& manifest = scorer->model_->manifest();
  LOG(INFO) << "loaded bundle " << options.bundle_dir << ": model " << manifest.model_name()
            << " version " << manifest.model_version() << ", threshold "
            << manifest.threshold().value();

  scorer->metrics_ =
      std::make_unique<ScorerMetrics>(manifest.model_name(), manifest.model_version());
  NEARND_ASSIGN_OR_RETURN(
      scorer->metrics_server_,
      MetricsHttpServer::Start(options.host, options.metrics_port, scorer->metrics_->registry()));
  scorer->metrics_port_ = scorer->metrics_server_->port();

  scorer->workers_ = std::make_unique<WorkerPool>(options.limits.max_inflight);
  scorer->service_ = std::make_unique<NoveltyServiceImpl>(*scorer->model_, *scorer->metrics_,
                                                          *scorer->workers_, options.limits);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = FormatHostPort(options.host, options.port);
  // NOTE: plaintext only; put TLS in front (a mesh sidecar or an ingress) outside a trusted
  // network.
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &scorer->port_);
  builder.SetMaxReceiveMessageSize(options.max_request_bytes);
  // gRPC sets SO_REUSEPORT by default, so a second scorer on a busy port would silently share
  // its traffic instead of failing to start.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(scorer->service_.get());
  scorer->server_ = builder.BuildAndStart();
  if (scorer->server_ == nullptr || scorer->port_ == 0) {
    return absl::UnavailableError(absl::StrFormat(
        "failed to listen for gRPC on %s; the port may be in use, so choose another --port",
        address));
  }

  LOG(INFO) << "serving nearnd.v1.NoveltyService on "
            << FormatHostPort(options.host, scorer->port_);
  LOG(INFO) << "serving metrics on http://" << FormatHostPort(options.host, scorer->metrics_port_)
            << "/metrics";
  return scorer;
}

ScorerServer::~ScorerServer() { Shutdown(absl::ZeroDuration()); }

void ScorerServer::Shutdown(absl::Duration drain_timeout) {
  if (shut_down_) return;
  shut_down_ = true;

  if (server_ != nullptr) {
    LOG(INFO) << "shutting down: " << service_->inflight()
              << " requests in flight, draining for up to " << absl::FormatDuration(drain_timeout);
    // Stops accepting, waits for in-flight calls until the deadline, then cancels them and
    // waits until every call has finished, which the workers still do.
    server_->Shutdown(absl::ToChronoTime(absl::Now() + drain_timeout));
  }
  workers_.reset();
  if (server_ != nullptr) LOG(INFO) << "shut down";
}

}  // namespace nearnd
