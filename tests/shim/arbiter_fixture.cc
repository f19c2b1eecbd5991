#include "arbiter_fixture.h"

namespace gpuslice::shim::testing {
namespace {

// Tells the simulation's referee that a request changed (the real one: a doorbell futex).
class FlagDoorbell final : public Doorbell {
 public:
  void Ring() noexcept override { rung = true; }
  bool rung = false;
};

struct SimState {
  std::size_t ctx = 0;
  std::unique_ptr<TenantGate> gate;
  std::uint64_t next = 0;
  bool draining = false;  // a turn's end: drain, then release
  bool bounding = false;  // a turn of work queued: drain, then go on
  // The holder's fast path, as the shim runs it (cuda_shim.cc, AdmitLaunch): after a kGo to the
  // holder, up to `granted` launches go on a compare of the token word with `token` alone.
  std::uint64_t token = 0;
  std::uint64_t granted = 0;
  std::uint64_t left = 0;
};

// One launch decision: the holder's fast path when the token word is still the one of its last
// kGo and budget is left, otherwise the gate (after counting the fast launches in it).
GateDecision Admit(SimState& s, std::uint64_t token_word, std::uint64_t now,
                   std::uint64_t* fast_launches) {
  if (s.gate->holding() && token_word == s.token && s.left > 0) {
    --s.left;
    ++*fast_launches;
    return GateDecision::kGo;
  }
  s.gate->CountLaunches(s.granted - s.left);
  s.granted = s.left = 0;
  const GateDecision d = s.gate->BeforeLaunch(now);
  if (d == GateDecision::kGo && s.gate->holding()) {
    s.token = s.gate->go_token();
    s.granted = s.left = s.gate->LaunchesWithoutCheck();
  }
  return d;
}

bool ActiveAt(const SimTenant& t, std::uint64_t now) {
  if (t.active.empty()) return true;
  for (const auto& [from, to] : t.active) {
    if (now >= from && now < to) return true;
  }
  return false;
}

}  // namespace

SimResult Simulate(const std::vector<SimTenant>& tenants, std::uint64_t run_ns,
                   std::uint64_t warmup_ns, bool arbitrate) {
  constexpr std::uint64_t kStep = 1 * kUs;
  constexpr std::uint64_t kHostLaunch = 4 * kUs;  // host time per launch
  constexpr std::uint64_t kPoll = 20 * kUs;       // a waiter's wake-up latency
  ::gpuslice::testing::SimulatedGpu gpu;
  MemoryArbiter m;
  FlagDoorbell doorbell;
  std::vector<SimState> st;
  for (const SimTenant& t : tenants) {
    const std::uint32_t id = m.AddTenant(t.weight, t.cap_percent);
    SimState s;
    s.ctx = gpu.AddContext();
    m.requests(id).processes[0].in_use = 1;
    s.gate = std::make_unique<TenantGate>(&m.page(), &m.requests(id).processes[0], HolderId(id, 0),
                                          &doorbell, m.params());
    st.push_back(std::move(s));
  }
  SimResult result;
  result.busy_per_ms.resize(tenants.size());
  result.backlog_ns.resize(tenants.size());
  std::vector<std::uint64_t> busy_at_warmup(tenants.size());
  constexpr std::uint64_t kNever = UINT64_MAX / 2;
  constexpr std::uint64_t kRefereeLatency = 30 * kUs;
  std::uint64_t deadline = 0;
  std::uint64_t rung_at = kNever;
  for (std::uint64_t now = 0; now < run_ns; now += kStep) {
    if (now == warmup_ns) {
      for (std::size_t i = 0; i < st.size(); ++i) busy_at_warmup[i] = gpu.BusyNs(st[i].ctx);
    }
    if (now % kMs == 0) {
      for (std::size_t i = 0; i < st.size(); ++i) {
        result.busy_per_ms[i].push_back(gpu.BusyNs(st[i].ctx));
      }
    }
    for (std::size_t i = 0; i < st.size(); ++i) {
      SimState& s = st[i];
      const SimTenant& t = tenants[i];
      if (t.scribble) {
        t.scribble(now, m.page(), m.requests(static_cast<std::uint32_t>(i)));
        doorbell.rung = true;
      }
      if (now < s.next) continue;
      s.next = now + kStep;
      const std::size_t pending = gpu.Pending(s.ctx);
      if (s.draining || s.bounding || !ActiveAt(t, now)) {
        // Waiting for its own work (a turn's end, or a turn of work queued), or idle.
        if (pending == 0 && s.bounding) s.gate->Drained(gpu.LastCompletion(s.ctx));
        if (pending == 0 && !s.bounding && s.gate->holding()) {
          s.gate->Release(gpu.LastCompletion(s.ctx), now, s.draining);
        }
        if (pending == 0 && !s.gate->holding() && !s.draining && !ActiveAt(t, now)) {
          s.gate->StopWanting();
        }
        if (pending == 0) s.draining = s.bounding = false;
        continue;
      }
      if (pending >= t.max_in_flight) continue;
      GateDecision d =
          arbitrate ? Admit(s, m.token(), now, &result.fast_launches) : GateDecision::kGo;
      if (t.ignores_release && d != GateDecision::kWait &&
          TokenHolder(m.token()) == s.gate->holder_id()) {
        d = GateDecision::kGo;  // keeps launching on a token it was asked to hand back
      }
      if (d == GateDecision::kGo) {
        gpu.Submit(s.ctx, t.kernel_ns);
        s.next = now + kHostLaunch;
      } else if (d == GateDecision::kWait) {
        s.next = now + kPoll;
      } else if (d == GateDecision::kDrain) {
        s.bounding = true;
      } else {
        s.draining = true;
      }
    }
    // The referee's thread wakes a little after a doorbell (futex wake-up, its 50 us spacing).
    if (doorbell.rung && rung_at == kNever) rung_at = now;
    if (arbitrate && (now >= rung_at + kRefereeLatency || now >= deadline)) {
      doorbell.rung = false;
      rung_at = kNever;
      deadline = m.Poll(now);
    }
    std::vector<std::uint64_t> before(st.size());
    for (std::size_t i = 0; i < st.size(); ++i) before[i] = gpu.BusyNs(st[i].ctx);
    gpu.Step(kStep);
    const std::uint32_t holder = m.holder();
    for (std::size_t i = 0; i < st.size(); ++i) {
      if (arbitrate && now >= warmup_ns && holder != kNoTenant &&
          holder / kProcessesPerTenant != i) {
        result.backlog_ns[i] += gpu.BusyNs(st[i].ctx) - before[i];
      }
    }
  }
  std::uint64_t total = 0;
  std::vector<std::uint64_t> used;
  for (std::size_t i = 0; i < st.size(); ++i) {
    used.push_back(gpu.BusyNs(st[i].ctx) - busy_at_warmup[i]);
    total += used.back();
    result.charged_ns.push_back(m.core().charged_ns(static_cast<std::uint32_t>(i)));
  }
  for (std::uint64_t u : used) {
    result.share_percent.push_back(100.0 * static_cast<double>(u) / static_cast<double>(total));
  }
  result.busy_fraction = static_cast<double>(total) / static_cast<double>(run_ns - warmup_ns);
  return result;
}

}  // namespace gpuslice::shim::testing
