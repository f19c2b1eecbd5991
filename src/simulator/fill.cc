// Fill mode: the FGD paper's evaluation protocol.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "placement/placement_engine.h"
#include "placement/rng.h"
#include "simulator/decision_timer.h"
#include "simulator/hindsight.h"
#include "simulator/simulator.h"

namespace gpuslice::simulator {

using placement::ClusterState;
using placement::PodRequest;

Result<std::vector<PodRequest>> ResolvePods(const ClusterState& cluster,
                                            const std::vector<TracePod>& pods) {
  std::vector<PodRequest> requests;
  requests.reserve(pods.size());
  for (const TracePod& pod : pods) {
    GPUSLICE_ASSIGN_OR_RETURN(PodRequest request, cluster.Resolve(pod.spec));
    requests.push_back(request);
  }
  return requests;
}

Result<std::vector<PodRequest>> SampleFillSequence(const ClusterState& cluster,
                                                   const std::vector<PodRequest>& workload,
                                                   double target_ratio, std::uint64_t seed) {
  if (workload.empty()) return InvalidArgument("the workload has no pods");
  if (cluster.gpu_milli_capacity() <= 0) return InvalidArgument("the cluster has no GPUs");
  std::int64_t demand = 0;
  for (const PodRequest& pod : workload) demand += pod.total_gpu_milli();
  if (demand <= 0) return InvalidArgument("the workload asks for no GPUs");
  const double target = target_ratio * static_cast<double>(cluster.gpu_milli_capacity());
  placement::Rng rng(seed);
  std::vector<PodRequest> pods = workload;
  // Add copies of random pods while they fit under the target; or drop random pods until the
  // demand is under it.
  while (static_cast<double>(demand) < target) {
    const PodRequest& pick = workload[rng.Below(workload.size())];
    if (static_cast<double>(demand + pick.total_gpu_milli()) > target) break;
    demand += pick.total_gpu_milli();
    pods.push_back(pick);
  }
  while (static_cast<double>(demand) > target && !pods.empty()) {
    const std::size_t index = rng.Below(pods.size());
    demand -= pods[index].total_gpu_milli();
    pods.erase(pods.begin() + static_cast<std::ptrdiff_t>(index));
  }
  // Fisher-Yates with our own draws, so the order is the same on every standard library.
  for (std::size_t i = pods.size(); i > 1; --i) {
    std::swap(pods[i - 1], pods[rng.Below(i)]);
  }
  return pods;
}

std::string_view WorkloadKnowledgeName(WorkloadKnowledge knowledge) {
  return knowledge == WorkloadKnowledge::kOnline ? "online" : "given";
}

Result<WorkloadKnowledge> ParseWorkloadKnowledge(std::string_view text) {
  for (const WorkloadKnowledge k : {WorkloadKnowledge::kGiven, WorkloadKnowledge::kOnline}) {
    if (text == WorkloadKnowledgeName(k)) return k;
  }
  return InvalidArgument("unknown workload knowledge '" + std::string(text) +
                         "'; known: given, online");
}

bool UsesWorkloadKnowledge(std::string_view policy) {
  return policy == "fgd" || policy == "gpuslice";
}

std::string RunLabel(std::string_view policy, WorkloadKnowledge knowledge) {
  std::string label(policy);
  if (knowledge == WorkloadKnowledge::kOnline && UsesWorkloadKnowledge(policy)) label += "-online";
  return label;
}

Result<FillInput> PrepareFill(const std::vector<placement::NodeSpec>& nodes,
                              const std::vector<TracePod>& workload, const FillOptions& options) {
  GPUSLICE_ASSIGN_OR_RETURN(ClusterState cluster, ClusterState::Create(nodes));
  GPUSLICE_ASSIGN_OR_RETURN(std::vector<PodRequest> requests, ResolvePods(cluster, workload));
  GPUSLICE_ASSIGN_OR_RETURN(
      std::vector<PodRequest> sequence,
      SampleFillSequence(cluster, requests, options.target_ratio, options.seed));
  return FillInput{std::move(cluster), std::move(requests), std::move(sequence)};
}

ArrivalSplit SplitAtFullCapacity(const ClusterState& cluster,
                                 std::span<const PodRequest> sequence) {
  const double capacity = static_cast<double>(cluster.gpu_milli_capacity());
  ArrivalSplit split;
  for (const PodRequest& pod : sequence) {
    split.total += pod.total_gpu_milli();
    if (static_cast<double>(split.arrived) >= capacity) continue;
    split.arrived += pod.total_gpu_milli();
    ++split.prefix;
  }
  return split;
}

FillResult HindsightResult(std::string policy, const FillInput& input, const ArrivalSplit& split,
                           std::int64_t allocated_at_100, std::int64_t allocated_at_end,
                           std::uint64_t seed, std::chrono::steady_clock::time_point wall_start) {
  const double capacity = static_cast<double>(input.cluster.gpu_milli_capacity());
  FillResult result;
  result.policy = std::move(policy);
  result.seed = seed;
  result.pods_arrived = input.sequence.size();
  const double arrived_percent = 100.0 * static_cast<double>(split.arrived) / capacity;
  result.unallocated_at_100 =
      std::max(0.0, std::min(100.0, arrived_percent) -
                        100.0 * static_cast<double>(allocated_at_100) / capacity);
  result.unallocated_at_end =
      100.0 * static_cast<double>(split.total - allocated_at_end) / capacity;
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return result;
}

Result<FillResult> RunFill(const std::vector<placement::NodeSpec>& nodes,
                           const std::vector<TracePod>& workload, std::string_view policy_name,
                           const FillOptions& options) {
  const auto wall_start = std::chrono::steady_clock::now();
  GPUSLICE_ASSIGN_OR_RETURN(FillInput input, PrepareFill(nodes, workload, options));
  GPUSLICE_ASSIGN_OR_RETURN(
      FillResult result, RunFillSequence(std::move(input.cluster), input.sequence, input.requests,
                                         policy_name, options));
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return result;
}

namespace {

// Allocated milli-GPU after placing `pods` in order with `policy`, skipping pods that fit nowhere.
Result<std::int64_t> PackOffline(const ClusterState& empty, std::vector<PodRequest> pods,
                                 std::span<const PodRequest> workload, std::string_view policy,
                                 bool gpu_first) {
  std::stable_sort(pods.begin(), pods.end(), [&](const PodRequest& a, const PodRequest& b) {
    const auto ka = std::make_pair(a.total_gpu_milli(), a.cpu_milli);
    const auto kb = std::make_pair(b.total_gpu_milli(), b.cpu_milli);
    return gpu_first ? ka > kb
                     : std::make_pair(ka.second, ka.first) > std::make_pair(kb.second, kb.first);
  });
  FillOptions options;
  GPUSLICE_ASSIGN_OR_RETURN(const FillResult packed,
                            RunFillSequence(empty, pods, workload, policy, options));
  const double capacity = static_cast<double>(empty.gpu_milli_capacity());
  std::int64_t demand = 0;
  for (const PodRequest& pod : pods) demand += pod.total_gpu_milli();
  // unallocated_at_end = arrived % - allocated %, after the last pod.
  return static_cast<std::int64_t>(
      std::llround(static_cast<double>(demand) - packed.unallocated_at_end / 100.0 * capacity));
}

}  // namespace

Result<FillResult> RunOfflineReference(const std::vector<placement::NodeSpec>& nodes,
                                       const std::vector<TracePod>& workload,
                                       const FillOptions& options) {
  const auto wall_start = std::chrono::steady_clock::now();
  GPUSLICE_ASSIGN_OR_RETURN(const FillInput input, PrepareFill(nodes, workload, options));
  const ClusterState& cluster = input.cluster;
  const std::vector<PodRequest>& requests = input.requests;
  const std::vector<PodRequest>& sequence = input.sequence;
  const ArrivalSplit split = SplitAtFullCapacity(cluster, sequence);
  const std::vector<PodRequest> prefix(
      sequence.begin(), sequence.begin() + static_cast<std::ptrdiff_t>(split.prefix));
  struct Packer {
    const char* policy;
    bool gpu_first;
  };
  const Packer packers[] = {{"best-fit", true}, {"best-fit", false}, {"gpuslice", true}};
  std::int64_t best_prefix = 0;
  std::int64_t best_all = 0;
  for (const Packer& packer : packers) {
    GPUSLICE_ASSIGN_OR_RETURN(const std::int64_t a, PackOffline(cluster, prefix, requests,
                                                                packer.policy, packer.gpu_first));
    best_prefix = std::max(best_prefix, a);
    if (std::string_view(packer.policy) == "gpuslice") continue;  // the whole run: best-fit only
    GPUSLICE_ASSIGN_OR_RETURN(const std::int64_t b, PackOffline(cluster, sequence, requests,
                                                                packer.policy, packer.gpu_first));
    best_all = std::max(best_all, b);
  }
  return HindsightResult("offline", input, split, best_prefix, best_all, options.seed, wall_start);
}

Result<FillResult> RunFillSequence(ClusterState cluster, const std::vector<PodRequest>& sequence,
                                   std::span<const PodRequest> knowledge,
                                   std::string_view policy_name, const FillOptions& options) {
  const auto wall_start = std::chrono::steady_clock::now();
  const bool online = options.knowledge == WorkloadKnowledge::kOnline;
  placement::PolicyOptions policy_options;
  policy_options.seed = options.seed;
  policy_options.tie_break = options.tie_break;
  if (online) {
    policy_options.task_types_later = true;
  } else {
    placement::SetWorkloadTaskTypes(policy_options, knowledge, options.task_types);
  }
  placement::OnlineTaskTypesOptions learner_options = options.online;
  learner_options.typical = options.task_types;
  placement::OnlineTaskTypes learner(learner_options);
  GPUSLICE_ASSIGN_OR_RETURN(auto policy, placement::MakePolicy(policy_name, policy_options));
  placement::PlacementEngine engine(std::move(cluster), std::move(policy));

  FillResult result;
  result.policy = RunLabel(policy_name, options.knowledge);
  result.seed = options.seed;
  const double capacity = static_cast<double>(engine.state().gpu_milli_capacity());
  std::int64_t arrived = 0;
  int next_percent = 1;
  bool seen_100 = false;
  DecisionTimer timer;
  placement::PodId id = 0;
  for (const PodRequest& pod : sequence) {
    arrived += pod.total_gpu_milli();
    ++result.pods_arrived;
    const auto start = std::chrono::steady_clock::now();
    const auto cpu_start = ThreadCpuTime();
    // The scheduler sees the pod before it decides, so the learner may count it first.
    if (online) learner.ObserveAndUpdate(pod, engine.policy());
    std::optional<placement::Placement> choice = engine.policy().Choose(engine.state(), pod);
    timer.Record(std::chrono::steady_clock::now() - start, ThreadCpuTime() - cpu_start);
    if (options.record_placements)
      result.placements.push_back(choice.value_or(placement::Placement{}));
    if (choice) {
      GPUSLICE_RETURN_IF_ERROR(engine.Place(++id, pod, *choice));
      ++result.pods_placed;
    } else {
      ++result.pods_failed;
      if (!seen_100) {
        const std::string kind = !pod.wants_gpu() ? "cpu"
                                 : pod.is_share() ? "share"
                                                  : std::to_string(pod.num_gpu) + "-gpu";
        ++result.failed_by_kind_at_100[kind];
      }
    }
    const double arrived_percent = 100.0 * static_cast<double>(arrived) / capacity;
    const double allocated_percent =
        100.0 * static_cast<double>(engine.state().gpu_milli_allocated()) / capacity;
    while (arrived_percent >= next_percent) {
      result.curve.push_back({static_cast<double>(next_percent), allocated_percent});
      if (next_percent == 100) {
        result.unallocated_at_100 = 100.0 - allocated_percent;
        seen_100 = true;
      }
      ++next_percent;
    }
  }
  const double allocated_end =
      100.0 * static_cast<double>(engine.state().gpu_milli_allocated()) / capacity;
  const double arrived_end = 100.0 * static_cast<double>(arrived) / capacity;
  if (!seen_100) result.unallocated_at_100 = std::max(0.0, arrived_end - allocated_end);
  result.unallocated_at_end = arrived_end - allocated_end;
  result.decisions = timer.Stats();
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return result;
}

}  // namespace gpuslice::simulator
