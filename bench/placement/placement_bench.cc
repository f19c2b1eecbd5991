// Per-pod decision time of each placement policy on a 1,213-node cluster: the trace's GPU nodes
// when ../shared/data/alibaba-gpu-v2023 is present, otherwise a synthetic cluster of the same size;
// and of fgd and gpuslice on a synthetic 10,000-node cluster.
// The cluster is first filled to half its GPU capacity (the fill protocol's pod sequence); each
// iteration then decides a pod, places it and removes it again, so per-node caches are
// invalidated as they would be by a scheduler's binds and deletions. The "online" variants learn
// the task types from the pods as they come (OnlineTaskTypes), as the scheduler extender does.
// Besides the mean, each reports the p99 of the single decisions (counters p99_us, wall clock,
// and cpu_p99_us, the thread's CPU time, which other processes on a shared machine inflate less).
// Timing starts after kWarmupDecisions decisions (steady state; the cold path is in the fill runs).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "placement/online_task_types.h"
#include "placement/placement_engine.h"
#include "simulator/decision_timer.h"
#include "simulator/simulator.h"
#include "simulator/synthetic_workload.h"
#include "simulator/trace_csv.h"

namespace gpuslice {
namespace {

struct Setup {
  std::vector<placement::NodeSpec> nodes;
  std::vector<simulator::TracePod> pods;
  std::string source;
};

Setup Synthetic(int node_count) {
  Setup s;
  simulator::SyntheticOptions options;
  options.node_count = node_count;
  s.nodes = simulator::SyntheticCluster(options);
  s.pods = simulator::SyntheticPods(s.nodes, options);
  s.source = "synthetic";
  return s;
}

const Setup& TraceSetup() {
  static const Setup setup = [] {
    const std::string dir = simulator::DefaultTraceDir(GPUSLICE_SOURCE_DIR);
    if (!dir.empty()) {
      auto nodes = simulator::ReadNodeCsv(dir + "/openb_node_list_gpu_node.csv");
      auto pods = simulator::ReadPodCsv(dir + "/openb_pod_list_default.csv");
      if (nodes.ok() && pods.ok()) return Setup{*nodes, *pods, "trace openb_pod_list_default"};
    }
    return Synthetic(1213);
  }();
  return setup;
}

const Setup& LargeSetup() {
  static const Setup setup = Synthetic(10000);
  return setup;
}

// The setup's cluster filled to half its GPU capacity by best-fit with the fill sequence of seed
// 42 (built once per setup; best-fit is cheap even on 10,000 nodes), and where the probes start.
struct Filled {
  std::optional<placement::ClusterState> state;
  std::vector<placement::PodRequest> workload;
  std::vector<placement::PodRequest> sequence;
  std::size_t first_probe = 0;
};

const Filled& FilledFor(const Setup& setup) {
  static std::map<const Setup*, Filled> filled;
  auto [it, inserted] = filled.try_emplace(&setup);
  if (!inserted) return it->second;
  Filled& f = it->second;
  auto cluster = placement::ClusterState::Create(setup.nodes);
  if (!cluster.ok()) return f;
  auto requests = simulator::ResolvePods(*cluster, setup.pods);
  if (!requests.ok()) return f;
  auto sequence = simulator::SampleFillSequence(*cluster, *requests, 1.3, 42);
  if (!sequence.ok()) return f;
  placement::PlacementEngine engine(*std::move(cluster), *placement::MakePolicy("best-fit", {}));
  const auto half = engine.state().gpu_milli_capacity() / 2;
  placement::PodId id = 0;
  std::size_t i = 0;
  for (; i < sequence->size() && engine.state().gpu_milli_allocated() < half; ++i) {
    (void)engine.Schedule(++id, (*sequence)[i]);
  }
  f.state = engine.state();
  f.workload = *std::move(requests);
  f.sequence = *std::move(sequence);
  f.first_probe = i;
  return f;
}

constexpr int kWarmupDecisions = 2000;

double P99(std::vector<double> samples) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  return samples[static_cast<std::size_t>(0.99 * static_cast<double>(samples.size() - 1))];
}

void Run(benchmark::State& bench, const Setup& setup, const char* policy_name, bool online) {
  const Filled& filled = FilledFor(setup);
  if (!filled.state) {
    bench.SkipWithError("cannot build the workload");
    return;
  }
  placement::PolicyOptions options;
  options.task_types_later = online;
  if (!online) placement::SetWorkloadTaskTypes(options, filled.workload);
  placement::OnlineTaskTypes learner;
  auto policy = placement::MakePolicy(policy_name, options);
  placement::PlacementEngine engine(*filled.state, *std::move(policy));
  const std::vector<placement::PodRequest>& sequence = filled.sequence;
  std::size_t i = filled.first_probe;
  if (online) {
    for (std::size_t seen = 0; seen < i; ++seen) learner.Observe(sequence[seen]);
  }
  placement::PodId id = 1'000'000'000;  // above the filled pods' ids
  std::vector<double> wall_us, cpu_us;
  auto decide = [&] {
    const placement::PodRequest& pod = sequence[i];
    const auto start = std::chrono::steady_clock::now();
    const auto cpu_start = simulator::ThreadCpuTime();
    if (online) learner.ObserveAndUpdate(pod, engine.policy());
    auto choice = engine.policy().Choose(engine.state(), pod);
    cpu_us.push_back(
        std::chrono::duration<double, std::micro>(simulator::ThreadCpuTime() - cpu_start).count());
    wall_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
    benchmark::DoNotOptimize(choice);
    if (choice) {
      (void)engine.Place(++id, pod, *choice);
      (void)engine.Remove(id);
    }
    if (++i == sequence.size()) i = filled.first_probe;
  };
  // Steady state: the first decisions of each common shape compute every node's scores once
  // (the cold path, which the fill runs include); they are made before timing starts.
  for (int warm = 0; warm < kWarmupDecisions; ++warm) decide();
  wall_us.clear();
  cpu_us.clear();
  for (auto _ : bench) decide();
  bench.counters["p99_us"] = P99(wall_us);
  bench.counters["cpu_p99_us"] = P99(cpu_us);
  bench.SetLabel(setup.source + ", " + std::to_string(setup.nodes.size()) + " nodes" +
                 (online ? ", online" : ""));
}

void BM_Decision(benchmark::State& bench, const char* policy_name) {
  Run(bench, TraceSetup(), policy_name, /*online=*/false);
}
void BM_DecisionOnline(benchmark::State& bench, const char* policy_name) {
  Run(bench, TraceSetup(), policy_name, /*online=*/true);
}
void BM_Decision10k(benchmark::State& bench, const char* policy_name) {
  Run(bench, LargeSetup(), policy_name, /*online=*/false);
}

BENCHMARK_CAPTURE(BM_Decision, random, "random")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, best_fit, "best-fit")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, dot_product, "dot-product")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, gpu_packing, "gpu-packing")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, gpu_clustering, "gpu-clustering")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, fgd, "fgd")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, gpuslice, "gpuslice")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_DecisionOnline, fgd, "fgd")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_DecisionOnline, gpuslice, "gpuslice")->Unit(benchmark::kMicrosecond);
// A fixed number of decisions: each run starts cold (every node computes each new shape once).
BENCHMARK_CAPTURE(BM_Decision10k, best_fit, "best-fit")
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(3000);
BENCHMARK_CAPTURE(BM_Decision10k, fgd, "fgd")->Unit(benchmark::kMicrosecond)->Iterations(3000);
BENCHMARK_CAPTURE(BM_Decision10k, gpuslice, "gpuslice")
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(3000);

}  // namespace
}  // namespace gpuslice

BENCHMARK_MAIN();
