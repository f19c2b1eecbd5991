#include "kube/api_status.h"

#include <cctype>
#include <nlohmann/json.hpp>

namespace gpuslice::kube {
namespace {

constexpr std::string_view kTailStart = " [HTTP ";

std::string DefaultReason(long http_code) {
  switch (http_code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "Unknown";
  }
}

ErrorCode CodeFor(long http_code, std::string_view reason) {
  if (http_code == 400 || http_code == 422) return ErrorCode::kInvalidArgument;
  if (http_code == 401 || http_code == 403) return ErrorCode::kPermissionDenied;
  if (http_code == 404) return ErrorCode::kNotFound;
  if (http_code == 409 && reason == "AlreadyExists") return ErrorCode::kAlreadyExists;
  if (http_code == 409 || http_code == 410) return ErrorCode::kFailedPrecondition;
  if (http_code == 429 || http_code >= 500) return ErrorCode::kUnavailable;
  return ErrorCode::kInternal;
}

// Reasons are CamelCase words; anything else is dropped so the tail stays parseable.
std::string CleanReason(std::string_view reason) {
  std::string clean;
  for (const char c : reason)
    if (std::isalnum(static_cast<unsigned char>(c))) clean += c;
  return clean;
}

Status Build(std::string_view context, long http_code, std::string reason, std::string message) {
  reason = CleanReason(reason);
  if (reason.empty()) reason = DefaultReason(http_code);
  if (message.empty()) message = "the API server answered " + std::to_string(http_code);
  std::string text = std::string(context) + ": " + message + std::string(kTailStart) +
                     std::to_string(http_code) + " " + reason + "]";
  return {CodeFor(http_code, reason), std::move(text)};
}

}  // namespace

Status StatusFromApiStatusObject(std::string_view context, const nlohmann::json& status) {
  long code = 500;
  std::string reason;
  std::string message;
  if (status.is_object()) {
    if (auto it = status.find("code"); it != status.end() && it->is_number_integer())
      code = it->get<long>();
    if (auto it = status.find("reason"); it != status.end() && it->is_string())
      reason = it->get<std::string>();
    if (auto it = status.find("message"); it != status.end() && it->is_string())
      message = it->get<std::string>();
  }
  return Build(context, code, std::move(reason), std::move(message));
}

Status StatusFromApiResponse(std::string_view context, long http_code, std::string_view body) {
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  const auto kind = parsed.is_object() ? parsed.find("kind") : parsed.end();
  if (kind != parsed.end() && kind->is_string() && kind->get<std::string>() == "Status") {
    parsed["code"] = http_code;  // the HTTP code wins over a body that disagrees
    return StatusFromApiStatusObject(context, parsed);
  }
  std::string text(body.substr(0, 512));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return Build(context, http_code, "", std::move(text));
}

int ApiHttpCode(const Status& status) {
  const std::string& m = status.message();
  const size_t at = m.rfind(kTailStart);
  if (at == std::string::npos || m.back() != ']') return 0;
  int code = 0;
  for (size_t i = at + kTailStart.size(); i < m.size() && m[i] >= '0' && m[i] <= '9'; ++i)
    code = code * 10 + (m[i] - '0');
  return code;
}

std::string ApiReason(const Status& status) {
  if (ApiHttpCode(status) == 0) return "";
  const std::string& m = status.message();
  const size_t space = m.find(' ', m.rfind(kTailStart) + kTailStart.size());
  if (space == std::string::npos) return "";
  return m.substr(space + 1, m.size() - space - 2);
}

}  // namespace gpuslice::kube
