#pragma once

#include <grpcpp/support/status.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/time/time.h"

namespace nearnd {

// ScorerMetrics is the scorer's set of Prometheus metrics:
//   nearnd_requests_total{code}            Score requests finished, by gRPC status code name
//   nearnd_images_scored_total             images in requests that finished with OK
//   nearnd_request_duration_seconds        Score latency, from arrival to response
//   nearnd_inflight_requests               requests admitted and not yet finished
//   nearnd_model_info{model_name,model_version}  always 1, names the served model
// Thread-safety: every method may run concurrently.
class ScorerMetrics {
 public:
  ScorerMetrics(const std::string& model_name, const std::string& model_version);

  ScorerMetrics(const ScorerMetrics&) = delete;
  ScorerMetrics& operator=(const ScorerMetrics&) = delete;

  // Registry that the metrics endpoint serves.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Counts a request admitted for scoring in nearnd_inflight_requests until RequestFinished.
  void RequestAdmitted();

  // Records a finished request. `admitted` is true when RequestAdmitted was called for it, and
  // `images_scored` is added to nearnd_images_scored_total.
  void RequestFinished(grpc::StatusCode code, absl::Duration duration, bool admitted,
                       int images_scored);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Counter& images_scored_;
  prometheus::Histogram& request_duration_;
  prometheus::Gauge& inflight_;
};

// StatusCodeName returns the canonical upper-case name of a gRPC status code, such as
// "INVALID_ARGUMENT".
std::string StatusCodeName(grpc::StatusCode code);

}  // namespace nearnd
