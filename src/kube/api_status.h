// Errors from the Kubernetes API as gpuslice::Status values.
//
// The message is "<context>: <API Status message> [HTTP <code> <Reason>]", e.g.
// "PUT pods default/p1: Operation cannot be fulfilled on pods "p1": the object has been
// modified [HTTP 409 Conflict]". ApiHttpCode/ApiReason read the tail back, so callers can branch
// on the API's reason without a separate error type.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.h"

namespace gpuslice::kube {

// Builds the Status for a non-2xx response. `body` is the API's metav1.Status when it sent one;
// otherwise its text is used as the message. Codes map to: 400/422 kInvalidArgument,
// 401/403 kPermissionDenied, 404 kNotFound, 409 AlreadyExists kAlreadyExists, 409 Conflict and
// 410 Expired/Gone kFailedPrecondition, 429/5xx kUnavailable, anything else kInternal.
Status StatusFromApiResponse(std::string_view context, long http_code, std::string_view body);

// Builds the Status for a watch ERROR event's metav1.Status object.
Status StatusFromApiStatusObject(std::string_view context, const nlohmann::json& status);

// The HTTP code recorded in a Status from this file, or 0.
int ApiHttpCode(const Status& status);
// The API reason ("NotFound", "Conflict", "Expired", ...) recorded in a Status, or "".
std::string ApiReason(const Status& status);

inline bool IsNotFound(const Status& s) { return ApiHttpCode(s) == 404; }
inline bool IsConflict(const Status& s) {
  return ApiHttpCode(s) == 409 && ApiReason(s) == "Conflict";
}
inline bool IsAlreadyExists(const Status& s) {
  return ApiHttpCode(s) == 409 && ApiReason(s) == "AlreadyExists";
}
// 410: the requested resourceVersion is too old; the caller must relist.
inline bool IsExpired(const Status& s) { return ApiHttpCode(s) == 410; }

}  // namespace gpuslice::kube
