// Tests of the placement engine: cluster-state invariants, fragmentation, and each policy's
// choice on small hand-made clusters.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "placement/cluster_state.h"
#include "placement/cpu_stranding.h"
#include "placement/fragmentation.h"
#include "placement/online_task_types.h"
#include "placement/placement_engine.h"
#include "placement/placement_policy.h"
#include "placement/rng.h"

namespace gpuslice::placement {
namespace {

NodeSpec Node(std::string name, std::int64_t cpu, int gpus, std::string model,
              std::int64_t memory = 1 << 20) {
  return {std::move(name), cpu, memory, gpus, std::move(model), 0};
}

PodSpec Pod(std::int64_t cpu, int num_gpu, int gpu_milli, std::vector<std::string> models = {}) {
  PodSpec pod;
  pod.name = "pod";
  pod.cpu_milli = cpu;
  pod.memory_mib = 1024;
  pod.num_gpu = num_gpu;
  pod.gpu_milli = gpu_milli;
  pod.gpu_models = std::move(models);
  return pod;
}

ClusterState MustCreate(std::vector<NodeSpec> nodes) {
  Result<ClusterState> state = ClusterState::Create(std::move(nodes));
  EXPECT_TRUE(state.ok()) << state.status().ToString();
  return std::move(state).value();
}

PodRequest MustResolve(const ClusterState& state, const PodSpec& pod) {
  Result<PodRequest> request = state.Resolve(pod);
  EXPECT_TRUE(request.ok()) << request.status().ToString();
  return request.value_or(PodRequest{});
}

// Everything a test compares to check that state was restored exactly.
struct Snapshot {
  std::vector<std::int64_t> cpu, memory;
  std::vector<std::vector<int>> gpus;
  std::vector<int> whole_free;
  std::int64_t allocated = 0;
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

Snapshot Take(const ClusterState& state) {
  Snapshot s;
  for (const NodeState& n : state.nodes()) {
    s.cpu.push_back(n.cpu_free);
    s.memory.push_back(n.memory_free);
    std::vector<int> g;
    for (const GpuState& gpu : n.gpus) g.push_back(gpu.milli_free);
    s.gpus.push_back(g);
    s.whole_free.push_back(n.whole_free_gpus);
  }
  s.allocated = state.gpu_milli_allocated();
  return s;
}

std::vector<TaskType> TypesOf(const ClusterState& state, const std::vector<PodSpec>& pods) {
  std::vector<PodRequest> requests;
  for (const PodSpec& p : pods) requests.push_back(MustResolve(state, p));
  return TypicalTaskTypes(requests, {.coverage = 1.0, .include_cpu_only = true});
}

// ---- ClusterState ------------------------------------------------------------------------

TEST(ClusterStateTest, RejectsInvalidNodes) {
  EXPECT_FALSE(ClusterState::Create({Node("a", -1, 1, "T4")}).ok());
  EXPECT_FALSE(ClusterState::Create({Node("a", 1000, 2, "")}).ok());
  EXPECT_TRUE(ClusterState::Create({Node("cpu-only", 1000, 0, "")}).ok());
}

TEST(ClusterStateTest, ResolveRejectsInvalidPodsWithTheField) {
  const ClusterState state = MustCreate({Node("a", 8000, 2, "T4")});
  struct Case {
    const char* name;
    PodSpec pod;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"share with several GPUs", Pod(1000, 2, 500), "whole GPUs"},
      {"share above one GPU", Pod(1000, 1, 1500), "gpu_milli"},
      {"milli without GPUs", Pod(1000, 0, 300), "num_gpu is 0"},
      {"negative cpu", Pod(-1, 0, 0), "cpu_milli"},
  };
  for (const Case& c : cases) {
    Result<PodRequest> r = state.Resolve(c.pod);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.status().message().find(c.message), std::string::npos)
        << c.name << ": " << r.status().message();
  }
}

TEST(ClusterStateTest, UnknownModelMatchesNothing) {
  const ClusterState state = MustCreate({Node("a", 8000, 2, "T4")});
  const PodRequest pod = MustResolve(state, Pod(1000, 1, 1000, {"H100"}));
  EXPECT_FALSE(state.Fits(pod, 0));
}

TEST(ClusterStateTest, CheckRejectsInvalidPlacementsAndPlaceLeavesStateUnchanged) {
  ClusterState state = MustCreate({Node("a", 8000, 2, "T4"), Node("b", 8000, 2, "P100")});
  const PodRequest two = MustResolve(state, Pod(1000, 2, 1000));
  const PodRequest t4_only = MustResolve(state, Pod(1000, 1, 1000, {"T4"}));
  const PodRequest hungry = MustResolve(state, Pod(9000, 1, 500));
  const Snapshot before = Take(state);
  EXPECT_FALSE(state.Place(1, two, {0, {0, 0}}).ok()) << "same GPU twice";
  EXPECT_FALSE(state.Place(2, two, {0, {0}}).ok()) << "too few GPUs";
  EXPECT_FALSE(state.Place(3, t4_only, {1, {0}}).ok()) << "wrong model";
  EXPECT_FALSE(state.Place(4, hungry, {0, {0}}).ok()) << "not enough CPU";
  EXPECT_FALSE(state.Place(5, two, {2, {0, 1}}).ok()) << "no such node";
  EXPECT_FALSE(state.Place(6, two, {0, {0, 7}}).ok()) << "no such GPU";
  EXPECT_EQ(Take(state), before);
  ASSERT_TRUE(state.Place(7, two, {0, {0, 1}}).ok());
  EXPECT_EQ(state.Place(7, t4_only, {1, {0}}).code(), ErrorCode::kAlreadyExists);
}

TEST(ClusterStateTest, SharesNeverOvercommitAGpu) {
  ClusterState state = MustCreate({Node("a", 100000, 1, "T4")});
  const PodRequest share = MustResolve(state, Pod(100, 1, 400));
  EXPECT_TRUE(state.Place(1, share, {0, {0}}).ok());
  EXPECT_TRUE(state.Place(2, share, {0, {0}}).ok());
  EXPECT_EQ(state.Place(3, share, {0, {0}}).code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(state.node(0).gpus[0].milli_free, 200);
  EXPECT_EQ(state.node(0).whole_free_gpus, 0);
}

TEST(ClusterStateTest, GpusliceMemoryAndComputeRequestsBind) {
  NodeSpec node = Node("a", 100000, 1, "A100");
  node.gpu_memory_mib = 40960;
  ClusterState state = MustCreate({node});
  PodSpec spec = Pod(100, 1, 100);
  spec.gpu_memory_mib = 30000;
  spec.gpu_compute_percent = 30;
  const PodRequest pod = MustResolve(state, spec);
  EXPECT_TRUE(state.Place(1, pod, {0, {0}}).ok());
  EXPECT_FALSE(state.Fits(pod, 0)) << "second pod exceeds the GPU's memory";
  ASSERT_TRUE(state.Remove(1).ok());
  EXPECT_EQ(state.node(0).gpus[0].memory_free_mib, 40960);
  EXPECT_EQ(state.node(0).gpus[0].compute_free_percent, 100);
}

// Every policy, random pods on a mixed cluster: no resource ever goes negative, model
// constraints hold, multi-GPU pods get distinct whole GPUs, and removing everything restores the
// initial state exactly.
class PolicyInvariantTest : public ::testing::TestWithParam<std::string_view> {};

std::vector<NodeSpec> MixedNodes() {
  return {Node("g8a", 96000, 8, "A100", 393216), Node("g8b", 64000, 8, "A100", 262144),
          Node("t4a", 104000, 2, "T4", 524288),  Node("t4b", 16000, 2, "T4", 65536),
          Node("p1", 8000, 1, "P100", 32768),    Node("cpu", 32000, 0, "", 131072)};
}

// 300 pods: CPU-only, shares, whole GPUs, multi-GPU, model-constrained; memory varies freely, so
// pods of one shape differ in memory.
std::vector<PodSpec> RandomPods(Rng& rng) {
  std::vector<PodSpec> specs;
  const int shares[] = {100, 230, 470, 500, 810};
  for (int i = 0; i < 300; ++i) {
    const std::uint64_t kind = rng.Below(6);
    PodSpec p = Pod(static_cast<std::int64_t>(1000 + 1000 * rng.Below(12)), 0, 0);
    p.memory_mib = static_cast<std::int64_t>(1024 * (1 + rng.Below(32)));
    if (kind == 1 || kind == 2) {
      p.num_gpu = 1;
      p.gpu_milli = shares[rng.Below(5)];
    } else if (kind == 3) {
      p.num_gpu = 1;
      p.gpu_milli = 1000;
    } else if (kind == 4) {
      p.num_gpu = 1 << rng.Below(4);
      p.gpu_milli = 1000;
    } else if (kind == 5) {
      p.num_gpu = 1;
      p.gpu_milli = 1000;
      p.gpu_models = {rng.Below(2) == 0 ? "T4" : "P100"};
    }
    specs.push_back(p);
  }
  return specs;
}

TEST_P(PolicyInvariantTest, InvariantsHoldUnderRandomPlaceAndRemove) {
  ClusterState initial = MustCreate(MixedNodes());
  const Snapshot empty = Take(initial);
  Rng rng(99);
  const std::vector<PodSpec> specs = RandomPods(rng);
  PolicyOptions options;
  options.seed = 5;
  options.task_types = TypesOf(initial, specs);
  auto policy = MakePolicy(GetParam(), options);
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  PlacementEngine engine(std::move(initial), std::move(policy).value());

  std::vector<PodId> placed;
  PodId next = 0;
  for (const PodSpec& spec : specs) {
    const PodRequest pod = MustResolve(engine.state(), spec);
    Result<Placement> where = engine.Schedule(++next, pod);
    if (where.ok()) {
      placed.push_back(next);
      const NodeState& node = engine.state().node(where->node);
      if (!spec.gpu_models.empty()) {
        EXPECT_EQ(node.spec.gpu_model, spec.gpu_models[0]);
      }
      std::set<int> distinct(where->gpus.begin(), where->gpus.end());
      EXPECT_EQ(static_cast<int>(distinct.size()), spec.num_gpu);
      if (spec.num_gpu > 1) {
        for (const int g : where->gpus) {
          EXPECT_EQ(node.gpus[static_cast<std::size_t>(g)].milli_free, 0) << "whole GPU shared";
        }
      }
    } else {
      EXPECT_EQ(where.status().code(), ErrorCode::kResourceExhausted);
      for (std::size_t n = 0; n < engine.state().node_count(); ++n) {
        EXPECT_FALSE(engine.state().Fits(pod, static_cast<int>(n)))
            << "policy gave up although node " << n << " fits";
      }
    }
    for (const NodeState& n : engine.state().nodes()) {
      EXPECT_GE(n.cpu_free, 0);
      EXPECT_GE(n.memory_free, 0);
      for (const GpuState& g : n.gpus) {
        EXPECT_GE(g.milli_free, 0);
        EXPECT_LE(g.milli_free, kMilliPerGpu);
      }
    }
    // Remove a random placed pod now and then, so removal is exercised mid-run.
    if (!placed.empty() && rng.Below(4) == 0) {
      const std::size_t i = rng.Below(placed.size());
      ASSERT_TRUE(engine.Remove(placed[i]).ok());
      placed.erase(placed.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  EXPECT_GT(engine.state().pod_count(), 10U);
  while (!placed.empty()) {
    const std::size_t i = rng.Below(placed.size());
    ASSERT_TRUE(engine.Remove(placed[i]).ok());
    placed.erase(placed.begin() + static_cast<std::ptrdiff_t>(i));
  }
  EXPECT_EQ(Take(engine.state()), empty);
  EXPECT_EQ(engine.Remove(1).code(), ErrorCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, PolicyInvariantTest, ::testing::ValuesIn(PolicyNames()),
                         [](const auto& test_info) {
                           std::string name(test_info.param);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// Policies whose choice depends only on the cluster's state must choose exactly what a policy
// created afresh for that state chooses: their per-node caches (and gpuslice's slot counts) may
// change speed, never a decision. ("random" draws, "gpu-clustering" remembers pods' classes.)
// With `online`, the warm policy learns the workload from the pods as they come
// (OnlineTaskTypes, half-life short enough that types are republished often) and each fresh
// policy is created with the task types the warm one last received.
void ExpectWarmPolicyChoosesLikeAFreshOne(std::string_view policy, bool online) {
  // Memory-poor 8-GPU nodes, so a pod's memory could limit what a node can still host: scores
  // must not depend on it, since pods that differ only in memory share cache entries.
  std::vector<NodeSpec> nodes = MixedNodes();
  for (const char* name : {"lowmem-a", "lowmem-b", "lowmem-c"}) {
    nodes.push_back(Node(name, 128000, 8, "A100", 49152));
  }
  ClusterState initial = MustCreate(nodes);
  Rng rng(7);
  std::vector<PodSpec> specs;
  for (int round = 0; round < 4; ++round) {
    for (PodSpec& p : RandomPods(rng)) specs.push_back(std::move(p));
  }
  std::vector<PodRequest> requests;
  for (const PodSpec& p : specs) requests.push_back(MustResolve(initial, p));
  PolicyOptions options;
  options.task_types_later = online;
  if (!online) SetWorkloadTaskTypes(options, requests, {.coverage = 0.8});
  OnlineTaskTypesOptions learn;
  learn.half_life_pods = 30;
  learn.typical.coverage = 0.8;
  learn.republish_distance = 0.01;
  learn.min_gap_pods = 1;
  learn.republish_every_pods = 5;
  OnlineTaskTypes learner(learn);
  auto warm = MakePolicy(policy, options);
  ASSERT_TRUE(warm.ok()) << warm.status().ToString();
  PlacementEngine engine(std::move(initial), std::move(warm).value());
  std::vector<PodId> placed;
  PodId next = 0;
  int compared = 0;
  for (const PodSpec& spec : specs) {
    const PodRequest pod = MustResolve(engine.state(), spec);
    const bool republished = online && learner.ObserveAndUpdate(pod, engine.policy());
    if (republished) {
      options.task_types = learner.TypicalTypes();
      options.all_task_types = learner.AllTypes();
    }
    auto fresh = MakePolicy(policy, options);
    ASSERT_TRUE(fresh.ok());
    const std::optional<Placement> want = (*fresh)->Choose(engine.state(), pod);
    const std::optional<Placement> got = engine.policy().Choose(engine.state(), pod);
    ASSERT_EQ(got, want) << "pod " << next + 1 << " (" << spec.cpu_milli << " mCPU, "
                         << spec.memory_mib << " MiB, " << spec.num_gpu << " x " << spec.gpu_milli
                         << ")";
    ++compared;
    if (got) {
      ASSERT_TRUE(engine.Place(++next, pod, *got).ok());
      placed.push_back(next);
    }
    if (!placed.empty() && rng.Below(4) == 0) {
      const std::size_t i = rng.Below(placed.size());
      ASSERT_TRUE(engine.Remove(placed[i]).ok());
      placed.erase(placed.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  EXPECT_EQ(compared, 1200);
  if (online) {
    EXPECT_GT(learner.publications(), 10U) << "the types must change during the run";
  }
}

std::string TestName(const ::testing::TestParamInfo<std::string_view>& info) {
  std::string name(info.param);
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

class PolicyCacheTest : public ::testing::TestWithParam<std::string_view> {};

TEST_P(PolicyCacheTest, WarmPolicyChoosesLikeAFreshOne) {
  ExpectWarmPolicyChoosesLikeAFreshOne(GetParam(), /*online=*/false);
}

INSTANTIATE_TEST_SUITE_P(StatelessPolicies, PolicyCacheTest,
                         ::testing::Values("best-fit", "dot-product", "gpu-packing", "fgd",
                                           "gpuslice"),
                         TestName);

// The same with online workload knowledge: the task types change under the warm policy's caches.
class OnlinePolicyCacheTest : public ::testing::TestWithParam<std::string_view> {};

TEST_P(OnlinePolicyCacheTest, WarmPolicyChoosesLikeAFreshOne) {
  ExpectWarmPolicyChoosesLikeAFreshOne(GetParam(), /*online=*/true);
}

INSTANTIATE_TEST_SUITE_P(FragmentationPolicies, OnlinePolicyCacheTest,
                         ::testing::Values("fgd", "gpuslice"), TestName);

// ---- Online workload knowledge ---------------------------------------------------------------

PodRequest Share(int milli, std::int64_t cpu = 1000) {
  PodRequest p;
  p.cpu_milli = cpu;
  p.num_gpu = 1;
  p.gpu_milli = milli;
  return p;
}

OnlineTaskTypesOptions Learning(double half_life_pods) {
  OnlineTaskTypesOptions options;
  options.half_life_pods = half_life_pods;
  return options;
}

double PopularityOf(const std::vector<TaskType>& types, int milli) {
  for (const TaskType& t : types) {
    if (t.request.gpu_milli == milli) return t.popularity;
  }
  return 0;
}

TEST(OnlineTaskTypesTest, LearnsTheMixOfTheObservedPods) {
  OnlineTaskTypes learner(Learning(1e12));  // practically no decay
  std::vector<PodRequest> pods;
  for (int i = 0; i < 10; ++i) pods.push_back(Share(i < 6 ? 500 : i < 9 ? 1000 : 250));
  for (const PodRequest& p : pods) learner.Observe(p);
  const std::vector<TaskType> all = learner.AllTypes();
  const std::vector<TaskType> given = TypicalTaskTypes(pods, {.coverage = 1.0});
  ASSERT_EQ(all.size(), given.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].request.gpu_milli, given[i].request.gpu_milli) << "same order as given";
    EXPECT_NEAR(all[i].popularity, given[i].popularity, 1e-9);
  }
  // Coverage cuts like TypicalTaskTypes: 0.85 keeps 500 and 1000, renormalised.
  OnlineTaskTypesOptions cut_options = Learning(1e12);
  cut_options.typical.coverage = 0.85;
  OnlineTaskTypes cut(cut_options);
  for (const PodRequest& p : pods) cut.Observe(p);
  EXPECT_EQ(cut.TypicalTypes().size(), 2U);
  EXPECT_NEAR(PopularityOf(cut.TypicalTypes(), 1000), 3.0 / 9.0, 1e-9);
}

TEST(OnlineTaskTypesTest, DecayFollowsAChangingMix) {
  OnlineTaskTypes learner(Learning(100));
  for (int i = 0; i < 2000; ++i) learner.Observe(Share(500));
  for (int i = 0; i < 100; ++i) learner.Observe(Share(250));
  // One half-life after the switch, the new type holds about half the weight.
  EXPECT_NEAR(PopularityOf(learner.AllTypes(), 250), 0.5, 0.01);
  for (int i = 0; i < 2000; ++i) learner.Observe(Share(250));
  // 20 half-lives later the old type's share (~1e-6) is below forget_share: it is gone.
  EXPECT_EQ(learner.AllTypes().size(), 1U);
  EXPECT_EQ(learner.AllTypes()[0].request.gpu_milli, 250);
}

TEST(OnlineTaskTypesTest, RepublishesWhenTheMixMovesOrAfterEnoughPods) {
  OnlineTaskTypesOptions options = Learning(1e12);
  options.republish_distance = 0.1;
  options.min_gap_pods = 1;
  options.republish_every_pods = 500;
  OnlineTaskTypes learner(options);
  EXPECT_FALSE(learner.Changed()) << "nothing seen";
  learner.Observe(Share(500));
  EXPECT_TRUE(learner.Changed()) << "the first pod is news";
  PolicyOptions policy_options;
  learner.Publish(policy_options);
  ASSERT_EQ(policy_options.task_types.size(), 1U);
  EXPECT_EQ(policy_options.all_task_types.size(), 1U);
  EXPECT_FALSE(learner.Changed());
  for (int i = 0; i < 8; ++i) learner.Observe(Share(500));
  EXPECT_FALSE(learner.Changed()) << "the same mix";
  learner.Observe(Share(250));  // 1 of 10: distance 0.1
  EXPECT_TRUE(learner.Changed());
  learner.Publish(policy_options);
  for (int i = 0; i < 499; ++i) learner.Observe(Share(i % 10 == 0 ? 250 : 500));
  EXPECT_FALSE(learner.Changed());
  learner.Observe(Share(500));
  EXPECT_TRUE(learner.Changed()) << "500 pods since the last publication";
}

TEST(OnlineTaskTypesTest, WaitsAGrowingGapBetweenPublications) {
  OnlineTaskTypesOptions options = Learning(1000);
  options.republish_distance = 0;  // any change is worth publishing, as soon as the gap allows
  OnlineTaskTypes learner(options);
  PolicyOptions policy_options;
  std::vector<std::uint64_t> at;
  for (int i = 0; i < 4000; ++i) {
    learner.Observe(Share(i % 2 == 0 ? 500 : 100 + 10 * (i % 70)));
    if (learner.Changed()) {
      learner.Publish(policy_options);
      at.push_back(learner.pods_observed());
    }
  }
  ASSERT_GE(at.size(), 5U);
  EXPECT_EQ(at[0], 1U);
  EXPECT_EQ(at[1], 33U) << "min_gap_pods after the first";
  EXPECT_EQ(at[2], 65U);
  EXPECT_EQ(at[3], 97U) << "half of 65 is 32, below the minimum gap";
  EXPECT_EQ(at[4], 145U) << "half of 97 is 48";
  for (std::size_t i = 1; i < at.size(); ++i) {
    EXPECT_LE(at[i] - at[i - 1], 250U) << "at most half_life / 4 apart";
  }
  EXPECT_EQ(at.back() - at[at.size() - 2], 250U);
  EXPECT_LE(at.size(), 25U);
}

TEST(OnlineTaskTypesTest, FeedsAPolicyInPlace) {
  const ClusterState state = MustCreate({Node("g2", 96000, 8, "G"), Node("g3", 128000, 8, "G")});
  PolicyOptions options;
  options.task_types_later = true;
  auto policy = MakePolicy("gpuslice", options);
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  OnlineTaskTypes learner;
  EXPECT_TRUE(learner.ObserveAndUpdate(MustResolve(state, Pod(24000, 1, 1000)), **policy));
  EXPECT_FALSE(learner.ObserveAndUpdate(MustResolve(state, Pod(24000, 1, 1000)), **policy));
  auto best_fit = MakePolicy("best-fit", {});
  ASSERT_TRUE(best_fit.ok());
  EXPECT_FALSE((*best_fit)->SetTaskTypes({}, {})) << "best-fit has no target workload";
  auto fgd = MakePolicy("fgd", {});
  EXPECT_FALSE(fgd.ok()) << "without task_types_later the types are still required";
}

// ---- Fragmentation -------------------------------------------------------------------------

TEST(FragmentationTest, FgdCountsIdleCapacityEachTypeCannotUse) {
  PodRequest share;  // 500 milli-GPU, 4 cores
  share.cpu_milli = 4000;
  share.num_gpu = 1;
  share.gpu_milli = 500;
  PodRequest whole2 = share;  // two whole GPUs, 8 cores
  whole2.num_gpu = 2;
  whole2.gpu_milli = 1000;
  whole2.cpu_milli = 8000;
  const std::vector<TaskType> types = {{share, 0.5}, {whole2, 0.5}};
  const FragmentationModel fgd(types, FragmentationMeasure::kFgd);
  const int frees[] = {1000, 300, 600};
  // share: placeable; GPU with 300 is too small -> 300. whole2: one whole GPU only -> all 1900.
  EXPECT_DOUBLE_EQ(fgd.NodeFragmentation({0, 16000, 0, frees}), 0.5 * 300 + 0.5 * 1900);
  // Too little CPU for either type: everything idle is fragmented for both.
  EXPECT_DOUBLE_EQ(fgd.NodeFragmentation({0, 3000, 0, frees}), 1900);
  const FragmentationModel packable(types, FragmentationMeasure::kPackable);
  // share: floor(1000/500)+floor(600/500) = 3 copies by GPU, 4 by CPU -> 1900 - 1500 = 400.
  // whole2: 0 copies -> 1900.
  EXPECT_DOUBLE_EQ(packable.NodeFragmentation({0, 16000, 0, frees}), 0.5 * 400 + 0.5 * 1900);
  // CPU for two shares only -> 1900 - 1000.
  EXPECT_DOUBLE_EQ(packable.NodeFragmentation({0, 8000, 0, frees}), 0.5 * 900 + 0.5 * 1900);
}

TEST(FragmentationTest, TypesOfAModelTheNodeLacksSeeEverythingFragmented) {
  PodRequest t4;
  t4.num_gpu = 1;
  t4.gpu_milli = 1000;
  t4.allowed_models = 1U << 1;  // model id 1 only
  const FragmentationModel fgd({{t4, 1.0}}, FragmentationMeasure::kFgd);
  const int frees[] = {1000, 1000};
  EXPECT_DOUBLE_EQ(fgd.NodeFragmentation({0, 1000, 0, frees}), 2000);
  EXPECT_DOUBLE_EQ(fgd.NodeFragmentation({1, 1000, 0, frees}), 0);
}

struct StrandingCase {
  std::string_view name;
  std::int64_t gpu_milli_free, cpu_milli_free;
  double cpu_per_gpu_milli;
  double want;
};

class CpuStrandingTest : public ::testing::TestWithParam<StrandingCase> {};

TEST_P(CpuStrandingTest, StrandedGpuMilli) {
  const StrandingCase& c = GetParam();
  EXPECT_DOUBLE_EQ(StrandedGpuMilli(c.gpu_milli_free, c.cpu_milli_free, c.cpu_per_gpu_milli),
                   c.want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CpuStrandingTest,
    ::testing::Values(StrandingCase{"cpu_covers_every_idle_gpu", 2000, 24000, 8.0, 0},
                      StrandingCase{"cpu_covers_exactly", 2000, 16000, 8.0, 0},
                      StrandingCase{"cpu_covers_part", 2000, 14000, 8.0, 250},
                      StrandingCase{"no_cpu_left_strands_all", 8000, 0, 12.0, 8000},
                      StrandingCase{"no_idle_gpu", 0, 0, 8.0, 0},
                      StrandingCase{"no_gpu_types_no_ratio", 8000, 0, 0.0, 0}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(CpuStrandingTest, RatioIsTheGpuTypesCpuPerMilliGpuWeightedByPopularity) {
  const ClusterState state = MustCreate({Node("n", 64000, 8, "T4")});
  // Two GPU types (4 cores per GPU; 6 cores for half a GPU) and a CPU-only type, which does not
  // count: (0.25 * 4000 + 0.5 * 6000) / (0.25 * 1000 + 0.5 * 500) = 8 cpu-milli per milli-GPU.
  std::vector<TaskType> types(3);
  types[0] = {MustResolve(state, Pod(4000, 1, 1000)), 0.25};
  types[1] = {MustResolve(state, Pod(6000, 1, 500)), 0.5};
  types[2] = {MustResolve(state, Pod(32000, 0, 0)), 0.25};
  EXPECT_DOUBLE_EQ(CpuPerGpuMilli(types), 8.0);
  types.resize(0);
  EXPECT_DOUBLE_EQ(CpuPerGpuMilli(types), 0.0);
}

TEST(TaskTypesTest, MostPopularFirstCoveringTheRequestedShare) {
  std::vector<PodRequest> pods;
  auto add = [&](int count, int milli) {
    for (int i = 0; i < count; ++i) {
      PodRequest p;
      p.num_gpu = 1;
      p.gpu_milli = milli;
      pods.push_back(p);
    }
  };
  add(6, 500);
  add(3, 1000);
  add(1, 250);
  const auto all = TypicalTaskTypes(pods, {.coverage = 1.0});
  ASSERT_EQ(all.size(), 3U);
  EXPECT_EQ(all[0].request.gpu_milli, 500);
  EXPECT_DOUBLE_EQ(all[0].popularity, 0.6);
  const auto top = TypicalTaskTypes(pods, {.coverage = 0.85});
  ASSERT_EQ(top.size(), 2U);
  EXPECT_DOUBLE_EQ(top[0].popularity + top[1].popularity, 1.0);
  EXPECT_DOUBLE_EQ(top[1].popularity, 3.0 / 9.0);
}

// ---- Each policy's choice on small clusters --------------------------------------------------

struct ChoiceCase {
  const char* name;
  const char* policy;
  std::vector<NodeSpec> nodes;
  std::vector<PodSpec> already;  // placed first, each on the placement given below
  std::vector<Placement> already_at;
  std::vector<PodSpec> workload;  // the target workload for fragmentation-aware policies
  PodSpec pod;
  Placement want;
  // CTest shows the row name rather than the struct's bytes.
  friend void PrintTo(const ChoiceCase& c, std::ostream* os) { *os << c.name; }
};

class PolicyChoiceTest : public ::testing::TestWithParam<ChoiceCase> {};

TEST_P(PolicyChoiceTest, ChoosesTheExpectedPlacement) {
  const ChoiceCase& c = GetParam();
  ClusterState state = MustCreate(c.nodes);
  PolicyOptions options;
  options.seed = 1;
  options.task_types =
      TypesOf(state, c.workload.empty() ? std::vector<PodSpec>{c.pod} : c.workload);
  auto policy = MakePolicy(c.policy, options);
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  PlacementEngine engine(std::move(state), std::move(policy).value());
  for (std::size_t i = 0; i < c.already.size(); ++i) {
    ASSERT_TRUE(
        engine.Place(i + 100, MustResolve(engine.state(), c.already[i]), c.already_at[i]).ok());
  }
  Result<Placement> got = engine.Schedule(1, MustResolve(engine.state(), c.pod));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->node, c.want.node);
  EXPECT_EQ(got->gpus, c.want.gpus);
}

std::vector<ChoiceCase> ChoiceCases() {
  const NodeSpec big = Node("big", 64000, 4, "T4");
  const NodeSpec small = Node("small", 16000, 2, "T4");
  return {
      {"best_fit_prefers_the_tighter_node",
       "best-fit",
       {big, small},
       {},
       {},
       {},
       Pod(4000, 1, 1000),
       {1, {0}}},
      {"best_fit_takes_the_fullest_gpu",
       "best-fit",
       {small},
       {Pod(1000, 1, 300)},
       {{0, {1}}},
       {},
       Pod(1000, 1, 500),
       {0, {1}}},
      {"dot_product_prefers_less_free_capacity",
       "dot-product",
       {big, small},
       {},
       {},
       {},
       Pod(4000, 1, 1000),
       {1, {0}}},
      {"gpu_packing_prefers_a_used_gpu",
       "gpu-packing",
       {big, small},
       {Pod(1000, 1, 200)},
       {{0, {2}}},
       {},
       Pod(1000, 1, 500),
       {0, {2}}},
      {"gpu_clustering_joins_its_class",
       "gpu-clustering",
       {big, small},
       {Pod(1000, 1, 500), Pod(1000, 1, 1000)},
       {{0, {0}}, {1, {0}}},
       {},
       Pod(1000, 1, 500),
       {0, {0}}},
      // FGD keeps a 500 share usable: 1000+600 -> put the 500 on the full GPU (leaving 500 and
      // 600, both usable) rather than on 600 (leaving 100, too small) — unlike best fit.
      {"fgd_keeps_remainders_usable",
       "fgd",
       {Node("n", 16000, 2, "T4")},
       {Pod(1000, 1, 400)},
       {{0, {1}}},
       {Pod(1000, 1, 500)},
       Pod(1000, 1, 500),
       {0, {0}}},
      {"best_fit_contrast_leaves_a_sliver",
       "best-fit",
       {Node("n", 16000, 2, "T4")},
       {Pod(1000, 1, 400)},
       {{0, {1}}},
       {},
       Pod(1000, 1, 500),
       {0, {1}}},
      // Both nodes hold one idle GPU after placement; only on "roomy" is there CPU left to use
      // it, so the fragmentation-aware policies avoid stranding it on "tight".
      {"fgd_avoids_stranding_a_gpu_behind_cpu",
       "fgd",
       {Node("tight", 8000, 2, "T4"), Node("roomy", 16000, 2, "T4")},
       {},
       {},
       {Pod(8000, 1, 1000)},
       Pod(8000, 1, 1000),
       {1, {0}}},
      {"gpuslice_avoids_stranding_a_gpu_behind_cpu",
       "gpuslice",
       {Node("tight", 8000, 2, "T4"), Node("roomy", 16000, 2, "T4")},
       {},
       {},
       {Pod(8000, 1, 1000)},
       Pod(8000, 1, 1000),
       {1, {0}}},
      {"gpuslice_keeps_remainders_usable",
       "gpuslice",
       {Node("n", 16000, 2, "T4")},
       {Pod(1000, 1, 400)},
       {{0, {1}}},
       {Pod(1000, 1, 500)},
       Pod(1000, 1, 500),
       {0, {0}}},
      // The GPU pods ask 8 cores per GPU on average (4 and 12). "idle" has exactly the 16 cores
      // its two idle GPUs will need; a CPU-only pod there strands 250 milli-GPU (14 cores serve
      // 1.75 GPUs), although every type still fits, so no fragmentation measure moves and best
      // fit alone would pick "idle" (less CPU left over). CPU stranding sends it to "busy".
      {"gpuslice_sends_cpu_only_pods_where_their_cpu_strands_no_gpu",
       "gpuslice",
       {Node("busy", 64000, 2, "T4"), Node("idle", 16000, 2, "T4")},
       {Pod(2000, 2, 1000)},
       {{0, {0, 1}}},
       {Pod(2000, 0, 0), Pod(4000, 1, 1000), Pod(12000, 1, 1000)},
       Pod(2000, 0, 0),
       {0, {}}},
      // With 26 cores "idle" keeps CPU for its GPUs after the pod (24 cores serve 3 GPUs) and
      // can still host as many copies of each type: nothing is stranded, gpuslice packs like
      // best fit.
      {"gpuslice_packs_cpu_only_pods_beside_idle_gpus_with_cpu_to_spare",
       "gpuslice",
       {Node("busy", 64000, 2, "T4"), Node("idle", 26000, 2, "T4")},
       {Pod(2000, 2, 1000)},
       {{0, {0, 1}}},
       {Pod(2000, 0, 0), Pod(4000, 1, 1000), Pod(12000, 1, 1000)},
       Pod(2000, 0, 0),
       {1, {}}},
      {"best_fit_contrast_puts_cpu_only_pod_beside_idle_gpus",
       "best-fit",
       {Node("busy", 64000, 2, "T4"), Node("idle", 16000, 2, "T4")},
       {Pod(2000, 2, 1000)},
       {{0, {0, 1}}},
       {},
       Pod(4000, 0, 0),
       {1, {}}},
      {"model_constraint_wins_over_fit",
       "best-fit",
       {big, Node("p", 8000, 1, "P100")},
       {},
       {},
       {},
       Pod(1000, 1, 1000, {"T4"}),
       {0, {0}}},
  };
}

INSTANTIATE_TEST_SUITE_P(Cases, PolicyChoiceTest, ::testing::ValuesIn(ChoiceCases()),
                         [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(PolicyTest, RandomIsReproducibleAndOnlyPicksFeasibleNodes) {
  std::vector<NodeSpec> nodes;
  for (int i = 0; i < 20; ++i) nodes.push_back(Node("n" + std::to_string(i), 8000, 1, "T4"));
  nodes.push_back(Node("p", 8000, 1, "P100"));
  const ClusterState state = MustCreate(nodes);
  const PodRequest pod = MustResolve(state, Pod(1000, 1, 1000, {"P100"}));
  PolicyOptions seeded;
  seeded.seed = 3;
  auto a = MakePolicy("random", seeded);
  ASSERT_TRUE(a.ok());
  const auto choice = (*a)->Choose(state, pod);
  ASSERT_TRUE(choice.has_value());
  EXPECT_EQ(choice->node, 20);
  const PodRequest any = MustResolve(state, Pod(1000, 1, 1000));
  std::vector<int> first, second;
  auto p1 = MakePolicy("random", seeded);
  auto p2 = MakePolicy("random", seeded);
  for (int i = 0; i < 10; ++i) {
    first.push_back((*p1)->Choose(state, any)->node);
    second.push_back((*p2)->Choose(state, any)->node);
  }
  EXPECT_EQ(first, second);
  EXPECT_GT(std::set<int>(first.begin(), first.end()).size(), 1U);
}

// Equal scores go to the node whose name sorts first (the FGD authors' simulator), whatever the
// node's index; with TieBreak::kRandom they spread.
TEST(PolicyTest, TiesGoToTheLowestNodeNameUnlessRandomIsAsked) {
  const ClusterState state =
      MustCreate({Node("node-b", 8000, 1, "T4"), Node("node-a", 8000, 1, "T4"),
                  Node("node-c", 8000, 1, "T4")});
  const PodRequest pod = MustResolve(state, Pod(1000, 1, 1000));
  for (const char* name : {"best-fit", "fgd", "gpuslice", "gpu-packing"}) {
    PolicyOptions options;
    options.task_types = TypesOf(state, {Pod(1000, 1, 1000)});
    auto policy = MakePolicy(name, options);
    ASSERT_TRUE(policy.ok()) << name;
    const auto choice = (*policy)->Choose(state, pod);
    ASSERT_TRUE(choice.has_value()) << name;
    EXPECT_EQ(choice->node, 1) << name << " should pick node-a";
  }
  std::set<int> chosen;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    PolicyOptions options;
    options.seed = seed;
    options.tie_break = TieBreak::kRandom;
    options.task_types = TypesOf(state, {Pod(1000, 1, 1000)});
    auto policy = MakePolicy("fgd", options);
    ASSERT_TRUE(policy.ok());
    chosen.insert((*policy)->Choose(state, pod)->node);
  }
  EXPECT_GT(chosen.size(), 1U) << "random tie-breaking should not always pick one node";
}

TEST(PolicyTest, ParseTieBreakNamesTheAcceptedValues) {
  EXPECT_EQ(ParseTieBreak("lowest-name").value(), TieBreak::kLowestNodeName);
  EXPECT_EQ(ParseTieBreak("random").value(), TieBreak::kRandom);
  EXPECT_EQ(TieBreakName(TieBreak::kRandom), "random");
  const auto bad = ParseTieBreak("first");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("lowest-name, random"), std::string::npos);
}

// The multigpu30 situation in miniature: an 8-GPU pod asking for 120 cores fits only the 128-core
// node, and it is too rare to be one of the typical task types. A CPU-heavy 1-GPU pod would
// strand less CPU-per-GPU on the 128-core node, so without knowing the rare type gpuslice puts
// it there; told every type, it keeps the only host of the large type whole.
TEST(PolicyTest, GpusliceKeepsTheOnlyHostOfARareLargeTypeWhole) {
  const ClusterState state = MustCreate({Node("g2", 96000, 8, "G"), Node("g3", 128000, 8, "G")});
  std::vector<PodRequest> workload;
  auto add = [&](int count, const PodSpec& spec) {
    for (int i = 0; i < count; ++i) workload.push_back(MustResolve(state, spec));
  };
  add(30, Pod(12000, 1, 1000));
  add(62, Pod(24000, 1, 1000));
  add(8, Pod(120000, 8, 1000));
  const PodRequest pod = MustResolve(state, Pod(24000, 1, 1000));
  PolicyOptions options;
  options.task_types = TypicalTaskTypes(workload, {.coverage = 0.9});
  ASSERT_EQ(options.task_types.size(), 2U) << "the 8-GPU type is not a typical one";

  auto blind = MakePolicy("gpuslice", options);
  ASSERT_TRUE(blind.ok());
  EXPECT_EQ((*blind)->Choose(state, pod)->node, 1) << "without the rare type: the roomier node";

  options.all_task_types = TypicalTaskTypes(workload, {.coverage = 1.0});
  auto aware = MakePolicy("gpuslice", options);
  ASSERT_TRUE(aware.ok());
  EXPECT_EQ((*aware)->Choose(state, pod)->node, 0) << "the 128-core node stays whole";
}

// A pod that may run on any model, and a T4 node whose half-used GPU it would fit exactly. When
// few of the workload's pods are restricted to T4, gpuslice takes the exact fit (as fgd does);
// when T4-restricted pods ask for far more than the T4 node can still host, the T4 remainder is
// theirs and the pod goes to the other model's node, although that leaves a GPU half used.
TEST(PolicyTest, GpusliceLeavesOversubscribedModelsToThePodsRestrictedToThem) {
  ClusterState state = MustCreate({Node("a-t4", 104000, 2, "T4"), Node("b-g2", 96000, 8, "G2")});
  ASSERT_TRUE(state.Place(1, MustResolve(state, Pod(4000, 1, 500)), {0, {0}}).ok());
  const PodRequest pod = MustResolve(state, Pod(4000, 1, 500));
  auto workload = [&](int t4_restricted) {
    std::vector<PodRequest> pods;
    auto add = [&](int count, const PodSpec& spec) {
      for (int i = 0; i < count; ++i) pods.push_back(MustResolve(state, spec));
    };
    add(40, Pod(4000, 1, 1000));
    add(60 - t4_restricted, Pod(4000, 1, 500));
    add(t4_restricted, Pod(4000, 1, 500, {"T4"}));
    return pods;
  };
  auto choose = [&](std::string_view policy, int t4_restricted) {
    PolicyOptions options;
    SetWorkloadTaskTypes(options, workload(t4_restricted));
    auto made = MakePolicy(policy, options);
    EXPECT_TRUE(made.ok());
    const std::optional<Placement> choice = (*made)->Choose(state, pod);
    EXPECT_TRUE(choice.has_value());
    return choice.value_or(Placement{}).node;
  };
  EXPECT_EQ(choose("gpuslice", 2), 0) << "T4 is not scarce: the exact fit";
  EXPECT_EQ(choose("gpuslice", 40), 1) << "T4 is oversubscribed: keep its remainder";
  EXPECT_EQ(choose("fgd", 40), 0) << "fgd takes the exact fit either way";
}

TEST(PolicyTest, UnknownPolicyAndMissingWorkloadAreClearErrors) {
  auto unknown = MakePolicy("tetris", {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("known: random"), std::string::npos);
  auto fgd = MakePolicy("fgd", {});
  ASSERT_FALSE(fgd.ok());
  EXPECT_NE(fgd.status().message().find("task types"), std::string::npos);
}

TEST(PolicyTest, CandidatesCollapseIdenticalGpus) {
  const ClusterState state = MustCreate({Node("n", 64000, 4, "T4")});
  const auto share = CandidateGpuSets(state, MustResolve(state, Pod(1000, 1, 300)), 0);
  EXPECT_EQ(share.size(), 1U) << "four identical idle GPUs are one choice";
  const auto two = CandidateGpuSets(state, MustResolve(state, Pod(1000, 2, 1000)), 0);
  ASSERT_EQ(two.size(), 1U);
  EXPECT_EQ(two[0], (std::vector<int>{0, 1}));
}

TEST(RngTest, BelowStaysInRangeAndIsReproducible) {
  Rng a(42), b(42);
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t x = a.Below(7);
    EXPECT_LT(x, 7U);
    EXPECT_EQ(x, b.Below(7));
  }
  // mt19937_64's 10000th output is fixed by the C++ standard.
  std::mt19937_64 reference;
  reference.discard(9999);
  EXPECT_EQ(reference(), 9981545732273789042ULL);
}

}  // namespace
}  // namespace gpuslice::placement
