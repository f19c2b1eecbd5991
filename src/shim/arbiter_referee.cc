#include "shim/arbiter_referee.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "shim/arbiter_region.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

namespace gpuslice::shim {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kIdleLookNs = 100'000'000;       // looks at least this often
constexpr std::uint64_t kPollFallbackNs = 200'000;       // without futex_waitv
constexpr std::uint64_t kMinLookNs = 50'000;             // at most 20,000 looks a second
constexpr std::uint64_t kSaveChargesNs = 1'000'000'000;  // charges written at most this often

// "<prefix><digits>" -> the number.
bool ParseField(const std::string& word, const char* prefix, std::uint64_t* value) {
  const std::size_t n = std::strlen(prefix);
  if (word.compare(0, n, prefix) != 0 || word.size() == n) return false;
  const char* end = word.data() + word.size();
  const auto [at, ec] = std::from_chars(word.data() + n, end, *value);
  return ec == std::errc() && at == end;
}

struct WaitV {  // struct futex_waitv (linux/futex.h, 5.16+)
  std::uint64_t val;
  std::uint64_t uaddr;
  std::uint32_t flags;
  std::uint32_t reserved;
};

std::string Errno(int error) { return std::error_code(error, std::generic_category()).message(); }

}  // namespace

// One container as the referee sees it: its file (pread; a PROT_READ mapping only as the
// doorbell's futex address) and the last copy read.
struct ArbiterReferee::Tenant {
  std::string key;
  std::string path;
  int fd = -1;
  const ArbiterRequests* mapped = nullptr;
  ArbiterRequests copy{};
  bool readable = false;
  ~Tenant() {
    if (mapped != nullptr) ::munmap(const_cast<ArbiterRequests*>(mapped), sizeof(ArbiterRequests));
    if (fd >= 0) ::close(fd);
  }
  void Read() {
    const ssize_t n = ::pread(fd, &copy, sizeof(copy), 0);
    readable = n == static_cast<ssize_t>(sizeof(copy)) && copy.magic == kRequestsMagic &&
               copy.version == kArbiterVersion;
  }
};

class ArbiterReferee::View final : public RequestView {
 public:
  explicit View(ArbiterReferee& r) : r_(r) {}
  const ArbiterRequests* Requests(std::uint32_t tenant) override {
    const Tenant* t = r_.tenants_[tenant].get();
    return t != nullptr && t->readable ? &t->copy : nullptr;
  }
  bool Alive(std::uint32_t tenant, std::uint32_t process) override {
    const Tenant* t = r_.tenants_[tenant].get();
    if (t == nullptr) return false;
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start =
        static_cast<off_t>(offsetof(ArbiterRequests, processes) + process * sizeof(ProcessRequest));
    lock.l_len = 1;
    if (::fcntl(t->fd, F_OFD_GETLK, &lock) != 0) return false;
    return lock.l_type != F_UNLCK;
  }

 private:
  ArbiterReferee& r_;
};

