#include "services/scorer/metrics_http_server.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace nearnd {
namespace {

// Maximum bytes of a request head that are read. A scrape request has a few hundred.
constexpr size_t kMaxRequestBytes = 8192;

// Time a client gets to send its request and to take the response, so that a stalled client
// cannot hold the single serving thread for long.
constexpr int kIoTimeoutSeconds = 5;

constexpr int kListenBacklog = 16;

// The content type of the Prometheus text exposition format, version 0.0.4.
constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// BindListener returns a listening socket on host:port, trying each address the host resolves to.
absl::StatusOr<int> BindListener(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* addresses = nullptr;
  const std::string service = std::to_string(port);
  const int resolved = getaddrinfo(host.c_str(), service.c_str(), &hints, &addresses);
  if (resolved != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot resolve metrics host %s: %s", host, gai_strerror(resolved)));
  }

  int last_errno = 0;
  int listen_fd = -1;
  for (addrinfo* address = addresses; address != nullptr; address = address->ai_next) {
    listen_fd =
        socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC, address->ai_protocol);
    if (listen_fd < 0) {
      last_errno = errno;
      continue;
    }
    const int reuse = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse));
    if (bind(listen_fd, address->ai_addr, address->ai_addrlen) == 0 &&
        listen(listen_fd, kListenBacklog) == 0) {
      break;
    }
    last_errno = errno;
    close(listen_fd);
    listen_fd = -1;
  }
  freeaddrinfo(addresses);

  if (listen_fd < 0) {
    return absl::UnavailableError(absl::StrFormat(
        "failed to listen for metrics on %s port %d: %s; choose another --metrics-port", host, port,
        std::strerror(last_errno)));
  }
  return listen_fd;
}

int BoundPort(int listen_fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (getsockname(listen_fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
}

// ReadRequestHead reads until the blank line that ends the request head, the size limit, the
// timeout or the end of the connection, and returns what arrived.
std::string ReadRequestHead(int connection) {
  std::string head;
  char buffer[1024];
  while (head.size() < kMaxRequestBytes && !absl::StrContains(head, "\r\n\r\n")) {
    const ssize_t count = recv(connection, buffer, sizeof(buffer), 0);
    if (count <= 0) break;
    head.append(buffer, static_cast<size_t>(count));
  }
  return head;
}

void SendAll(int connection, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t count = send(connection, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (count <= 0) return;
    sent += static_cast<size_t>(count);
  }
}

std::string Response(absl::string_view status, absl::string_view content_type,
                     absl::string_view extra_headers, const std::string& body) {
  return absl::StrFormat(
      "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n%s",
      status, content_type, body.size(), extra_headers, body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, std::shared_ptr<prometheus::Collectable> metrics) {
  absl::StatusOr<int> listen_fd = BindListener(host, port);
  if (!listen_fd.ok()) return listen_fd.status();

  int stop_pipe[2];
  if (pipe2(stop_pipe, O_CLOEXEC) != 0) {
    close(*listen_fd);
    return absl::InternalError(
        absl::StrFormat("failed to create the metrics stop pipe: %s", std::strerror(errno)));
  }

  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer(
      *listen_fd, stop_pipe[0], stop_pipe[1], BoundPort(*listen_fd), std::move(metrics)));
  server->thread_ = std::thread([server = server.get()] { server->Serve(); });
  return server;
}

MetricsHttpServer::MetricsHttpServer(int listen_fd, int stop_read_fd, int stop_write_fd, int port,
                                     std::shared_ptr<prometheus::Collectable> metrics)
    : listen_fd_(listen_fd),
      stop_read_fd_(stop_read_fd),
      stop_write_fd_(stop_write_fd),
      port_(port),
      metrics_(std::move(metrics)) {}

MetricsHttpServer::~MetricsHttpServer() {
  const char stop = 's';
  if (write(stop_write_fd_, &stop, 1) != 1) {
    PLOG(ERROR) << "failed to signal the metrics server to stop";
  }
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(stop_read_fd_);
  close(stop_write_fd_);
}

void MetricsHttpServer::Serve() {
  while (true) {
    pollfd watched[2] = {{listen_fd_, POLLIN, 0}, {stop_read_fd_, POLLIN, 0}};
    if (poll(watched, 2, -1) < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << "metrics server stopped because poll failed";
      return;
    }
    if (watched[1].revents != 0) return;
    if ((watched[0].revents & POLLIN) == 0) continue;

    const int connection = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) {
      // The client may have gone between poll and accept. A lasting failure shows again at the
      // next poll.
      continue;
    }
    const timeval timeout{kIoTimeoutSeconds, 0};
    setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    HandleConnection(connection);
    close(connection);
  }
}

void MetricsHttpServer::HandleConnection(int connection) const {
  const std::string head = ReadRequestHead(connection);
  const absl::string_view request_line = absl::string_view(head).substr(0, head.find("\r\n"));
  const std::vector<absl::string_view> parts = absl::StrSplit(request_line, ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    SendAll(connection, Response("400 Bad Request", "text/plain; charset=utf-8", "",
                                 "invalid HTTP request; send GET /metrics\n"));
    return;
  }

  const absl::string_view method = parts[0];
  const absl::string_view path = parts[1].substr(0, parts[1].find('?'));
  if (path != "/metrics") {
    SendAll(connection, Response("404 Not Found", "text/plain; charset=utf-8", "",
                                 "not found; metrics are at /metrics\n"));
    return;
  }
  if (method != "GET" && method != "HEAD") {
    SendAll(connection, Response("405 Method Not Allowed", "text/plain; charset=utf-8",
                                 "Allow: GET, HEAD\r\n", "use GET for /metrics\n"));
    return;
  }

  const std::string body = prometheus::TextSerializer().Serialize(metrics_->Collect());
  std::string response = Response("200 OK", kMetricsContentType, "", body);
  if (method == "HEAD") response.resize(response.size() - body.size());
  SendAll(connection, response);
}

}  // namespace nearnd
