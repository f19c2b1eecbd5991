// A built-in cluster and workload shaped like the Alibaba GPU-sharing trace's statistics (node
// shapes and their mix; the split of CPU-only, whole-GPU, shared and multi-GPU pods; the popular
// GPU shares; CPU and memory per pod; a few model constraints; arrival and run times). Generated in
// code from a seed, so `gpuslice simulate` works without the trace.
#pragma once

#include <cstdint>
#include <vector>

#include "placement/cluster_state.h"
#include "simulator/trace_csv.h"

namespace gpuslice::simulator {

struct SyntheticOptions {
  std::uint64_t seed = 7;
  int node_count = 256;
  // Pods are generated until their GPU demand reaches this share of the cluster's GPUs (the
  // trace's pod lists ask for 0.98 of its GPU nodes' capacity).
  double demand_ratio = 0.98;
};

std::vector<placement::NodeSpec> SyntheticCluster(const SyntheticOptions& options);
// Pods for `cluster` (their GPU models are the cluster's), with creation and deletion times.
std::vector<TracePod> SyntheticPods(const std::vector<placement::NodeSpec>& cluster,
                                    const SyntheticOptions& options);

}  // namespace gpuslice::simulator
