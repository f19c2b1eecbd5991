// ParseContainerLimits: the shim-safe half of container_limits.h (no allocation, no exceptions).
#include <cstdio>
#include <cstring>

#include "shim/container_limits.h"

namespace gpuslice::shim {
namespace {

bool ParseUnsigned(std::string_view text, std::uint64_t* value) noexcept {
  if (text.empty()) return false;
  std::uint64_t result = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (result > (UINT64_MAX - digit) / 10) return false;
    result = result * 10 + digit;
  }
  *value = result;
  return true;
}

// Printable, no spaces: what a path or UUID in the file may hold (so it round-trips).
bool PlainText(std::string_view value) noexcept {
  for (char c : value) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool CopyPath(std::string_view value, char* out, std::size_t out_size) noexcept {
  if (value.empty() || value.size() >= out_size || value.front() != '/' || !PlainText(value)) {
    return false;
  }
  std::memcpy(out, value.data(), value.size());
  out[value.size()] = '\0';
  return true;
}

std::string_view Trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Splits off the next whitespace-separated token from `*rest`.
std::string_view NextToken(std::string_view* rest) noexcept {
  std::string_view s = Trim(*rest);
  std::size_t end = 0;
  while (end < s.size() && s[end] != ' ' && s[end] != '\t') ++end;
  std::string_view token = s.substr(0, end);
  *rest = s.substr(end);
  return token;
}

bool ParseDevice(std::string_view rest, std::uint32_t version, DeviceLimit* device,
                 const char** why) noexcept {
  bool have_memory = false;
  for (std::string_view token = NextToken(&rest); !token.empty(); token = NextToken(&rest)) {
    const std::size_t eq = token.find('=');
    if (eq == std::string_view::npos) {
      *why =
          "device fields are key=value (index, uuid, memory-bytes, compute-percent, "
          "compute-arbiter, compute-requests, compute-cap-percent, enforcer)";
      return false;
    }
    const std::string_view key = token.substr(0, eq);
    const std::string_view value = token.substr(eq + 1);
    std::uint64_t number = 0;
    if (key == "index") {
      if (!ParseUnsigned(value, &number) || number > 1023) {
        *why = "index must be an integer 0-1023";
        return false;
      }
      device->nvml_index = static_cast<std::int32_t>(number);
    } else if (key == "uuid") {
      if (value == "-") continue;
      if (value.size() >= kMaxUuid || !PlainText(value)) {
        *why = "uuid must be printable and shorter than 96 bytes";
        return false;
      }
      std::memcpy(device->uuid, value.data(), value.size());
      device->uuid[value.size()] = '\0';
    } else if (key == "memory-bytes") {
      if (!ParseUnsigned(value, &number)) {
        *why = "memory-bytes must be a non-negative integer";
        return false;
      }
      device->memory_bytes = number;
      have_memory = true;
    } else if (key == "compute-percent") {
      if (!ParseUnsigned(value, &number) || number < 1 || number > 100) {
        *why = "compute-percent must be an integer 1-100";
        return false;
      }
      device->compute_percent = static_cast<std::uint32_t>(number);
    } else if ((key == "compute-arbiter" || key == "compute-requests" ||
                key == "compute-cap-percent") &&
               version < 2) {
      *why = "compute-arbiter, compute-requests and compute-cap-percent need 'gpuslice-limits 2'";
      return false;
    } else if (key == "compute-arbiter") {
      if (!CopyPath(value, device->arbiter_path, sizeof(device->arbiter_path))) {
        *why = "compute-arbiter must be an absolute path without spaces, shorter than 256 bytes";
        return false;
      }
    } else if (key == "compute-requests") {
      if (!CopyPath(value, device->requests_path, sizeof(device->requests_path))) {
        *why = "compute-requests must be an absolute path without spaces, shorter than 256 bytes";
        return false;
      }
    } else if (key == "compute-cap-percent") {
      if (!ParseUnsigned(value, &number) || number < 1 || number > 100) {
        *why = "compute-cap-percent must be an integer 1-100";
        return false;
      }
      device->compute_cap_percent = static_cast<std::uint32_t>(number);
    } else if (key == "enforcer") {
      if (value != "driver" && value != "shim") {
        *why = "enforcer must be 'driver' or 'shim'";
        return false;
      }
      device->driver_enforced = value == "driver";
    } else {
      *why =
          "unknown device field (accepted: index, uuid, memory-bytes, compute-percent, "
          "compute-arbiter, compute-requests, compute-cap-percent, enforcer)";
      return false;
    }
  }
  if (!have_memory) {
    *why = "device line needs memory-bytes";
    return false;
  }
  if (device->compute_cap_percent != 0 && device->compute_cap_percent < device->compute_percent) {
    *why = "compute-cap-percent must be at least compute-percent";
    return false;
  }
  if (device->nvml_index < 0 && device->uuid[0] == '\0') {
    *why = "device line needs index or uuid";
    return false;
  }
  return true;
}

}  // namespace

bool ParseByteQuantity(std::string_view text, std::uint64_t* bytes) noexcept {
  struct Suffix {
    std::string_view name;
    std::uint64_t multiplier;
  };
  static constexpr Suffix kSuffixes[] = {
      {"Ki", 1ULL << 10}, {"Mi", 1ULL << 20},   {"Gi", 1ULL << 30},
      {"Ti", 1ULL << 40}, {"k", 1000ULL},       {"K", 1000ULL},
      {"M", 1000000ULL},  {"G", 1000000000ULL}, {"T", 1000000000000ULL},
  };
  text = Trim(text);
  std::uint64_t multiplier = 1;
  for (const Suffix& suffix : kSuffixes) {
    if (text.size() > suffix.name.size() && text.ends_with(suffix.name)) {
      multiplier = suffix.multiplier;
      text.remove_suffix(suffix.name.size());
      break;
    }
  }
  std::uint64_t value = 0;
  if (!ParseUnsigned(text, &value)) return false;
  if (value != 0 && multiplier > UINT64_MAX / value) return false;
  *bytes = value * multiplier;
  return true;
}

bool ParseContainerLimits(const char* text, std::size_t size, ContainerLimits* out, char* error,
                          std::size_t error_size) noexcept {
  *out = ContainerLimits{};
  if (error_size > 0) error[0] = '\0';
  std::string_view remaining(text, size);
  unsigned line_number = 0;
  const char* why = nullptr;
  while (!remaining.empty() && why == nullptr) {
    const std::size_t newline = remaining.find('\n');
    std::string_view line = remaining.substr(0, newline);
    remaining =
        newline == std::string_view::npos ? std::string_view{} : remaining.substr(newline + 1);
    ++line_number;
    if (const std::size_t hash = line.find('#'); hash != std::string_view::npos) {
      line = line.substr(0, hash);
    }
    line = Trim(line);
    if (line.empty()) continue;
    std::string_view rest = line;
    const std::string_view key = NextToken(&rest);
    const std::string_view value = Trim(rest);
    std::uint64_t number = 0;
    if (out->version == 0) {
      if (key != "gpuslice-limits" || !ParseUnsigned(value, &number)) {
        why = "the file must start with 'gpuslice-limits <version>'";
      } else if (number < kOldestContainerLimitsVersion || number > kContainerLimitsVersion) {
        why = "unsupported limits file version (this shim reads versions 1 and 2)";
      } else {
        out->version = static_cast<std::uint32_t>(number);
      }
    } else if (key == "region") {
      if (!CopyPath(value, out->region_path, sizeof(out->region_path))) {
        why = "region must be an absolute path without spaces, shorter than 256 bytes";
      }
    } else if (key == "cuda-driver") {
      if (!CopyPath(value, out->cuda_driver_path, sizeof(out->cuda_driver_path))) {
        why = "cuda-driver must be an absolute path without spaces, shorter than 256 bytes";
      }
    } else if (key == "nvml-driver") {
      if (!CopyPath(value, out->nvml_driver_path, sizeof(out->nvml_driver_path))) {
        why = "nvml-driver must be an absolute path without spaces, shorter than 256 bytes";
      }
    } else if (key == "context-overhead-bytes") {
      if (!ParseUnsigned(value, &out->context_overhead_bytes)) {
        why = "context-overhead-bytes must be a non-negative integer";
      }
    } else if (key == "device") {
      if (out->device_count == kMaxLimitedDevices) {
        why = "too many device lines (at most 16)";
      } else if (ParseDevice(value, out->version, &out->devices[out->device_count], &why)) {
        ++out->device_count;
      }
    } else {
      why =
          "unknown setting (accepted: region, cuda-driver, nvml-driver, context-overhead-bytes, "
          "device)";
    }
  }
  if (why == nullptr && out->version == 0) {
    why = "empty file: expected 'gpuslice-limits 2'";
    line_number = 1;
  }
  if (why == nullptr && out->region_path[0] == '\0') {
    why = "missing 'region <path>'";
  }
  if (why != nullptr) {
    if (error_size > 0) std::snprintf(error, error_size, "line %u: %s", line_number, why);
    return false;
  }
  return true;
}

}  // namespace gpuslice::shim
