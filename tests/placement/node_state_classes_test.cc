// Tests of NodeStateClasses (nodes grouped by the state their scores depend on) and of the
// policies' score caches shared per class: on a cluster of many identical nodes, a warm policy
// chooses exactly what a fresh one does.
#include "placement/node_state_classes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "placement/cluster_state.h"
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

ClusterState MustCreate(std::vector<NodeSpec> nodes) {
  Result<ClusterState> state = ClusterState::Create(std::move(nodes));
  EXPECT_TRUE(state.ok()) << state.status().ToString();
  return std::move(state).value();
}

PodRequest Request(std::int64_t cpu, int num_gpu, int gpu_milli, std::int64_t memory = 1024) {
  PodRequest pod;
  pod.cpu_milli = cpu;
  pod.memory_mib = memory;
  pod.num_gpu = num_gpu;
  pod.gpu_milli = gpu_milli;
  return pod;
}

// One row per thing that does or does not make a node's class differ from a reference node's.
struct SameClassCase {
  const char* name;
  NodeSpec other;
  bool same_class;
};

TEST(NodeStateClassesTest, NodesShareAClassExactlyWhenSpecAndFreeStateAgree) {
  const NodeSpec reference = Node("ref", 96000, 8, "A100");
  const SameClassCase cases[] = {
      {"same spec, other name", Node("other", 96000, 8, "A100"), true},
      {"other CPU", Node("other", 64000, 8, "A100"), false},
      {"other GPU count", Node("other", 96000, 4, "A100"), false},
      {"other model", Node("other", 96000, 8, "V100"), false},
      {"other memory", Node("other", 96000, 8, "A100", 1 << 19), false},
  };
  for (const SameClassCase& c : cases) {
    ClusterState state = MustCreate({reference, c.other});
    NodeStateClasses classes;
    classes.Reset(state, /*per_node=*/false);
    EXPECT_EQ(classes.ClassOf(0) == classes.ClassOf(1), c.same_class) << c.name;
  }
}

TEST(NodeStateClassesTest, NodeMovesWithItsStateAndReturnsToItsOldClass) {
  ClusterState state = MustCreate({Node("a", 96000, 8, "A100"), Node("b", 96000, 8, "A100")});
  NodeStateClasses classes;
  classes.Reset(state, /*per_node=*/false);
  const std::uint32_t empty = classes.ClassOf(0);
  ASSERT_EQ(classes.ClassOf(1), empty);

  ASSERT_TRUE(state.Place(1, Request(4000, 1, 500), {.node = 0, .gpus = {0}}).ok());
  const NodeStateClasses::Change placed = classes.NodeChanged(state, 0);
  EXPECT_NE(placed.class_id, empty);
  EXPECT_TRUE(placed.new_state);
  EXPECT_EQ(classes.live_classes(), 2U);

  // The same pod on the other node: the same state, so the class node 0 is in.
  ASSERT_TRUE(state.Place(2, Request(4000, 1, 500), {.node = 1, .gpus = {0}}).ok());
  const NodeStateClasses::Change joined = classes.NodeChanged(state, 1);
  EXPECT_EQ(joined.class_id, placed.class_id);
  EXPECT_FALSE(joined.new_state);
  EXPECT_EQ(classes.live_classes(), 1U);

  // The empty class has no node now, but is kept: removing the pod finds it again.
  ASSERT_TRUE(state.Remove(1).ok());
  const NodeStateClasses::Change removed = classes.NodeChanged(state, 0);
  EXPECT_EQ(removed.class_id, empty);
  EXPECT_FALSE(removed.new_state);
}

TEST(NodeStateClassesTest, FreeMemoryIsNotPartOfTheState) {
  ClusterState state = MustCreate({Node("a", 96000, 8, "A100"), Node("b", 96000, 8, "A100")});
  NodeStateClasses classes;
  classes.Reset(state, /*per_node=*/false);
  ASSERT_TRUE(state.Place(1, Request(0, 0, 0, /*memory=*/4096), {.node = 0, .gpus = {}}).ok());
  const NodeStateClasses::Change change = classes.NodeChanged(state, 0);
  EXPECT_FALSE(change.new_state);
  EXPECT_EQ(change.class_id, classes.ClassOf(1));
}

TEST(NodeStateClassesTest, PerNodeClassesAreNewStatesAtEveryChange) {
  ClusterState state = MustCreate({Node("a", 96000, 8, "A100"), Node("b", 96000, 8, "A100")});
  NodeStateClasses classes;
  classes.Reset(state, /*per_node=*/true);
  EXPECT_NE(classes.ClassOf(0), classes.ClassOf(1));
  ASSERT_TRUE(state.Place(1, Request(0, 0, 0, /*memory=*/4096), {.node = 0, .gpus = {}}).ok());
  const NodeStateClasses::Change change = classes.NodeChanged(state, 0);
  EXPECT_TRUE(change.new_state);
  EXPECT_EQ(change.class_id, classes.ClassOf(0));
}

