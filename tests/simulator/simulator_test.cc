// Tests of the simulator: trace CSV parsing, the synthetic generator, fill/replay/compare runs and
// their reports, and a short fill run on the real trace when it is present.
#include "simulator/simulator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "placement/cluster_state.h"
#include "simulator/report.h"
#include "simulator/synthetic_workload.h"
#include "simulator/trace_csv.h"
#include "simulator/workload_variants.h"

namespace gpuslice::simulator {
namespace {

TEST(TraceCsvTest, ParsesNodesAndPodsByHeaderName) {
  const std::string nodes =
      "sn,cpu_milli,memory_mib,gpu,model\n"
      "n0,64000,262144,2,P100\r\n"
      "n1,32000,131072,0,\n";
  auto parsed = ParseNodeCsv(nodes, "nodes.csv");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 2U);
  EXPECT_EQ((*parsed)[0].gpu_model, "P100");
  EXPECT_EQ((*parsed)[0].gpu_count, 2);
  EXPECT_EQ((*parsed)[1].gpu_count, 0);

  const std::string pods =
      "gpu_milli,name,cpu_milli,memory_mib,num_gpu,gpu_spec,creation_time,deletion_time\n"
      "460,p0,6000,12288,1,,10,20\n"
      "1000,p1,88000,327680,8,V100M16|V100M32,5,50\n"
      "0,p2,1000,2048,0,,0,1\n";
  auto pod_list = ParsePodCsv(pods, "pods.csv");
  ASSERT_TRUE(pod_list.ok()) << pod_list.status().ToString();
  ASSERT_EQ(pod_list->size(), 3U);
  EXPECT_EQ((*pod_list)[0].spec.gpu_milli, 460);
  EXPECT_EQ((*pod_list)[1].spec.gpu_models, (std::vector<std::string>{"V100M16", "V100M32"}));
  EXPECT_EQ((*pod_list)[1].creation_time, 5);
  EXPECT_EQ((*pod_list)[2].deletion_time, 1);
}

TEST(TraceCsvTest, MalformedRowsNameFileLineAndColumn) {
  struct Case {
    const char* name;
    std::string text;
    const char* want;
  };
  const std::string header = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n";
  const std::vector<Case> cases = {
      {"too few fields", header + "p0,1000,1024,1,500\np1,1000,1024\n", "pods.csv:3: expected 5"},
      {"not a number", header + "p0,lots,1024,1,500\n", "pods.csv:2: column 'cpu_milli'"},
      {"share above a GPU", header + "p0,1000,1024,1,1500\n", "pods.csv:2: gpu_milli"},
      {"multi-GPU share", header + "p0,1000,1024,2,500\n", "pods.csv:2: a pod with num_gpu > 1"},
      {"milli without GPU", header + "p0,1000,1024,0,500\n", "pods.csv:2: num_gpu and gpu_milli"},
      {"missing column", "name,cpu_milli,memory_mib,num_gpu\np0,1,1,0\n",
       "pods.csv:1: missing column 'gpu_milli'"},
      {"empty", "", "empty file"},
  };
  for (const Case& c : cases) {
    auto parsed = ParsePodCsv(c.text, "pods.csv");
    ASSERT_FALSE(parsed.ok()) << c.name;
    EXPECT_NE(parsed.status().message().find(c.want), std::string::npos)
        << c.name << ": " << parsed.status().message();
  }
  auto nodes = ParseNodeCsv("sn,cpu_milli,memory_mib,gpu,model\nn0,1000,1024,2,\n", "nodes.csv");
  ASSERT_FALSE(nodes.ok());
  EXPECT_NE(nodes.status().message().find("nodes.csv:2:"), std::string::npos);
  EXPECT_FALSE(ReadPodCsv("/nonexistent/pods.csv").ok());
}

TEST(SyntheticTest, SameSeedSameWorkloadDifferentSeedDifferent) {
  SyntheticOptions a;
  a.node_count = 64;
  const auto nodes1 = SyntheticCluster(a);
  const auto nodes2 = SyntheticCluster(a);
  const auto pods1 = SyntheticPods(nodes1, a);
  const auto pods2 = SyntheticPods(nodes2, a);
  ASSERT_EQ(pods1.size(), pods2.size());
  for (std::size_t i = 0; i < pods1.size(); ++i) {
    EXPECT_EQ(pods1[i].spec.cpu_milli, pods2[i].spec.cpu_milli);
    EXPECT_EQ(pods1[i].spec.gpu_milli, pods2[i].spec.gpu_milli);
    EXPECT_EQ(pods1[i].spec.num_gpu, pods2[i].spec.num_gpu);
    EXPECT_EQ(pods1[i].creation_time, pods2[i].creation_time);
  }
  SyntheticOptions b = a;
  b.seed = 8;
  const auto pods3 = SyntheticPods(SyntheticCluster(b), b);
  bool differs = pods3.size() != pods1.size();
  for (std::size_t i = 0; !differs && i < pods1.size(); ++i) {
    differs = pods1[i].spec.cpu_milli != pods3[i].spec.cpu_milli ||
              pods1[i].spec.gpu_milli != pods3[i].spec.gpu_milli;
  }
  EXPECT_TRUE(differs);
}

TEST(SyntheticTest, ShapedLikeTheTrace) {
  SyntheticOptions options;
  const auto nodes = SyntheticCluster(options);
  const auto pods = SyntheticPods(nodes, options);
  std::int64_t capacity = 0, demand = 0;
  for (const auto& n : nodes) capacity += n.gpu_count * 1000;
  std::size_t cpu_only = 0, shares = 0, whole = 0;
  for (const auto& p : pods) {
    demand += static_cast<std::int64_t>(p.spec.num_gpu) * p.spec.gpu_milli;
    if (p.spec.num_gpu == 0)
      ++cpu_only;
    else if (p.spec.gpu_milli < 1000)
      ++shares;
    else
      ++whole;
    EXPECT_GT(p.deletion_time, p.creation_time);
  }
  const double n = static_cast<double>(pods.size());
  EXPECT_NEAR(static_cast<double>(demand) / static_cast<double>(capacity), 0.98, 0.02);
  EXPECT_NEAR(static_cast<double>(cpu_only) / n, 0.133, 0.04);
  EXPECT_NEAR(static_cast<double>(shares) / n, 0.378, 0.05);
  EXPECT_NEAR(static_cast<double>(whole) / n, 0.489, 0.05);
  auto cluster = placement::ClusterState::Create(nodes);
  ASSERT_TRUE(cluster.ok());
  EXPECT_TRUE(ResolvePods(*cluster, pods).ok());
}

class FillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.node_count = 48;
    nodes_ = SyntheticCluster(options_);
    pods_ = SyntheticPods(nodes_, options_);
  }
  SyntheticOptions options_;
  std::vector<placement::NodeSpec> nodes_;
  std::vector<TracePod> pods_;
};

