// Error vocabulary: absl::Status / absl::StatusOr plus the two propagation macros that Debian's
// Abseil (20220623) does not ship. Our interfaces never throw; expected failures are values.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KVR_STATUS_CONCAT_INNER_(a, b) a##b
#define KVR_STATUS_CONCAT_(a, b) KVR_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define KVR_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status kvr_status_ = (expr);       \
    if (!kvr_status_.ok()) return kvr_status_; \
  } while (0)

// KVR_ASSIGN_OR_RETURN(lhs, expr): evaluates a StatusOr; on error returns its status, else moves
// the value into `lhs` (which may be a declaration, e.g. `auto x`).
#define KVR_ASSIGN_OR_RETURN(lhs, expr) \
  KVR_ASSIGN_OR_RETURN_IMPL_(KVR_STATUS_CONCAT_(kvr_statusor_, __LINE__), lhs, expr)
#define KVR_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return std::move(tmp).status();   \
  lhs = std::move(tmp).value()
