#include "scheduler/task_type_options.h"

namespace gpuslice::scheduler {

placement::PolicyOptions PolicyOptionsForPods(const placement::PolicyOptions& base,
                                              std::span<const placement::PodRequest> seen) {
  placement::PolicyOptions options = base;
  if (!seen.empty()) placement::SetWorkloadTaskTypes(options, seen);
  return options;
}

}  // namespace gpuslice::scheduler
