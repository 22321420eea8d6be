#include "services/scorer/scorer_metrics.h"

#include "absl/status/status.h"

namespace nearnd {
namespace {

// Latency buckets from 1 ms to 10 s in 1-2.5-5 steps, because a tiny CPU model scores a request
// in milliseconds and a ViT-B/16 batch of many 224x224 images on CPU takes seconds.
const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* const buckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};
  return *buckets;
}

// Codes the service itself returns. Their series exist from start-up with value 0, so that
// rate() over them works before the first such request; other codes appear when first seen.
constexpr grpc::StatusCode kExpectedCodes[] = {
    grpc::StatusCode::OK,        grpc::StatusCode::INVALID_ARGUMENT,
    grpc::StatusCode::NOT_FOUND, grpc::StatusCode::RESOURCE_EXHAUSTED,
    grpc::StatusCode::CANCELLED, grpc::StatusCode::INTERNAL};

}  // namespace

std::string StatusCodeName(grpc::StatusCode code) {
  // gRPC and absl number their status codes identically.
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

ScorerMetrics::ScorerMetrics(const std::string& model_name, const std::string& model_version)
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("nearnd_requests_total")
                    .Help("Score requests finished, by gRPC status code.")
                    .Register(*registry_)),
      images_scored_(prometheus::BuildCounter()
                         .Name("nearnd_images_scored_total")
                         .Help("Images scored in requests that finished with OK.")
                         .Register(*registry_)
                         .Add({})),
      request_duration_(prometheus::BuildHistogram()
                            .Name("nearnd_request_duration_seconds")
                            .Help("Score request latency from arrival to response, in seconds.")
                            .Register(*registry_)
                            .Add({}, DurationBuckets())),
      inflight_(prometheus::BuildGauge()
                    .Name("nearnd_inflight_requests")
                    .Help("Score requests admitted and not yet finished.")
                    .Register(*registry_)
                    .Add({})) {
  for (grpc::StatusCode code : kExpectedCodes) {
    requests_.Add({{"code", StatusCodeName(code)}});
  }
  prometheus::BuildGauge()
      .Name("nearnd_model_info")
      .Help("Served model; the value is always 1.")
      .Register(*registry_)
      .Add({{"model_name", model_name}, {"model_version", model_version}})
      .Set(1);
}

void ScorerMetrics::RequestAdmitted() { inflight_.Increment(); }

void ScorerMetrics::RequestFinished(grpc::StatusCode code, absl::Duration duration, bool admitted,
                                    int images_scored) {
  requests_.Add({{"code", StatusCodeName(code)}}).Increment();
  request_duration_.Observe(absl::ToDoubleSeconds(duration));
  if (images_scored > 0) images_scored_.Increment(images_scored);
  if (admitted) inflight_.Decrement();
}

}  // namespace nearnd
