#include "shim/limits_loader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace gpuslice::shim {
namespace {

bool ReadWholeFile(const char* path, char* buffer, std::size_t capacity, std::size_t* size) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t total = 0;
  while (total < capacity) {
    const ssize_t n = ::read(fd, buffer + total, capacity - total);
    if (n < 0) {
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    total += static_cast<std::size_t>(n);
  }
  ::close(fd);
  *size = total;
  return total < capacity;
}

const char* LimitsPath() {
  if (::access(kDefaultLimitsPath, F_OK) == 0) return kDefaultLimitsPath;
  const char* from_env = std::getenv("GPUSLICE_LIMITS_FILE");
  return from_env != nullptr && from_env[0] != '\0' ? from_env : nullptr;
}

}  // namespace

void ShimComplain(const char* what, const char* detail) noexcept {
  std::fprintf(stderr, "gpuslice: %s%s%s\n", what, detail[0] != '\0' ? ": " : "", detail);
}

void LoadLimitsForProcess(LoadedLimits* out) noexcept {
  const char* path = LimitsPath();
  if (path == nullptr) return;
  out->enforcing = true;
  static char text[64 * 1024];
  std::size_t size = 0;
  if (!ReadWholeFile(path, text, sizeof(text), &size)) {
    ShimComplain("cannot read the limits file; GPU memory allocations will fail", path);
    out->broken = true;
    return;
  }
  char error[256];
  if (!ParseContainerLimits(text, size, &out->limits, error, sizeof(error))) {
    ShimComplain("invalid limits file; GPU memory allocations will fail", error);
    out->broken = true;
    return;
  }
  for (std::uint32_t i = 0; i < out->limits.device_count; ++i) {
    out->limit_bytes[i] = out->limits.devices[i].memory_bytes;
  }
  const char* lower = std::getenv("GPUSLICE_MEMORY_LIMIT");
  if (lower == nullptr || lower[0] == '\0') return;
  std::uint64_t bytes = 0;
  if (!ParseByteQuantity(lower, &bytes)) {
    ShimComplain("ignoring malformed GPUSLICE_MEMORY_LIMIT (expected e.g. 2Gi)", lower);
    return;
  }
  for (std::uint64_t& limit : out->limit_bytes) {
    if (bytes < limit) limit = bytes;  // the environment can lower a limit, never raise it
  }
}

}  // namespace gpuslice::shim
