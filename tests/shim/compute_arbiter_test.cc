// The compute arbiter's scheduling logic (compute_arbiter.h) on simulated time: unit tests of the
// table operations, then tenants driving the arbiter against the simulated GPU
// (tests/fakes/simulated_gpu.h), which time-slices busy contexts equally as the hardware does.
#include "shim/compute_arbiter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "../fakes/simulated_gpu.h"

namespace gpuslice::shim {
namespace {

constexpr std::uint64_t kUs = 1000;
constexpr std::uint64_t kMs = 1000 * kUs;
constexpr std::uint64_t kS = 1000 * kMs;

// A table in memory: no mutex needed (one thread), liveness from a set of dead records.
class MemoryTable final : public ArbiterTableAccess {
 public:
  MemoryTable() { InitArbiterTable(&layout_); }
  ArbiterLayout* table() override { return &layout_; }
  void Lock() override {}
  void Unlock() override {}
  bool Alive(std::uint32_t tenant) override { return dead_.count(tenant) == 0; }
  void Kill(std::uint32_t tenant) { dead_.insert(tenant); }

 private:
  ArbiterLayout layout_{};
  std::set<std::uint32_t> dead_;
};

// ---- Table operations ----

TEST(ComputeArbiterTable, ALoneTenantTakesTheTokenAndIsNeverCharged) {
  MemoryTable m;
  ArbiterParams p;
  const std::uint32_t a = JoinTenant(m.table(), 30, 1);
  ASSERT_TRUE(AcquireToken(m.table(), a, 0, p, &m));
  EXPECT_EQ(m.table()->header.token, PackToken(a, 0)) << "the fast path reads exactly this";
  EXPECT_FALSE(TurnOver(m.table(), a, 10 * kS)) << "nobody waits: the turn never ends";
  ReleaseToken(m.table(), a, 10 * kS, 1000, false, 10 * kS, p, &m);
  EXPECT_EQ(m.table()->tenants[a].charged_ns, 0u);
  EXPECT_EQ(m.table()->tenants[a].vtime, 0u);
}

TEST(ComputeArbiterTable, ContentionStartsTheHoldersTurnAndChargeNow) {
  MemoryTable m;
  ArbiterParams p;
  const std::uint32_t a = JoinTenant(m.table(), 50, 1);
  const std::uint32_t b = JoinTenant(m.table(), 50, 2);
  ASSERT_TRUE(AcquireToken(m.table(), a, 0, p, &m));
  // B arrives an hour later: A is not revoked for its lone hour, its turn starts now.
  EXPECT_FALSE(AcquireToken(m.table(), b, 3600 * kS, p, &m));
  EXPECT_EQ(m.table()->header.token, PackToken(a, 1));
  EXPECT_FALSE(TurnOver(m.table(), a, 3600 * kS + 1 * kMs));
  EXPECT_TRUE(TurnOver(m.table(), a, 3600 * kS + p.min_turn_ns));
  ReleaseToken(m.table(), a, 3600 * kS + 3 * kMs, 10, true, 3600 * kS + 3 * kMs, p, &m);
  EXPECT_EQ(m.table()->tenants[a].charged_ns, 3 * kMs) << "only the contended part";
  EXPECT_EQ(m.table()->header.token, PackToken(b, 1)) << "B has the least virtual time";
}

TEST(ComputeArbiterTable, VirtualTimeIsChargeOverWeight) {
  MemoryTable m;
  ArbiterParams p;
  const std::uint32_t a = JoinTenant(m.table(), 25, 1);
  const std::uint32_t b = JoinTenant(m.table(), 75, 2);
  ASSERT_TRUE(AcquireToken(m.table(), a, 0, p, &m));
  AcquireToken(m.table(), b, 0, p, &m);
  ReleaseToken(m.table(), a, 4 * kMs, 4, true, 4 * kMs, p, &m);
  EXPECT_EQ(m.table()->tenants[a].vtime, 4 * kMs * 100 / 25);
}

TEST(ComputeArbiterTable, AWakingTenantStartsAtTheMinimumActiveVirtualTime) {
  MemoryTable m;
  ArbiterParams p;
  const std::uint32_t a = JoinTenant(m.table(), 50, 1);
  const std::uint32_t b = JoinTenant(m.table(), 50, 2);
  m.table()->tenants[a].vtime = 5 * kS;  // A has been running
  m.table()->tenants[a].state = static_cast<std::uint32_t>(TenantState::kHolding);
  m.table()->header.token = PackToken(a, 0);
  AcquireToken(m.table(), b, 0, p, &m);
  EXPECT_EQ(m.table()->tenants[b].vtime, 5 * kS) << "B banked no credit while idle";
}

TEST(ComputeArbiterTable, ADeadHolderLosesTheTokenAtOnce) {
  MemoryTable m;
  ArbiterParams p;
  const std::uint32_t a = JoinTenant(m.table(), 50, 1);
  const std::uint32_t b = JoinTenant(m.table(), 50, 2);
  ASSERT_TRUE(AcquireToken(m.table(), a, 0, p, &m));
  EXPECT_FALSE(AcquireToken(m.table(), b, 1 * kMs, p, &m));
  m.Kill(a);
  EXPECT_TRUE(AcquireToken(m.table(), b, 2 * kMs, p, &m));
  EXPECT_EQ(m.table()->tenants[a].state, static_cast<std::uint32_t>(TenantState::kFree));
}

TEST(ComputeArbiterTable, AHungHolderIsRevokedAfterTurnPlusLeaseNotBefore) {
  MemoryTable m;
  ArbiterParams p;
  const std::uint32_t a = JoinTenant(m.table(), 50, 1);
  const std::uint32_t b = JoinTenant(m.table(), 50, 2);
  ASSERT_TRUE(AcquireToken(m.table(), a, 0, p, &m));
  EXPECT_FALSE(AcquireToken(m.table(), b, 0, p, &m));
  const std::uint64_t deadline = m.table()->header.turn_ns + p.lease_ns;
  EXPECT_FALSE(AcquireToken(m.table(), b, deadline, p, &m));
  EXPECT_TRUE(AcquireToken(m.table(), b, deadline + 1, p, &m));
  EXPECT_EQ(m.table()->tenants[a].charged_ns, deadline + 1) << "charged its whole hold";
}

TEST(ComputeArbiterTable, ARevokedHoldersBacklogIsChargedAsDebt) {
  MemoryTable m;
  ArbiterParams p;
  const std::uint32_t a = JoinTenant(m.table(), 50, 1);
  const std::uint32_t b = JoinTenant(m.table(), 50, 2);
  TenantGate gate_a(&m, a, p);
  ASSERT_EQ(gate_a.BeforeLaunch(0), GateDecision::kGo);
  AcquireToken(m.table(), b, 0, p, &m);
  const std::uint64_t revoked_at = m.table()->header.turn_ns + p.lease_ns + 1;
  ASSERT_TRUE(AcquireToken(m.table(), b, revoked_at, p, &m));
  // A's next launch learns it lost the token; its work finished 30 ms after the revocation.
  EXPECT_EQ(gate_a.BeforeLaunch(revoked_at + 1), GateDecision::kDrainThenRelease);
  gate_a.Release(revoked_at + 30 * kMs, revoked_at + 30 * kMs, true);
  EXPECT_EQ(m.table()->tenants[a].charged_ns, revoked_at + 30 * kMs);
  EXPECT_FALSE(gate_a.holding());
}

TEST(ComputeArbiterTable, TurnAdaptsToTheHoldersKernels) {
  MemoryTable m;
  ArbiterParams p;
  const std::uint32_t a = JoinTenant(m.table(), 50, 1);
  const std::uint32_t b = JoinTenant(m.table(), 50, 2);
  ASSERT_TRUE(AcquireToken(m.table(), a, 0, p, &m));
  AcquireToken(m.table(), b, 0, p, &m);
  ReleaseToken(m.table(), a, 10 * kMs, 2, true, 10 * kMs, p, &m);  // 5 ms kernels
  EXPECT_EQ(m.table()->header.token, PackToken(b, 1));
  EXPECT_EQ(m.table()->header.turn_ns, p.min_turn_ns) << "B has not run: the minimum";
  ReleaseToken(m.table(), b, 30 * kMs, 1000, true, 30 * kMs, p, &m);  // 20 us kernels
  EXPECT_EQ(m.table()->header.token, PackToken(a, 1));
  EXPECT_EQ(m.table()->header.turn_ns, p.max_turn_ns) << "A: 8 x 5 ms, capped";
  ReleaseToken(m.table(), a, 50 * kMs, 4, true, 50 * kMs, p, &m);
  EXPECT_EQ(m.table()->header.token, PackToken(b, 1));
  EXPECT_EQ(m.table()->header.turn_ns, p.min_turn_ns) << "B: 8 x 20 us, raised to the minimum";
}

TEST(ComputeArbiterTable, NoTableWriteKeepsAnHonestTenantWaitingPastTheMaximumWait) {
  // A hostile tenant keeps forging a fresh turn for itself (token, grant time, its liveness).
  MemoryTable m;
  ArbiterParams p;
  const std::uint32_t hostile = JoinTenant(m.table(), 1, 1);
  const std::uint32_t honest = JoinTenant(m.table(), 50, 2);
  TenantGate gate(&m, honest, p);
  std::uint64_t now = 0;
  for (;;) {
    m.table()->tenants[hostile].state = static_cast<std::uint32_t>(TenantState::kHolding);
    m.table()->tenants[hostile].charging = 1;
    m.table()->header.token = PackToken(hostile, 0);
    m.table()->header.grant_ns = now;
    if (gate.BeforeLaunch(now) == GateDecision::kGo) break;
    now += 1 * kMs;
    ASSERT_LT(now, 2 * p.max_wait_ns) << "stalled";
  }
  const std::uint64_t waited = now;
  EXPECT_GE(waited, p.max_wait_ns);
  EXPECT_TRUE(gate.bypassing(now));
  EXPECT_EQ(gate.BeforeLaunch(now + p.bypass_ns - 1), GateDecision::kGo) << "runs unarbitrated";
}

// ---- Tenants on the simulated GPU ----

struct SimTenant {
  std::uint32_t weight = 50;
  std::uint64_t kernel_ns = 200 * kUs;
  std::uint32_t cap_percent = 0;
  // Active in [start, end) windows of simulated time (none: always).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> active;
};

struct SimResult {
  std::vector<double> share_percent;                    // of the GPU time used in the window
  double busy_fraction = 0;                             // GPU time used / window
  std::vector<std::vector<std::uint64_t>> busy_per_ms;  // per tenant, per ms of the run
};

// Runs `tenants` for `run_ns` (1 us steps), measuring [warmup_ns, run_ns). With `arbitrate`
// false every launch goes straight to the GPU (the hardware's equal turns).
SimResult Simulate(const std::vector<SimTenant>& tenants, std::uint64_t run_ns,
                   std::uint64_t warmup_ns, bool arbitrate = true) {
  constexpr std::uint64_t kStep = 1 * kUs;
  constexpr std::uint64_t kHostLaunch = 4 * kUs;  // host time per launch
  constexpr std::uint64_t kPoll = 20 * kUs;       // token wait poll
  constexpr std::size_t kMaxInFlight = 4;         // the app synchronises beyond this
  testing::SimulatedGpu gpu;
  MemoryTable m;
  ArbiterParams params;
  struct State {
    std::size_t ctx;
    std::unique_ptr<TenantGate> gate;
    std::uint64_t next = 0;
    bool draining = false;
  };
  std::vector<State> st;
  for (const SimTenant& t : tenants) {
    const std::uint32_t id = JoinTenant(m.table(), t.weight, static_cast<int>(st.size()));
    st.push_back({gpu.AddContext(), std::make_unique<TenantGate>(&m, id, params, t.cap_percent)});
  }
  auto active = [&](const SimTenant& t, std::uint64_t now) {
    if (t.active.empty()) return true;
    for (const auto& [from, to] : t.active) {
      if (now >= from && now < to) return true;
    }
    return false;
  };
  SimResult result;
  result.busy_per_ms.resize(tenants.size());
  std::vector<std::uint64_t> busy_at_warmup(tenants.size());
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
      State& s = st[i];
      if (now < s.next) continue;
      s.next = now + kStep;
      const std::size_t pending = gpu.Pending(s.ctx);
      if (s.draining || !active(tenants[i], now)) {
        // Waiting for its own work (a turn's end), or idle: hand on once nothing is queued.
        if (pending == 0 && s.gate->holding()) {
          s.gate->Release(gpu.LastCompletion(s.ctx), now, s.draining);
        }
        if (pending == 0) s.draining = false;
        continue;
      }
      if (pending >= kMaxInFlight) continue;
      const GateDecision d = arbitrate ? s.gate->BeforeLaunch(now) : GateDecision::kGo;
      if (d == GateDecision::kGo) {
        gpu.Submit(s.ctx, tenants[i].kernel_ns);
        s.next = now + kHostLaunch;
      } else if (d == GateDecision::kWait) {
        s.next = now + kPoll;
      } else {
        s.draining = true;
      }
    }
    gpu.Step(kStep);
  }
  std::uint64_t total = 0;
  std::vector<std::uint64_t> used;
  for (std::size_t i = 0; i < st.size(); ++i) {
    used.push_back(gpu.BusyNs(st[i].ctx) - busy_at_warmup[i]);
    total += used.back();
  }
  for (std::uint64_t u : used) {
    result.share_percent.push_back(100.0 * static_cast<double>(u) / static_cast<double>(total));
  }
  result.busy_fraction = static_cast<double>(total) / static_cast<double>(run_ns - warmup_ns);
  return result;
}

