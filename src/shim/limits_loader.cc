#include "shim/limits_loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
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

bool IsDirectory(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// Waits for `<dir>/limits` or `<dir>/refused`. Writes the limits path to `limits` and returns
// 1 when it appeared, 2 when refused (the reason in `reason`), 0 on timeout.
int WaitForManagedLimits(const char* dir, unsigned wait_ms, char* limits, std::size_t limits_size,
                         char* reason, std::size_t reason_size) {
  char refused[kMaxLimitsPath + 16];
  std::snprintf(limits, limits_size, "%s/limits", dir);
  std::snprintf(refused, sizeof(refused), "%s/refused", dir);
  const unsigned step_ms = 20;
  for (unsigned waited = 0;; waited += step_ms) {
    if (::access(limits, F_OK) == 0) return 1;
    std::size_t size = 0;
    if (::access(refused, F_OK) == 0) {
      (void)ReadWholeFile(refused, reason, reason_size - 1, &size);  // a long reason is cut
      reason[size] = '\0';
      while (size > 0 && (reason[size - 1] == '\n' || reason[size - 1] == '\r')) {
        reason[--size] = '\0';
      }
      return 2;
    }
    if (waited >= wait_ms) return 0;
    const timespec pause{0, static_cast<long>(step_ms) * 1000000L};
    ::nanosleep(&pause, nullptr);
  }
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
  LoadLimitsFrom(kManagedLimitsDir, kLimitsWaitMs, out);
}

void LoadLimitsFrom(const char* managed_dir, unsigned wait_ms, LoadedLimits* out) noexcept {
  static char managed_path[kMaxLimitsPath + 16];
  const char* path = nullptr;
  if (IsDirectory(managed_dir)) {
    // The node agent mounted the directory: a limit is expected, never run unlimited.
    static char reason[512];
    const int found = WaitForManagedLimits(managed_dir, wait_ms, managed_path, sizeof(managed_path),
                                           reason, sizeof(reason));
    if (found != 1) {
      out->enforcing = true;
      out->broken = true;
      if (found == 2) {
        ShimComplain(
            "the node agent refused this container's GPU limits; GPU memory "
            "allocations will fail",
            reason);
      } else {
        ShimComplain(
            "no limits file from the node agent in time (it maps the allocation to "
            "the pod through the kubelet; see its log); GPU memory allocations will fail",
            managed_dir);
      }
      return;
    }
    path = managed_path;
  } else {
    path = LimitsPath();
  }
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
