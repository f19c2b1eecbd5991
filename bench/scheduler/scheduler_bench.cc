// gpuslice-scheduler's verbs on clusters built from the Alibaba GPU-sharing trace's node list
// (openb_node_list_gpu_node.csv, 1,213 GPU nodes; repeated with a suffix to reach 5,000), with
// every node's GPUs published as the node agent would and a quarter of the trace's pods already
// bound through the extender itself.
//
//   BM_FilterPrioritize/<nodes>/<policy>: one pod's filter + prioritize over every node, as
//     kube-scheduler sends them with nodeCacheCapable (NodeNames); p50/p99 in microseconds.
//   BM_Bind/<nodes>: bind of a pending pod (prioritize's choice reused) including the informer
//     update that commits it; items_per_second = binds per second.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>

#include "core/clock.h"
#include "placement/placement_policy.h"
#include "scheduler/extender.h"
#include "scheduler/kube_objects.h"
#include "scheduler/static_source.h"
#include "simulator/trace_csv.h"

namespace {

using gpuslice::scheduler::Extender;
using nlohmann::json;

constexpr std::int64_t kGiB = std::int64_t{1} << 30;

// GPU memory per model of the trace (V100M16/M32 say it; the others are their usual sizes).
std::int64_t MemoryOf(const std::string& model) {
  static const std::map<std::string, std::int64_t> kMemory{
      {"V100M16", 16 * kGiB}, {"V100M32", 32 * kGiB}, {"P100", 16 * kGiB}, {"T4", 16 * kGiB},
      {"A10", 24 * kGiB},     {"G2", 16 * kGiB},      {"G3", 32 * kGiB}};
  const auto it = kMemory.find(model);
  return it == kMemory.end() ? 16 * kGiB : it->second;
}

std::vector<json> TraceNodes(int count) {
  const std::string dir = gpuslice::simulator::DefaultTraceDir(GPUSLICE_SOURCE_DIR);
  auto specs = gpuslice::simulator::ReadNodeCsv(dir + "/openb_node_list_gpu_node.csv");
  if (!specs.ok()) {
    std::cerr << specs.status().ToString() << "\n";
    std::exit(1);
  }
  std::vector<json> nodes;
  for (int i = 0; static_cast<int>(nodes.size()) < count; ++i) {
    const auto& spec = (*specs)[static_cast<std::size_t>(i) % specs->size()];
    const std::string name =
        spec.name + (i >= static_cast<int>(specs->size())
                         ? "-r" + std::to_string(i / static_cast<int>(specs->size()))
                         : "");
    std::vector<gpuslice::scheduler::NodeGpu> gpus;
    for (int g = 0; g < spec.gpu_count; ++g) {
      gpus.push_back(
          {g, "GPU-" + name + "-" + std::to_string(g), spec.gpu_model, MemoryOf(spec.gpu_model)});
    }
    nodes.push_back(
        {{"kind", "Node"},
         {"metadata",
          {{"name", name},
           {"annotations", {{"gpuslice.io/gpus", gpuslice::scheduler::EncodeNodeGpus(gpus)}}}}}});
  }
  return nodes;
}

// The trace's GPU pods as v1 Pods: a share becomes compute = gpu_milli / 10 and memory in
// proportion of a 16Gi GPU; whole GPUs become gpuslice.io/gpu: N.
std::vector<json> TracePods(std::size_t count, const std::string& prefix) {
  const std::string dir = gpuslice::simulator::DefaultTraceDir(GPUSLICE_SOURCE_DIR);
  auto trace = gpuslice::simulator::ReadPodCsv(dir + "/openb_pod_list_default.csv");
  if (!trace.ok()) std::exit(1);
  std::vector<json> pods;
  for (std::size_t i = 0; pods.size() < count; ++i) {
    const auto& spec = (*trace)[i % trace->size()].spec;
    if (spec.num_gpu == 0) continue;
    json limits = json::object();
    if (spec.gpu_milli < 1000) {
      limits["gpuslice.io/gpu-compute"] = std::to_string(std::max(1, spec.gpu_milli / 10));
      limits["gpuslice.io/gpu-memory"] =
          std::to_string(std::max(64, spec.gpu_milli * 16384 / 1000)) + "Mi";
    } else {
      limits["gpuslice.io/gpu"] = std::to_string(spec.num_gpu);
    }
    const std::string name = prefix + std::to_string(pods.size());
    pods.push_back(
        {{"kind", "Pod"},
         {"metadata", {{"name", name}, {"namespace", "bench"}, {"uid", "uid-" + name}}},
         {"spec", {{"containers", {{{"name", "main"}, {"resources", {{"limits", limits}}}}}}}},
         {"status", {{"phase", "Pending"}}}});
  }
  return pods;
}

std::vector<std::string> NamesOf(const std::vector<json>& nodes) {
  std::vector<std::string> names;
  for (const json& node : nodes) names.push_back(node["metadata"]["name"]);
  return names;
}

struct Cluster {
  gpuslice::SteadyClock clock;
  std::unique_ptr<gpuslice::scheduler::LoopbackBindingWriter> writer;
  std::unique_ptr<Extender> extender;
  std::vector<std::string> names;
  std::vector<json> pending;
};

// Nodes from the trace; `bound` trace pods placed through prioritize + bind; `pending` more pods
// waiting.
std::unique_ptr<Cluster> MakeCluster(int node_count, const std::string& policy, std::size_t bound,
                                     std::size_t pending) {
  auto cluster = std::make_unique<Cluster>();
  const std::vector<json> nodes = TraceNodes(node_count);
  cluster->names = NamesOf(nodes);
  std::vector<json> pods = TracePods(bound, "bound-");
  cluster->pending = TracePods(pending, "pending-");
  std::vector<json> all = pods;
  all.insert(all.end(), cluster->pending.begin(), cluster->pending.end());
  cluster->writer = std::make_unique<gpuslice::scheduler::LoopbackBindingWriter>(all);
  gpuslice::scheduler::ExtenderOptions options;
  options.policy = policy;
  cluster->extender = *Extender::Create(options, cluster->clock, *cluster->writer);
  cluster->writer->Attach(cluster->extender.get());
  cluster->extender->Rebuild(nodes, all);
  for (const json& pod : pods) {
    auto scores = cluster->extender->Prioritize(pod, cluster->names);
    if (!scores.ok()) continue;
    const auto best =
        std::max_element(scores->begin(), scores->end(),
                         [](const auto& a, const auto& b) { return a.score < b.score; });
    if (best == scores->end() || best->score == 0) continue;
    (void)cluster->extender->Bind(
        {pod["metadata"]["name"], "bench", pod["metadata"]["uid"], best->host});
  }
  return cluster;
}

double ThreadCpuMicros() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e6 + static_cast<double>(now.tv_nsec) / 1e3;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1));
  return values[index];
}

