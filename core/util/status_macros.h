#pragma once

// Status propagation helpers for functions that return absl::Status or absl::StatusOr.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// NEARND_RETURN_IF_ERROR evaluates an absl::Status expression and returns it from the calling
// function when it is not OK.
#define NEARND_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    const ::absl::Status nearnd_status_ = (expr);    \
    if (!nearnd_status_.ok()) return nearnd_status_; \
  } while (0)

#define NEARND_STATUS_CONCAT_INNER_(a, b) a##b
#define NEARND_STATUS_CONCAT_(a, b) NEARND_STATUS_CONCAT_INNER_(a, b)

// NEARND_ASSIGN_OR_RETURN evaluates an absl::StatusOr expression, returns its status from the
// calling function when it is not OK, and otherwise moves its value into `lhs`.
//
// Example:
//   NEARND_ASSIGN_OR_RETURN(Image image, DecodeImage(bytes));
#define NEARND_ASSIGN_OR_RETURN(lhs, expr) \
  NEARND_ASSIGN_OR_RETURN_IMPL_(NEARND_STATUS_CONCAT_(nearnd_statusor_, __LINE__), lhs, expr)

#define NEARND_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()
