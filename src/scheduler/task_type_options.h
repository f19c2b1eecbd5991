// The one place where the extender decides which task types the fragmentation-aware policies aim
// at. Today: the typical types of the pods seen so far (placement::SetWorkloadTaskTypes); an online
// learner (issue 16) replaces the body of this function, nothing else.
#pragma once

#include <span>

#include "placement/cluster_state.h"
#include "placement/placement_policy.h"

namespace gpuslice::scheduler {

// `base` with task_types/all_task_types set from `seen` (requests of the GPU pods the extender
// knows: bound, reserved and pending). Never leaves task_types empty while `seen` is non-empty.
placement::PolicyOptions PolicyOptionsForPods(const placement::PolicyOptions& base,
                                              std::span<const placement::PodRequest> seen);

}  // namespace gpuslice::scheduler
