// Replay mode: the trace's arrivals and departures in time order.
#include <algorithm>
#include <chrono>
#include <deque>
#include <map>

#include "placement/placement_engine.h"
#include "simulator/decision_timer.h"
#include "simulator/simulator.h"

namespace gpuslice::simulator {

using placement::ClusterState;
using placement::PodRequest;

Result<ReplayResult> RunReplay(const std::vector<placement::NodeSpec>& nodes,
                               const std::vector<TracePod>& workload, std::string_view policy_name,
                               const ReplayOptions& options) {
  const auto wall_start = std::chrono::steady_clock::now();
  for (const TracePod& pod : workload) {
    if (pod.creation_time < 0 || pod.deletion_time < 0) {
      return InvalidArgument("replay needs creation_time and deletion_time for every pod; pod '" +
                             pod.spec.name + "' has none (use --mode fill for this file)");
    }
  }
  if (workload.empty()) return InvalidArgument("the workload has no pods");
  GPUSLICE_ASSIGN_OR_RETURN(ClusterState cluster, ClusterState::Create(nodes));
  GPUSLICE_ASSIGN_OR_RETURN(const std::vector<PodRequest> requests, ResolvePods(cluster, workload));
  placement::PolicyOptions policy_options;
  policy_options.seed = options.seed;
  policy_options.tie_break = options.tie_break;
  placement::SetWorkloadTaskTypes(policy_options, requests, options.task_types);
  GPUSLICE_ASSIGN_OR_RETURN(auto policy, placement::MakePolicy(policy_name, policy_options));
  placement::PlacementEngine engine(std::move(cluster), std::move(policy));

  // Events in time order; at equal times departures first, then arrivals in file order.
  enum Kind { kDepart = 0, kArrive = 1 };
  std::vector<std::tuple<std::int64_t, int, std::size_t>> events;
  for (std::size_t i = 0; i < workload.size(); ++i) {
    events.emplace_back(workload[i].creation_time, kArrive, i);
    events.emplace_back(std::max(workload[i].deletion_time, workload[i].creation_time), kDepart, i);
  }
  std::sort(events.begin(), events.end());

  ReplayResult result;
  result.policy = std::string(policy_name);
  result.pods = workload.size();
  const double capacity = static_cast<double>(engine.state().gpu_milli_capacity());
  DecisionTimer timer;
  std::deque<std::size_t> pending;
  std::vector<char> departed(workload.size(), 0);
  std::vector<std::int64_t> waited_since(workload.size(), -1);
  double wait_sum = 0;
  std::size_t waits_placed = 0;
  double allocation_area = 0;
  double pending_area = 0;
  const std::int64_t start_time = std::get<0>(events.front());
  std::int64_t last_time = start_time;

  auto try_place = [&](std::size_t i) -> Result<bool> {
    const auto t0 = std::chrono::steady_clock::now();
    std::optional<placement::Placement> choice =
        engine.policy().Choose(engine.state(), requests[i]);
    timer.Record(std::chrono::steady_clock::now() - t0);
    if (!choice) return false;
    GPUSLICE_RETURN_IF_ERROR(engine.Place(i, requests[i], *choice));
    return true;
  };

  // Averages cover the arrival window (first to last arrival): after the last arrival the
  // cluster only drains, which says nothing about placement.
  std::int64_t last_arrival = start_time;
  for (const TracePod& pod : workload) last_arrival = std::max(last_arrival, pod.creation_time);
  for (const auto& [time, kind, i] : events) {
    const double dt = static_cast<double>(std::max<std::int64_t>(
        0, std::min(time, last_arrival) - std::min(last_time, last_arrival)));
    allocation_area += dt * static_cast<double>(engine.state().gpu_milli_allocated());
    pending_area += dt * static_cast<double>(pending.size());
    last_time = time;
    if (kind == kArrive) {
      GPUSLICE_ASSIGN_OR_RETURN(const bool placed, try_place(i));
      if (!placed) {
        pending.push_back(i);
        waited_since[i] = time;
        ++result.pods_waited;
      }
    } else {
      departed[i] = 1;
      if (const placement::Placement* where = engine.state().Find(i); where != nullptr) {
        const int freed_node = where->node;
        GPUSLICE_RETURN_IF_ERROR(engine.Remove(i));
        // Resources came back on one node: retry the queue in order. A waiting pod fit nowhere
        // before and only `freed_node` gained room, so it can fit now only if it fits there.
        std::deque<std::size_t> still;
        for (const std::size_t p : pending) {
          if (departed[p]) continue;
          if (!engine.state().Fits(requests[p], freed_node)) {
            still.push_back(p);
            continue;
          }
          GPUSLICE_ASSIGN_OR_RETURN(const bool placed, try_place(p));
          if (placed) {
            wait_sum += static_cast<double>(time - waited_since[p]);
            ++waits_placed;
          } else {
            still.push_back(p);
          }
        }
        pending.swap(still);
      } else {
        // A pod that leaves while still waiting was never placed.
        const auto it = std::find(pending.begin(), pending.end(), i);
        if (it != pending.end()) {
          pending.erase(it);
          ++result.pods_never_placed;
        }
      }
    }
    result.max_pending = std::max(result.max_pending, pending.size());
    result.peak_allocation_percent =
        std::max(result.peak_allocation_percent,
                 100.0 * static_cast<double>(engine.state().gpu_milli_allocated()) / capacity);
  }
  result.pods_never_placed += pending.size();
  const double span = static_cast<double>(last_arrival - start_time);
  if (span > 0) {
    result.time_weighted_allocation_percent = 100.0 * allocation_area / span / capacity;
    result.time_weighted_pending = pending_area / span;
  }
  result.mean_wait_seconds = waits_placed > 0 ? wait_sum / static_cast<double>(waits_placed) : 0;
  result.decisions = timer.Stats();
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return result;
}

}  // namespace gpuslice::simulator
