// ArbiterReferee: the control plane's side of a GPU's compute arbiter (compute_arbiter.h). One
// thread per GPU owns the authoritative state (RefereeCore), reads each container's request file
// with pread, publishes the grant in the GPU's grant page, and sleeps in futex_waitv on the
// containers' doorbells (Linux 5.16+; older kernels: it polls every 200 us).
//
// Used by the node agent (one per fractional GPU, tenants added at the Allocate hand-off) and by
// `gpuslice run` (SharedReferee: the runs on one GPU elect one referee by an flock, tenants listed
// in a directory the supervisors write).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"
#include "shim/compute_arbiter.h"

namespace gpuslice::shim {

class ArbiterReferee {
 public:
  // Creates the grant page at `grant_path` (mode 0644), or re-initialises it in place, and starts
  // the referee thread. With `charges_path` (a file only the control plane can read and write,
  // outside every container's mounts) each container's virtual time and charge survive a restart:
  // the referee writes them there at most once a second while they change and when it stops
  // (mode 0600, written whole and renamed into place), and a referee started over the same file
  // gives a container added under a key it lists that key's virtual time and charge.
  static Result<std::unique_ptr<ArbiterReferee>> Start(const std::string& grant_path,
                                                       const ArbiterParams& params = {},
                                                       const std::string& charges_path = "");
  ~ArbiterReferee();
  ArbiterReferee(const ArbiterReferee&) = delete;
  ArbiterReferee& operator=(const ArbiterReferee&) = delete;

  // A container `key` whose request file (ArbiterRegion::CreateRequests) is `requests_path`, with
  // the weight and cap the control plane decided. Replaces an earlier entry of that key.
  Status AddTenant(const std::string& key, const std::string& requests_path, std::uint32_t weight,
                   std::uint32_t cap_percent);
  void RemoveTenant(const std::string& key);
  bool HasTenant(const std::string& key) const;
  std::size_t tenant_count() const;
  // GPU time the referee has charged `key` (0 when unknown).
  std::uint64_t ChargedNs(const std::string& key) const;
  // `key`'s virtual time (0 when unknown).
  std::uint64_t VirtualTime(const std::string& key) const;
  const std::string& grant_path() const { return grant_path_; }
  // How many times the referee has looked at the requests (diagnostics, tests).
  std::uint64_t looks() const { return looks_.load(); }

  // Drops the charges read at start that no AddTenant claimed (the caller has re-registered
  // every container it recovered): a later container under the same key starts afresh.
  void ForgetUnclaimedCharges();

  // Brings the tenants in line with a directory of entries, one file per container, each
  // "weight=N cap=M requests=/abs/path" (gpuslice run). Bad entries are skipped with a log line.
  void SyncFromDirectory(const std::string& dir);

 private:
  struct Tenant;
  class View;
  ArbiterReferee(std::string grant_path, ArbiterGrantPage* page, const ArbiterParams& params);
  void Loop();
  void Kick();
  // Charges carried over restarts (charges_path_).
  struct Carried {
    std::uint64_t vtime = 0;
    std::uint64_t charged_ns = 0;
    bool operator==(const Carried&) const = default;
  };
  void LoadCharges();
  void SaveCharges(std::uint64_t now_ns, bool force);

  std::string grant_path_;
  ArbiterGrantPage* page_;
  RefereeCore core_;
  mutable std::mutex mu_;
  std::map<std::string, std::uint32_t> slots_;  // key -> tenant slot
  std::unique_ptr<Tenant> tenants_[kArbiterTenants];
  std::uint32_t control_ = 0;  // futex word: kicked on add/remove/stop
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> looks_{0};
  std::string charges_path_;
  std::map<std::string, Carried> carried_;  // read at start, not yet claimed by AddTenant
  std::uint64_t saved_ns_ = 0;
  std::map<std::string, Carried> saved_;  // what the file says
  bool saves_failing_ = false;            // warned once until a save succeeds
  std::thread thread_;
};

// `gpuslice run`'s referee for one GPU directory `gpu_dir` (grant page `grant`, entries under
// `tenants/`, election lock `referee.lock`): every run registers its container and competes for
// the lock; the holder runs the referee, the others take over when it exits.
class SharedReferee {
 public:
  // Registers this run (`name`) and starts competing. The grant page exists when this returns.
  static Result<std::unique_ptr<SharedReferee>> Join(const std::string& gpu_dir,
                                                     const std::string& name,
                                                     const std::string& requests_path,
                                                     std::uint32_t weight,
                                                     std::uint32_t cap_percent);
  ~SharedReferee();  // unregisters; hands the referee on
  std::string grant_path() const { return gpu_dir_ + "/grant"; }
  bool leading() const { return referee_ != nullptr; }

 private:
  SharedReferee() = default;
  void Loop();

  std::string gpu_dir_;
  std::string entry_path_;
  int lock_fd_ = -1;
  std::unique_ptr<ArbiterReferee> referee_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace gpuslice::shim
