// PlacementEngine: a cluster state and a policy, kept consistent. This is the object the scheduler
// extender and the simulator drive: Schedule() asks the policy and commits its choice, Remove()
// gives a pod's resources back; the policy hears about every change so its caches stay valid.
#pragma once

#include <memory>
#include <unordered_map>

#include "core/status.h"
#include "placement/cluster_state.h"
#include "placement/placement_policy.h"

namespace gpuslice::placement {

class PlacementEngine {
 public:
  PlacementEngine(ClusterState state, std::unique_ptr<PlacementPolicy> policy);

  // Chooses and commits a placement; ResourceExhausted when the pod fits nowhere.
  Result<Placement> Schedule(PodId id, const PodRequest& pod);
  // Commits a placement chosen elsewhere (e.g. replayed from a pod annotation).
  Status Place(PodId id, const PodRequest& pod, const Placement& placement);
  Status Remove(PodId id);

  const ClusterState& state() const { return state_; }
  PlacementPolicy& policy() { return *policy_; }

 private:
  ClusterState state_;
  std::unique_ptr<PlacementPolicy> policy_;
  std::unordered_map<PodId, PodRequest> requests_;
};

}  // namespace gpuslice::placement
