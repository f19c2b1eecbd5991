// ArbiterRegion: a tenant process's view of its GPU's compute arbiter (compute_arbiter.h):
// the GPU's grant page, mapped READ-ONLY (PROT_READ over an O_RDONLY descriptor, so a read-only
// mount suffices), and its container's request file, mapped read-write, in which it takes one
// process record. The process holds an open-file-description lock on its record's first byte
// through its own descriptor, so the referee sees the record alive exactly while the process is
// (exit, exec, SIGKILL — any pid namespace). Neither file is ever created or repaired here: a
// wrong magic, version or size is refused (EPROTO) and launches then run unarbitrated.
//
// Also the control plane's creation of both files (CreateGrantPage, CreateRequests).
#pragma once

#include <cstdint>

#include "shim/compute_arbiter.h"

namespace gpuslice::shim {

class ArbiterRegion final : public Doorbell {
 public:
  ArbiterRegion() = default;
  ~ArbiterRegion() override;
  ArbiterRegion(const ArbiterRegion&) = delete;
  ArbiterRegion& operator=(const ArbiterRegion&) = delete;

  // Control plane: creates the file with `mode`, or re-initialises an existing one IN PLACE (same
  // inode, never truncated: processes that map it keep a valid mapping). Returns 0 or errno.
  static int CreateGrantPage(const char* path, unsigned mode = 0644) noexcept;
  static int CreateRequests(const char* path, unsigned mode = 0666) noexcept;

  // Maps the grant page read-only and the container's request file read-write. ENOENT when
  // missing, EPROTO when either is not what the control plane wrote.
  int Open(const char* grant_path, const char* requests_path) noexcept;
  bool is_open() const noexcept { return page_ != nullptr; }

  // Takes a process record (and its liveness lock). kNoTenant when all are taken.
  std::uint32_t Join(std::int32_t pid) noexcept;
  // Normal exit: gives the record up (want 0, handed back) and drops the lock.
  void Leave(std::uint32_t process) noexcept;
  // In a forked child: a descriptor of its own (the parent's lock stays the parent's).
  int ReopenDescriptor(const char* requests_path) noexcept;

  const ArbiterGrantPage* page() const noexcept { return page_; }
  // This container's slot on the grant page (matched by the request file's identity), or
  // kNoTenant while the referee does not list it.
  std::uint32_t FindTenantSlot() const noexcept;
  ArbiterRequests* requests() noexcept { return requests_; }
  // Waits until the grant page's seq differs from `seen` or `timeout_ns` passes (FUTEX_WAIT on
  // the read-only mapping).
  void WaitForChange(std::uint32_t seen, std::uint64_t timeout_ns) const noexcept;

  // Doorbell: tells the referee this container's requests changed.
  void Ring() noexcept override;

  void Close() noexcept;

 private:
  bool TryLockRecord(std::uint32_t process) noexcept;

  const ArbiterGrantPage* page_ = nullptr;
  ArbiterRequests* requests_ = nullptr;
  int fd_ = -1;  // the request file, for record locks
};

// Nanoseconds on CLOCK_MONOTONIC (vDSO; no syscall): the arbiter's clock in every process.
std::uint64_t MonotonicNowNs() noexcept;

// futex(2) on a shared mapping (not FUTEX_PRIVATE: the word is shared between processes).
void FutexWake(const std::uint32_t* word) noexcept;
void FutexWait(const std::uint32_t* word, std::uint32_t expected,
               std::uint64_t timeout_ns) noexcept;

}  // namespace gpuslice::shim
