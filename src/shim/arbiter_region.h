// ArbiterRegion: the compute arbiter's table for one physical GPU (compute_arbiter.h) in a
// file-backed shared mapping that every arbitrated process on that GPU maps.
//
// As with the accounting region (accounting_region.h): only the control plane creates and
// initialises it (Create); an opener refuses a wrong magic, version or size and never repairs,
// so a zeroed or corrupted table fails the tenant closed to "not arbitrated" with a complaint
// rather than silently resetting everybody's virtual time. A tenant's record is alive while its
// process holds an open-file-description lock on the record's first byte through its own
// descriptor (dropped by the kernel at exit, exec or SIGKILL, whatever the pid namespace).
// Updates happen under a robust process-shared mutex; a holder that dies is recovered.
#pragma once

#include <cstdint>

#include "shim/compute_arbiter.h"

namespace gpuslice::shim {

class ArbiterRegion final : public ArbiterTableAccess {
 public:
  ArbiterRegion() = default;
  ~ArbiterRegion() override;
  ArbiterRegion(const ArbiterRegion&) = delete;
  ArbiterRegion& operator=(const ArbiterRegion&) = delete;

  // Control plane only: creates (or truncates) `path` with `mode` and writes a fresh table.
  // Returns 0 or an errno value.
  static int Create(const char* path, unsigned mode = 0666) noexcept;

  // Maps the table Create made. ENOENT when missing, EPROTO when the header is wrong.
  int Open(const char* path) noexcept;
  bool is_open() const noexcept { return layout_ != nullptr; }

  // Takes a record for this process (weight 1-100) and its liveness lock. kNoTenant when full.
  std::uint32_t Join(std::uint32_t weight, std::int32_t pid) noexcept;
  // Normal exit: frees the record (handing the token on) and drops the lock.
  void Leave(std::uint32_t tenant, std::uint64_t now_ns, const ArbiterParams& params) noexcept;

  // In a forked child: drops the descriptor shared with the parent (its record's lock).
  void DropInheritedDescriptor() noexcept;
  // Opens a descriptor of this process's own for `path` (after DropInheritedDescriptor); the
  // child then joins as a tenant of its own. Returns 0 or errno.
  int ReopenDescriptor(const char* path) noexcept;

  // ArbiterTableAccess
  ArbiterLayout* table() override { return layout_; }
  void Lock() override;
  void Unlock() override;
  bool Alive(std::uint32_t tenant) override;

  void Close() noexcept;

 private:
  bool TryLockRecord(std::uint32_t tenant) noexcept;

  ArbiterLayout* layout_ = nullptr;
  int fd_ = -1;
  std::uint32_t own_tenant_ = kNoTenant;  // the record this descriptor locks
};

// Nanoseconds on CLOCK_MONOTONIC (vDSO; no syscall): the arbiter's clock in every process.
std::uint64_t MonotonicNowNs() noexcept;

}  // namespace gpuslice::shim