TEST_F(FillTest, SampleReachesTheTargetAndIsTheSameForEverySeedUse) {
  auto cluster = placement::ClusterState::Create(nodes_);
  ASSERT_TRUE(cluster.ok());
  auto requests = ResolvePods(*cluster, pods_);
  ASSERT_TRUE(requests.ok());
  auto a = SampleFillSequence(*cluster, *requests, 1.3, 42);
  auto b = SampleFillSequence(*cluster, *requests, 1.3, 42);
  auto c = SampleFillSequence(*cluster, *requests, 1.3, 43);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  std::int64_t demand = 0;
  for (const auto& p : *a) demand += p.total_gpu_milli();
  const double target = 1.3 * static_cast<double>(cluster->gpu_milli_capacity());
  EXPECT_LE(static_cast<double>(demand), target);
  EXPECT_GT(static_cast<double>(demand), target - 8000.0);
  ASSERT_EQ(a->size(), b->size());
  bool same = true, differs = a->size() != c->size();
  for (std::size_t i = 0; i < a->size(); ++i) {
    same = same && (*a)[i].cpu_milli == (*b)[i].cpu_milli && (*a)[i].gpu_milli == (*b)[i].gpu_milli;
    if (!differs && i < c->size()) differs = (*a)[i].cpu_milli != (*c)[i].cpu_milli;
  }
  EXPECT_TRUE(same);
  EXPECT_TRUE(differs);
}

