// Node fragmentation against a target workload, after Weng et al., "Beware of Fragmentation:
// Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent" (USENIX ATC 2023).
//
// The target workload is a set of task types (CPU, per-GPU share, GPU count, allowed models) with
// popularities summing to 1. A node's fragmentation is the popularity-weighted sum, over task
// types, of the idle GPU capacity (milli-GPU) that the type cannot use on that node.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "placement/cluster_state.h"

namespace gpuslice::placement {

struct TaskType {
  PodRequest request;
  double popularity = 0;  // share of the target workload; all types sum to 1
};

struct TaskTypeOptions {
  // Keep the most popular types until they cover this share of the pods, then renormalise
  // (the FGD simulator's default is 0.95).
  double coverage = 0.95;
  bool include_cpu_only = true;  // CPU-only pods are task types too (as in the FGD simulator)
};

// The typical task types of a workload, most popular first; types are keyed by CPU, per-GPU
// share, GPU count and allowed models (memory is not part of the key, as in the paper).
std::vector<TaskType> TypicalTaskTypes(std::span<const PodRequest> workload,
                                       const TaskTypeOptions& options = {});

// How a task type's unusable capacity is counted.
enum class FragmentationMeasure {
  // The paper's: all idle GPU capacity of the node when the type cannot be placed there at all
  // (wrong model, too little CPU, not enough GPUs with room), otherwise the idle capacity of the
  // GPUs too small for the type. CPU-only types count all idle GPU capacity.
  kFgd,
  // gpuslice's lookahead variant: the idle capacity left over after packing as many copies of
  // the type as the node's CPU and GPUs allow. CPU-only types count nothing.
  kPackable,
};

// The state of a node that fragmentation depends on.
struct NodeView {
  int model_id = -1;
  std::int64_t cpu_free = 0;
  std::int64_t memory_free = 0;
  std::span<const int> gpu_milli_free;
};

// Computes node fragmentation. Fragmentation depends on a node's model, free CPU and free GPU
// shares (not its memory); a computation is a pass over task types x GPUs, cheap enough that
// policies cache results per node rather than per state. Not thread safe (scratch space).
class FragmentationModel {
 public:
  FragmentationModel(std::vector<TaskType> types, FragmentationMeasure measure);

  double NodeFragmentation(const NodeView& node) const;

  const std::vector<TaskType>& types() const { return types_; }
  FragmentationMeasure measure() const { return measure_; }

 private:
  // Per distinct per-GPU share among the GPU types: one pass over a node's GPUs yields, for each
  // share, the GPUs with room for it, the idle capacity too small for it, and how many copies of
  // it the GPUs hold (from a table of free / share, so no division per GPU).
  struct ShareStats {
    int fitting = 0;
    std::int64_t too_small = 0;
    std::int64_t copies = 0;
  };
  std::vector<TaskType> types_;
  FragmentationMeasure measure_;
  std::vector<int> shares_;                 // distinct gpu_milli of the GPU types
  std::vector<std::size_t> share_of_type_;  // per type: index in shares_ (GPU types only)
  std::vector<std::uint16_t> quotients_;    // [share index * 1001 + free]: free / share
  mutable std::vector<ShareStats> stats_;   // scratch for NodeFragmentation
};

}  // namespace gpuslice::placement
