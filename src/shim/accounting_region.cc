#include "shim/accounting_region.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

AccountingRegion::~AccountingRegion() { Close(); }

void AccountingRegion::Close() noexcept {
  if (layout_ != nullptr) ::munmap(layout_, kRegionBytes);
  layout_ = nullptr;
}

int AccountingRegion::Open(const char* path, bool create) noexcept {
  Close();
  const int fd = ::open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0660);
  if (fd < 0) return errno;
  // flock serialises initialisation between processes starting together; it is released if the
  // initialiser dies, and an unfinished initialisation (magic still 0) is redone.
  if (::flock(fd, LOCK_EX) != 0) {
    const int error = errno;
    ::close(fd);
    return error;
  }
  int result = 0;
  struct stat st {};
  void* mapping = MAP_FAILED;
  if (::fstat(fd, &st) != 0) {
    result = errno;
  } else if (static_cast<std::size_t>(st.st_size) < kRegionBytes &&
             ::ftruncate(fd, static_cast<off_t>(kRegionBytes)) != 0) {
    result = errno;
  } else {
    mapping = ::mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapping == MAP_FAILED) result = errno;
  }
  if (result == 0) {
    auto* layout = static_cast<RegionLayout*>(mapping);
    RegionHeader& h = layout->header;
    const std::uint32_t magic = __atomic_load_n(&h.magic, __ATOMIC_ACQUIRE);
    if (magic == 0) {
      std::memset(static_cast<void*>(layout), 0, kRegionBytes);
      h.version = kRegionVersion;
      h.header_bytes = sizeof(RegionHeader);
      h.slot_bytes = sizeof(ProcessSlot);
      h.slot_count = kRegionSlots;
      h.device_count = kRegionDevices;
      if (!InitialiseMutex(&h.mutex)) {
        result = EINVAL;
      } else {
        __atomic_store_n(&h.magic, kRegionMagic, __ATOMIC_RELEASE);
      }
    } else if (magic != kRegionMagic || h.version != kRegionVersion ||
               h.header_bytes != sizeof(RegionHeader) || h.slot_bytes != sizeof(ProcessSlot) ||
               h.slot_count != kRegionSlots || h.device_count != kRegionDevices) {
      result = EPROTO;
    }
    if (result == 0) {
      layout_ = layout;
    } else {
      ::munmap(mapping, kRegionBytes);
    }
  }
  ::flock(fd, LOCK_UN);
  ::close(fd);
  return result;
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

int AccountingRegion::ReclaimDeadLocked(ProcessLiveness& liveness, int self_slot) noexcept {
  int reclaimed = 0;
  const std::uint32_t end = SlotEnd(layout_->header);
  for (std::uint32_t i = 0; i < end; ++i) {
    ProcessSlot& slot = layout_->slots[i];
    if (slot.state != static_cast<std::uint32_t>(SlotState::kActive)) continue;
    if (static_cast<int>(i) == self_slot) continue;
    if (liveness.IsAlive({slot.pid, slot.start_ticks})) continue;
    __atomic_store_n(&slot.state, static_cast<std::uint32_t>(SlotState::kFree), __ATOMIC_RELEASE);
    ++reclaimed;
  }
  return reclaimed;
}

int AccountingRegion::ClaimSlot(const ProcessIdentity& self, ProcessLiveness& liveness) noexcept {
  if (layout_ == nullptr) return -1;
  Lock();
  int chosen = -1;
  for (std::uint32_t i = 0; i < SlotEnd(layout_->header); ++i) {
    ProcessSlot& slot = layout_->slots[i];
    if (slot.state == static_cast<std::uint32_t>(SlotState::kActive) && slot.pid == self.pid &&
        slot.start_ticks == self.start_ticks) {
      chosen = static_cast<int>(i);  // our own pre-exec image: its memory died with it
      break;
    }
  }
  if (chosen < 0) {
    for (int pass = 0; pass < 2 && chosen < 0; ++pass) {
      if (pass == 1) ReclaimDeadLocked(liveness, -1);
      for (std::uint32_t i = 0; i < kRegionSlots; ++i) {
        if (layout_->slots[i].state == static_cast<std::uint32_t>(SlotState::kFree)) {
          chosen = static_cast<int>(i);
          break;
        }
      }
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
  if (layout_ == nullptr || slot < 0) return;
  Lock();
  __atomic_store_n(&layout_->slots[slot].state, static_cast<std::uint32_t>(SlotState::kFree),
                   __ATOMIC_RELEASE);
  Unlock();
}

bool AccountingRegion::Reserve(int slot, std::uint32_t device, std::uint64_t bytes,
                               std::uint64_t limit_bytes, ProcessLiveness& liveness) noexcept {
  if (layout_ == nullptr || slot < 0 || device >= kRegionDevices) return false;
  Lock();
  std::uint64_t used = UsageLocked(device);
  bool fits = bytes <= limit_bytes && used <= limit_bytes - bytes;
  if (!fits && ReclaimDeadLocked(liveness, slot) > 0) {
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

int AccountingRegion::ReclaimDead(ProcessLiveness& liveness, int self_slot) noexcept {
  if (layout_ == nullptr) return 0;
  Lock();
  const int n = ReclaimDeadLocked(liveness, self_slot);
  Unlock();
  return n;
}

std::uint64_t AccountingRegion::SlotUsage(int slot, std::uint32_t device) noexcept {
  if (layout_ == nullptr || slot < 0 || device >= kRegionDevices) return 0;
  return __atomic_load_n(&layout_->slots[slot].used_bytes[device], __ATOMIC_RELAXED);
}

}  // namespace gpuslice::shim
