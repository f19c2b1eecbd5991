// AccountingRegion: the GPU memory a container's processes use, per GPU, in a file-backed
// shared mapping that every process of the container maps.
//
// Layout (version 1; fixed-width fields, native little-endian; see docs/shim.md):
//   RegionHeader   magic "GSAR", version, sizes, a robust process-shared mutex
//   ProcessSlot[kRegionSlots]   one per live process: identity and bytes used per device
// Usage is stored only per process, never as a running total, so a process that dies at any
// instruction leaves a consistent region: its slot's bytes are ignored once it is found dead
// (its pid is gone or now belongs to a process with another start time) and reclaimed.
// Check-and-reserve happens under the robust mutex; a holder that dies is recovered with
// pthread_mutex_consistent. No allocation, no exceptions: the shim calls this from C entry points.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <cstdint>

#include "shim/process_liveness.h"

namespace gpuslice::shim {

inline constexpr std::uint32_t kRegionMagic = 0x52415347;  // "GSAR" little-endian
inline constexpr std::uint32_t kRegionVersion = 1;
inline constexpr std::uint32_t kRegionDevices = 16;
inline constexpr std::uint32_t kRegionSlots = 1024;

enum class SlotState : std::uint32_t { kFree = 0, kActive = 1 };

struct ProcessSlot {
  std::int32_t pid;
  std::uint32_t state;  // SlotState
  std::uint64_t start_ticks;
  std::uint64_t used_bytes[kRegionDevices];
};
static_assert(sizeof(ProcessSlot) == 144);

struct RegionHeader {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t header_bytes;
  std::uint32_t slot_bytes;
  std::uint32_t slot_count;
  std::uint32_t device_count;
  std::uint32_t slot_high_water;  // slots [0, slot_high_water) have ever been claimed
  std::uint32_t reserved[9];
  union {
    pthread_mutex_t mutex;
    unsigned char mutex_storage[64];
  };
};
static_assert(sizeof(pthread_mutex_t) <= 64);
static_assert(sizeof(RegionHeader) == 128);

struct RegionLayout {
  RegionHeader header;
  ProcessSlot slots[kRegionSlots];
};

class AccountingRegion {
 public:
  AccountingRegion() = default;
  ~AccountingRegion();
  AccountingRegion(const AccountingRegion&) = delete;
  AccountingRegion& operator=(const AccountingRegion&) = delete;

  // Maps the region at `path`, initialising it if its initialisation never completed. With
  // `create` false (the shims) a missing file is an error (ENOENT), so deleting the region
  // cannot hand a container a fresh, empty one; the control plane creates it. Returns 0 or an
  // errno value (EPROTO: the file holds another magic/version).
  int Open(const char* path, bool create) noexcept;
  bool is_open() const noexcept { return layout_ != nullptr; }

  // Claims a slot for `self`, reusing a stale slot left by the same (pid, start) — a process
  // that exec'd — or by a dead process. Returns the slot index or -1 when all are taken by live
  // processes.
  int ClaimSlot(const ProcessIdentity& self, ProcessLiveness& liveness) noexcept;
  // Frees `slot` (normal process exit); its usage stops counting.
  void ReleaseSlot(int slot) noexcept;

  // Adds `bytes` to `slot`'s usage of `device` if the container's total on that device stays
  // within `limit_bytes`; when it would not, first reclaims slots of dead processes and checks
  // again. Atomic with respect to every process of the container.
  bool Reserve(int slot, std::uint32_t device, std::uint64_t bytes, std::uint64_t limit_bytes,
               ProcessLiveness& liveness) noexcept;
  // Adds `bytes` without a limit check (an allocation larger than reserved, e.g. a pitch).
  void ForceAdd(int slot, std::uint32_t device, std::uint64_t bytes) noexcept;
  // Subtracts `bytes` (saturating at zero) from `slot`'s usage of `device`.
  void Release(int slot, std::uint32_t device, std::uint64_t bytes) noexcept;

  // The container's usage of `device`: the sum over active slots.
  std::uint64_t Usage(std::uint32_t device) noexcept;
  // Frees the slots of dead processes, not looking at `self_slot` (the caller's own); returns
  // how many were freed.
  int ReclaimDead(ProcessLiveness& liveness, int self_slot = -1) noexcept;
  // `slot`'s usage of `device` (for tests and diagnostics).
  std::uint64_t SlotUsage(int slot, std::uint32_t device) noexcept;

  // Drops the mapping without touching the region (used in a forked child).
  void Close() noexcept;

 private:
  void Lock() noexcept;
  void Unlock() noexcept;
  std::uint64_t UsageLocked(std::uint32_t device) const noexcept;
  int ReclaimDeadLocked(ProcessLiveness& liveness, int self_slot) noexcept;

  RegionLayout* layout_ = nullptr;
};

}  // namespace gpuslice::shim
