// Shared set-up for the compute-arbiter tests: an arbiter in memory (grant page, request files,
// referee core, liveness) for the scheduling tests, and the simulated-GPU driver that runs
// tenants through the same TenantGate the shim uses.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "../fakes/simulated_gpu.h"
#include "shim/compute_arbiter.h"

namespace gpuslice::shim::testing {

inline constexpr std::uint64_t kUs = 1000;
inline constexpr std::uint64_t kMs = 1000 * kUs;
inline constexpr std::uint64_t kS = 1000 * kMs;

// One GPU's arbiter in memory: the referee's page and core, one request file per container.
// Request files are plain memory, as writable as a container's own file is to it.
class MemoryArbiter final : public RequestView {
 public:
  explicit MemoryArbiter(const ArbiterParams& params = {})
      : params_(params), core_(&page_, params) {
    InitGrantPage(&page_);
  }
  // A container of `weight` (and `cap_percent`); returns its slot.
  std::uint32_t AddTenant(std::uint32_t weight, std::uint32_t cap_percent = 0) {
    const std::uint32_t t = count_++;
    InitRequests(&requests_[t]);
    core_.AddTenant(t, weight, cap_percent);
    return t;
  }
  // Process `process` of container `tenant`'s gate (its record marked in use).
  std::unique_ptr<TenantGate> Gate(std::uint32_t tenant, std::uint32_t process = 0) {
    requests_[tenant].processes[process].in_use = 1;
    return std::make_unique<TenantGate>(&page_, &requests_[tenant].processes[process],
                                        HolderId(tenant, process), nullptr, params_);
  }
  // The referee looks now; returns its next deadline.
  std::uint64_t Poll(std::uint64_t now_ns) { return core_.Poll(now_ns, *this); }
  void Kill(std::uint32_t tenant, std::uint32_t process = 0) {
    dead_.insert(HolderId(tenant, process));
  }

  std::uint64_t token() const { return page_.token; }
  std::uint32_t holder() const { return TokenHolder(page_.token); }
  ArbiterGrantPage& page() { return page_; }
  ArbiterRequests& requests(std::uint32_t tenant) { return requests_[tenant]; }
  RefereeCore& core() { return core_; }
  const ArbiterParams& params() const { return params_; }

  // RequestView
  const ArbiterRequests* Requests(std::uint32_t tenant) override {
    return requests_[tenant].magic == kRequestsMagic ? &requests_[tenant] : nullptr;
  }
  bool Alive(std::uint32_t tenant, std::uint32_t process) override {
    return requests_[tenant].processes[process].in_use == 1 &&
           dead_.count(HolderId(tenant, process)) == 0;
  }

 private:
  ArbiterParams params_;
  ArbiterGrantPage page_{};
  ArbiterRequests requests_[kArbiterTenants]{};
  RefereeCore core_;
  std::uint32_t count_ = 0;
  std::set<std::uint32_t> dead_;
};

// ---- Tenants on the simulated GPU ----

struct SimTenant {
  std::uint32_t weight = 50;
  std::uint64_t kernel_ns = 200 * kUs;
  std::uint32_t cap_percent = 0;
  // Active in [start, end) windows of simulated time (none: always).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> active;
  // Kernels the application keeps queued at most (it synchronises beyond this).
  std::size_t max_in_flight = 4;
  // A hostile tenant: called every step with what it can read (the grant page) and everything it
  // can write (its own request file).
  std::function<void(std::uint64_t now, const ArbiterGrantPage& page, ArbiterRequests& mine)>
      scribble;
  // A hostile tenant that ignores the referee's "release" (keeps launching while it holds).
  bool ignores_release = false;
};

struct SimResult {
  std::vector<double> share_percent;                    // of the GPU time used in the window
  double busy_fraction = 0;                             // GPU time used / window
  std::vector<std::vector<std::uint64_t>> busy_per_ms;  // per tenant, per ms of the run
  std::vector<std::uint64_t> charged_ns;                // what the referee charged each
  // GPU time each tenant used while another container held the token (its backlog).
  std::vector<std::uint64_t> backlog_ns;
  // Launches that went on the holder's fast path (the token word unchanged since the holder's
  // last kGo, budget left) rather than through TenantGate::BeforeLaunch.
  std::uint64_t fast_launches = 0;
};

// Runs `tenants` for `run_ns` (1 us steps), measuring [warmup_ns, run_ns). With `arbitrate`
// false every launch goes straight to the GPU (the hardware's equal turns). The referee looks
// whenever a request changed or its deadline passed, as its thread does on a doorbell.
SimResult Simulate(const std::vector<SimTenant>& tenants, std::uint64_t run_ns,
                   std::uint64_t warmup_ns, bool arbitrate = true);

}  // namespace gpuslice::shim::testing
