#include "scheduler/extender.h"

#include <gtest/gtest.h>

#include <thread>

#include "core/clock.h"
#include "test_objects.h"

namespace gpuslice::scheduler {
namespace {

using nlohmann::json;
using testing::BoundPod;
using testing::FakeBindingWriter;
using testing::kGiB;
using testing::MakeNode;
using testing::MakePod;

std::int64_t FreeMemory(const std::vector<GpuFree>& gpus) {
  std::int64_t total = 0;
  for (const GpuFree& gpu : gpus) total += gpu.memory_free_bytes;
  return total;
}

class ExtenderTest : public ::testing::Test {
 protected:
  std::unique_ptr<Extender> Make(const std::string& policy = "best-fit") {
    ExtenderOptions options;
    options.policy = policy;
    options.reservation_ttl = std::chrono::seconds(30);
    Result<std::unique_ptr<Extender>> extender = Extender::Create(options, clock_, writer_);
    EXPECT_TRUE(extender.ok()) << extender.status().ToString();
    return *std::move(extender);
  }

  // Binds `pod` to `node` and returns the Binding the writer saw.
  BindingRequest BindTo(Extender& extender, const json& pod, const std::string& node) {
    const std::string name = pod["metadata"]["name"];
    const Status bound = extender.Bind({name, "team-a", "uid-" + name, node});
    EXPECT_TRUE(bound.ok()) << bound.ToString();
    return writer_.bindings().back();
  }