Result<std::unique_ptr<ArbiterReferee>> ArbiterReferee::Start(const std::string& grant_path,
                                                              const ArbiterParams& params,
                                                              const std::string& charges_path) {
  if (const int rc = ArbiterRegion::CreateGrantPage(grant_path.c_str(), 0644); rc != 0) {
    return Unavailable("cannot create the compute arbiter's grant page " + grant_path + ": " +
                       Errno(rc));
  }
  const int fd = ::open(grant_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Unavailable("cannot open " + grant_path + ": " + Errno(errno));
  void* mapping =
      ::mmap(nullptr, sizeof(ArbiterGrantPage), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int error = errno;
  ::close(fd);
  if (mapping == MAP_FAILED) return Unavailable("cannot map " + grant_path + ": " + Errno(error));
  std::unique_ptr<ArbiterReferee> referee(
      new ArbiterReferee(grant_path, static_cast<ArbiterGrantPage*>(mapping), params));
  referee->charges_path_ = charges_path;
  referee->LoadCharges();
  referee->thread_ = std::thread([r = referee.get()] { r->Loop(); });
  return referee;
}

ArbiterReferee::ArbiterReferee(std::string grant_path, ArbiterGrantPage* page,
                               const ArbiterParams& params)
    : grant_path_(std::move(grant_path)), page_(page), core_(page, params, MonotonicNowNs()) {}

ArbiterReferee::~ArbiterReferee() {
  stop_ = true;
  Kick();
  if (thread_.joinable()) thread_.join();
  SaveCharges(MonotonicNowNs(), true);
  ::munmap(page_, sizeof(ArbiterGrantPage));
}

// The charges an earlier referee wrote (none on a first start). The file is the control plane's
// own; a line that is not "<key> vtime=N charged_ns=N" is skipped with a warning all the same.
void ArbiterReferee::LoadCharges() {
  if (charges_path_.empty()) return;
  std::ifstream in(charges_path_);
  if (!in) return;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string key;
    std::string vtime;
    std::string charged;
    std::string extra;
    Carried c;
    if (!(words >> key >> vtime >> charged) || (words >> extra) ||
        !ParseField(vtime, "vtime=", &c.vtime) ||
        !ParseField(charged, "charged_ns=", &c.charged_ns)) {
      spdlog::warn(
          "compute arbiter charges {} line {}: \"{}\" is not \"<key> vtime=N "
          "charged_ns=N\"; that container starts at virtual time 0",
          charges_path_, number, line);
      continue;
    }
    carried_[key] = c;
  }
  saved_ = carried_;
}

// Writes every container's virtual time and charge (and the carried ones not yet claimed) when
// they changed, at most once per kSaveChargesNs unless `force`: a temporary file, renamed.
void ArbiterReferee::SaveCharges(std::uint64_t now_ns, bool force) {
  if (charges_path_.empty() || (!force && now_ns - saved_ns_ < kSaveChargesNs)) return;
  saved_ns_ = now_ns;
  std::map<std::string, Carried> current;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, slot] : slots_) {
      current[key] = Carried{core_.vtime(slot), core_.charged_ns(slot)};
    }
    for (const auto& [key, c] : carried_) current.emplace(key, c);
  }
  if (current == saved_) return;
  std::ostringstream out;
  out << "# gpuslice compute arbiter charges: <key> vtime=N charged_ns=N\n";
  for (const auto& [key, c] : current) {
    out << key << " vtime=" << c.vtime << " charged_ns=" << c.charged_ns << "\n";
  }
  const std::string text = out.str();
  const std::string tmp = charges_path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && ::fchmod(fd, 0600) == 0 &&
            ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int error = errno;
  if (fd >= 0) ok = ::close(fd) == 0 && ok;
  ok = ok && ::rename(tmp.c_str(), charges_path_.c_str()) == 0;
  if (!ok) {
    if (saves_failing_ == false) {
      spdlog::warn(
          "compute arbiter {}: cannot write the charges to {}: {} (a restart of the "
          "agent would start every container at virtual time 0)",
          grant_path_, charges_path_, Errno(error != 0 ? error : errno));
    }
    saves_failing_ = true;
    return;
  }
  saves_failing_ = false;
  saved_ = std::move(current);
}

void ArbiterReferee::ForgetUnclaimedCharges() {
  std::lock_guard<std::mutex> lock(mu_);
  carried_.clear();
}

void ArbiterReferee::Kick() {
  __atomic_add_fetch(&control_, 1, __ATOMIC_RELEASE);
  FutexWake(&control_);
}

Status ArbiterReferee::AddTenant(const std::string& key, const std::string& requests_path,
                                 std::uint32_t weight, std::uint32_t cap_percent) {
  if (weight < 1 || weight > 100 || cap_percent > 100 ||
      (cap_percent != 0 && cap_percent < weight)) {
    return InvalidArgument("compute arbiter tenant " + key +
                           ": weight must be 1-100 and the cap 0 or weight-100");
  }
  auto tenant = std::make_unique<Tenant>();
  tenant->key = key;
  tenant->path = requests_path;
  // Read-only, no symlink, a regular file: the file lies in a directory its container can write.
  tenant->fd = ::open(requests_path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (tenant->fd < 0) {
    return Unavailable("cannot open the request file " + requests_path + ": " + Errno(errno));
  }
  struct stat st {};
  if (::fstat(tenant->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return FailedPrecondition("the request file " + requests_path + " is not a regular file");
  }
  void* mapping = ::mmap(nullptr, sizeof(ArbiterRequests), PROT_READ, MAP_SHARED, tenant->fd, 0);
  if (mapping != MAP_FAILED) tenant->mapped = static_cast<const ArbiterRequests*>(mapping);
  std::optional<Carried> carried;  // from before a restart
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = carried_.find(key); it != carried_.end()) {
      carried = it->second;
      carried_.erase(it);
    }
  }
  RemoveTenant(key);
  std::lock_guard<std::mutex> lock(mu_);
  for (std::uint32_t slot = 0; slot < kArbiterTenants; ++slot) {
    if (tenants_[slot] != nullptr) continue;
    core_.AddTenant(slot, weight, cap_percent, st.st_dev, st.st_ino);
    if (carried) core_.RestoreAccount(slot, carried->vtime, carried->charged_ns);
    tenants_[slot] = std::move(tenant);
    slots_[key] = slot;
    Kick();
    return Status::Ok();
  }
  return ResourceExhausted("the compute arbiter " + grant_path_ + " has " +
                           std::to_string(kArbiterTenants) + " containers already");
}

