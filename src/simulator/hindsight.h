// What the hindsight rows of a fill run share (the offline packers, fill.cc, and the headroom
// bound, bound.cc): the run's pod sequence, the point where the arrived demand reaches 100 %, and
// the row built from what each could allocate. Internal to the simulator.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "simulator/simulator.h"

namespace gpuslice::simulator {

// The empty cluster, the workload resolved against it, and the pod sequence of a fill run.
struct FillInput {
  placement::ClusterState cluster;
  std::vector<placement::PodRequest> requests;
  std::vector<placement::PodRequest> sequence;
};

Result<FillInput> PrepareFill(const std::vector<placement::NodeSpec>& nodes,
                              const std::vector<TracePod>& workload, const FillOptions& options);

// The pods up to and including the one whose arrival reached 100 % of capacity (RunFill's
// point): `prefix` of them asking `arrived` milli-GPU; `total` is the whole sequence's demand.
struct ArrivalSplit {
  std::size_t prefix = 0;
  std::int64_t arrived = 0;
  std::int64_t total = 0;
};
ArrivalSplit SplitAtFullCapacity(const placement::ClusterState& cluster,
                                 std::span<const placement::PodRequest> sequence);

// A hindsight row named `policy`: as in RunFill, 100 % minus the allocation once the arrived
// demand reached 100 %, and the whole sequence's demand minus its allocation at the end.
FillResult HindsightResult(std::string policy, const FillInput& input, const ArrivalSplit& split,
                           std::int64_t allocated_at_100, std::int64_t allocated_at_end,
                           std::uint64_t seed, std::chrono::steady_clock::time_point wall_start);

}  // namespace gpuslice::simulator
