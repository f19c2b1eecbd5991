#include "placement/fragmentation.h"

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>
#include <utility>

namespace gpuslice::placement {
namespace {

using TypeKey = std::tuple<std::int64_t, int, int, std::uint64_t>;

TypeKey KeyOf(const PodRequest& pod) {
  return {pod.cpu_milli, pod.gpu_milli, pod.num_gpu, pod.allowed_models};
}

std::int64_t Slots(std::int64_t free, std::int64_t need) {
  if (need <= 0) return std::numeric_limits<std::int64_t>::max();
  return free < 0 ? 0 : free / need;
}

}  // namespace

std::vector<TaskType> TypicalTaskTypes(std::span<const PodRequest> workload,
                                       const TaskTypeOptions& options) {
  struct Group {
    PodRequest first;
    std::int64_t count = 0;
    std::int64_t memory_sum = 0;
  };
  std::map<TypeKey, Group> groups;
  std::int64_t total = 0;
  for (const PodRequest& pod : workload) {
    if (!options.include_cpu_only && !pod.wants_gpu()) continue;
    Group& group = groups[KeyOf(pod)];
    if (group.count == 0) group.first = pod;
    ++group.count;
    group.memory_sum += pod.memory_mib;
    ++total;
  }
  std::vector<std::pair<TypeKey, Group>> sorted(groups.begin(), groups.end());
  // Most popular first; ties in key order so the result does not depend on input order.
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
  std::vector<TaskType> types;
  std::int64_t covered = 0;
  for (const auto& [key, group] : sorted) {
    if (total > 0 &&
        static_cast<double>(covered) >= options.coverage * static_cast<double>(total)) {
      break;
    }
    TaskType type;
    type.request = group.first;
    type.request.memory_mib = group.memory_sum / group.count;
    type.popularity = static_cast<double>(group.count);
    covered += group.count;
    types.push_back(type);
  }
  for (TaskType& type : types) type.popularity /= static_cast<double>(covered);
  return types;
}

FragmentationModel::FragmentationModel(std::vector<TaskType> types, FragmentationMeasure measure)
    : types_(std::move(types)), measure_(measure) {}

double FragmentationModel::NodeFragmentation(const NodeView& node) const {
  std::int64_t total = 0;
  for (const int free : node.gpu_milli_free) total += free;
  if (total == 0) return 0;
  double frag = 0;
  for (const TaskType& type : types_) {
    const PodRequest& t = type.request;
    double unusable = 0;
    if (!t.wants_gpu()) {
      unusable = measure_ == FragmentationMeasure::kFgd ? static_cast<double>(total) : 0.0;
    } else if (!t.AllowsModel(node.model_id)) {
      unusable = static_cast<double>(total);
    } else if (measure_ == FragmentationMeasure::kFgd) {
      int fitting = 0;
      std::int64_t too_small = 0;
      for (const int free : node.gpu_milli_free) {
        if (free >= t.gpu_milli) {
          ++fitting;
        } else {
          too_small += free;
        }
      }
      const bool placeable = fitting >= t.num_gpu && node.cpu_free >= t.cpu_milli;
      unusable = static_cast<double>(placeable ? too_small : total);
    } else {
      std::int64_t gpu_slots = 0;
      for (const int free : node.gpu_milli_free) gpu_slots += free / t.gpu_milli;
      gpu_slots /= t.num_gpu;
      const std::int64_t copies = std::min(gpu_slots, Slots(node.cpu_free, t.cpu_milli));
      unusable = static_cast<double>(total - copies * t.total_gpu_milli());
    }
    frag += type.popularity * unusable;
  }
  return frag;
}

}  // namespace gpuslice::placement
