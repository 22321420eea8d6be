#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <string>

#include "absl/time/time.h"
#include "core/scoring/novelty_model.h"
#include "nearnd/v1/novelty.grpc.pb.h"
#include "services/scorer/scorer_metrics.h"
#include "services/scorer/worker_pool.h"

namespace nearnd {

// NoveltyServiceLimits bounds the work one service instance accepts.
struct NoveltyServiceLimits {
  // Requests decoded and scored at the same time; one more is rejected with RESOURCE_EXHAUSTED.
  int max_inflight = 8;

  // Images in one request; more is rejected with INVALID_ARGUMENT.
  int max_images_per_request = 256;
};

// NoveltyServiceImpl serves nearnd.v1.NoveltyService with the gRPC callback API. Cheap checks
// run on the gRPC thread; decoding and scoring run on `workers`.
//
// Status codes of Score:
//   INVALID_ARGUMENT    no images, more than max_images_per_request images, or an image that
//                       does not decode. The message names a bad image as "image i", where i
//                       is its 0-based index in ScoreRequest.images.
//   NOT_FOUND           model_name is set and is not the served model
//   RESOURCE_EXHAUSTED  max_inflight requests are already being scored
//   CANCELLED           the client cancelled before scoring started
//   INTERNAL            the model failed on images that decoded
// Every failed request is logged once at WARNING with the peer and the code.
//
// Thread-safety: gRPC calls Score concurrently. The model, metrics and workers must outlive
// the service, and the service must outlive the grpc::Server it is registered with.
class NoveltyServiceImpl final : public nearnd::v1::NoveltyService::CallbackService {
 public:
  NoveltyServiceImpl(const NoveltyModel& model, ScorerMetrics& metrics, WorkerPool& workers,
                     NoveltyServiceLimits limits);

  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const nearnd::v1::ScoreRequest* request,
                                  nearnd::v1::ScoreResponse* response) override;

  // Requests admitted for scoring and not yet finished.
  int inflight() const { return inflight_.load(); }

 private:
  // Per-request facts that Finish records once the request is done.
  struct CallRecord {
    grpc::ServerUnaryReactor* reactor;
    std::string peer;
    absl::Time start;
    bool admitted;
  };

  // CheckRequest validates the model name and the image count without decoding anything.
  grpc::Status CheckRequest(const nearnd::v1::ScoreRequest& request) const;

  // ScoreImages decodes and scores every image into `response`.
  grpc::Status ScoreImages(grpc::CallbackServerContext& context,
                           const nearnd::v1::ScoreRequest& request,
                           nearnd::v1::ScoreResponse& response) const;

  // Finish records metrics, logs a failure, releases the admission slot and completes the call.
  void Finish(const CallRecord& call, const grpc::Status& status, int images_scored);

  const NoveltyModel& model_;
  ScorerMetrics& metrics_;
  WorkerPool& workers_;
  const NoveltyServiceLimits limits_;
  std::atomic<int> inflight_{0};
};

}  // namespace nearnd
