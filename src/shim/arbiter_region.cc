#include "shim/arbiter_region.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <ctime>

#include "shim/mapped_file.h"

namespace gpuslice::shim {
namespace {

off_t RecordLockOffset(std::uint32_t process) {
  return static_cast<off_t>(offsetof(ArbiterRequests, processes) +
                            process * sizeof(ProcessRequest));
}

}  // namespace

std::uint64_t MonotonicNowNs() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void FutexWake(const std::uint32_t* word) noexcept {
  ::syscall(SYS_futex, word, FUTEX_WAKE, 0x7fffffff, nullptr, nullptr, 0);
}

void FutexWait(const std::uint32_t* word, std::uint32_t expected,
               std::uint64_t timeout_ns) noexcept {
  timespec timeout{static_cast<time_t>(timeout_ns / 1'000'000'000ULL),
                   static_cast<long>(timeout_ns % 1'000'000'000ULL)};
  ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &timeout, nullptr, 0);
}

int ArbiterRegion::CreateGrantPage(const char* path, unsigned mode) noexcept {
  return CreateMappedFile(path, mode, sizeof(ArbiterGrantPage), CreateHow::kInPlace, [](void* m) {
    InitGrantPage(static_cast<ArbiterGrantPage*>(m));
    return 0;
  });
}

int ArbiterRegion::CreateRequests(const char* path, unsigned mode) noexcept {
  return CreateMappedFile(path, mode, sizeof(ArbiterRequests), CreateHow::kInPlace, [](void* m) {
    InitRequests(static_cast<ArbiterRequests*>(m));
    return 0;
  });
}

ArbiterRegion::~ArbiterRegion() { Close(); }

void ArbiterRegion::Close() noexcept {
  if (page_ != nullptr) ::munmap(const_cast<ArbiterGrantPage*>(page_), sizeof(ArbiterGrantPage));
  if (requests_ != nullptr) ::munmap(requests_, sizeof(ArbiterRequests));
  page_ = nullptr;
  requests_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int ArbiterRegion::Open(const char* grant_path, const char* requests_path) noexcept {
  Close();
  const int grant_fd = ::open(grant_path, O_RDONLY | O_CLOEXEC);
  if (grant_fd < 0) return errno;
  void* page = nullptr;
  const int grant_error =
      MapRegularFile(grant_fd, sizeof(ArbiterGrantPage), PROT_READ, false, &page);
  ::close(grant_fd);
  if (grant_error != 0) return grant_error;
  const auto* p = static_cast<const ArbiterGrantPage*>(page);
  if (__atomic_load_n(&p->magic, __ATOMIC_ACQUIRE) != kArbiterMagic ||
      p->version != kArbiterVersion || p->page_bytes != sizeof(ArbiterGrantPage) ||
      p->tenant_count != kArbiterTenants) {
    ::munmap(page, sizeof(ArbiterGrantPage));
    return EPROTO;
  }
  fd_ = ::open(requests_path, O_RDWR | O_CLOEXEC);
  void* requests = nullptr;
  const int requests_error = fd_ < 0 ? errno
                                     : MapRegularFile(fd_, sizeof(ArbiterRequests),
                                                      PROT_READ | PROT_WRITE, false, &requests);
  if (requests_error != 0 ||
      __atomic_load_n(&static_cast<ArbiterRequests*>(requests)->magic, __ATOMIC_ACQUIRE) !=
          kRequestsMagic ||
      static_cast<ArbiterRequests*>(requests)->version != kArbiterVersion) {
    if (requests_error == 0) ::munmap(requests, sizeof(ArbiterRequests));
    ::munmap(page, sizeof(ArbiterGrantPage));
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return requests_error != 0 ? requests_error : EPROTO;
  }
  page_ = p;
  requests_ = static_cast<ArbiterRequests*>(requests);
  return 0;
}

int ArbiterRegion::ReopenDescriptor(const char* requests_path) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(requests_path, O_RDWR | O_CLOEXEC);
  return fd_ < 0 ? errno : 0;
}

bool ArbiterRegion::TryLockRecord(std::uint32_t process) noexcept {
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = RecordLockOffset(process);
  lock.l_len = 1;
  return fd_ >= 0 && ::fcntl(fd_, F_OFD_SETLK, &lock) == 0;
}

std::uint32_t ArbiterRegion::Join(std::int32_t pid) noexcept {
  if (requests_ == nullptr) return kNoTenant;
  // A record is free when nobody holds its lock (its last owner exited, whatever it wrote).
  for (std::uint32_t i = 0; i < kProcessesPerTenant; ++i) {
    if (!TryLockRecord(i)) continue;
    ProcessRequest& r = requests_->processes[i];
    __atomic_store_n(&r.want, 0u, __ATOMIC_RELEASE);
    r.pid = pid;
    r.launches = 0;
    r.completion_ns = 0;
    __atomic_store_n(&r.in_use, 1u, __ATOMIC_RELEASE);
    return i;
  }
  return kNoTenant;
}

void ArbiterRegion::Leave(std::uint32_t process) noexcept {
  if (requests_ == nullptr || process >= kProcessesPerTenant) return;
  ProcessRequest& r = requests_->processes[process];
  __atomic_store_n(&r.want, 0u, __ATOMIC_RELEASE);
  __atomic_store_n(&r.in_use, 0u, __ATOMIC_RELEASE);
  Ring();
  struct flock lock {};
  lock.l_type = F_UNLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = RecordLockOffset(process);
  lock.l_len = 1;
  if (fd_ >= 0) ::fcntl(fd_, F_OFD_SETLK, &lock);
}

std::uint32_t ArbiterRegion::FindTenantSlot() const noexcept {
  struct stat st {};
  if (page_ == nullptr || fd_ < 0 || ::fstat(fd_, &st) != 0) return kNoTenant;
  for (std::uint32_t t = 0; t < kArbiterTenants; ++t) {
    const PublishedTenant& p = page_->tenants[t];
    if (__atomic_load_n(&p.state, __ATOMIC_ACQUIRE) != 0 &&
        __atomic_load_n(&p.requests_ino, __ATOMIC_ACQUIRE) == st.st_ino &&
        __atomic_load_n(&p.requests_dev, __ATOMIC_ACQUIRE) == st.st_dev) {
      return t;
    }
  }
  return kNoTenant;
}

void ArbiterRegion::WaitForChange(std::uint32_t seen, std::uint64_t timeout_ns) const noexcept {
  if (page_ != nullptr) FutexWait(&page_->seq, seen, timeout_ns);
}

void ArbiterRegion::Ring() noexcept {
  if (requests_ == nullptr) return;
  __atomic_add_fetch(&requests_->doorbell, 1, __ATOMIC_RELEASE);
  FutexWake(&requests_->doorbell);
}

}  // namespace gpuslice::shim
