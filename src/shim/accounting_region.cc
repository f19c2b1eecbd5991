#include "shim/accounting_region.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "shim/mapped_file.h"

namespace gpuslice::shim {
namespace {

constexpr std::size_t kRegionBytes = sizeof(RegionLayout);

std::uint32_t SlotEnd(const RegionHeader& header) noexcept {
  return header.slot_high_water < kRegionSlots ? header.slot_high_water : kRegionSlots;
}

bool InitialiseMutex(pthread_mutex_t* mutex) noexcept {
  pthread_mutexattr_t attr;
  if (pthread_mutexattr_init(&attr) != 0) return false;
  bool ok = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) == 0 &&
            pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 &&
            pthread_mutex_init(mutex, &attr) == 0;
  pthread_mutexattr_destroy(&attr);
  return ok;
}

}  // namespace

// The byte of the file a slot's owner locks: the slot's first byte.
off_t SlotLockOffset(std::uint32_t slot) {
  return static_cast<off_t>(offsetof(RegionLayout, slots) + slot * sizeof(ProcessSlot));
}

AccountingRegion::~AccountingRegion() { Close(); }

void AccountingRegion::Close() noexcept {
  if (layout_ != nullptr) ::munmap(layout_, kRegionBytes);
  layout_ = nullptr;
  DropInheritedDescriptor();
}

void AccountingRegion::DropInheritedDescriptor() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int AccountingRegion::ReopenDescriptor() noexcept {
  DropInheritedDescriptor();
  fd_ = ::open(path_, O_RDWR | O_CLOEXEC);
  return fd_ < 0 ? errno : 0;
}

int AccountingRegion::Create(const char* path, unsigned mode) noexcept {
  // A fresh file: every byte (magic included) reads zero before the header is written.
  return CreateMappedFile(path, mode, kRegionBytes, CreateHow::kFreshZero, [](void* mapping) {
    RegionHeader& h = static_cast<RegionLayout*>(mapping)->header;
    h.version = kRegionVersion;
    h.header_bytes = sizeof(RegionHeader);
    h.slot_bytes = sizeof(ProcessSlot);
    h.slot_count = kRegionSlots;
    h.device_count = kRegionDevices;
    int result = 0;
    if (!InitialiseMutex(&h.mutex)) {
      result = EINVAL;
    } else {
      __atomic_store_n(&h.magic, kRegionMagic, __ATOMIC_RELEASE);  // written last
    }
    ::msync(mapping, kRegionBytes, MS_SYNC);
    return result;
  });
}

int AccountingRegion::Open(const char* path) noexcept {
  Close();
  const std::size_t length = std::strlen(path);
  if (length >= sizeof(path_)) return ENAMETOOLONG;
  const int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno;
  void* mapping = nullptr;
  if (const int rc = MapRegularFile(fd, kRegionBytes, PROT_READ | PROT_WRITE, true, &mapping);
      rc != 0) {
    ::close(fd);
    return rc;
  }
  auto* layout = static_cast<RegionLayout*>(mapping);
  const RegionHeader& h = layout->header;
  if (__atomic_load_n(&h.magic, __ATOMIC_ACQUIRE) != kRegionMagic || h.version != kRegionVersion ||
      h.header_bytes != sizeof(RegionHeader) || h.slot_bytes != sizeof(ProcessSlot) ||
      h.slot_count != kRegionSlots || h.device_count != kRegionDevices) {
    ::munmap(mapping, kRegionBytes);
    ::close(fd);
    return EPROTO;  // never re-initialised here: only the control plane creates regions
  }
  // The mapping keeps its own reference to `fd`'s open file description, so locks go through a
  // second one that only the descriptor refers to: closing it (exit, exec, a forked child
  // letting go) is what drops them.
  ::close(fd);
  std::memcpy(path_, path, length + 1);
  layout_ = layout;
  if (const int rc = ReopenDescriptor(); rc != 0) {
    Close();
    return rc;
  }
  return 0;
}

bool AccountingRegion::TryLockSlot(std::uint32_t slot) noexcept {
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = SlotLockOffset(slot);
  lock.l_len = 1;
  return fd_ >= 0 && ::fcntl(fd_, F_OFD_SETLK, &lock) == 0;
}

bool AccountingRegion::SlotHeldElsewhereLocked(std::uint32_t slot) noexcept {
  if (fd_ < 0) return true;  // cannot tell: never free what may be alive
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = SlotLockOffset(slot);
  lock.l_len = 1;
  if (::fcntl(fd_, F_OFD_GETLK, &lock) != 0) return true;
  return lock.l_type != F_UNLCK;
}

bool AccountingRegion::SlotHeldElsewhere(int slot) noexcept {
  if (layout_ == nullptr || slot < 0 || slot >= static_cast<int>(kRegionSlots)) return false;
  return SlotHeldElsewhereLocked(static_cast<std::uint32_t>(slot));
}

void AccountingRegion::Lock() noexcept {
  const int rc = pthread_mutex_lock(&layout_->header.mutex);
  if (rc == EOWNERDEAD) {
    // The holder died inside a critical section. Every update in one is a single aligned store
    // to the holder's own slot or a slot being reclaimed, so the data is consistent as is.
    pthread_mutex_consistent(&layout_->header.mutex);
  }
}

void AccountingRegion::Unlock() noexcept { pthread_mutex_unlock(&layout_->header.mutex); }