TEST(NodeStateClassesTest, UnusedClassesAreReusedSoTheirNumberStaysBounded) {
  ClusterState state = MustCreate({Node("a", 128000, 8, "A100")});
  NodeStateClasses classes;
  classes.Reset(state, /*per_node=*/false);
  int reused = 0;
  for (int i = 1; i <= 200; ++i) {
    // A new CPU amount each time: a state never seen before.
    ASSERT_TRUE(
        state.Place(static_cast<PodId>(i), Request(100 * i, 0, 0), {.node = 0, .gpus = {}}).ok());
    const NodeStateClasses::Change change = classes.NodeChanged(state, 0);
    EXPECT_TRUE(change.new_state) << i;
    if (change.class_id < static_cast<std::uint32_t>(i)) ++reused;
    ASSERT_TRUE(state.Remove(static_cast<PodId>(i)).ok());
    classes.NodeChanged(state, 0);
  }
  EXPECT_LE(classes.class_capacity(), 64U);  // 1 live + at most 16 kept unused, then reuse
  EXPECT_GT(reused, 100);
  EXPECT_EQ(classes.live_classes(), 1U);
}

// The policies' score caches are shared per class: with many identical nodes, and pods placed
// and removed at random, a warm policy chooses exactly what a policy created afresh chooses.
// With `online`, the warm policy learns the types as the pods come (republished often, so its
// caches and gpuslice's slot counts are rebuilt from the classes again and again) and each fresh
// policy gets the types the warm one last received.
void ExpectSharedCachesChooseLikeFreshPolicies(std::string_view policy, bool online) {
  std::vector<NodeSpec> nodes;
  for (int i = 0; i < 6; ++i) {
    nodes.push_back(Node("a100-" + std::to_string(i), 96000, 8, "A100"));
    nodes.push_back(Node("t4-" + std::to_string(i), 32000, 2, "T4"));
  }
  nodes.push_back(Node("a100-lowmem", 96000, 8, "A100", 65536));
  ClusterState initial = MustCreate(nodes);
  Rng rng(11);
  std::vector<PodRequest> pods;
  const int shares[] = {250, 500, 1000};
  for (int i = 0; i < 500; ++i) {
    const int kind = static_cast<int>(rng.Below(5));
    PodRequest pod = Request(static_cast<std::int64_t>(2000 * (1 + rng.Below(4))), 0, 0,
                             static_cast<std::int64_t>(4096 * (1 + rng.Below(8))));
    if (kind == 1) pod = Request(pod.cpu_milli, 1, shares[rng.Below(3)], pod.memory_mib);
    if (kind == 2) pod = Request(pod.cpu_milli, 1 << rng.Below(3), 1000, pod.memory_mib);
    if (kind >= 3) {  // T4 only: model scarcity is priced
      pod = Request(pod.cpu_milli, 1, kind == 3 ? 1000 : shares[rng.Below(2)], pod.memory_mib);
      pod.allowed_models = std::uint64_t{1} << static_cast<unsigned>(initial.ModelId("T4"));
    }
    pods.push_back(pod);
  }
  PolicyOptions options;
  options.task_types_later = online;
  if (!online) SetWorkloadTaskTypes(options, pods);
  OnlineTaskTypesOptions learn;
  learn.half_life_pods = 40;
  learn.republish_distance = 0.01;
  learn.min_gap_pods = 1;
  learn.republish_every_pods = 7;
  OnlineTaskTypes learner(learn);
  auto warm = MakePolicy(policy, options);
  ASSERT_TRUE(warm.ok()) << warm.status().ToString();
  PlacementEngine engine(std::move(initial), std::move(warm).value());
  std::vector<PodId> placed;
  PodId next = 0;
  for (const PodRequest& pod : pods) {
    if (online && learner.ObserveAndUpdate(pod, engine.policy())) {
      options.task_types = learner.TypicalTypes();
      options.all_task_types = learner.AllTypes();
    }
    auto fresh = MakePolicy(policy, options);
    ASSERT_TRUE(fresh.ok());
    const std::optional<Placement> want = (*fresh)->Choose(engine.state(), pod);
    const std::optional<Placement> got = engine.policy().Choose(engine.state(), pod);
    ASSERT_EQ(got, want) << "pod " << next + 1;
    if (got) {
      ASSERT_TRUE(engine.Place(++next, pod, *got).ok());
      placed.push_back(next);
    }
    if (!placed.empty() && rng.Below(3) == 0) {
      const std::size_t i = rng.Below(placed.size());
      ASSERT_TRUE(engine.Remove(placed[i]).ok());
      placed.erase(placed.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  if (online) {
    EXPECT_GT(learner.publications(), 20U) << "the types must change during the run";
  }
}

class SharedCacheTest : public ::testing::TestWithParam<std::string_view> {};

TEST_P(SharedCacheTest, WarmPolicyOnIdenticalNodesChoosesLikeAFreshOne) {
  ExpectSharedCachesChooseLikeFreshPolicies(GetParam(), /*online=*/false);
}

INSTANTIATE_TEST_SUITE_P(StatelessPolicies, SharedCacheTest,
                         ::testing::Values("best-fit", "dot-product", "gpu-packing", "fgd",
                                           "gpuslice"),
                         [](const auto& test_info) {
                           std::string name(test_info.param);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

class OnlineSharedCacheTest : public ::testing::TestWithParam<std::string_view> {};

TEST_P(OnlineSharedCacheTest, WarmPolicyOnIdenticalNodesChoosesLikeAFreshOne) {
  ExpectSharedCachesChooseLikeFreshPolicies(GetParam(), /*online=*/true);
}

INSTANTIATE_TEST_SUITE_P(FragmentationPolicies, OnlineSharedCacheTest,
                         ::testing::Values("fgd", "gpuslice"),
                         [](const auto& test_info) { return std::string(test_info.param); });

}  // namespace
}  // namespace gpuslice::placement