struct SplitCase {
  std::string name;
  std::vector<std::uint32_t> weights;
  std::vector<std::uint64_t> kernel_ns;  // per tenant (empty: 200 us each)
};
void PrintTo(const SplitCase& c, std::ostream* os) { *os << c.name; }

class ComputeSplit : public ::testing::TestWithParam<SplitCase> {};

TEST_P(ComputeSplit, EachTenantGetsItsWeightWithinTwoPointsAndTheGpuStaysBusy) {
  const SplitCase& c = GetParam();
  const SimResult lone = Simulate({SimTenant{}}, 1 * kS, 200 * kMs);
  std::vector<SimTenant> tenants;
  std::uint32_t weight_sum = 0;
  for (std::size_t i = 0; i < c.weights.size(); ++i) {
    SimTenant t;
    t.weight = c.weights[i];
    if (!c.kernel_ns.empty()) t.kernel_ns = c.kernel_ns[i];
    tenants.push_back(t);
    weight_sum += c.weights[i];
  }
  const SimResult r = Simulate(tenants, 4 * kS, 500 * kMs);
  for (std::size_t i = 0; i < c.weights.size(); ++i) {
    const double expected = 100.0 * c.weights[i] / static_cast<double>(weight_sum);
    EXPECT_NEAR(r.share_percent[i], expected, 2.0) << "tenant " << i;
  }
  std::printf("%s: shares", c.name.c_str());
  for (double share : r.share_percent) std::printf(" %.2f", share);
  std::printf(" %%, busy %.4f of the GPU (lone tenant %.4f)\n", r.busy_fraction,
              lone.busy_fraction);
  EXPECT_GE(r.busy_fraction, 0.97 * lone.busy_fraction)
      << "arbitrated " << r.busy_fraction << " vs lone " << lone.busy_fraction;
}