TEST_F(FillTest, CurveIsConsistentForEveryPolicy) {
  for (const std::string_view policy : {"random", "best-fit", "fgd", "gpuslice"}) {
    auto result = RunFill(nodes_, pods_, policy, {});
    ASSERT_TRUE(result.ok()) << policy << ": " << result.status().ToString();
    ASSERT_GE(result->curve.size(), 129U) << policy;
    double capacity = 0;
    for (const auto& n : nodes_) capacity += n.gpu_count * 1000.0;
    // A point is taken when arrived demand first reaches it; the pod that got it there may
    // overshoot by up to one 8-GPU pod.
    const double overshoot = 100.0 * 8000.0 / capacity;
    double last = 0;
    for (const CurvePoint& p : result->curve) {
      EXPECT_LE(p.allocated_percent, std::min(p.arrived_percent + overshoot, 100.0) + 1e-9)
          << policy;
      EXPECT_GE(p.allocated_percent, last - 1e-9) << policy << ": no departures in fill";
      last = p.allocated_percent;
    }
    EXPECT_GE(result->unallocated_at_100, 0) << policy;
    EXPECT_EQ(result->pods_placed + result->pods_failed, result->pods_arrived);
    EXPECT_EQ(result->decisions.decisions, result->pods_arrived);
    // Same seed, same numbers.
    auto again = RunFill(nodes_, pods_, policy, {});
    ASSERT_TRUE(again.ok());
    EXPECT_DOUBLE_EQ(again->unallocated_at_100, result->unallocated_at_100) << policy;
  }
}

