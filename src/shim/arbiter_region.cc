#include "shim/arbiter_region.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <ctime>

namespace gpuslice::shim {
namespace {

constexpr std::size_t kArbiterBytes = sizeof(ArbiterLayout);

off_t RecordLockOffset(std::uint32_t tenant) {
  return static_cast<off_t>(offsetof(ArbiterLayout, tenants) + tenant * sizeof(ArbiterTenant));
}

bool InitialiseMutex(pthread_mutex_t* mutex) noexcept {
  pthread_mutexattr_t attr;
  if (pthread_mutexattr_init(&attr) != 0) return false;
  const bool ok = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) == 0 &&
                  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 &&
                  pthread_mutex_init(mutex, &attr) == 0;
  pthread_mutexattr_destroy(&attr);
  return ok;
}

}  // namespace

std::uint64_t MonotonicNowNs() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

ArbiterRegion::~ArbiterRegion() { Close(); }

void ArbiterRegion::Close() noexcept {
  if (layout_ != nullptr) ::munmap(layout_, kArbiterBytes);
  layout_ = nullptr;
  DropInheritedDescriptor();
}

void ArbiterRegion::DropInheritedDescriptor() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  own_tenant_ = kNoTenant;
}

int ArbiterRegion::ReopenDescriptor(const char* path) noexcept {
  DropInheritedDescriptor();
  fd_ = ::open(path, O_RDWR | O_CLOEXEC);
  return fd_ < 0 ? errno : 0;
}

int ArbiterRegion::Create(const char* path, unsigned mode) noexcept {
  const int fd = ::open(path, O_RDWR | O_CREAT | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) return errno;
  int result = 0;
  void* mapping = MAP_FAILED;
  if (::flock(fd, LOCK_EX) != 0 || ::fchmod(fd, static_cast<mode_t>(mode)) != 0 ||
      ::ftruncate(fd, 0) != 0 || ::ftruncate(fd, static_cast<off_t>(kArbiterBytes)) != 0) {
    result = errno;
  } else {
    mapping = ::mmap(nullptr, kArbiterBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapping == MAP_FAILED) result = errno;
  }
  if (result == 0) {
    auto* layout = static_cast<ArbiterLayout*>(mapping);
    ArbiterHeader& h = layout->header;
    h.version = kArbiterVersion;
    h.header_bytes = sizeof(ArbiterHeader);
    h.tenant_bytes = sizeof(ArbiterTenant);
    h.tenant_count = kArbiterTenants;
    InitArbiterTable(layout);
    if (!InitialiseMutex(&h.mutex)) {
      result = EINVAL;
    } else {
      __atomic_store_n(&h.magic, kArbiterMagic, __ATOMIC_RELEASE);  // written last
    }
    ::msync(mapping, kArbiterBytes, MS_SYNC);
    ::munmap(mapping, kArbiterBytes);
  }
  ::flock(fd, LOCK_UN);
  ::close(fd);
  return result;
}

int ArbiterRegion::Open(const char* path) noexcept {
  Close();
  const int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<std::size_t>(st.st_size) < kArbiterBytes) {
    ::close(fd);
    return EPROTO;
  }
  void* mapping = ::mmap(nullptr, kArbiterBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mapping == MAP_FAILED) {
    const int error = errno;
    ::close(fd);
    return error;
  }
  auto* layout = static_cast<ArbiterLayout*>(mapping);
  const ArbiterHeader& h = layout->header;
  if (__atomic_load_n(&h.magic, __ATOMIC_ACQUIRE) != kArbiterMagic ||
      h.version != kArbiterVersion || h.header_bytes != sizeof(ArbiterHeader) ||
      h.tenant_bytes != sizeof(ArbiterTenant) || h.tenant_count != kArbiterTenants) {
    ::munmap(mapping, kArbiterBytes);
    ::close(fd);
    return EPROTO;  // never initialised here: only the control plane creates the table
  }
  ::close(fd);
  // Record locks go through a descriptor of this process's own (the mapping keeps another
  // reference to the first description alive, which would keep its locks too).
  fd_ = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd_ < 0) {
    const int error = errno;
    ::munmap(mapping, kArbiterBytes);
    return error;
  }
  layout_ = layout;
  return 0;
}

void ArbiterRegion::Lock() {
  if (pthread_mutex_lock(&layout_->header.mutex) == EOWNERDEAD) {
    // The holder died inside a critical section; every field it may have left half-updated is
    // re-derived on the next grant (the token from the records, the waiters by counting).
    pthread_mutex_consistent(&layout_->header.mutex);
  }
}

void ArbiterRegion::Unlock() { pthread_mutex_unlock(&layout_->header.mutex); }

bool ArbiterRegion::TryLockRecord(std::uint32_t tenant) noexcept {
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = RecordLockOffset(tenant);
  lock.l_len = 1;
  return fd_ >= 0 && ::fcntl(fd_, F_OFD_SETLK, &lock) == 0;
}

bool ArbiterRegion::Alive(std::uint32_t tenant) {
  if (fd_ < 0 || tenant >= kArbiterTenants) return true;  // cannot tell: treat as alive
  if (tenant == own_tenant_) return true;  // our own lock never conflicts with our descriptor
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = RecordLockOffset(tenant);
  lock.l_len = 1;
  if (::fcntl(fd_, F_OFD_GETLK, &lock) != 0) return true;
  return lock.l_type != F_UNLCK;
}

std::uint32_t ArbiterRegion::Join(std::uint32_t weight, std::int32_t pid) noexcept {
  if (layout_ == nullptr) return kNoTenant;
  Lock();
  // Records of dead processes are freed first; a free record whose lock someone still holds
  // (a forked child of its last owner) is skipped.
  for (std::uint32_t i = 0; i < kArbiterTenants; ++i) {
    ArbiterTenant& r = layout_->tenants[i];
    if (r.state == static_cast<std::uint32_t>(TenantState::kIdle) && !Alive(i)) {
      __atomic_store_n(&r.state, static_cast<std::uint32_t>(TenantState::kFree), __ATOMIC_RELEASE);
    }
  }
  std::uint32_t chosen = kNoTenant;
  for (std::uint32_t i = 0; i < kArbiterTenants && chosen == kNoTenant; ++i) {
    if (layout_->tenants[i].state != static_cast<std::uint32_t>(TenantState::kFree)) continue;
    if (!TryLockRecord(i)) continue;
    if (JoinTenantAt(layout_, i, weight, pid)) {
      chosen = i;
      own_tenant_ = i;
    }
  }
  Unlock();
  return chosen;
}

void ArbiterRegion::Leave(std::uint32_t tenant, std::uint64_t now_ns,
                          const ArbiterParams& params) noexcept {
  if (layout_ == nullptr || tenant >= kArbiterTenants) return;
  Lock();
  LeaveTenant(layout_, tenant, now_ns, params, this);
  Unlock();
  if (tenant == own_tenant_) own_tenant_ = kNoTenant;
  if (fd_ >= 0) {
    struct flock lock {};
    lock.l_type = F_UNLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = RecordLockOffset(tenant);
    lock.l_len = 1;
    ::fcntl(fd_, F_OFD_SETLK, &lock);
  }
}

}  // namespace gpuslice::shim