INSTANTIATE_TEST_SUITE_P(
    Shares, ComputeSplit,
    ::testing::Values(SplitCase{"split_30_70", {30, 70}, {}},
                      SplitCase{"split_10_90", {10, 90}, {}},
                      SplitCase{"split_50_50", {50, 50}, {}},
                      SplitCase{"split_20_30_50", {20, 30, 50}, {}},
                      SplitCase{"short_20us_vs_long_5ms_kernels", {50, 50}, {20 * kUs, 5 * kMs}}),
    [](const ::testing::TestParamInfo<SplitCase>& param_info) { return param_info.param.name; });

TEST(ComputeSimulation, WithoutTheArbiterTheGpuSplitsEquallyWhateverTheWeights) {
  // The simulated GPU's own behaviour (what the arbiter corrects): equal turns.
  SimTenant a;
  a.weight = 30;
  SimTenant b;
  b.weight = 70;
  const SimResult r = Simulate({a, b}, 2 * kS, 200 * kMs, /*arbitrate=*/false);
  EXPECT_NEAR(r.share_percent[0], 50.0, 1.0);
  std::printf("unarbitrated 30/70: shares %.2f %.2f %%\n", r.share_percent[0], r.share_percent[1]);
  SimTenant short_kernels;
  short_kernels.kernel_ns = 20 * kUs;
  SimTenant long_kernels;
  long_kernels.kernel_ns = 5 * kMs;
  const SimResult k = Simulate({short_kernels, long_kernels}, 2 * kS, 200 * kMs, false);
  EXPECT_NEAR(k.share_percent[0], 50.0, 2.0);
}

