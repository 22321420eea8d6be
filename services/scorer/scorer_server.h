#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/scoring/novelty_model.h"
#include "services/scorer/metrics_http_server.h"
#include "services/scorer/novelty_service.h"
#include "services/scorer/scorer_metrics.h"
#include "services/scorer/worker_pool.h"

namespace nearnd {

// ScorerOptions configures a scorer. The nearnd-scorer flags of the same names default to
// these values.
struct ScorerOptions {
  // Bundle directory written by `nearnd bundle`. Required.
  std::string bundle_dir;

  // Address that both the gRPC server and the metrics endpoint listen on.
  std::string host = "0.0.0.0";

  // gRPC and metrics ports; 0 lets the system pick a free port, which port() and
  // metrics_port() return.
  int port = 50051;
  int metrics_port = 9464;

  NoveltyServiceLimits limits;

  // Largest request message accepted, in bytes. gRPC's default of 4 MiB holds about 40 PNG images
  // of 224x224 at an estimated 100 KB each, fewer than the 64 that `nearnd score` sends.
  int max_request_bytes = 64 << 20;
};

// ScorerServer is a running scorer: the model of one bundle, the gRPC server with
// nearnd.v1.NoveltyService, health checking and reflection, and the Prometheus endpoint at
// /metrics.
class ScorerServer {
 public:
  // Start loads and verifies the bundle, then starts serving. Errors name the bundle file or
  // the address that failed.
  static absl::StatusOr<std::unique_ptr<ScorerServer>> Start(const ScorerOptions& options);

  // Shuts down with no time to drain when Shutdown has not run.
  ~ScorerServer();

  ScorerServer(const ScorerServer&) = delete;
  ScorerServer& operator=(const ScorerServer&) = delete;

  // Shutdown stops accepting requests, lets in-flight ones finish for up to `drain_timeout`,
  // cancels the rest and stops the workers. A request whose decoding started is not interrupted,
  // so Shutdown can outlast the timeout by one request's decoding and scoring. Later calls do
  // nothing.
  void Shutdown(absl::Duration drain_timeout);

  // Bound ports, useful when the options asked for port 0.
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }

  const NoveltyModel& model() const { return *model_; }

 private:
  ScorerServer() = default;

  // Members are destroyed in reverse order: the gRPC server first, then the service it calls,
  // the workers, the metrics endpoint and the model.
  std::unique_ptr<NoveltyModel> model_;
  std::unique_ptr<ScorerMetrics> metrics_;
  std::unique_ptr<MetricsHttpServer> metrics_server_;
  std::unique_ptr<WorkerPool> workers_;
  std::unique_ptr<NoveltyServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;
};

// FormatHostPort joins a host and a port, bracketing IPv6 hosts: "[::1]:50051".
std::string FormatHostPort(const std::string& host, int port);

}  // namespace nearnd