TEST_F(FillTest, ReportsRenderEveryPolicy) {
  std::vector<FillResult> results;
  for (const std::string_view policy : {"best-fit", "gpuslice"}) {
    for (const std::uint64_t seed : {std::uint64_t{42}, std::uint64_t{43}}) {
      FillOptions options;
      options.seed = seed;
      auto r = RunFill(nodes_, pods_, policy, options);
      ASSERT_TRUE(r.ok());
      results.push_back(*r);
    }
  }
  const auto summaries = Summarize(results);
  ASSERT_EQ(summaries.size(), 2U);
  EXPECT_EQ(summaries[0].runs, 2U);
  const std::string table = FillTable(summaries, 1.3);
  EXPECT_NE(table.find("gpuslice"), std::string::npos);
  EXPECT_NE(table.find("@130%"), std::string::npos);
  const std::string svg = AllocationSvg(summaries, "t <&>");
  EXPECT_EQ(svg.rfind("<svg", 0), 0U);
  EXPECT_NE(svg.find("t &lt;&amp;&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_NE(svg.find("zoom: 80-130 % arrived"), std::string::npos) << "the range where lines part";
  EXPECT_EQ(ProgressLine(0, 300, 0), "0/300 runs, 0:00 elapsed");
  EXPECT_EQ(ProgressLine(12, 300, 45), "12/300 runs, 0:45 elapsed, about 18:00 left");
  EXPECT_EQ(ProgressLine(300, 300, 3725), "300/300 runs, 1:02:05 elapsed");
  const std::string curve = FillCurveCsv(results);
  EXPECT_EQ(curve.rfind("policy,seed,arrived_percent,allocated_percent\n", 0), 0U);
  EXPECT_NE(FillRunsCsv(results).find("best-fit,43,"), std::string::npos);
}

// Online knowledge never reads the workload's distribution: the same pod sequence with a
// different "workload file" behind it gets identical choices online, while the given mode (which
// does read it) chooses differently, so the comparison can tell.
TEST_F(FillTest, OnlineModeNeverReadsTheWorkloadsDistribution) {
  auto cluster = placement::ClusterState::Create(nodes_);
  ASSERT_TRUE(cluster.ok());
  auto requests = ResolvePods(*cluster, pods_);
  ASSERT_TRUE(requests.ok());
  auto sequence = SampleFillSequence(*cluster, *requests, 1.3, 42);
  ASSERT_TRUE(sequence.ok());
  // Another file: every pod a whole GPU with many cores, nothing like the real mix.
  std::vector<placement::PodRequest> other(50);
  for (placement::PodRequest& p : other) {
    p.cpu_milli = 32000;
    p.num_gpu = 1;
    p.gpu_milli = 1000;
  }
  for (const std::string_view policy : {"fgd", "gpuslice"}) {
    auto run = [&](WorkloadKnowledge knowledge, std::span<const placement::PodRequest> file) {
      FillOptions options;
      options.knowledge = knowledge;
      options.record_placements = true;
      auto result = RunFillSequence(*cluster, *sequence, file, policy, options);
      EXPECT_TRUE(result.ok()) << result.status().ToString();
      return result.value_or(FillResult{}).placements;
    };
    const auto online_real = run(WorkloadKnowledge::kOnline, *requests);
    ASSERT_EQ(online_real.size(), sequence->size());
    EXPECT_EQ(run(WorkloadKnowledge::kOnline, other), online_real) << policy;
    EXPECT_EQ(run(WorkloadKnowledge::kOnline, {}), online_real) << policy << ": no file at all";
    EXPECT_NE(run(WorkloadKnowledge::kGiven, other), run(WorkloadKnowledge::kGiven, *requests))
        << policy << ": the given mode depends on the file";
  }
  FillOptions online;
  online.knowledge = WorkloadKnowledge::kOnline;
  auto labelled = RunFill(nodes_, pods_, "gpuslice", online);
  ASSERT_TRUE(labelled.ok());
  EXPECT_EQ(labelled->policy, "gpuslice-online");
  EXPECT_EQ(RunLabel("best-fit", WorkloadKnowledge::kOnline), "best-fit");
  EXPECT_FALSE(ParseWorkloadKnowledge("psychic").ok());
}

TEST_F(FillTest, OfflineReferencePacksTheSamePodsInHindsight) {
  auto offline = RunOfflineReference(nodes_, pods_, {});
  ASSERT_TRUE(offline.ok()) << offline.status().ToString();
  EXPECT_EQ(offline->policy, "offline");
  EXPECT_GE(offline->unallocated_at_100, 0);
  EXPECT_LT(offline->unallocated_at_100, 20);
  // The whole sequence asks for 130 % of capacity: at least 30 points stay unallocated.
  EXPECT_GE(offline->unallocated_at_end, 29.0);
  auto again = RunOfflineReference(nodes_, pods_, {});
  ASSERT_TRUE(again.ok());
  EXPECT_DOUBLE_EQ(again->unallocated_at_100, offline->unallocated_at_100);
  auto online = RunFill(nodes_, pods_, "best-fit", {});
  ASSERT_TRUE(online.ok());
  EXPECT_EQ(offline->pods_arrived, online->pods_arrived) << "the same pods";
}

TEST_F(FillTest, ReplayAccountsForEveryPod) {
  auto result = RunReplay(nodes_, pods_, "gpuslice", {});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->pods, pods_.size());
  EXPECT_GT(result->time_weighted_allocation_percent, 0);
  EXPECT_LE(result->time_weighted_allocation_percent, result->peak_allocation_percent + 1e-9);
  EXPECT_LE(result->peak_allocation_percent, 100.0 + 1e-9);
  EXPECT_LE(result->pods_never_placed, result->pods_waited);
  std::vector<TracePod> untimed = pods_;
  untimed[3].creation_time = -1;
  auto error = RunReplay(nodes_, untimed, "gpuslice", {});
  ASSERT_FALSE(error.ok());
  EXPECT_NE(error.status().message().find("creation_time"), std::string::npos);
}

// ---- Workload variants ---------------------------------------------------------------------

struct MixCount {
  std::size_t pods = 0, gpu_pods = 0, cpu_only = 0, restricted = 0;
  double sharing_demand = 0, multi_demand = 0, demand = 0;
};

MixCount Count(const std::vector<TracePod>& pods) {
  MixCount c;
  for (const TracePod& p : pods) {
    ++c.pods;
    if (p.spec.num_gpu == 0) {
      ++c.cpu_only;
      continue;
    }
    ++c.gpu_pods;
    if (!p.spec.gpu_models.empty()) ++c.restricted;
    const double d = static_cast<double>(p.spec.num_gpu) * p.spec.gpu_milli;
    c.demand += d;
    if (p.spec.num_gpu == 1 && p.spec.gpu_milli < 1000) c.sharing_demand += d;
    if (p.spec.num_gpu > 1) c.multi_demand += d;
  }
  return c;
}

class VariantTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticOptions options;
    options.node_count = 200;
    nodes_ = SyntheticCluster(options);
    base_ = SyntheticPods(nodes_, options);
    sets_ = SingleModelSets(nodes_);
  }
  std::vector<placement::NodeSpec> nodes_;
  std::vector<TracePod> base_;
  std::vector<ModelSetWeight> sets_;
};

