// The headroom bound: an upper bound on the GPU any placement of a set of pods can allocate, from
// a dual-feasible point of the LP relaxation (docs/simulator.md, "The bound").
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "simulator/hindsight.h"
#include "simulator/simulator.h"

namespace gpuslice::simulator {

using placement::ClusterState;
using placement::PodRequest;

namespace {

// GPU (milli-GPU), CPU (milli-cores), memory (MiB), and the GPU share rounded by the dual-feasible
// functions u1 and u2 (milli-GPU; see ShareRounded).
constexpr int kResources = 5;

// The index of group g's price (or capacity) of resource r.
std::size_t At(int g, int r) { return static_cast<std::size_t>(g * kResources + r); }

// Fekete and Schepers' dual-feasible function u^(k) for bins of 1000: whenever shares x_i fit one
// GPU (sum <= 1000), the u^(k)(x_i) also sum to <= 1000. x itself where (k+1)x/1000 is whole, else
// floor((k+1)x/1000) * 1000/k. For k = 1: shares above 500 count as a whole GPU, below as nothing.
double ShareRounded(int k, int gpu_milli) {
  const int scaled = (k + 1) * gpu_milli;
  if (scaled % placement::kMilliPerGpu == 0) return gpu_milli;
  return static_cast<double>(scaled / placement::kMilliPerGpu) * placement::kMilliPerGpu / k;
}

// Pods of one shape and how many of them there are.
struct TaskType {
  double use[kResources] = {0, 0, 0};  // per pod
  double count = 0;
  std::vector<int> groups;  // the node groups one pod of this type fits one node of
};

// The dual problem, with every group's prices; u_t follows from them.
struct Dual {
  std::vector<double> capacity;  // [At(group, r)]
  std::vector<TaskType> types;
  std::vector<std::vector<int>> types_of_group;
  std::vector<bool> priced;  // [r]: resources whose prices may be non-zero

