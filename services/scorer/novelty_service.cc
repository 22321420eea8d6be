#include "services/scorer/novelty_service.h"

#include <glog/logging.h>

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/data/image.h"

namespace nearnd {
NoveltyServiceImpl::NoveltyServiceImpl(const NoveltyModel& model, ScorerMetrics& metrics,
                                       WorkerPool& workers, NoveltyServiceLimits limits)
    : model_(model), metrics_(metrics), workers_(workers), limits_(limits) {}

grpc::ServerUnaryReactor* NoveltyServiceImpl::Score(grpc::CallbackServerContext* context,
                                                    const nearnd::v1::ScoreRequest* request,
                                                    nearnd::v1::ScoreResponse* response) {
  CallRecord call{context->DefaultReactor(), context->peer(), absl::Now(), /*admitted=*/false};

  grpc::Status status = CheckRequest(*request);
  if (!status.ok()) {
    Finish(call, status, 0);
    return call.reactor;
  }

  // Admission: the slot is taken before the check, so two racing requests cannot both get
  // the last one.
  if (inflight_.fetch_add(1) >= limits_.max_inflight) {
    inflight_.fetch_sub(1);
    Finish(call,
           grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrFormat("the server is at its --max-inflight limit of %d "
                                        "concurrent requests; retry after a backoff",
                                        limits_.max_inflight)),
           0);
    return call.reactor;
  }
  call.admitted = true;
  metrics_.RequestAdmitted();

  workers_.Schedule([this, call, context, request, response] {
    grpc::Status scored;
    try {
      scored = ScoreImages(*context, *request, *response);
    } catch (const std::exception& error) {
      // LibTorch reports failures as exceptions; one must not end the worker thread.
      scored = grpc::Status(grpc::StatusCode::INTERNAL,
                            absl::StrFormat("scoring failed: %s", error.what()));
    }
    Finish(call, scored, scored.ok() ? request->images_size() : 0);
  });
  return call.reactor;
}

grpc::Status NoveltyServiceImpl::CheckRequest(const nearnd::v1::ScoreRequest& request) const {
  const std::string& served = model_.manifest().model_name();
  if (!request.model_name().empty() && request.model_name() != served) {
    return grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        absl::StrFormat("model \"%s\" is not served here; this server serves \"%s\", so send "
                        "that name or leave model_name empty",
                        request.model_name(), served));
  }
  if (request.images_size() == 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "request has no images; send at least one PNG or JPEG image");
  }
  if (request.images_size() > limits_.max_images_per_request) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrFormat("request has %d images but the limit is %d per request; split it into "
                        "smaller requests",
                        request.images_size(), limits_.max_images_per_request));
  }
  return grpc::Status::OK;
}

grpc::Status NoveltyServiceImpl::ScoreImages(grpc::CallbackServerContext& context,
                                             const nearnd::v1::ScoreRequest& request,
                                             nearnd::v1::ScoreResponse& response) const {
  std::vector<Image> images;
  images.reserve(request.images_size());
  for (int i = 0; i < request.images_size(); ++i) {
    absl::StatusOr<Image> image = DecodeImage(request.images(i));
    if (!image.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrFormat("image %d: %s", i, image.status().message()));
    }
    images.push_back(*std::move(image));
  }

  // Inference cannot be interrupted, so a request cancelled while it waited for a worker or
  // while decoding is dropped here rather than scored.
  if (context.IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "request cancelled before scoring");
  }

  // The images decoded, so a failure here lies with the server's model and not the request.
  absl::StatusOr<std::vector<float>> scores = model_.Score(images);
  if (!scores.ok()) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrFormat("scoring failed: %s", scores.status().ToString()));
  }

  const nearnd::v1::Manifest& manifest = model_.manifest();
  response.mutable_scores()->Assign(scores->begin(), scores->end());
  response.set_model_name(manifest.model_name());
  response.set_model_version(manifest.model_version());
  response.set_threshold(manifest.threshold().value());
  return grpc::Status::OK;
}

void NoveltyServiceImpl::Finish(const CallRecord& call, const grpc::Status& status,
                                int images_scored) {
  const absl::Duration duration = absl::Now() - call.start;
  metrics_.RequestFinished(status.error_code(), duration, call.admitted, images_scored);
  if (call.admitted) inflight_.fetch_sub(1);

  if (status.ok()) {
    VLOG(1) << "Score from " << call.peer << ": OK, " << images_scored << " images in "
            << absl::FormatDuration(duration);
  } else {
    LOG(WARNING) << "Score from " << call.peer << " failed with "
                 << StatusCodeName(status.error_code()) << ": " << status.error_message();
  }

  // The call's request, response and context may be freed once Finish returns.
  call.reactor->Finish(status);
}

}  // namespace nearnd