void ArbiterReferee::RemoveTenant(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(key);
  if (it == slots_.end()) return;
  core_.RemoveTenant(it->second, MonotonicNowNs());
  FutexWake(&page_->seq);
  tenants_[it->second].reset();
  slots_.erase(it);
  Kick();
}

bool ArbiterReferee::HasTenant(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return slots_.count(key) != 0;
}

std::size_t ArbiterReferee::tenant_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slots_.size();
}

std::uint64_t ArbiterReferee::ChargedNs(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(key);
  return it == slots_.end() ? 0 : core_.charged_ns(it->second);
}

std::uint64_t ArbiterReferee::VirtualTime(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(key);
  return it == slots_.end() ? 0 : core_.vtime(it->second);
}

void ArbiterReferee::Loop() {
  bool have_waitv = true;
  std::vector<WaitV> waiters;
  std::uint64_t last_look = 0;
  while (!stop_) {
    // A container ringing its doorbell in a loop gets at most one look per kMinLookNs.
    const std::uint64_t since = MonotonicNowNs() - last_look;
    if (since < kMinLookNs) {
      const timespec pause{0, static_cast<long>(kMinLookNs - since)};
      ::nanosleep(&pause, nullptr);
    }
    last_look = MonotonicNowNs();
    ++looks_;
    const std::uint32_t control = __atomic_load_n(&control_, __ATOMIC_ACQUIRE);
    std::uint64_t now = 0;
    std::uint64_t deadline = 0;
    waiters.clear();
    waiters.push_back({control, reinterpret_cast<std::uintptr_t>(&control_), FUTEX_32, 0});
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& t : tenants_) {
        if (t != nullptr) t->Read();
      }
      const std::uint32_t seq = __atomic_load_n(&page_->seq, __ATOMIC_ACQUIRE);
      View view(*this);
      now = MonotonicNowNs();
      deadline = core_.Poll(now, view);
      if (__atomic_load_n(&page_->seq, __ATOMIC_ACQUIRE) != seq) FutexWake(&page_->seq);
      for (auto& t : tenants_) {
        if (t != nullptr && t->readable && t->mapped != nullptr) {
          waiters.push_back({t->copy.doorbell,
                             reinterpret_cast<std::uintptr_t>(&t->mapped->doorbell), FUTEX_32, 0});
        }
      }
    }
    SaveCharges(now, false);
    std::uint64_t until = now + kIdleLookNs;
    if (deadline < until) until = deadline;
    if (until <= now) continue;
    if (have_waitv) {
      timespec at{static_cast<time_t>(until / 1'000'000'000ULL),
                  static_cast<long>(until % 1'000'000'000ULL)};
      const long rc = ::syscall(SYS_futex_waitv, waiters.data(),
                                static_cast<unsigned>(waiters.size()), 0u, &at, CLOCK_MONOTONIC);
      if (rc >= 0 || errno == EAGAIN || errno == ETIMEDOUT || errno == EINTR) continue;
      if (errno == ENOSYS) {
        have_waitv = false;
        spdlog::warn("compute arbiter {}: no futex_waitv (Linux < 5.16); polling every 200 us",
                     grant_path_);
      }
      // EFAULT: a tenant truncated its request file; its next read says so. Do not spin.
    }
    FutexWait(&control_, control, std::min<std::uint64_t>(until - now, kPollFallbackNs));
  }
}

void ArbiterReferee::SyncFromDirectory(const std::string& dir) {
  std::map<std::string, bool> seen;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string key = entry.path().filename().string();
    if (key.empty() || key[0] == '.') continue;
    seen[key] = true;
    if (HasTenant(key)) continue;
    std::ifstream in(entry.path());
    std::string word;
    std::uint32_t weight = 0;
    std::uint32_t cap = 0;
    std::string requests;
    // A number that does not parse (or overflows) stays 0, which AddTenant refuses for a weight.
    const auto number = [](const std::string& text, std::size_t from, std::uint32_t* out) {
      const auto [end, error] =
          std::from_chars(text.data() + from, text.data() + text.size(), *out);
      if (error != std::errc() || end != text.data() + text.size()) *out = 0;
    };
    while (in >> word) {
      if (word.rfind("weight=", 0) == 0) number(word, 7, &weight);
      if (word.rfind("cap=", 0) == 0) number(word, 4, &cap);
      if (word.rfind("requests=", 0) == 0) requests = word.substr(9);
    }
    if (!requests.empty() && !fs::exists(requests)) {  // its run ended without cleaning up
      fs::remove(entry.path(), ec);
      continue;
    }
    if (Status s = AddTenant(key, requests, weight, cap); !s.ok()) {
      spdlog::warn("compute arbiter entry {}: {}", entry.path().string(), s.message());
      seen.erase(key);
    }
  }
  std::vector<std::string> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, slot] : slots_) {
      if (!seen.count(key)) gone.push_back(key);
    }
  }
  for (const std::string& key : gone) RemoveTenant(key);
}