  // u_t: the least value making every constraint of t hold.
  double Slack(const std::vector<double>& price, const TaskType& t) const {
    double u = 0;
    for (const int g : t.groups) {
      double reduced = t.use[0];
      for (int r = 0; r < kResources; ++r) reduced -= price[At(g, r)] * t.use[r];
      u = std::max(u, reduced);
    }
    return u;
  }
  double Value(const std::vector<double>& price) const {
    double value = 0;
    for (std::size_t i = 0; i < price.size(); ++i) value += price[i] * capacity[i];
    for (const TaskType& t : types) value += t.count * Slack(price, t);
    return value;
  }
};

// Moves price[index] to its exact minimiser of the (convex, piecewise linear) dual objective,
// holding the others: the candidate prices are 0 and every point where a type's reduced value on
// this group crosses its slack elsewhere.
void LineSearch(const Dual& dual, std::vector<double>& price, int group, int r) {
  const std::size_t index = At(group, r);
  std::vector<double> candidates = {0.0};
  for (const int t : dual.types_of_group[static_cast<std::size_t>(group)]) {
    const TaskType& type = dual.types[static_cast<std::size_t>(t)];
    if (type.use[r] <= 0) continue;
    std::vector<double> other = price;
    other[index] = 0;
    const double here_at_zero = [&] {
      double reduced = type.use[0];
      for (int k = 0; k < kResources; ++k) reduced -= other[At(group, k)] * type.use[k];
      return reduced;
    }();
    // Slack from the other groups.
    double elsewhere = 0;
    for (const int g : type.groups) {
      if (g == group) continue;
      double reduced = type.use[0];
      for (int k = 0; k < kResources; ++k) reduced -= price[At(g, k)] * type.use[k];
      elsewhere = std::max(elsewhere, reduced);
    }
    const double cross = (here_at_zero - elsewhere) / type.use[r];
    if (cross > 0) candidates.push_back(cross);
  }
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  const auto value_at = [&](std::size_t i) {
    std::vector<double> trial = price;
    trial[index] = candidates[i];
    return dual.Value(trial);
  };
  // The objective is convex in this price: ternary search over the candidates.
  std::size_t lo = 0, hi = candidates.size() - 1;
  while (hi - lo > 2) {
    const std::size_t m1 = lo + (hi - lo) / 3, m2 = hi - (hi - lo) / 3;
    if (value_at(m1) <= value_at(m2)) {
      hi = m2;
    } else {
      lo = m1;
    }
  }
  std::size_t best = lo;
  double best_value = value_at(lo);
  for (std::size_t i = lo + 1; i <= hi; ++i) {
    const double v = value_at(i);
    if (v < best_value) best = i, best_value = v;
  }
  if (best_value < dual.Value(price)) price[index] = candidates[best];
}

// Cyclic coordinate descent with exact line searches; before each round, every group also tries
// pricing a single resource (the others zero), which coordinate moves alone cannot reach from a
// GPU-priced start when CPU or memory is what binds.
double Minimise(const Dual& dual, std::vector<double> price) {
  double value = dual.Value(price);
  const int groups = static_cast<int>(dual.types_of_group.size());
  for (int round = 0; round < 50; ++round) {
    const double before = value;
    for (int g = 0; g < groups; ++g) {
      for (int r = 0; r < kResources; ++r) {
        if (!dual.priced[static_cast<std::size_t>(r)]) continue;
        std::vector<double> single = price;
        for (int k = 0; k < kResources; ++k) single[At(g, k)] = 0;
        LineSearch(dual, single, g, r);
        const double v = dual.Value(single);
        if (v < value) price = single, value = v;
      }
      for (int r = 0; r < kResources; ++r) {
        if (dual.priced[static_cast<std::size_t>(r)]) LineSearch(dual, price, g, r);
      }
      value = dual.Value(price);
    }
    if (value >= before - 1e-9 * std::max(1.0, before)) break;
  }
  return value;
}

}  // namespace

std::int64_t AllocationUpperBound(const ClusterState& empty, std::span<const PodRequest> pods,
                                  const BoundOptions& options) {
  // Node groups: identical specs apart from the name.
  std::map<std::tuple<int, int, std::int64_t, std::int64_t, std::int64_t>, int> group_of;
  std::vector<int> representative;
  Dual dual;
  for (int n = 0; n < static_cast<int>(empty.node_count()); ++n) {
    const placement::NodeState& node = empty.node(n);
    if (node.spec.gpu_count <= 0) continue;  // no GPU pod fits a node without GPUs
    const auto key = std::make_tuple(node.model_id, node.spec.gpu_count, node.spec.gpu_memory_mib,
                                     node.spec.cpu_milli, node.spec.memory_mib);
    auto [it, added] = group_of.try_emplace(key, static_cast<int>(representative.size()));
    if (added) {
      representative.push_back(n);
      dual.capacity.insert(dual.capacity.end(), kResources, 0.0);
    }
    double* cap = &dual.capacity[static_cast<std::size_t>(it->second) * kResources];
    cap[0] += static_cast<double>(node.gpu_milli_free);
    cap[1] += static_cast<double>(node.cpu_free);
    cap[2] += static_cast<double>(node.memory_free);
    cap[3] += static_cast<double>(node.gpu_milli_free);  // every GPU holds 1000 of u1 and of u2
    cap[4] += static_cast<double>(node.gpu_milli_free);
  }
  // Task types: identical requests. CPU-only pods allocate no GPU and are left out (the LP may
  // always leave a pod unplaced).
  std::map<std::tuple<std::int64_t, std::int64_t, int, int, std::uint64_t, std::int64_t, int>,
           std::size_t>
      type_of;
  std::vector<PodRequest> shapes;
  std::int64_t demand = 0;
  for (const PodRequest& pod : pods) {
    if (pod.total_gpu_milli() <= 0) continue;
    const auto key =
        std::make_tuple(pod.cpu_milli, pod.memory_mib, pod.num_gpu, pod.gpu_milli,
                        pod.allowed_models, pod.gpu_memory_mib, pod.gpu_compute_percent);
    auto [it, added] = type_of.try_emplace(key, dual.types.size());
    if (added) {
      TaskType t;
      t.use[0] = static_cast<double>(pod.total_gpu_milli());
      t.use[1] = static_cast<double>(pod.cpu_milli);
      t.use[2] = static_cast<double>(pod.memory_mib);
      t.use[3] = pod.num_gpu * ShareRounded(1, pod.gpu_milli);
      t.use[4] = pod.num_gpu * ShareRounded(2, pod.gpu_milli);
      dual.types.push_back(t);
      shapes.push_back(pod);
    }
    dual.types[it->second].count += 1;
    demand += pod.total_gpu_milli();
  }
  dual.types_of_group.resize(representative.size());
  for (std::size_t t = 0; t < dual.types.size(); ++t) {
    for (int g = 0; g < static_cast<int>(representative.size()); ++g) {
      if (!empty.Fits(shapes[t], representative[static_cast<std::size_t>(g)])) continue;
      dual.types[t].groups.push_back(g);
      dual.types_of_group[static_cast<std::size_t>(g)].push_back(static_cast<int>(t));
    }
  }
  dual.priced = {true, options.use_cpu, options.use_memory, options.use_share_rounding,
                 options.use_share_rounding};
  // Two starts: every price zero (the bound is the demand that fits somewhere) and every group's
  // GPU priced 1 (the bound is the capacity of the groups some pod fits).
  std::vector<double> zero(dual.capacity.size(), 0.0);
  std::vector<double> gpu_priced = zero;
  for (std::size_t g = 0; g < representative.size(); ++g) gpu_priced[g * kResources] = 1.0;
  const double bound = std::min(Minimise(dual, zero), Minimise(dual, gpu_priced));
  // Allocations are whole milli-GPU; the tolerance covers the rounding of the sums above.
  const auto rounded = static_cast<std::int64_t>(std::floor(bound + 1e-6 * std::max(1.0, bound)));
  return std::min(rounded, demand);
}

Result<FillResult> RunUpperBound(const std::vector<placement::NodeSpec>& nodes,
                                 const std::vector<TracePod>& workload,
                                 const FillOptions& options) {
  const auto wall_start = std::chrono::steady_clock::now();
  GPUSLICE_ASSIGN_OR_RETURN(const FillInput input, PrepareFill(nodes, workload, options));
  const ArrivalSplit split = SplitAtFullCapacity(input.cluster, input.sequence);
  const std::span<const PodRequest> all(input.sequence);
  const std::int64_t bound_100 = AllocationUpperBound(input.cluster, all.first(split.prefix), {});
  const std::int64_t bound_end = AllocationUpperBound(input.cluster, all, {});
  return HindsightResult("bound", input, split, bound_100, bound_end, options.seed, wall_start);
}

}  // namespace gpuslice::simulator
