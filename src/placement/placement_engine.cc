#include "placement/placement_engine.h"

#include <utility>

namespace gpuslice::placement {

PlacementEngine::PlacementEngine(ClusterState state, std::unique_ptr<PlacementPolicy> policy)
    : state_(std::move(state)), policy_(std::move(policy)) {}

Result<Placement> PlacementEngine::Schedule(PodId id, const PodRequest& pod) {
  if (state_.Find(id) != nullptr) {
    return AlreadyExists("pod id " + std::to_string(id) + " is already placed");
  }
  std::optional<Placement> choice = policy_->Choose(state_, pod);
  if (!choice) {
    return ResourceExhausted("no node has room for the pod (policy " +
                             std::string(policy_->name()) + ")");
  }
  GPUSLICE_RETURN_IF_ERROR(Place(id, pod, *choice));
  return *std::move(choice);
}

Status PlacementEngine::Place(PodId id, const PodRequest& pod, const Placement& placement) {
  GPUSLICE_RETURN_IF_ERROR(state_.Place(id, pod, placement));
  requests_.emplace(id, pod);
  policy_->OnPlaced(state_, pod, placement);
  return Status::Ok();
}

Status PlacementEngine::Remove(PodId id) {
  const auto it = requests_.find(id);
  if (it == requests_.end()) return NotFound("pod id " + std::to_string(id) + " is not placed");
  const Placement placement = *state_.Find(id);
  const PodRequest pod = it->second;
  GPUSLICE_RETURN_IF_ERROR(state_.Remove(id));
  requests_.erase(it);
  policy_->OnRemoved(state_, pod, placement);
  return Status::Ok();
}

}  // namespace gpuslice::placement
