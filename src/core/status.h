// Status and Result<T>: the single error style of the gpuslice control plane.
//
// A Result<T> holds either a value or a Status describing why there is none. Messages are
// written for the person who has to fix the problem: what was wrong, where, what is accepted.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace gpuslice {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,     // bad input: config, request, flag
  kNotFound,            // a named thing does not exist
  kAlreadyExists,       // a thing that must be unique is not
  kFailedPrecondition,  // the system is not in a state that allows the operation
  kResourceExhausted,   // out of GPUs, memory, slots
  kUnavailable,         // a dependency (driver, file, peer) cannot be reached
  kPermissionDenied,    // policy forbids it
  kInternal,            // a bug: an invariant did not hold
};

std::string_view ErrorCodeName(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "INVALID_ARGUMENT: message", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(std::string_view context) const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string message) {
  return {ErrorCode::kInvalidArgument, std::move(message)};
}
inline Status NotFound(std::string message) { return {ErrorCode::kNotFound, std::move(message)}; }
inline Status AlreadyExists(std::string message) {
  return {ErrorCode::kAlreadyExists, std::move(message)};
}
inline Status FailedPrecondition(std::string message) {
  return {ErrorCode::kFailedPrecondition, std::move(message)};
}
inline Status ResourceExhausted(std::string message) {
  return {ErrorCode::kResourceExhausted, std::move(message)};
}
inline Status Unavailable(std::string message) {
  return {ErrorCode::kUnavailable, std::move(message)};
}
inline Status PermissionDenied(std::string message) {
  return {ErrorCode::kPermissionDenied, std::move(message)};
}
inline Status Internal(std::string message) { return {ErrorCode::kInternal, std::move(message)}; }

// Result<T>: a value or a non-OK Status (std::expected-like; C++20 has no std::expected).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(data_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  explicit operator bool() const { return ok(); }

  // The error; Status::Ok() when there is a value.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(data_); }

  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace gpuslice

#define GPUSLICE_CONCAT_INNER_(a, b) a##b
#define GPUSLICE_CONCAT_(a, b) GPUSLICE_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function if `expr` (a Status) is not OK.
#define GPUSLICE_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::gpuslice::Status gpuslice_status_ = (expr);        \
    if (!gpuslice_status_.ok()) return gpuslice_status_; \
  } while (false)

// `GPUSLICE_ASSIGN_OR_RETURN(auto x, Compute());` declares x from a Result or returns its error.
// It expands to several statements: use it only directly inside a braced block.
#define GPUSLICE_ASSIGN_OR_RETURN(lhs, expr) \
  GPUSLICE_ASSIGN_OR_RETURN_IMPL_(GPUSLICE_CONCAT_(gpuslice_result_, __LINE__), lhs, expr)
// NOLINTBEGIN(bugprone-macro-parentheses): `lhs` may be a declaration, which cannot be wrapped.
#define GPUSLICE_ASSIGN_OR_RETURN_IMPL_(result, lhs, expr) \
  auto result = (expr);                                    \
  if (!result.ok()) return result.status();                \
  lhs = std::move(result).value()
// NOLINTEND(bugprone-macro-parentheses)
