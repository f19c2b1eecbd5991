// Per-pod decision time of each placement policy on a 1,213-node cluster: the trace's GPU nodes
// when ../shared/data/alibaba-gpu-v2023 is present, otherwise a synthetic cluster of the same size.
// The cluster is first filled to half its GPU capacity (the fill protocol's pod sequence); each
// iteration then decides a pod, places it and removes it again, so per-node caches are
// invalidated as they would be by a scheduler's binds and deletions.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>

#include "placement/placement_engine.h"
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

const Setup& GetSetup() {
  static const Setup setup = [] {
    Setup s;
    const std::string dir = simulator::DefaultTraceDir(GPUSLICE_SOURCE_DIR);
    if (!dir.empty()) {
      auto nodes = simulator::ReadNodeCsv(dir + "/openb_node_list_gpu_node.csv");
      auto pods = simulator::ReadPodCsv(dir + "/openb_pod_list_default.csv");
      if (nodes.ok() && pods.ok()) {
        s.nodes = *nodes;
        s.pods = *pods;
        s.source = "trace openb_pod_list_default";
        return s;
      }
    }
    simulator::SyntheticOptions options;
    options.node_count = 1213;
    s.nodes = simulator::SyntheticCluster(options);
    s.pods = simulator::SyntheticPods(s.nodes, options);
    s.source = "synthetic";
    return s;
  }();
  return setup;
}

void BM_Decision(benchmark::State& bench, const char* policy_name) {
  const Setup& setup = GetSetup();
  auto cluster = placement::ClusterState::Create(setup.nodes);
  auto requests = simulator::ResolvePods(*cluster, setup.pods);
  auto sequence = simulator::SampleFillSequence(*cluster, *requests, 1.3, 42);
  if (!cluster.ok() || !requests.ok() || !sequence.ok()) {
    bench.SkipWithError("cannot build the workload");
    return;
  }
  placement::PolicyOptions options;
  placement::SetWorkloadTaskTypes(options, *requests);
  auto policy = placement::MakePolicy(policy_name, options);
  placement::PlacementEngine engine(*std::move(cluster), *std::move(policy));
  const auto half = engine.state().gpu_milli_capacity() / 2;
  std::size_t i = 0;
  placement::PodId id = 0;
  for (; i < sequence->size() && engine.state().gpu_milli_allocated() < half; ++i) {
    (void)engine.Schedule(++id, (*sequence)[i]);
  }
  const std::size_t first_probe = i;
  for (auto _ : bench) {
    const placement::PodRequest& pod = (*sequence)[i];
    auto choice = engine.policy().Choose(engine.state(), pod);
    benchmark::DoNotOptimize(choice);
    if (choice) {
      (void)engine.Place(++id, pod, *choice);
      (void)engine.Remove(id);
    }
    if (++i == sequence->size()) i = first_probe;
  }
  bench.SetLabel(setup.source + ", " + std::to_string(setup.nodes.size()) + " nodes");
}

BENCHMARK_CAPTURE(BM_Decision, random, "random")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, best_fit, "best-fit")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, dot_product, "dot-product")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, gpu_packing, "gpu-packing")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, gpu_clustering, "gpu-clustering")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, fgd, "fgd")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decision, gpuslice, "gpuslice")->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace gpuslice

BENCHMARK_MAIN();
