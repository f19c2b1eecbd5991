// The cluster simulator: runs the placement engine over a workload.
//
//  - Fill (the FGD paper's protocol): re-sample the workload's pods with a seed until their GPU
//    demand is `target_ratio` x the cluster's GPU capacity, shuffle, place one by one with no
//    departures, skipping pods that fit nowhere; record the GPU allocation ratio against the
//    arrived demand.
//  - Replay: arrivals and departures at the trace's creation/deletion times; pods that do not fit
//    wait in a FIFO queue and are retried whenever a pod leaves.
//  - Strategy comparison: how many GPUs one workload needs with whole GPUs only, time-slicing
//    replicas, MIG profiles, and gpuslice fractions.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/gpu_model.h"
#include "core/status.h"
#include "placement/cluster_state.h"
#include "placement/fragmentation.h"
#include "placement/online_task_types.h"
#include "placement/placement_policy.h"
#include "simulator/trace_csv.h"

namespace gpuslice::simulator {

struct DecisionStats {
  std::size_t decisions = 0;
  double mean_us = 0;
  double p99_us = 0;
  double max_us = 0;
  // The deciding thread's CPU time (fill runs): what a decision costs when other processes
  // share the machine and inflate the wall-clock figures above.
  double cpu_mean_us = 0;
  double cpu_p99_us = 0;
};

struct CurvePoint {
  double arrived_percent = 0;    // arrived GPU demand, % of cluster GPU capacity
  double allocated_percent = 0;  // allocated GPU, % of capacity
};

// Where the fragmentation-aware policies (fgd, gpuslice) get the workload's task types.
enum class WorkloadKnowledge {
  // From the whole workload file, before the first pod (the FGD paper's setting).
  kGiven,
  // Learned from the pods that have arrived so far (placement::OnlineTaskTypes), as a scheduler
  // extender must; the file's distribution is never read.
  kOnline,
};

// "given" or "online"; an error names the accepted values.
Result<WorkloadKnowledge> ParseWorkloadKnowledge(std::string_view text);
std::string_view WorkloadKnowledgeName(WorkloadKnowledge knowledge);
// The name a run is reported under: the policy's, with "-online" for an online fgd or gpuslice.
std::string RunLabel(std::string_view policy, WorkloadKnowledge knowledge);
// Whether `policy` uses workload knowledge at all (fgd, gpuslice).
bool UsesWorkloadKnowledge(std::string_view policy);

struct FillOptions {
  double target_ratio = 1.3;
  std::uint64_t seed = 42;
  placement::TieBreak tie_break = placement::TieBreak::kLowestNodeName;
  placement::TaskTypeOptions task_types;
  WorkloadKnowledge knowledge = WorkloadKnowledge::kGiven;
  // Online knowledge: half-life and republication rule (task_types above sets its coverage).
  placement::OnlineTaskTypesOptions online;
  // Keep every pod's placement in FillResult::placements (tests).
  bool record_placements = false;
};

struct FillResult {
  std::string policy;
  std::uint64_t seed = 0;
  std::vector<CurvePoint> curve;  // one point per whole percent of arrived demand
  double unallocated_at_100 = 0;  // arrived % minus allocated %, at 100 % arrived
  double unallocated_at_end = 0;  // the same at the end of the run (target_ratio x 100 %)
  std::size_t pods_arrived = 0;
  std::size_t pods_placed = 0;
  std::size_t pods_failed = 0;
  // Pods that fit nowhere, by kind ("cpu", "share", "1-gpu", "2-gpu", ...), counted until 100 %
  // of capacity had arrived.
  std::map<std::string, std::size_t> failed_by_kind_at_100;
  DecisionStats decisions;
  double wall_seconds = 0;
  // With FillOptions::record_placements: per pod of the sequence, its placement (node -1: none).
  std::vector<placement::Placement> placements;
};

// The pod sequence Fill runs for `seed`; identical for every policy. Errors name bad pods.
Result<std::vector<placement::PodRequest>> SampleFillSequence(
    const placement::ClusterState& cluster, const std::vector<placement::PodRequest>& workload,
    double target_ratio, std::uint64_t seed);

// Resolves every pod against the cluster (model names to ids, validation).
Result<std::vector<placement::PodRequest>> ResolvePods(const placement::ClusterState& cluster,
                                                       const std::vector<TracePod>& pods);

Result<FillResult> RunFill(const std::vector<placement::NodeSpec>& nodes,
                           const std::vector<TracePod>& workload, std::string_view policy,
                           const FillOptions& options);

// The offline reference ("offline"): the same pods as RunFill's run for options.seed, placed in
// hindsight. For the pods that arrived by 100 % of capacity, and for the whole sequence, each of
// several offline packers places them sorted — best-fit by GPU demand then CPU (decreasing),
// best-fit by CPU then GPU, gpuslice (given the workload) by GPU then CPU — and the packer that
// allocates most gives unallocated_at_100 / unallocated_at_end. Not a bound: what hindsight
// achieves with simple packers. No curve and no decision times.
Result<FillResult> RunOfflineReference(const std::vector<placement::NodeSpec>& nodes,
                                       const std::vector<TracePod>& workload,
                                       const FillOptions& options);

// The headroom bound ("bound"): for the same pods as RunFill's run for options.seed, an upper
// bound on the GPU any placement could allocate, knowing every pod in advance — the value of a
// feasible point of the dual of an LP relaxation (docs/simulator.md, "The bound"). Reported as
// the least unallocated GPU % any policy could reach at 100 % arrived and at the end. No curve
// and no decision times.
Result<FillResult> RunUpperBound(const std::vector<placement::NodeSpec>& nodes,
                                 const std::vector<TracePod>& workload, const FillOptions& options);

struct BoundOptions {
  // Price CPU and memory in the dual (off: a weaker bound that ignores them; tests).
  bool use_cpu = true;
  bool use_memory = true;
  // Price the GPU shares rounded by dual-feasible functions, which see that two shares above
  // half a GPU never share one (off: fluid shares; tests).
  bool use_share_rounding = true;
};

// An upper bound on the milli-GPU that any placement of a subset of `pods` on `empty` (a cluster
// with nothing placed) allocates. Never above the pods' total GPU demand.
std::int64_t AllocationUpperBound(const placement::ClusterState& empty,
                                  std::span<const placement::PodRequest> pods,
                                  const BoundOptions& options);

// Fills `cluster` with `sequence` in order. `knowledge` is the workload the policy is given in
// WorkloadKnowledge::kGiven mode; in kOnline mode it is not read.
Result<FillResult> RunFillSequence(placement::ClusterState cluster,
                                   const std::vector<placement::PodRequest>& sequence,
                                   std::span<const placement::PodRequest> knowledge,
                                   std::string_view policy, const FillOptions& options);

struct ReplayOptions {
  std::uint64_t seed = 42;
  placement::TieBreak tie_break = placement::TieBreak::kLowestNodeName;
  placement::TaskTypeOptions task_types;
};

struct ReplayResult {
  std::string policy;
  double time_weighted_allocation_percent = 0;  // mean allocated GPU, first to last arrival
  double peak_allocation_percent = 0;
  double time_weighted_pending = 0;  // mean number of waiting pods, same window
  std::size_t max_pending = 0;
  std::size_t pods = 0;
  std::size_t pods_waited = 0;        // pods that did not fit on arrival
  std::size_t pods_never_placed = 0;  // left before they could be placed, or still waiting
  double mean_wait_seconds = 0;       // over pods that waited and were placed
  DecisionStats decisions;
  double wall_seconds = 0;
};

// Needs creation and deletion times on every pod.
Result<ReplayResult> RunReplay(const std::vector<placement::NodeSpec>& nodes,
                               const std::vector<TracePod>& workload, std::string_view policy,
                               const ReplayOptions& options);

struct StrategyRow {
  std::string strategy;
  std::int64_t gpus_needed = 0;
  std::string note;
};

struct CompareOptions {
  int time_slicing_replicas = 4;
  std::uint64_t seed = 42;
  // The GPU model whose MIG profiles and placement rules the MIG strategy uses (catalogue key,
  // alias or product name; must be MIG capable).
  std::string mig_model = "A100-SXM4-40GB";
};

// GPUs needed by the GPU pods of `workload` (GPU is the only constraint; models ignored).
Result<std::vector<StrategyRow>> CompareStrategies(const std::vector<TracePod>& workload,
                                                   const CompareOptions& options);

// The MIG profile of `model` a share of `gpu_milli` rounds up to: the fewest compute slices
// covering the share (compute_slices / the GPU's compute slices >= gpu_milli / 1000), then the
// fewest memory slices; "+me" profiles are not used. nullptr for a model without MIG.
const MigProfile* MigProfileForShare(const GpuModel& model, int gpu_milli);

}  // namespace gpuslice::simulator
