// A container's process played in a test thread: it joins the container's request file on a
// GPU's compute arbiter (a real referee publishing on `grant`), wants the GPU all the time, holds
// each grant until the referee ends its turn (no work: nothing to drain) and hands it back,
// until Stop (it then hands back and stops wanting). Two of them make a referee charge both
// containers, as two busy containers would. Header-only; needs gpuslice_shim_core.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "shim/arbiter_region.h"
#include "shim/compute_arbiter.h"

namespace gpuslice::testing {

class ContendingTenant {
 public:
  ContendingTenant() = default;
  ContendingTenant(const ContendingTenant&) = delete;
  ContendingTenant& operator=(const ContendingTenant&) = delete;
  ~ContendingTenant() { Stop(); }

  // Empty when it joined and started; else what failed.
  std::string Start(const std::string& grant, const std::string& requests) {
    if (region_.Open(grant.c_str(), requests.c_str()) != 0) return "cannot open " + requests;
    process_ = region_.Join(0);
    if (process_ == shim::kNoTenant) return "no free process record in " + requests;
    gate_ =
        std::make_unique<shim::TenantGate>(region_.page(), &region_.requests()->processes[process_],
                                           shim::kNoTenant, &region_, shim::ArbiterParams{});
    thread_ = std::thread([this] { Loop(); });
    return "";
  }

  // Hands back what it holds and stops wanting the GPU (the record stays its).
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  std::uint64_t grants() const { return grants_.load(); }

 private:
  void Loop() {
    using shim::GateDecision;
    while (!stop_) {
      const std::uint32_t slot = region_.FindTenantSlot();
      if (!gate_->holding()) {
        gate_->set_holder_id(slot == shim::kNoTenant ? shim::kNoTenant
                                                     : shim::HolderId(slot, process_));
      }
      const std::uint32_t seen = __atomic_load_n(&region_.page()->seq, __ATOMIC_ACQUIRE);
      const std::uint64_t now = shim::MonotonicNowNs();
      const GateDecision d = gate_->BeforeLaunch(now);
      if (d == GateDecision::kGo && gate_->holding()) {
        if (!holding_) ++grants_;
        holding_ = true;
      }
      if (d == GateDecision::kDrainThenRelease) {
        gate_->Release(now, now, true);
        holding_ = false;
      }
      if (d != GateDecision::kDrain) region_.WaitForChange(seen, 1'000'000);
      if (d == GateDecision::kDrain) gate_->Drained(now);
    }
    const std::uint64_t now = shim::MonotonicNowNs();
    if (gate_->holding()) gate_->Release(now, now, false);
    gate_->StopWanting();
  }

  shim::ArbiterRegion region_;
  std::unique_ptr<shim::TenantGate> gate_;
  std::uint32_t process_ = shim::kNoTenant;
  bool holding_ = false;
  std::atomic<std::uint64_t> grants_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace gpuslice::testing
