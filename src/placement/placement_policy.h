// Placement policies: given the cluster state and a pod, choose a node and the GPUs on it.
//
// Every policy sees the same candidates: the nodes where the pod fits and, on each, the distinct
// GPU choices (for a share: each GPU with room, GPUs in identical states counted once; for whole
// GPUs: the lowest-indexed fully free GPUs). Policies differ in how they score candidates. Equal
// scores are broken as PolicyOptions::tie_break says; either way runs reproduce.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "placement/cluster_state.h"
#include "placement/fragmentation.h"

namespace gpuslice::placement {

class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;
  virtual std::string_view name() const = 0;

  // The placement for `pod`, or nullopt when it fits nowhere. Does not change `state`.
  virtual std::optional<Placement> Choose(const ClusterState& state, const PodRequest& pod) = 0;

  // Called after the caller placed or removed a pod, so policies can update what they cache
  // about that node.
  virtual void OnPlaced(const ClusterState& /*state*/, const PodRequest& /*pod*/,
                        const Placement& /*placement*/) {}
  virtual void OnRemoved(const ClusterState& /*state*/, const PodRequest& /*pod*/,
                         const Placement& /*placement*/) {}

  // Replaces the target workload of a fragmentation-aware policy (fgd, gpuslice) in place:
  // `typical` as PolicyOptions::task_types, `all` as PolicyOptions::all_task_types (empty:
  // `typical`). Clears the policy's cached scores, so the next decision recomputes each node
  // state once. Returns false, and changes nothing, for policies that use no target workload.
  // Online workload knowledge (OnlineTaskTypes) calls it as it learns.
  virtual bool SetTaskTypes(std::vector<TaskType> /*typical*/, std::vector<TaskType> /*all*/) {
    return false;
  }
};

// How a policy chooses among candidates with equal scores.
enum class TieBreak {
  // The node whose name sorts first, then the lowest GPU indices: what the FGD authors' simulator
  // does (their kube-scheduler fork replaces the random choice with this, for reproducibility),
  // so the baselines' published figures are comparable. The default.
  kLowestNodeName,
  // Uniformly at random with the policy's seeded generator: what kube-scheduler itself does.
  kRandom,
};

// "lowest-name" or "random"; an error names the accepted values.
Result<TieBreak> ParseTieBreak(std::string_view text);
std::string_view TieBreakName(TieBreak tie_break);

struct PolicyOptions {
  std::uint64_t seed = 42;
  // Ignored by "random", whose every choice is a tie broken at random.
  TieBreak tie_break = TieBreak::kLowestNodeName;
  // The target workload for fragmentation-aware policies (fgd, gpuslice); usually
  // TypicalTaskTypes() of the pods expected. Required by those policies.
  std::vector<TaskType> task_types;
  // Every task type of the workload, however rare (TypicalTaskTypes with coverage 1); gpuslice
  // uses them to keep nodes that few others can stand in for able to host the rare large types.
  // Empty: task_types.
  std::vector<TaskType> all_task_types;
  // fgd and gpuslice: the task types will be given later through PlacementPolicy::SetTaskTypes
  // (online workload knowledge), so empty task_types are accepted; until then the policy scores
  // as if no type could be hurt (best fit, then the fullest GPU).
  bool task_types_later = false;
};

// "random", "best-fit", "dot-product", "gpu-packing", "gpu-clustering", "fgd", "gpuslice".
std::span<const std::string_view> PolicyNames();

// Sets options.task_types (the typical types of `workload`, as `typical` says) and
// options.all_task_types (every type of it) for the fragmentation-aware policies.
void SetWorkloadTaskTypes(PolicyOptions& options, std::span<const PodRequest> workload,
                          const TaskTypeOptions& typical = {});

Result<std::unique_ptr<PlacementPolicy>> MakePolicy(std::string_view name,
                                                    const PolicyOptions& options);

// The candidate GPU sets for `pod` on `node` (empty list when it does not fit; one empty set for
// a CPU-only pod). Exposed for tests and for policies outside this library.
std::vector<std::vector<int>> CandidateGpuSets(const ClusterState& state, const PodRequest& pod,
                                               int node);

}  // namespace gpuslice::placement