TEST_F(VariantTest, SameSeedSameVariantOtherSeedAnother) {
  VariantMix mix;
  mix.model_restricted = 0.3;
  mix.sharing = 0.6;
  auto a = GenerateVariant(base_, nodes_, sets_, mix, 2);
  auto b = GenerateVariant(base_, nodes_, sets_, mix, 2);
  auto c = GenerateVariant(base_, nodes_, sets_, mix, 3);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status().ToString();
  EXPECT_EQ(PodCsv(*a), PodCsv(*b));
  EXPECT_NE(PodCsv(*a), PodCsv(*c));
}

TEST_F(VariantTest, ProducesTheRequestedMix) {
  struct Case {
    const char* name;
    VariantMix mix;
  };
  const MixCount base = Count(base_);
  std::vector<Case> cases(5);
  cases[0] = {"40 % model-restricted", {}};
  cases[0].mix.model_restricted = 0.4;
  cases[1] = {"all sharing", {}};
  cases[1].mix.sharing = 1.0;
  cases[2] = {"half multi-GPU", {}};
  cases[2].mix.multi_gpu = 0.5;
  cases[3] = {"30 % CPU-only", {}};
  cases[3].mix.cpu_only = 0.3;
  cases[4] = {"sharing 40 %, multi 20 %, restricted 10 %", {}};
  cases[4].mix.sharing = 0.4;
  cases[4].mix.multi_gpu = 0.2;
  cases[4].mix.model_restricted = 0.1;
  for (const Case& c : cases) {
    for (const std::uint64_t seed : {1U, 2U, 3U}) {
      auto pods = GenerateVariant(base_, nodes_, sets_, c.mix, seed);
      ASSERT_TRUE(pods.ok()) << c.name << ": " << pods.status().ToString();
      const MixCount got = Count(*pods);
      EXPECT_EQ(got.pods, base.pods) << c.name;
      const auto real = [](std::size_t n) { return static_cast<double>(n); };
      const double cpu = c.mix.cpu_only.value_or(real(base.cpu_only) / real(base.pods));
      EXPECT_EQ(got.cpu_only, static_cast<std::size_t>(std::llround(cpu * real(got.pods))))
          << c.name;
      const double restricted = c.mix.model_restricted.value_or(0) * real(got.gpu_pods);
      EXPECT_EQ(got.restricted, static_cast<std::size_t>(std::llround(restricted))) << c.name;
      // Demand shares are met in expectation (pods are drawn with their sizes): within 3 points.
      if (c.mix.sharing) {
        EXPECT_NEAR(got.sharing_demand / got.demand, *c.mix.sharing, 0.03) << c.name;
      }
      if (c.mix.multi_gpu) {
        EXPECT_NEAR(got.multi_demand / got.demand, *c.mix.multi_gpu, 0.03) << c.name;
      }
      for (const TracePod& p : *pods) {
        if (p.spec.gpu_models.empty()) continue;
        bool hostable = false;
        for (const auto& n : nodes_) {
          hostable = hostable || (n.gpu_model == p.spec.gpu_models[0] &&
                                  n.gpu_count >= p.spec.num_gpu && n.cpu_milli >= p.spec.cpu_milli);
        }
        EXPECT_TRUE(hostable) << c.name << ": a restriction no node can host";
      }
    }
  }
}

