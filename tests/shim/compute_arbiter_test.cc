// The compute arbiter's scheduling logic (compute_arbiter.h) on simulated time: the referee's
// decisions over tenants' requests, then tenants driving it against the simulated GPU
// (tests/fakes/simulated_gpu.h), which time-slices busy contexts equally as the hardware does;
// then hostile tenants that write everything they can write.
#include "shim/compute_arbiter.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "arbiter_fixture.h"

namespace gpuslice::shim::testing {
namespace {

// ---- The referee's decisions ----

// Tenant `t`'s gate asks (kWait: it now wants the GPU) and the referee looks at `now`.
GateDecision Ask(MemoryArbiter& m, TenantGate& gate, std::uint64_t now) {
  const GateDecision first = gate.BeforeLaunch(now);
  if (first != GateDecision::kWait) return first;
  m.Poll(now);
  return gate.BeforeLaunch(now);
}

// Two containers: A takes the token at 0, B asks for it at `b_asks_at` (and waits).
class ComputeArbiterReferee : public ::testing::Test {
 protected:
  void AHoldsBWaits(std::uint32_t weight_a = 50, std::uint32_t weight_b = 50,
                    std::uint64_t b_asks_at = 0) {
    a = m.AddTenant(weight_a);
    b = m.AddTenant(weight_b);
    ga = m.Gate(a);
    gb = m.Gate(b);
    ASSERT_EQ(Ask(m, *ga, 0), GateDecision::kGo);
    ASSERT_EQ(Ask(m, *gb, b_asks_at), GateDecision::kWait);
  }
  MemoryArbiter m;
  std::uint32_t a = 0;
  std::uint32_t b = 0;
  std::unique_ptr<TenantGate> ga;
  std::unique_ptr<TenantGate> gb;
};

TEST_F(ComputeArbiterReferee, ALoneTenantTakesTheTokenAndIsNeverCharged) {
  a = m.AddTenant(30);
  auto gate = m.Gate(a);
  ASSERT_EQ(Ask(m, *gate, 0), GateDecision::kGo);
  EXPECT_EQ(m.token(), PackToken(HolderId(a, 0), 0)) << "the fast path reads exactly this";
  EXPECT_TRUE(gate->Alone());
  m.Poll(10 * kS);
  EXPECT_EQ(gate->BeforeLaunch(10 * kS), GateDecision::kGo) << "nobody waits: no turn end";
  EXPECT_EQ(m.core().charged_ns(a), 0u);
}

TEST_F(ComputeArbiterReferee, ContentionStartsTheHoldersTurnAndChargeNow) {
  // B arrives an hour later: A's lone hour is not charged, its turn starts now.
  AHoldsBWaits(50, 50, 3600 * kS);
  EXPECT_EQ(m.token(), PackToken(HolderId(a, 0), 1));
  m.Poll(3600 * kS + 1 * kMs);
  EXPECT_EQ(ga->BeforeLaunch(3600 * kS + 1 * kMs), GateDecision::kGo);
  m.Poll(3600 * kS + m.params().min_turn_ns);
  EXPECT_EQ(ga->BeforeLaunch(3600 * kS + m.params().min_turn_ns), GateDecision::kDrainThenRelease);
  ga->Release(3600 * kS + 3 * kMs, 3600 * kS + 3 * kMs, true);
  m.Poll(3600 * kS + 3 * kMs);
  EXPECT_EQ(m.core().charged_ns(a), 3 * kMs) << "only the contended part, on the referee's clock";
  EXPECT_EQ(m.holder(), HolderId(b, 0)) << "B has the least virtual time";
}

// The holder's fast path (the shim's launch path while others wait) may let exactly as many
// launches go as BeforeLaunch would, one by one: a copy of the gate asked launch by launch must
// answer kGo LaunchesWithoutCheck() times and then kDrain, before and after the first drain.
std::uint64_t GoesBeforeTheBound(const TenantGate& gate, std::uint64_t now) {
  TenantGate copy = gate;  // the holder's BeforeLaunch writes nothing but its own counters
  std::uint64_t goes = 0;
  while (copy.BeforeLaunch(now) == GateDecision::kGo && goes < 1'000'000) ++goes;
  return goes;
}

TEST_F(ComputeArbiterReferee, TheHoldersFastPathBudgetIsWhatBeforeLaunchWouldAdmit) {
  AHoldsBWaits();
  m.Poll(1 * kMs);  // contention: A's turn starts
  ASSERT_EQ(ga->BeforeLaunch(1 * kMs), GateDecision::kGo);
  ASSERT_EQ(ga->go_token(), m.token());
  const std::uint64_t first = ga->LaunchesWithoutCheck();
  EXPECT_EQ(first, m.params().kernels_per_turn - 2) << "two launched, mean time not yet known";
  EXPECT_EQ(GoesBeforeTheBound(*ga, 1 * kMs), first);
  ga->CountLaunches(first);  // what the shim reports after spending the budget
  ASSERT_EQ(ga->BeforeLaunch(1 * kMs), GateDecision::kDrain);
  // Drained: the 8 launches since the grant at 0 completed at 1.4 ms, 175 us each; the 2 ms turn
  // holds 12 of them (11.4), one launched.
  ga->Drained(1 * kMs + 400 * kUs);
  ASSERT_EQ(ga->BeforeLaunch(1 * kMs + 400 * kUs), GateDecision::kGo);
  const std::uint64_t second = ga->LaunchesWithoutCheck();
  EXPECT_EQ(second, 11u);
  EXPECT_EQ(GoesBeforeTheBound(*ga, 1 * kMs + 400 * kUs), second);
  // The turn ends: the referee's "release" changes the token word, and no budget is given.
  m.Poll(1 * kMs + m.params().min_turn_ns);
  EXPECT_NE(m.token(), ga->go_token()) << "the fast path's compare must fail at the turn's end";
  ASSERT_EQ(ga->BeforeLaunch(1 * kMs + m.params().min_turn_ns), GateDecision::kDrainThenRelease);
  EXPECT_EQ(ga->LaunchesWithoutCheck(), 0u);
}

TEST_F(ComputeArbiterReferee, AHolderAloneHasAnUnboundedFastPathAndAWaiterEndsIt) {
  a = m.AddTenant(50);
  ga = m.Gate(a);
  ASSERT_EQ(Ask(m, *ga, 0), GateDecision::kGo);
  EXPECT_EQ(ga->LaunchesWithoutCheck(), TenantGate::kUnboundedLaunches);
  b = m.AddTenant(50);
  gb = m.Gate(b);
  ASSERT_EQ(Ask(m, *gb, 1 * kMs), GateDecision::kWait);
  EXPECT_NE(m.token(), ga->go_token()) << "a waiter arriving changes the token word";
}

TEST_F(ComputeArbiterReferee, VirtualTimeIsChargeOverWeight) {
  AHoldsBWaits(25, 75);
  ga->Release(4 * kMs, 4 * kMs, true);
  m.Poll(4 * kMs);
  EXPECT_EQ(m.core().vtime(a), 4 * kMs * 100 / 25);
}

TEST_F(ComputeArbiterReferee, AWakingTenantStartsAtTheMinimumActiveVirtualTime) {
  AHoldsBWaits();
  const std::uint32_t c = m.AddTenant(50);
  auto gc = m.Gate(c);
  for (std::uint64_t t = 0; t < 1 * kS; t += 2 * kMs) {  // A and B alternate for a second
    m.Poll(t);
    for (TenantGate* g : {ga.get(), gb.get()}) {
      if (g->BeforeLaunch(t) == GateDecision::kDrainThenRelease) g->Release(t, t, true);
    }
  }
  Ask(m, *gc, 1 * kS);
  EXPECT_GE(m.core().vtime(c), std::min(m.core().vtime(a), m.core().vtime(b)))
      << "C banked no credit while idle";
  EXPECT_GT(m.core().vtime(c), 0u);
}

TEST_F(ComputeArbiterReferee, ADeadHolderLosesTheTokenAtOnce) {
  AHoldsBWaits(50, 50, 1 * kMs);
  m.Kill(a);
  m.Poll(1 * kMs + 1);
  EXPECT_EQ(gb->BeforeLaunch(1 * kMs + 1), GateDecision::kGo);
}

TEST_F(ComputeArbiterReferee, AHungHolderIsRevokedAfterTurnPlusLeaseNotBefore) {
  AHoldsBWaits();
  const std::uint64_t deadline = m.page().turn_ns + m.params().lease_ns;
  const std::uint64_t next = m.Poll(deadline);
  EXPECT_EQ(m.holder(), HolderId(a, 0)) << "not before turn + lease";
  EXPECT_EQ(next, deadline + 1) << "the referee comes back for it by itself";
  m.Poll(deadline + 1);
  EXPECT_EQ(m.holder(), HolderId(b, 0));
  EXPECT_EQ(m.core().charged_ns(a), deadline + 1) << "charged its whole hold";
}

TEST_F(ComputeArbiterReferee, ARevokedHoldersBacklogIsChargedAsDebtButNeverPastTheClock) {
  AHoldsBWaits();
  const std::uint64_t revoked_at = m.page().turn_ns + m.params().lease_ns + 1;
  m.Poll(revoked_at);
  ASSERT_EQ(m.holder(), HolderId(b, 0));
  // A's next launch learns it lost the token; its work finished 30 ms after the revocation.
  EXPECT_EQ(ga->BeforeLaunch(revoked_at + 1), GateDecision::kDrainThenRelease);
  ga->Release(revoked_at + 30 * kMs, revoked_at + 30 * kMs, true);
  m.Poll(revoked_at + 30 * kMs);
  EXPECT_EQ(m.core().charged_ns(a), revoked_at + 30 * kMs);
  EXPECT_FALSE(ga->holding());
}

TEST_F(ComputeArbiterReferee, TurnAdaptsToTheHoldersKernels) {
  AHoldsBWaits();                         // A launched once
  ga->BeforeLaunch(0);                    // a second
  ga->Release(10 * kMs, 10 * kMs, true);  // 2 launches in 10 ms: 5 ms kernels
  m.Poll(10 * kMs);
  EXPECT_EQ(m.holder(), HolderId(b, 0));
  EXPECT_EQ(m.page().turn_ns, m.params().min_turn_ns) << "B has not run: the minimum";
  ASSERT_EQ(gb->BeforeLaunch(10 * kMs), GateDecision::kGo);
  gb->Release(30 * kMs, 30 * kMs, true);  // B's 20 ms put it behind A
  m.Poll(30 * kMs);
  EXPECT_EQ(m.holder(), HolderId(a, 0));
  EXPECT_EQ(m.page().turn_ns, m.params().max_turn_ns) << "A: 8 x 5 ms, capped";
}

TEST_F(ComputeArbiterReferee, WithoutARefereeAnHonestTenantWaitsAtMostTheMaximumWait) {
  a = m.AddTenant(50);  // nobody polls: the referee is gone (an agent restart)
  auto gate = m.Gate(a);
  std::uint64_t now = 0;
  while (gate->BeforeLaunch(now) != GateDecision::kGo) {
    now += 1 * kMs;
    ASSERT_LT(now, 2 * m.params().max_wait_ns) << "stalled";
  }
  EXPECT_GE(now, m.params().max_wait_ns);
  EXPECT_TRUE(gate->bypassing(now));
}

TEST_F(ComputeArbiterReferee, AForgedOrZeroedGrantPageIsRepublishedFromTheRefereesState) {
  // Only possible where the page is mounted writable; the referee's own state is untouched.
  AHoldsBWaits();
  m.page().token = PackToken(HolderId(b, 0), 0);  // B forges the token for itself
  m.Poll(1 * kMs);
  EXPECT_EQ(m.holder(), HolderId(a, 0));
  std::memset(static_cast<void*>(&m.page()), 0, sizeof(ArbiterGrantPage));
  m.Poll(1 * kMs + 1);
  EXPECT_EQ(m.page().magic, kArbiterMagic);
  EXPECT_EQ(m.holder(), HolderId(a, 0));
  EXPECT_EQ(m.page().tenants[a].weight, 50u);
}

// ---- Tenants on the simulated GPU ----

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

TEST(ComputeSimulation, ATenantThatQueuesAThousandKernelsDoesNotRunOnItsBacklog) {
  // The application would keep 1,000 kernels (200 ms) queued; the gate lets a holder queue
  // about one turn while others wait, so losing the token leaves it little to run on.
  SimTenant greedy;
  greedy.weight = 30;
  greedy.max_in_flight = 1000;
  SimTenant other;
  other.weight = 70;
  const SimResult r = Simulate({greedy, other}, 4 * kS, 500 * kMs);
  const double backlog_percent = 100.0 * static_cast<double>(r.backlog_ns[0]) / (3.5 * kS);
  std::printf("1000 queued: shares %.2f %.2f %%, greedy ran %.2f %% of the time on a backlog\n",
              r.share_percent[0], r.share_percent[1], backlog_percent);
  EXPECT_NEAR(r.share_percent[0], 30.0, 2.0);
  EXPECT_LT(backlog_percent, 2.0) << "it ran on its backlog while the other held the token";
  EXPECT_GT(r.fast_launches, 0u) << "the holder's fast path (as the shim runs it) was not used";
}

// ---- Hostile tenants: everything a container can write is its own request file ----

struct AttackCase {
  std::string name;
  std::function<void(std::uint64_t now, const ArbiterGrantPage& page, ArbiterRequests& mine)>
      scribble;
  bool ignores_release = false;
  // The most the hostile tenant may get: its weight (+2 points) for attacks on the protocol; the
  // hardware's equal turn for attacks that amount to launching without holding the token, which
  // any process can do by not loading the shim (they show in the node agent's NVML view).
  double max_hostile_percent = 32.0;
};
void PrintTo(const AttackCase& c, std::ostream* os) { *os << c.name; }

class HostileTenant : public ::testing::TestWithParam<AttackCase> {};

TEST_P(HostileTenant, GetsNoMoreThanItsWeight) {
  // A 30 % hostile tenant against an honest 70 % one; the honest one keeps its share.
  SimTenant hostile;
  hostile.weight = 30;
  hostile.scribble = GetParam().scribble;
  hostile.ignores_release = GetParam().ignores_release;
  SimTenant honest;
  honest.weight = 70;
  const SimResult r = Simulate({hostile, honest}, 2 * kS, 300 * kMs);
  std::printf("%s: hostile %.2f %%, honest %.2f %%\n", GetParam().name.c_str(), r.share_percent[0],
              r.share_percent[1]);
  EXPECT_LE(r.share_percent[0], GetParam().max_hostile_percent);
  EXPECT_GE(r.share_percent[1], 100.0 - GetParam().max_hostile_percent);
}

// A release before its work is done (the work then runs in others' turns: a bypass, bounded by
// the referee's clock to the hardware's equal turn instead of the whole GPU), forged completions
// and launch counts, every record claimed, the file zeroed, releases
// of grants it never held, and a holder that does not hand back when asked. (Its weight, virtual
// time, charge, the token and the lease are not in anything it can write.)
INSTANTIATE_TEST_SUITE_P(
    Attacks, HostileTenant,
    ::testing::Values(
        AttackCase{"hands_back_at_once_claiming_no_time_and_keeps_launching",
                   [](std::uint64_t, const ArbiterGrantPage& page, ArbiterRequests& mine) {
                     if (TokenHolder(page.token) != HolderId(0, 0)) return;
                     mine.processes[0].completion_ns = 0;
                     mine.processes[0].release_grant = page.grant_id;
                   },
                   false, /*max_hostile_percent=*/52.0},
        AttackCase{"claims_a_billion_launches_per_turn",
                   [](std::uint64_t, const ArbiterGrantPage&, ArbiterRequests& mine) {
                     mine.processes[0].launches = 1'000'000'000;
                   }},
        AttackCase{"wants_the_gpu_in_every_record",
                   [](std::uint64_t, const ArbiterGrantPage&, ArbiterRequests& mine) {
                     for (ProcessRequest& r : mine.processes) {
                       r.want = 1;
                       r.in_use = 1;
                     }
                   }},
        AttackCase{"zeroes_its_request_file_now_and_then",
                   [](std::uint64_t now, const ArbiterGrantPage&, ArbiterRequests& mine) {
                     if (now % (50 * kMs) == 0) std::memset(static_cast<void*>(&mine), 0, 64);
                     if (now % (50 * kMs) == 10 * kMs) InitRequests(&mine);
                   }},
        AttackCase{"releases_grants_it_never_held",
                   [](std::uint64_t now, const ArbiterGrantPage&, ArbiterRequests& mine) {
                     mine.processes[1].in_use = 1;
                     mine.processes[1].release_grant = now / kUs;
                     mine.processes[1].completion_ns = 0;
                   }},
        AttackCase{"holds_past_its_turn", nullptr, /*ignores_release=*/true}),
    [](const ::testing::TestParamInfo<AttackCase>& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace gpuslice::shim::testing