std::uint64_t AccountingRegion::UsageLocked(std::uint32_t device) const noexcept {
  std::uint64_t total = 0;
  const std::uint32_t end = SlotEnd(layout_->header);
  for (std::uint32_t i = 0; i < end; ++i) {
    const ProcessSlot& slot = layout_->slots[i];
    if (slot.state == static_cast<std::uint32_t>(SlotState::kActive)) {
      total += slot.used_bytes[device];
    }
  }
  return total;
}

int AccountingRegion::ReclaimDeadLocked(int self_slot) noexcept {
  int reclaimed = 0;
  const std::uint32_t end = SlotEnd(layout_->header);
  for (std::uint32_t i = 0; i < end; ++i) {
    ProcessSlot& slot = layout_->slots[i];
    if (slot.state != static_cast<std::uint32_t>(SlotState::kActive)) continue;
    if (static_cast<int>(i) == self_slot) continue;
    if (SlotHeldElsewhereLocked(i)) continue;
    __atomic_store_n(&slot.state, static_cast<std::uint32_t>(SlotState::kFree), __ATOMIC_RELEASE);
    ++reclaimed;
  }
  return reclaimed;
}

int AccountingRegion::ClaimSlot(const ProcessIdentity& self) noexcept {
  if (layout_ == nullptr || fd_ < 0) return -1;
  Lock();
  ReclaimDeadLocked(-1);
  int chosen = -1;
  for (std::uint32_t i = 0; i < kRegionSlots && chosen < 0; ++i) {
    // A free slot whose lock someone still holds (a forked child of its last owner) is skipped.
    if (layout_->slots[i].state == static_cast<std::uint32_t>(SlotState::kFree) && TryLockSlot(i)) {
      chosen = static_cast<int>(i);
    }
  }
  if (chosen >= 0) {
    ProcessSlot& slot = layout_->slots[chosen];
    // Usage is zeroed before the slot becomes active, so a death in between leaves it free.
    for (std::uint64_t& used : slot.used_bytes) used = 0;
    slot.pid = self.pid;
    slot.start_ticks = self.start_ticks;
    if (static_cast<std::uint32_t>(chosen) >= layout_->header.slot_high_water) {
      layout_->header.slot_high_water = static_cast<std::uint32_t>(chosen) + 1;
    }
    __atomic_store_n(&slot.state, static_cast<std::uint32_t>(SlotState::kActive), __ATOMIC_RELEASE);
  }
  Unlock();
  return chosen;
}

void AccountingRegion::ReleaseSlot(int slot) noexcept {
  if (layout_ == nullptr || slot < 0 || slot >= static_cast<int>(kRegionSlots)) return;
  Lock();
  __atomic_store_n(&layout_->slots[slot].state, static_cast<std::uint32_t>(SlotState::kFree),
                   __ATOMIC_RELEASE);
  Unlock();
  if (fd_ >= 0) {
    struct flock lock {};
    lock.l_type = F_UNLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = SlotLockOffset(static_cast<std::uint32_t>(slot));
    lock.l_len = 1;
    ::fcntl(fd_, F_OFD_SETLK, &lock);
  }
}

bool AccountingRegion::Reserve(int slot, std::uint32_t device, std::uint64_t bytes,
                               std::uint64_t limit_bytes) noexcept {
  if (layout_ == nullptr || slot < 0 || device >= kRegionDevices) return false;
  Lock();
  std::uint64_t used = UsageLocked(device);
  bool fits = bytes <= limit_bytes && used <= limit_bytes - bytes;
  if (!fits && ReclaimDeadLocked(slot) > 0) {
    used = UsageLocked(device);
    fits = bytes <= limit_bytes && used <= limit_bytes - bytes;
  }
  if (fits) {
    std::uint64_t& mine = layout_->slots[slot].used_bytes[device];
    __atomic_store_n(&mine, mine + bytes, __ATOMIC_RELAXED);
  }
  Unlock();
  return fits;
}

void AccountingRegion::ForceAdd(int slot, std::uint32_t device, std::uint64_t bytes) noexcept {
  if (layout_ == nullptr || slot < 0 || device >= kRegionDevices) return;
  Lock();
  std::uint64_t& mine = layout_->slots[slot].used_bytes[device];
  __atomic_store_n(&mine, mine + bytes, __ATOMIC_RELAXED);
  Unlock();
}

void AccountingRegion::Release(int slot, std::uint32_t device, std::uint64_t bytes) noexcept {
  if (layout_ == nullptr || slot < 0 || device >= kRegionDevices) return;
  Lock();
  std::uint64_t& mine = layout_->slots[slot].used_bytes[device];
  __atomic_store_n(&mine, mine > bytes ? mine - bytes : 0, __ATOMIC_RELAXED);
  Unlock();
}

std::uint64_t AccountingRegion::Usage(std::uint32_t device) noexcept {
  if (layout_ == nullptr || device >= kRegionDevices) return 0;
  Lock();
  const std::uint64_t used = UsageLocked(device);
  Unlock();
  return used;
}

int AccountingRegion::ReclaimDead(int self_slot) noexcept {
  if (layout_ == nullptr) return 0;
  Lock();
  const int n = ReclaimDeadLocked(self_slot);
  Unlock();
  return n;
}

std::uint64_t AccountingRegion::SlotUsage(int slot, std::uint32_t device) noexcept {
  if (layout_ == nullptr || slot < 0 || device >= kRegionDevices) return 0;
  return __atomic_load_n(&layout_->slots[slot].used_bytes[device], __ATOMIC_RELAXED);
}

}  // namespace gpuslice::shim