// ---- SharedReferee ----

Result<std::unique_ptr<SharedReferee>> SharedReferee::Join(const std::string& gpu_dir,
                                                           const std::string& name,
                                                           const std::string& requests_path,
                                                           std::uint32_t weight,
                                                           std::uint32_t cap_percent) {
  std::unique_ptr<SharedReferee> shared(new SharedReferee);
  shared->gpu_dir_ = gpu_dir;
  std::error_code ec;
  fs::create_directories(fs::path(gpu_dir) / "tenants", ec);
  if (ec) return Unavailable("cannot create " + gpu_dir + "/tenants: " + ec.message());
  const std::string grant = gpu_dir + "/grant";
  if (!fs::exists(grant)) {
    // Created under a temporary name and linked into place: two runs starting together end up
    // with one page; the leader re-initialises it in place.
    const std::string tmp = grant + ".tmp." + std::to_string(::getpid());
    int rc = ArbiterRegion::CreateGrantPage(tmp.c_str(), 0644);
    if (rc == 0 && ::link(tmp.c_str(), grant.c_str()) != 0 && errno != EEXIST) rc = errno;
    ::unlink(tmp.c_str());
    if (rc != 0) return Unavailable("cannot create the grant page " + grant + ": " + Errno(rc));
  }
  shared->entry_path_ = gpu_dir + "/tenants/" + name;
  {
    std::ofstream out(shared->entry_path_ + ".tmp");
    out << "weight=" << weight << " cap=" << cap_percent << " requests=" << requests_path << "\n";
    if (!out) return Unavailable("cannot write " + shared->entry_path_);
  }
  fs::rename(shared->entry_path_ + ".tmp", shared->entry_path_, ec);
  if (ec) return Unavailable("cannot write " + shared->entry_path_ + ": " + ec.message());
  shared->lock_fd_ =
      ::open((gpu_dir + "/referee.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (shared->lock_fd_ < 0)
    return Unavailable("cannot open " + gpu_dir + "/referee.lock: " + Errno(errno));
  shared->thread_ = std::thread([s = shared.get()] { s->Loop(); });
  return shared;
}

SharedReferee::~SharedReferee() {
  std::error_code ec;
  fs::remove(entry_path_, ec);
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  referee_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);  // drops the election lock: another run takes over
}

void SharedReferee::Loop() {
  const std::string tenants = gpu_dir_ + "/tenants";
  while (!stop_) {
    if (referee_ == nullptr && ::flock(lock_fd_, LOCK_EX | LOCK_NB) == 0) {
      Result<std::unique_ptr<ArbiterReferee>> started = ArbiterReferee::Start(grant_path());
      if (started.ok()) {
        referee_ = *std::move(started);
      } else {
        spdlog::warn("{}", started.status().message());
        ::flock(lock_fd_, LOCK_UN);
      }
    }
    if (referee_ != nullptr) referee_->SyncFromDirectory(tenants);
    std::this_thread::sleep_for(std::chrono::milliseconds(referee_ != nullptr ? 20 : 100));
  }
}

}  // namespace gpuslice::shim
