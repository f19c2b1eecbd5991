#include "shim/limits_loader.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gpuslice::shim {
namespace {

// Reads all of `fd` (and closes it); false on a read error or when it does not fit.
bool ReadWholeFd(int fd, char* buffer, std::size_t capacity, std::size_t* size) {
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

bool ReadWholeFile(const char* path, char* buffer, std::size_t capacity, std::size_t* size) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  return ReadWholeFd(fd, buffer, capacity, size);
}

// Whether the object `st` (named `shown` in messages) may lie on a trusted limits path.
bool TrustedObject(const struct stat& st, const char* shown, bool directory,
                   LimitsFileOwners owners, uid_t self_uid, char* why, std::size_t why_size) {
  const bool owner_ok =
      st.st_uid == 0 || (owners == LimitsFileOwners::kRootOrSelf && st.st_uid == self_uid);
  if (!owner_ok) {
    std::snprintf(why, why_size, "%s is owned by uid %u; %s", shown,
                  static_cast<unsigned>(st.st_uid),
                  owners == LimitsFileOwners::kRootOnly
                      ? "this process runs with no_new_privs (gpuslice run --user), so only a "
                        "limits file owned by root, in directories owned by root, is trusted"
                      : "a limits file and its directories must be owned by root or by this "
                        "process's user");
    return false;
  }
  const bool sticky_directory = directory && (st.st_mode & S_ISVTX) != 0;
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !sticky_directory) {
    std::snprintf(why, why_size,
                  "%s is writable by group or others (mode %04o); a limits file and its "
                  "directories must be writable by their owner only (a sticky directory like "
                  "/tmp is accepted)",
                  shown, static_cast<unsigned>(st.st_mode & 07777));
    return false;
  }
  return true;
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

const char* LimitsPathFromEnvironment() {
  const char* from_env = std::getenv("GPUSLICE_LIMITS_FILE");
  return from_env != nullptr && from_env[0] != '\0' ? from_env : nullptr;
}

// Applies the file's limits, lowered (never raised) by GPUSLICE_MEMORY_LIMIT.
void ApplyLimitsText(const char* text, std::size_t size, LoadedLimits* out) {
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
  std::uint64_t bytes = 0;
  if (lower != nullptr && lower[0] != '\0' && !ParseByteQuantity(lower, &bytes)) {
    ShimComplain("ignoring malformed GPUSLICE_MEMORY_LIMIT (expected e.g. 2Gi)", lower);
  } else if (lower != nullptr && lower[0] != '\0') {
    for (std::uint64_t& limit : out->limit_bytes) {
      if (bytes < limit) limit = bytes;  // the environment can lower a limit, never raise it
    }
  }
  for (std::uint32_t i = 0; i < out->limits.device_count; ++i) {
    const DeviceLimit& d = out->limits.devices[i];
    const bool report_only = d.driver_enforced && out->limit_bytes[i] == d.memory_bytes;
    out->refuse_above_bytes[i] = report_only ? UINT64_MAX : out->limit_bytes[i];
  }
}

// Reads the limits file open on `fd` (closing it; -1: it could not be opened) and applies it.
void ReadAndApplyLimits(int fd, const char* path, LoadedLimits* out) {
  static char text[64 * 1024];
  std::size_t size = 0;
  if (fd < 0 || !ReadWholeFd(fd, text, sizeof(text), &size)) {
    ShimComplain("cannot read the limits file; GPU memory allocations will fail", path);
    out->broken = true;
    return;
  }
  ApplyLimitsText(text, size, out);
}

}  // namespace

int OpenTrustedLimitsFile(const char* path, LimitsFileOwners owners, uid_t self_uid, char* why,
                          std::size_t why_size) noexcept {
  char resolved[PATH_MAX];
  if (::realpath(path, resolved) == nullptr) {
    std::snprintf(why, why_size, "%s: %s", path, std::strerror(errno));
    return -1;
  }
  int dir_fd = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct stat st {};
  if (dir_fd < 0 || ::fstat(dir_fd, &st) != 0) {
    std::snprintf(why, why_size, "/: %s", std::strerror(errno));
    if (dir_fd >= 0) ::close(dir_fd);
    return -1;
  }
  if (!TrustedObject(st, "/", true, owners, self_uid, why, why_size)) {
    ::close(dir_fd);
    return -1;
  }
  // Walk the resolved path one component at a time, never following a link.
  char* component = resolved + 1;
  for (;;) {
    char* slash = std::strchr(component, '/');
    const bool last = slash == nullptr;
    if (!last) *slash = '\0';
    const int flags = last ? (O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                           : (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const int next = ::openat(dir_fd, component, flags);
    const int open_errno = errno;
    ::close(dir_fd);
    // `resolved` up to this component, for messages.
    if (next < 0 || ::fstat(next, &st) != 0) {
      std::snprintf(why, why_size, "%s: %s", resolved, std::strerror(open_errno));
      if (next >= 0) ::close(next);
      return -1;
    }
    if (last && !S_ISREG(st.st_mode)) {
      std::snprintf(why, why_size, "%s is not a regular file", resolved);
      ::close(next);
      return -1;
    }
    if (!TrustedObject(st, resolved, !last, owners, self_uid, why, why_size)) {
      ::close(next);
      return -1;
    }
    if (last) return next;
    *slash = '/';
    component = slash + 1;
    dir_fd = next;
  }
}

namespace {

// GPUSLICE_LIMITS_FILE (`gpuslice run`): trusted only as OpenTrustedLimitsFile allows. A process
// with no_new_privs cannot clear it, nor can any process it starts, so a tenant run under
// `gpuslice run --user` cannot return to the same-user rule.
void LoadFromEnvironment(LoadedLimits* out) {
  const char* path = LimitsPathFromEnvironment();
  if (path == nullptr) return;
  out->enforcing = true;
  const LimitsFileOwners owners = ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1
                                      ? LimitsFileOwners::kRootOnly
                                      : LimitsFileOwners::kRootOrSelf;
  static char why[512];
  const int fd = OpenTrustedLimitsFile(path, owners, ::getuid(), why, sizeof(why));
  if (fd < 0) {
    ShimComplain("refusing GPUSLICE_LIMITS_FILE; GPU memory allocations will fail", why);
    out->broken = true;
    return;
  }
  ReadAndApplyLimits(fd, path, out);
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
  } else if (::access(kDefaultLimitsPath, F_OK) == 0) {
    path = kDefaultLimitsPath;  // mounted read-only by the node agent
  } else {
    LoadFromEnvironment(out);
    return;
  }
  out->enforcing = true;
  ReadAndApplyLimits(::open(path, O_RDONLY | O_CLOEXEC), path, out);
}

}  // namespace gpuslice::shim
