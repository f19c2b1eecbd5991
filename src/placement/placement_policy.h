// Placement policies: given the cluster state and a pod, choose a node and the GPUs on it.
//
// Every policy sees the same candidates: the nodes where the pod fits and, on each, the distinct
// GPU choices (for a share: each GPU with room, GPUs in identical states counted once; for whole
// GPUs: the lowest-indexed fully free GPUs). Policies differ in how they score candidates. Ties
// are broken uniformly at random with the policy's own seeded generator, so runs reproduce.
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
};

struct PolicyOptions {
  std::uint64_t seed = 42;
  // The target workload for fragmentation-aware policies (fgd, gpuslice); usually
  // TypicalTaskTypes() of the pods expected. Required by those policies.
  std::vector<TaskType> task_types;
};

// "random", "best-fit", "dot-product", "gpu-packing", "gpu-clustering", "fgd", "gpuslice".
std::span<const std::string_view> PolicyNames();

Result<std::unique_ptr<PlacementPolicy>> MakePolicy(std::string_view name,
                                                    const PolicyOptions& options);

// The candidate GPU sets for `pod` on `node` (empty list when it does not fit; one empty set for
// a CPU-only pod). Exposed for tests and for policies outside this library.
std::vector<std::vector<int>> CandidateGpuSets(const ClusterState& state, const PodRequest& pod,
                                               int node);

}  // namespace gpuslice::placement