TEST_F(VariantTest, BadMixesAndNamesAreClearErrors) {
  VariantMix too_much;
  too_much.sharing = 0.7;
  too_much.multi_gpu = 0.5;
  auto bad = GenerateVariant(base_, nodes_, sets_, too_much, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("more than 1"), std::string::npos);
  VariantMix negative;
  negative.cpu_only = -0.1;
  EXPECT_FALSE(GenerateVariant(base_, nodes_, sets_, negative, 1).ok());
  EXPECT_FALSE(ParseVariantName("spec30").ok());
  EXPECT_FALSE(ParseVariantName("gpus30-s1").ok());
  EXPECT_FALSE(ParseVariantName("spec130-s1").ok());
  auto named = ParseVariantName("share60-s3");
  ASSERT_TRUE(named.ok());
  EXPECT_DOUBLE_EQ(named->mix.sharing.value_or(0), 0.6);
  EXPECT_EQ(named->seed, 3U);
}

TEST(VariantSetTest, TuningAndReportingSetsAreFixedAndDisjoint) {
  auto tuning = VariantSet("tuning");
  auto reporting = VariantSet("reporting");
  ASSERT_TRUE(tuning.ok() && reporting.ok());
  EXPECT_EQ(tuning->size(), 8U);
  EXPECT_EQ(reporting->size(), 16U);
  for (const auto& t : *tuning) {
    for (const auto& r : *reporting) {
      EXPECT_NE(t.name, r.name);
      EXPECT_NE(t.seed, r.seed) << "generator seeds differ between the sets";
    }
  }
  auto list = VariantSet("spec20-s9,cpu5-s1");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2U);
}

TEST(CompareTest, StrategiesNeedNoFewerGpusThanTheDemand) {
  std::vector<TracePod> pods;
  auto add = [&](int count, int num_gpu, int milli) {
    for (int i = 0; i < count; ++i) {
      TracePod p;
      p.spec.name = "p";
      p.spec.cpu_milli = 1000;
      p.spec.num_gpu = num_gpu;
      p.spec.gpu_milli = milli;
      pods.push_back(p);
    }
  };
  add(10, 1, 250);  // four to a GPU by milli; one 2g MIG slice (2/7 >= 0.25) each
  add(4, 1, 1000);
  add(1, 8, 1000);
  auto rows = CompareStrategies(pods, {});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  std::map<std::string, std::int64_t> gpus;
  for (const StrategyRow& r : *rows) gpus[r.strategy] = r.gpus_needed;
  EXPECT_EQ(gpus["whole GPUs only"], 22);
  EXPECT_EQ(gpus["time-slicing x4"], 12 + 3);
  // 2g.10gb: at most three per A100-40GB (starts 0, 2, 4).
  EXPECT_EQ(gpus["MIG (A100-SXM4-40GB)"], 12 + 4);
  EXPECT_EQ(gpus["gpuslice fractions (offline)"], 12 + 3);
  EXPECT_EQ(gpus["lower bound"], 15);
  EXPECT_GE(gpus["gpuslice fractions (online)"], gpus["lower bound"]);
  EXPECT_LE(gpus["gpuslice fractions (online)"], gpus["whole GPUs only"]);
}

// Counting compute slices alone, two 3g instances and a 1g fill one 7-slice GPU; on an A100 a
// 3g.20gb takes four of the eight memory slices, so the 1g needs a second GPU. On an A30 (4
// compute slices) a 0.4 share needs a 2g.12gb, two to a GPU.
TEST(CompareTest, MigFollowsTheModelsPlacementRules) {
  std::vector<TracePod> pods;
  for (const int milli : {400, 400, 100}) {
    TracePod p;
    p.spec.name = "p";
    p.spec.cpu_milli = 1000;
    p.spec.num_gpu = 1;
    p.spec.gpu_milli = milli;
    pods.push_back(p);
  }
  auto a100 = CompareStrategies(pods, {});
  ASSERT_TRUE(a100.ok()) << a100.status().ToString();
  std::map<std::string, std::int64_t> gpus;
  for (const StrategyRow& r : *a100) gpus[r.strategy] = r.gpus_needed;
  EXPECT_EQ(gpus["MIG (A100-SXM4-40GB)"], 2);
  CompareOptions a30_options;
  a30_options.mig_model = "A30";
  auto a30 = CompareStrategies(pods, a30_options);
  ASSERT_TRUE(a30.ok()) << a30.status().ToString();
  gpus.clear();
  for (const StrategyRow& r : *a30) gpus[r.strategy] = r.gpus_needed;
  EXPECT_EQ(gpus["MIG (A30)"], 2) << "2g.12gb + 2g.12gb, then 1g.6gb on a second GPU";
  CompareOptions t4;
  t4.mig_model = "T4";
  auto error = CompareStrategies(pods, t4);
  ASSERT_FALSE(error.ok());
  EXPECT_NE(error.status().message().find("MIG-capable models: "), std::string::npos)
      << error.status().message();
}

