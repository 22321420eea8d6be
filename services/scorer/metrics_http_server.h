#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace nearnd {

// MetricsHttpServer serves the Prometheus text format of a collectable at GET /metrics. It
// handles one connection at a time and closes each after one response.
//
// prometheus::Exposer cannot do this job in nearnd binaries. It runs on civetweb, and the
// civetweb 1.15 of Debian 12 starts its threads with a fixed 100 KiB stack. glibc's
// pthread_create rejects that stack with EINVAL once the static TLS of the loaded libraries is
// larger, and OpenBLAS (60 KiB) and glog (30 KiB) beside LibTorch already exceed it.
class MetricsHttpServer {
 public:
  // Start listens on host:port, where port 0 picks a free port, and serves on a new thread.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port, std::shared_ptr<prometheus::Collectable> metrics);

  // Stops serving and joins the thread; a scrape in progress finishes first.
  ~MetricsHttpServer();

  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Bound port.
  int port() const { return port_; }

 private:
  MetricsHttpServer(int listen_fd, int stop_read_fd, int stop_write_fd, int port,
                    std::shared_ptr<prometheus::Collectable> metrics);

  // Accepts connections until the destructor writes to the stop pipe.
  void Serve();

  // Reads one request from `connection` and writes the response.
  void HandleConnection(int connection) const;

  const int listen_fd_;
  const int stop_read_fd_;
  const int stop_write_fd_;
  const int port_;
  const std::shared_ptr<prometheus::Collectable> metrics_;
  std::thread thread_;
};

}  // namespace nearnd