void BM_FilterPrioritize(benchmark::State& state, const std::string& policy) {
  const int nodes = static_cast<int>(state.range(0));
  const auto cluster = MakeCluster(nodes, policy, static_cast<std::size_t>(nodes) / 4, 0);
  const json pod = TracePods(1, "probe-").front();
  std::vector<double> wall_us;
  std::vector<double> cpu_us;
  for (auto _ : state) {
    const double cpu_start = ThreadCpuMicros();
    const auto start = std::chrono::steady_clock::now();
    auto filtered = cluster->extender->Filter(pod, cluster->names);
    auto scores = cluster->extender->Prioritize(pod, filtered->nodes);
    benchmark::DoNotOptimize(scores);
    const auto end = std::chrono::steady_clock::now();
    cpu_us.push_back(ThreadCpuMicros() - cpu_start);
    wall_us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  // Wall time includes waiting for a core on a shared machine; thread CPU time does not.
  state.counters["p50_us"] = Percentile(wall_us, 0.50);
  state.counters["p99_us"] = Percentile(wall_us, 0.99);
  state.counters["cpu_p50_us"] = Percentile(cpu_us, 0.50);
  state.counters["cpu_p99_us"] = Percentile(cpu_us, 0.99);
}

void BM_Bind(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  constexpr std::size_t kPending = 2000;
  const auto cluster =
      MakeCluster(nodes, "gpuslice", static_cast<std::size_t>(nodes) / 4, kPending);
  std::size_t next = 0;
  std::int64_t binds = 0;
  std::int64_t failed = 0;  // the node chosen round-robin had no room: answered with a reason
  for (auto _ : state) {
    if (next == cluster->pending.size()) {
      state.SkipWithError("ran out of pending pods");
      break;
    }
    const json& pod = cluster->pending[next++];
    const std::string node = cluster->names[next * 7 % cluster->names.size()];
    const auto status =
        cluster->extender->Bind({pod["metadata"]["name"], "bench", pod["metadata"]["uid"], node});
    failed += status.ok() ? 0 : 1;
    ++binds;
  }
  state.SetItemsProcessed(binds);
  state.counters["failed"] = static_cast<double>(failed);
}

}  // namespace

BENCHMARK_CAPTURE(BM_FilterPrioritize, best_fit, std::string("best-fit"))
    ->Arg(1000)
    ->Arg(5000)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK_CAPTURE(BM_FilterPrioritize, fgd, std::string("fgd"))
    ->Arg(1000)
    ->Arg(5000)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK_CAPTURE(BM_FilterPrioritize, gpuslice, std::string("gpuslice"))
    ->Arg(1000)
    ->Arg(5000)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK(BM_Bind)->Arg(1000)->Arg(5000)->Iterations(1500)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
