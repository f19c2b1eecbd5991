// The shared-file mappings of the shim's regions (the accounting region, the compute arbiter's
// grant page and request files): creating one in the control plane, and mapping one that must be
// exactly what the control plane created. No allocation, no exceptions: usable in the shim's
// constructor. Each returns 0 or an errno value.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace gpuslice::shim {

// Maps the file open as `fd` with `prot` over `bytes`. EPROTO when it is not a regular file or
// its size is not `bytes` (with `at_least`: smaller than `bytes`).
inline int MapRegularFile(int fd, std::size_t bytes, int prot, bool at_least,
                          void** mapping) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno;
  const auto size = static_cast<std::size_t>(st.st_size);
  if (!S_ISREG(st.st_mode) || (at_least ? size < bytes : size != bytes)) return EPROTO;
  void* m = ::mmap(nullptr, bytes, prot, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) return errno;
  *mapping = m;
  return 0;
}

enum class CreateHow {
  kInPlace,    // keeps the inode and its contents (mappings others hold stay valid)
  kFreshZero,  // truncated to 0 first, under an exclusive flock: every byte reads zero
};

// Opens `path` (created with `mode` when absent), sets its mode, sizes it to `bytes`, maps it
// read-write and lets `init(void* mapping)` (returning 0 or an errno value) fill it.
template <typename Init>
int CreateMappedFile(const char* path, unsigned mode, std::size_t bytes, CreateHow how,
                     Init init) noexcept {
  const int fd = ::open(path, O_RDWR | O_CREAT | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) return errno;
  const bool fresh = how == CreateHow::kFreshZero;
  int result = 0;
  struct stat st {};
  if ((fresh && ::flock(fd, LOCK_EX) != 0) || ::fchmod(fd, static_cast<mode_t>(mode)) != 0 ||
      ::fstat(fd, &st) != 0 || (fresh && ::ftruncate(fd, 0) != 0) ||
      ((fresh || static_cast<std::size_t>(st.st_size) != bytes) &&
       ::ftruncate(fd, static_cast<off_t>(bytes)) != 0)) {
    result = errno;
  }
  if (result == 0) {
    void* mapping = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapping == MAP_FAILED) {
      result = errno;
    } else {
      result = init(mapping);
      ::munmap(mapping, bytes);
    }
  }
  if (fresh) ::flock(fd, LOCK_UN);
  ::close(fd);
  return result;
}

}  // namespace gpuslice::shim