  ManualClock clock_;
  FakeBindingWriter writer_;
};

TEST_F(ExtenderTest, VerbsAnswerUnavailableUntilSynced) {
  auto extender = Make();
  const json pod = MakePod("p", {.memory = "1Gi"});
  const std::vector<std::string> nodes{"a"};
  EXPECT_EQ(extender->Filter(pod, nodes).status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(extender->Prioritize(pod, nodes).status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(extender->Bind({"p", "team-a", "uid-p", "a"}).code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(extender->synced());
  extender->Rebuild(std::vector<json>{MakeNode("a", 1)}, {});
  EXPECT_TRUE(extender->synced());
  EXPECT_TRUE(extender->Filter(pod, nodes).ok());
}

TEST_F(ExtenderTest, FilterPassesNodesWithRoomAndSaysWhyForEveryOther) {
  auto extender = Make();
  const json holder = MakePod("holder", {.memory = "10Gi", .compute = "10"});
  json bare = MakeNode("bare", 0);
  json broken = MakeNode("broken", 1);
  broken["metadata"]["annotations"]["gpuslice.io/gpus"] = R"({"version":"v9"})";
  const SyncReport report = extender->Rebuild(
      std::vector<json>{MakeNode("free", 1), MakeNode("busy", 1), MakeNode("v100", 2, "V100"),
                        MakeNode("small", 1, "A100", 4 * kGiB), bare, broken},
      std::vector<json>{BoundPod(
          holder, {"team-a",
                   "holder",
                   "uid-holder",
                   "busy",
                   {{"gpuslice.io/assignment",
                     EncodeAssignment({"busy", "main", {{0, "GPU-busy-0"}}, 10 * kGiB, 10})}}})});
  EXPECT_EQ(report.gpu_nodes, 4);
  EXPECT_EQ(report.holding_pods, 1);
  ASSERT_EQ(report.problems.size(), 1U);  // the broken node's annotation

  const json pod = MakePod("p", {.memory = "8Gi", .compute = "30", .models = "A100"});
  const std::vector<std::string> names{"free", "busy", "v100", "small", "bare", "broken", "gone"};
  const Result<FilterResult> result = extender->Filter(pod, names);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->nodes, std::vector<std::string>{"free"});
  EXPECT_EQ(result->failed.at("busy"),
            "insufficient GPU memory on every GPU: largest free 6Gi < 8Gi");
  EXPECT_EQ(result->unresolvable.at("v100"),
            "no GPU of the allowed models (pod allows A100; node has V100)");
  EXPECT_EQ(result->unresolvable.at("small"),
            "GPU memory request 8Gi exceeds every GPU's memory (4Gi)");
  EXPECT_NE(result->unresolvable.at("bare").find("annotation gpuslice.io/gpus missing"),
            std::string::npos);
  EXPECT_NE(result->unresolvable.at("broken").find("version must be \"v1\""), std::string::npos);
  EXPECT_NE(result->unresolvable.at("gone").find("not in gpuslice-scheduler's cache"),
            std::string::npos);

  const json busy_compute = MakePod("c", {.memory = "1Gi", .compute = "95"});
  EXPECT_EQ(extender->Filter(busy_compute, std::vector<std::string>{"busy"})->failed.at("busy"),
            "insufficient GPU compute on every GPU: largest free 90% < 95%");
  const json whole = MakePod("w", {.gpus = "2"});
  EXPECT_EQ(extender->Filter(whole, std::vector<std::string>{"busy", "v100"})->nodes,
            std::vector<std::string>{"v100"});
}

TEST_F(ExtenderTest, FilterRejectsAnInvalidRequestWithTheReason) {
  auto extender = Make();
  extender->Rebuild(std::vector<json>{MakeNode("a", 1)}, {});
  const Result<FilterResult> result =
      extender->Filter(MakePod("p", {.compute = "150"}), std::vector<std::string>{"a"});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("gpu-compute must be 1..100"), std::string::npos);
}

TEST_F(ExtenderTest, PodsWithoutGpuRequestsPassEverywhereAndScoreZero) {
  auto extender = Make();
  extender->Rebuild(std::vector<json>{MakeNode("a", 1)}, {});
  const json pod = MakePod("cpu", {});
  const std::vector<std::string> names{"a", "cpu-only-node"};
  EXPECT_EQ(extender->Filter(pod, names)->nodes, names);
  const auto scores = extender->Prioritize(pod, names);
  ASSERT_TRUE(scores.ok());
  EXPECT_EQ(*scores, (std::vector<HostScore>{{"a", 0}, {"cpu-only-node", 0}}));
}

TEST_F(ExtenderTest, PrioritizeRanksNodesAsThePolicyChooses) {
  auto extender = Make("best-fit");
  // best-fit prefers the node left with the least free GPU share: "half" (one GPU, 50 % used),
  // then "one" (one free GPU), then "two" (two free GPUs).
  const json holder = MakePod("holder", {.memory = "1Gi", .compute = "50"});
  extender->Rebuild(
      std::vector<json>{MakeNode("two", 2), MakeNode("one", 1), MakeNode("half", 1),
                        MakeNode("full", 1)},
      std::vector<json>{
          BoundPod(holder, {"team-a",
                            "holder",
                            "uid-holder",
                            "half",
                            {{"gpuslice.io/assignment",
                              EncodeAssignment({"half", "main", {{0, ""}}, kGiB, 50})}}}),
          BoundPod(MakePod("big", {.compute = "100"}),
                   {"team-a",
                    "big",
                    "uid-big",
                    "full",
                    {{"gpuslice.io/assignment",
                      EncodeAssignment({"full", "main", {{0, ""}}, 0, 100})}}})});
  const json pod = MakePod("p", {.memory = "2Gi", .compute = "40"});
  const std::vector<std::string> names{"two", "one", "half", "full", "unknown"};
  const Result<std::vector<HostScore>> scores = extender->Prioritize(pod, names);
  ASSERT_TRUE(scores.ok()) << scores.status().ToString();
  EXPECT_EQ(*scores, (std::vector<HostScore>{
                         {"two", 8}, {"one", 9}, {"half", 10}, {"full", 0}, {"unknown", 0}}));
  // Pure: asking again gives the same answer and changes nothing.
  EXPECT_EQ(*extender->Prioritize(pod, names), *scores);
  EXPECT_EQ(extender->FreeGpus("half")[0].compute_free_percent, 50);
}

TEST_F(ExtenderTest, FragmentationAwarePoliciesLearnTaskTypesFromThePodsSeen) {
  for (const std::string policy : {"fgd", "gpuslice"}) {
    auto extender = Make(policy);
    extender->Rebuild(std::vector<json>{MakeNode("a", 2), MakeNode("b", 1)}, {});
    const json pod = MakePod("p", {.memory = "2Gi", .compute = "40"});
    const auto scores = extender->Prioritize(pod, std::vector<std::string>{"a", "b"});
    ASSERT_TRUE(scores.ok()) << policy << ": " << scores.status().ToString();
    int top = 0;
    for (const HostScore& s : *scores) top = std::max(top, s.score);
    EXPECT_EQ(top, kMaxExtenderPriority) << policy;
  }
}

// Issue 16's online mode in the extender: the task types are learned from the pods the cache
// learns about (each once), and the fragmentation-aware policies' choices follow the mix.
//
// Node "x" has 500 milli-GPU free, "y" 700. A 20 % pod leaves x with 300 or y with 500. If the
// workload is mostly 50 % pods, filling x strands its 300 (a 50 % pod no longer fits) while y
// keeps room for one: y. If it is mostly 70 % pods, x could never host one anyway and y could:
// x. (The fgd paper's argument, which best-fit ignores.)
class LearnedMixTest : public ExtenderTest, public ::testing::WithParamInterface<std::string> {
 protected:
  std::unique_ptr<Extender> Cluster() {
    auto extender = Make(GetParam());
    extender->Rebuild(std::vector<json>{MakeNode("x", 1), MakeNode("y", 1)},
                      std::vector<json>{Holder("hx", "x", 50), Holder("hy", "y", 30)});
    return extender;
  }
  static json Holder(const std::string& name, const std::string& node, int compute) {
    return BoundPod(
        MakePod(name, {.memory = "1Gi", .compute = std::to_string(compute)}),
        {"team-a",
         name,
         "uid-" + name,
         node,
         {{"gpuslice.io/assignment", EncodeAssignment({node, "main", {{0, ""}}, kGiB, compute})}}});
  }
  // `count` pending pods of `compute` percent: what the informer shows before they are bound.
  static void Arrive(Extender& extender, const std::string& prefix, int count, int compute) {
    for (int i = 0; i < count; ++i) {
      ASSERT_TRUE(extender
                      .UpsertPod(MakePod(prefix + std::to_string(i),
                                         {.memory = "1Gi", .compute = std::to_string(compute)}))
                      .ok());
    }
  }
  static std::string TopNode(Extender& extender) {
    const json pod = MakePod("new", {.memory = "1Gi", .compute = "20"});
    const auto scores = extender.Prioritize(pod, std::vector<std::string>{"x", "y"});
    EXPECT_TRUE(scores.ok()) << scores.status().ToString();
    if (!scores.ok()) return "";
    for (const HostScore& s : *scores) {
      if (s.score == kMaxExtenderPriority) return s.host;
    }
    return "";
  }
};

TEST_P(LearnedMixTest, ChoicesFollowTheLearnedMix) {
  auto halves = Cluster();
  // The learner publishes a new mix at most every 32 pods at first (min_gap_pods, as in the
  // simulator), so each workload is 40 pods.
  Arrive(*halves, "half-", 40, 50);
  ASSERT_FALSE(halves->TaskTypes().empty());
  EXPECT_EQ(halves->TaskTypes().front().request.gpu_milli, 500);
  EXPECT_EQ(TopNode(*halves), "y");

  auto large = Cluster();
  Arrive(*large, "large-", 40, 70);
  ASSERT_FALSE(large->TaskTypes().empty());
  EXPECT_EQ(large->TaskTypes().front().request.gpu_milli, 700);
  EXPECT_EQ(TopNode(*large), "x");

  // The mix moves: after many 70 % pods the first extender's choice follows.
  Arrive(*halves, "later-", 100, 70);
  EXPECT_EQ(halves->TaskTypes().front().request.gpu_milli, 700);
  EXPECT_EQ(TopNode(*halves), "x");
}
INSTANTIATE_TEST_SUITE_P(FragmentationAware, LearnedMixTest, ::testing::Values("fgd", "gpuslice"),
                         [](const ::testing::TestParamInfo<std::string>& row) {
                           return row.param;
                         });

TEST_F(ExtenderTest, EachPodIsObservedOnceWhateverTheEventsAndVerbs) {
  auto extender = Make("gpuslice");
  const std::vector<json> nodes{MakeNode("a", 2)};
  extender->Rebuild(nodes, {});
  EXPECT_EQ(extender->PodsObserved(), 0u);
  EXPECT_TRUE(extender->TaskTypes().empty());
  const json pod = MakePod("p", {.memory = "2Gi", .compute = "40"});
  // Filter and prioritize are pure: a pod seen only there is not learned, and asking again
  // gives the same answer.
  const std::vector<std::string> names{"a"};
  const auto first = extender->Prioritize(pod, names);
  ASSERT_TRUE(first.ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(extender->Filter(pod, names).ok());
    EXPECT_EQ(*extender->Prioritize(pod, names), *first);
  }
  EXPECT_EQ(extender->PodsObserved(), 0u);
  // The cache learns it: observed once, whether it is modified, bound or relisted.
  ASSERT_TRUE(extender->UpsertPod(pod).ok());
  ASSERT_TRUE(extender->UpsertPod(pod).ok());
  EXPECT_EQ(extender->PodsObserved(), 1u);
  const std::vector<HostScore> learned = *extender->Prioritize(pod, names);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(extender->Filter(pod, names).ok());
    EXPECT_EQ(*extender->Prioritize(pod, names), learned);
  }
  const json bound = BoundPod(pod, BindTo(*extender, pod, "a"));
  ASSERT_TRUE(extender->UpsertPod(bound).ok());
  extender->Rebuild(nodes, std::vector<json>{bound});
  EXPECT_EQ(extender->PodsObserved(), 1u);
  ASSERT_EQ(extender->TaskTypes().size(), 1u);
  EXPECT_EQ(extender->TaskTypes()[0].request.gpu_milli, 400);
  // Deleted and gone from the cache; a new pod (new UID) is a new observation.
  extender->DeletePod("uid-p");
  ASSERT_TRUE(extender->UpsertPod(MakePod("q", {.memory = "1Gi", .compute = "10"})).ok());
  EXPECT_EQ(extender->PodsObserved(), 2u);
}

TEST_F(ExtenderTest, BindReservesThenCommitsWhenThePodIsSeenBound) {
  auto extender = Make();
  extender->Rebuild(std::vector<json>{MakeNode("a", 2)}, {});
  const json pod = MakePod("p", {.memory = "8Gi", .compute = "30"});
  ASSERT_TRUE(extender->Filter(pod, std::vector<std::string>{"a"}).ok());
  ASSERT_TRUE(extender->Prioritize(pod, std::vector<std::string>{"a"}).ok());
  const BindingRequest binding = BindTo(*extender, pod, "a");
  EXPECT_EQ(binding.node, "a");
  EXPECT_EQ(binding.pod_uid, "uid-p");
  EXPECT_EQ(binding.pod_namespace, "team-a");
  const Result<GpuAssignment> assignment =
      DecodeAssignment(binding.annotations.at("gpuslice.io/assignment"));
  ASSERT_TRUE(assignment.ok()) << assignment.status().ToString();
  EXPECT_EQ(assignment->node, "a");
  EXPECT_EQ(assignment->container, "main");
  EXPECT_EQ(assignment->memory_bytes, 8 * kGiB);
  EXPECT_EQ(assignment->compute_percent, 30);
  ASSERT_EQ(assignment->gpus.size(), 1U);
  const int gpu = assignment->gpus[0].index;
  EXPECT_EQ(assignment->gpus[0].uuid, "GPU-a-" + std::to_string(gpu));

  EXPECT_TRUE(extender->IsReserved("uid-p"));
  EXPECT_EQ(extender->FreeGpus("a")[static_cast<std::size_t>(gpu)].memory_free_bytes, 8 * kGiB);
  EXPECT_EQ(extender->FreeGpus("a")[static_cast<std::size_t>(gpu)].compute_free_percent, 70);

  ASSERT_TRUE(extender->UpsertPod(BoundPod(pod, binding)).ok());
  EXPECT_FALSE(extender->IsReserved("uid-p"));
  EXPECT_EQ(extender->AssignmentOf("uid-p"), *assignment);
  // Committed shares do not expire.
  clock_.Advance(std::chrono::hours(1));
  EXPECT_EQ(FreeMemory(extender->FreeGpus("a")), 24 * kGiB);
}

TEST_F(ExtenderTest, BindIsIdempotentAndNeverBooksTwice) {
  auto extender = Make();
  extender->Rebuild(std::vector<json>{MakeNode("a", 1), MakeNode("b", 1)}, {});
  const json pod = MakePod("p", {.memory = "8Gi"});
  ASSERT_TRUE(extender->Filter(pod, std::vector<std::string>{"a"}).ok());
  const BindingRequest first = BindTo(*extender, pod, "a");
  const BindingRequest again = BindTo(*extender, pod, "a");  // kube-scheduler retried
  EXPECT_EQ(first.annotations, again.annotations);
  EXPECT_EQ(FreeMemory(extender->FreeGpus("a")), 8 * kGiB);

  ASSERT_TRUE(extender->UpsertPod(BoundPod(pod, first)).ok());
  const int calls = writer_.calls();
  EXPECT_TRUE(extender->Bind({"p", "team-a", "uid-p", "a"}).ok());
  EXPECT_EQ(writer_.calls(), calls);  // already bound there: answered without a write
  const Status elsewhere = extender->Bind({"p", "team-a", "uid-p", "b"});
  EXPECT_EQ(elsewhere.code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(elsewhere.message().find("already bound to node 'a'"), std::string::npos);
  EXPECT_EQ(FreeMemory(extender->FreeGpus("a")), 8 * kGiB);
  EXPECT_EQ(FreeMemory(extender->FreeGpus("b")), 16 * kGiB);
}

TEST_F(ExtenderTest, BindOfAnUnknownPodOrAFullNodeFailsWithAReason) {
  auto extender = Make();
  extender->Rebuild(std::vector<json>{MakeNode("a", 1)}, {});
  const Status unknown = extender->Bind({"ghost", "team-a", "uid-ghost", "a"});
  EXPECT_EQ(unknown.code(), ErrorCode::kNotFound);
  EXPECT_NE(unknown.message().find("team-a/ghost"), std::string::npos);

  const json big = MakePod("big", {.memory = "12Gi"});
  const json other = MakePod("other", {.memory = "12Gi"});
  ASSERT_TRUE(extender->Filter(big, std::vector<std::string>{"a"}).ok());
  ASSERT_TRUE(extender->Filter(other, std::vector<std::string>{"a"}).ok());
  BindTo(*extender, big, "a");
  const Status full = extender->Bind({"other", "team-a", "uid-other", "a"});
  EXPECT_EQ(full.code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(full.message().find("largest free 4Gi < 12Gi"), std::string::npos) << full.message();
}

TEST_F(ExtenderTest, AFailedBindingWriteReleasesTheReservation) {
  auto extender = Make();
  extender->Rebuild(std::vector<json>{MakeNode("a", 1)}, {});
  const json pod = MakePod("p", {.memory = "8Gi"});
  ASSERT_TRUE(extender->Filter(pod, std::vector<std::string>{"a"}).ok());
  writer_.FailWith(Unavailable("API server said 500"));
  const Status bound = extender->Bind({"p", "team-a", "uid-p", "a"});
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.message().find("API server said 500"), std::string::npos);
  EXPECT_FALSE(extender->IsReserved("uid-p"));
  EXPECT_EQ(FreeMemory(extender->FreeGpus("a")), 16 * kGiB);
}

TEST_F(ExtenderTest, ReservationsThatNeverBindExpireAfterTheTtl) {
  auto extender = Make();
  extender->Rebuild(std::vector<json>{MakeNode("a", 1)}, {});
  const json pod = MakePod("p", {.memory = "12Gi"});
  const json next = MakePod("next", {.memory = "12Gi"});
  ASSERT_TRUE(extender->Filter(pod, std::vector<std::string>{"a"}).ok());
  BindTo(*extender, pod, "a");
  EXPECT_TRUE(extender->Filter(next, std::vector<std::string>{"a"})->nodes.empty());
  clock_.Advance(std::chrono::seconds(29));
  EXPECT_TRUE(extender->IsReserved("uid-p"));
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(extender->Filter(next, std::vector<std::string>{"a"})->nodes,
            std::vector<std::string>{"a"});
  EXPECT_FALSE(extender->IsReserved("uid-p"));
}

TEST_F(ExtenderTest, ConcurrentBindsToOneNodeNeverOverbook) {
  auto extender = Make();
  extender->Rebuild(std::vector<json>{MakeNode("a", 2)}, {});  // 2 x 16Gi
  constexpr int kPods = 16;
  for (int i = 0; i < kPods; ++i) {
    const json pod = MakePod("p" + std::to_string(i), {.memory = "6Gi", .compute = "20"});
    ASSERT_TRUE(extender->Filter(pod, std::vector<std::string>{"a"}).ok());
  }
  std::atomic<int> succeeded{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kPods; ++i) {
    threads.emplace_back([&, i] {
      const std::string name = "p" + std::to_string(i);
      if (extender->Bind({name, "team-a", "uid-" + name, "a"}).ok()) ++succeeded;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(succeeded.load(), 4);  // two 6Gi shares per 16Gi GPU
  for (const GpuFree& gpu : extender->FreeGpus("a")) {
    EXPECT_EQ(gpu.memory_free_bytes, 4 * kGiB);
    EXPECT_EQ(gpu.compute_free_percent, 60);
  }
  std::map<int, std::int64_t> booked;
  for (const BindingRequest& b : writer_.bindings()) {
    const auto a = DecodeAssignment(b.annotations.at("gpuslice.io/assignment"));
    booked[a->gpus[0].index] += a->memory_bytes;
  }
  EXPECT_EQ(booked, (std::map<int, std::int64_t>{{0, 12 * kGiB}, {1, 12 * kGiB}}));
}

TEST_F(ExtenderTest, ARestartedExtenderRebuildsTheSameStateFromAnnotations) {
  auto first = Make();
  const std::vector<json> nodes{MakeNode("a", 2), MakeNode("b", 1)};
  first->Rebuild(nodes, {});
  std::vector<json> pods;
  int i = 0;
  for (const char* memory : {"8Gi", "4Gi", "6Gi", "2Gi"}) {
    const json pod = MakePod("p" + std::to_string(i++), {.memory = memory, .compute = "25"});
    ASSERT_TRUE(first->Filter(pod, std::vector<std::string>{"a", "b"}).ok());
    ASSERT_TRUE(first->Prioritize(pod, std::vector<std::string>{"a", "b"}).ok());
    pods.push_back(BoundPod(pod, BindTo(*first, pod, i % 2 == 0 ? "a" : "b")));
    ASSERT_TRUE(first->UpsertPod(pods.back()).ok());
  }
  auto second = Make();
  const SyncReport report = second->Rebuild(nodes, pods);
  EXPECT_TRUE(report.problems.empty());
  EXPECT_EQ(report.holding_pods, 4);
  for (const char* node : {"a", "b"}) EXPECT_EQ(second->FreeGpus(node), first->FreeGpus(node));

  // A pod deleted while the watch was broken is absent from the relist: its share comes back.
  // A pod that finished (Succeeded) holds nothing either.
  std::vector<json> relist{pods[1], pods[2], pods[3]};
  relist[2]["status"]["phase"] = "Succeeded";
  second->Rebuild(nodes, relist);
  EXPECT_FALSE(second->AssignmentOf("uid-p0"));
  EXPECT_FALSE(second->AssignmentOf("uid-p3"));
  auto third = Make();
  third->Rebuild(nodes, std::vector<json>{pods[1], pods[2]});
  for (const char* node : {"a", "b"}) EXPECT_EQ(second->FreeGpus(node), third->FreeGpus(node));
}

TEST_F(ExtenderTest, AResyncKeepsTheReservationOfABindInFlight) {
  auto extender = Make();
  const std::vector<json> nodes{MakeNode("a", 1)};
  extender->Rebuild(nodes, {});
  const json pod = MakePod("p", {.memory = "8Gi"});
  ASSERT_TRUE(extender->Filter(pod, std::vector<std::string>{"a"}).ok());
  BindTo(*extender, pod, "a");
  extender->Rebuild(nodes, std::vector<json>{pod});  // still pending in the relist
  EXPECT_TRUE(extender->IsReserved("uid-p"));
  EXPECT_EQ(FreeMemory(extender->FreeGpus("a")), 8 * kGiB);
  extender->DeletePod("uid-p");
  EXPECT_EQ(FreeMemory(extender->FreeGpus("a")), 16 * kGiB);
}

TEST_F(ExtenderTest, APodBoundWithoutAUsableAnnotationIsReported) {
  auto extender = Make();
  extender->Rebuild(std::vector<json>{MakeNode("a", 1)}, {});
  json pod = MakePod("p", {.memory = "8Gi"});
  pod["spec"]["nodeName"] = "a";
  const Status applied = extender->UpsertPod(pod);
  EXPECT_EQ(applied.code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(applied.message().find("its GPU use is unknown"), std::string::npos);
  // An annotation naming another node than the one the pod is bound to is not trusted.
  pod["metadata"]["annotations"]["gpuslice.io/assignment"] =
      EncodeAssignment({"b", "main", {{0, "GPU-b-0"}}, 8 * kGiB, 0});
  EXPECT_NE(extender->UpsertPod(pod).message().find("it names node 'b'"), std::string::npos);
}

TEST_F(ExtenderTest, NodeChangesKeepBoundSharesCounted) {
  auto extender = Make();
  const json pod = MakePod("p", {.memory = "8Gi"});
  const json bound =
      BoundPod(pod, {"team-a",
                     "p",
                     "uid-p",
                     "a",
                     {{"gpuslice.io/assignment",
                       EncodeAssignment({"a", "main", {{1, "GPU-a-1"}}, 8 * kGiB, 0})}}});
  extender->Rebuild(std::vector<json>{MakeNode("a", 2)}, std::vector<json>{bound});
  EXPECT_EQ(extender->FreeGpus("a")[1].memory_free_bytes, 8 * kGiB);
  ASSERT_TRUE(extender->UpsertNode(MakeNode("b", 1)).ok());
  EXPECT_EQ(extender->FreeGpus("a")[1].memory_free_bytes, 8 * kGiB);
  extender->DeleteNode("a");
  EXPECT_TRUE(extender->FreeGpus("a").empty());
  ASSERT_TRUE(extender->UpsertNode(MakeNode("a", 2)).ok());  // back: the share is counted again
  EXPECT_EQ(extender->FreeGpus("a")[1].memory_free_bytes, 8 * kGiB);
}

TEST(ExtenderCreateTest, RejectsAnUnknownPolicyNamingTheAcceptedOnes) {
  ManualClock clock;
  FakeBindingWriter writer;
  ExtenderOptions options;
  options.policy = "magic";
  const auto extender = Extender::Create(options, clock, writer);
  ASSERT_FALSE(extender.ok());
  EXPECT_NE(extender.status().message().find("accepted: random, best-fit"), std::string::npos);
}

}  // namespace
}  // namespace gpuslice::scheduler