TEST(ComputeSimulation, ACappedTenantStaysUnderItsCapOnAnIdleGpu) {
  SimTenant capped;
  capped.weight = 30;
  capped.cap_percent = 40;
  const SimResult r = Simulate({capped}, 2 * kS, 200 * kMs);
  std::printf("cap 40 alone: busy %.4f\n", r.busy_fraction);
  EXPECT_NEAR(r.busy_fraction * 100, 40.0, 2.0);
}

TEST(ComputeSimulation, AnIdleTenantLeavesTheGpuToTheOtherAndReclaimsWithin100ms) {
  const SimResult lone = Simulate({SimTenant{}}, 1 * kS, 200 * kMs);
  SimTenant busy;
  busy.weight = 30;
  SimTenant returning;
  returning.weight = 70;
  returning.active = {{0, 1 * kS}, {2 * kS, 4 * kS}};
  const SimResult r = Simulate({busy, returning}, 4 * kS, 0);
  auto used = [&](std::size_t t, std::uint64_t from_ms, std::uint64_t to_ms) {
    return r.busy_per_ms[t][to_ms] - r.busy_per_ms[t][from_ms];
  };
  // While the 70 % tenant idles (1.1 s - 2.0 s), the 30 % tenant gets the whole GPU.
  const double alone = static_cast<double>(used(0, 1100, 2000)) / (900 * kMs);
  EXPECT_GE(alone, 0.97 * lone.busy_fraction) << alone;
  // From its return at 2 s: the first 10 ms window in which it has its 70 % share.
  std::uint64_t reclaim_ms = 0;
  while (reclaim_ms < 1000) {
    const std::uint64_t from = 2000 + reclaim_ms;
    const double share = static_cast<double>(used(1, from, from + 10)) /
                         static_cast<double>(used(0, from, from + 10) + used(1, from, from + 10));
    if (share >= 0.68) break;
    ++reclaim_ms;
  }
  std::printf("idle: alone %.4f (lone %.4f), reclaimed after %llu ms\n", alone, lone.busy_fraction,
              static_cast<unsigned long long>(reclaim_ms));
  EXPECT_LE(reclaim_ms, 100u) << "reclaimed after " << reclaim_ms << " ms";
  // And over the rest of the run it keeps 70 %.
  const double later = static_cast<double>(used(1, 2500, 3999)) /
                       static_cast<double>(used(0, 2500, 3999) + used(1, 2500, 3999));
  EXPECT_NEAR(later * 100, 70.0, 2.0);
}

}  // namespace
}  // namespace gpuslice::shim