TEST(CompareTest, MigRoundingFollowsTheProfiles) {
  const GpuModel* a100 = FindGpuModel("A100-SXM4-40GB");
  ASSERT_NE(a100, nullptr);
  struct Case {
    int milli;
    const char* profile;
  };
  for (const Case c :
       {Case{100, "1g.5gb"}, Case{142, "1g.5gb"}, Case{143, "2g.10gb"}, Case{400, "3g.20gb"},
        Case{500, "4g.20gb"}, Case{571, "4g.20gb"}, Case{572, "7g.40gb"}, Case{1000, "7g.40gb"}}) {
    const MigProfile* profile = MigProfileForShare(*a100, c.milli);
    ASSERT_NE(profile, nullptr) << c.milli;
    EXPECT_EQ(profile->name, c.profile) << c.milli;
  }
}

// A short fill run on the real trace, when the shared data is present.
TEST(TraceFillTest, BestFitOnTheTraceLandsInAPlausibleRange) {
  const std::string dir = DefaultTraceDir(GPUSLICE_SOURCE_DIR);
  if (dir.empty()) GTEST_SKIP() << "../shared/data/alibaba-gpu-v2023 is not present";
  auto nodes = ReadNodeCsv(dir + "/openb_node_list_gpu_node.csv");
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  ASSERT_EQ(nodes->size(), 1213U);
  std::int64_t gpus = 0;
  for (const auto& n : *nodes) gpus += n.gpu_count;
  EXPECT_EQ(gpus, 6212);
  auto pods = ReadPodCsv(dir + "/openb_pod_list_default.csv");
  ASSERT_TRUE(pods.ok()) << pods.status().ToString();
  EXPECT_EQ(pods->size(), 8152U);
  auto result = RunFill(*nodes, *pods, "best-fit", {});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  // The paper reports 7.14 % for best-fit; sampling differs, so only a plausible range.
  EXPECT_GT(result->unallocated_at_100, 3.0);
  EXPECT_LT(result->unallocated_at_100, 12.0);
  EXPECT_GT(result->pods_arrived, 10000U);
}

// FGD as the authors' simulator runs it (ties to the lowest node name) lands near the paper's
// 4.77 % on the default pod list; with kube-scheduler's random tie-breaking CPU-only pods spread
// over idle GPU nodes and it lands near 10 % (docs/benchmarks.md).
TEST(TraceFillTest, FgdWithTheAuthorsTieBreakIsNearThePaper) {
  const std::string dir = DefaultTraceDir(GPUSLICE_SOURCE_DIR);
  if (dir.empty()) GTEST_SKIP() << "../shared/data/alibaba-gpu-v2023 is not present";
  auto nodes = ReadNodeCsv(dir + "/openb_node_list_gpu_node.csv");
  auto pods = ReadPodCsv(dir + "/openb_pod_list_default.csv");
  ASSERT_TRUE(nodes.ok() && pods.ok());
  auto lowest = RunFill(*nodes, *pods, "fgd", {});
  ASSERT_TRUE(lowest.ok()) << lowest.status().ToString();
  EXPECT_GT(lowest->unallocated_at_100, 3.5);
  EXPECT_LT(lowest->unallocated_at_100, 6.5);
  FillOptions random;
  random.tie_break = placement::TieBreak::kRandom;
  auto spread = RunFill(*nodes, *pods, "fgd", random);
  ASSERT_TRUE(spread.ok()) << spread.status().ToString();
  EXPECT_GT(spread->unallocated_at_100, lowest->unallocated_at_100 + 2.0);
}

}  // namespace
}  // namespace gpuslice::simulator
