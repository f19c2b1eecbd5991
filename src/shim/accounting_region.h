// AccountingRegion: the GPU memory a container's processes use, per GPU, in a file-backed
// shared mapping that every process of the container maps.
//
// Layout (version 2; fixed-width fields, native little-endian; see docs/shim.md):
//   RegionHeader   magic "GSAR", version, sizes, a robust process-shared mutex
//   ProcessSlot[kRegionSlots]   one per live process: identity and bytes used per device
// Usage is stored only per process, never as a running total, so a process that dies at any
// instruction leaves a consistent region.
//
// Only the control plane (node agent, `gpuslice run`) creates and initialises a region
// (Create); an opener (the shims) never writes the header, and refuses a region whose magic,
// version or sizes are wrong, so zeroing or corrupting it fails the container closed instead of
// resetting its accounting.
//
// Liveness: a slot's owner holds an open-file-description lock (F_OFD_SETLK) on the slot's
// first byte through its own descriptor (not the one the mapping was made from: a mapping keeps
// its file description, and so its locks, alive). The kernel drops it when the process dies (or
// execs: the descriptor is O_CLOEXEC), whatever pid namespace anyone is in, and no other process
// can release it. A slot is dead when it is active and nobody holds its lock. A forked child shares
// the parent's descriptor, so the parent's slot stays alive while either lives (a child that uses
// CUDA opens its own: ReopenAfterFork).
// Check-and-reserve happens under the robust mutex; a holder that dies is recovered with
// pthread_mutex_consistent. No allocation, no exceptions: the shim calls this from C entry points.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <cstdint>

#include "shim/process_liveness.h"  // ProcessIdentity

namespace gpuslice::shim {

inline constexpr std::uint32_t kRegionMagic = 0x52415347;  // "GSAR" little-endian
inline constexpr std::uint32_t kRegionVersion = 2;         // 2: liveness by slot locks
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

  // Control plane only: creates (or truncates) `path` with `mode` and writes a fresh, empty
  // region. Returns 0 or an errno value.
  static int Create(const char* path, unsigned mode = 0666) noexcept;

  // Maps the region at `path`, which Create initialised. Never initialises or repairs it: a
  // missing file is ENOENT, a wrong magic, version or size EPROTO. Returns 0 or an errno value.
  int Open(const char* path) noexcept;
  bool is_open() const noexcept { return layout_ != nullptr; }

  // Claims a free slot for `self` and takes its liveness lock (reclaiming dead slots first).
  // Returns the slot index or -1 when all are held by live processes.
  int ClaimSlot(const ProcessIdentity& self) noexcept;
  // Frees `slot` (normal process exit) and drops its lock; its usage stops counting.
  void ReleaseSlot(int slot) noexcept;

  // Adds `bytes` to `slot`'s usage of `device` if the container's total on that device stays
  // within `limit_bytes`; when it would not, first reclaims slots of dead processes and checks
  // again. Atomic with respect to every process of the container.
  bool Reserve(int slot, std::uint32_t device, std::uint64_t bytes,
               std::uint64_t limit_bytes) noexcept;
  // Adds `bytes` without a limit check (an allocation larger than reserved, e.g. a pitch).
  void ForceAdd(int slot, std::uint32_t device, std::uint64_t bytes) noexcept;
  // Subtracts `bytes` (saturating at zero) from `slot`'s usage of `device`.
  void Release(int slot, std::uint32_t device, std::uint64_t bytes) noexcept;

  // The container's usage of `device`: the sum over active slots.
  std::uint64_t Usage(std::uint32_t device) noexcept;
  // Frees the slots of dead processes, not looking at `self_slot` (the caller's own, whose
  // lock this descriptor holds); returns how many were freed.
  int ReclaimDead(int self_slot = -1) noexcept;
  // `slot`'s usage of `device` (for tests and diagnostics).
  std::uint64_t SlotUsage(int slot, std::uint32_t device) noexcept;
  // Whether a process other than through this descriptor holds `slot`'s lock.
  bool SlotHeldElsewhere(int slot) noexcept;

  // In a forked child: drops the descriptor shared with the parent (so the parent's slot lock
  // is the parent's alone again). The mapping stays usable; ReopenDescriptor gets a new one.
  void DropInheritedDescriptor() noexcept;
  // Opens a descriptor of this process's own for the region mapped now. Returns 0 or errno.
  int ReopenDescriptor() noexcept;

  // Drops the mapping and the descriptor without touching the region.
  void Close() noexcept;

 private:
  void Lock() noexcept;
  void Unlock() noexcept;
  std::uint64_t UsageLocked(std::uint32_t device) const noexcept;
  int ReclaimDeadLocked(int self_slot) noexcept;
  bool TryLockSlot(std::uint32_t slot) noexcept;
  bool SlotHeldElsewhereLocked(std::uint32_t slot) noexcept;

  RegionLayout* layout_ = nullptr;
  int fd_ = -1;
  char path_[4096] = {};
};

}  // namespace gpuslice::shim
