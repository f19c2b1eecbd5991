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
    : types_(std::move(types)), measure_(measure) {
  share_of_type_.assign(types_.size(), 0);
  for (std::size_t t = 0; t < types_.size(); ++t) {
    const PodRequest& r = types_[t].request;
    if (!r.wants_gpu()) continue;
    const auto known = std::find(shares_.begin(), shares_.end(), r.gpu_milli);
    share_of_type_[t] = static_cast<std::size_t>(known - shares_.begin());
    if (known == shares_.end()) shares_.push_back(r.gpu_milli);
  }
  quotients_.resize(shares_.size() * (kMilliPerGpu + 1));
  for (std::size_t i = 0; i < shares_.size(); ++i) {
    for (int free = 0; free <= kMilliPerGpu; ++free) {
      quotients_[i * (kMilliPerGpu + 1) + static_cast<std::size_t>(free)] =
          static_cast<std::uint16_t>(free / shares_[i]);
    }
  }
  stats_.resize(shares_.size());
}

double FragmentationModel::NodeFragmentation(const NodeView& node) const {
  std::int64_t total = 0;
  for (const int free : node.gpu_milli_free) total += free;
  if (total == 0) return 0;
  for (std::size_t i = 0; i < shares_.size(); ++i) {
    ShareStats& stats = stats_[i];
    stats = {};
    const std::uint16_t* quotient = &quotients_[i * (kMilliPerGpu + 1)];
    for (const int free : node.gpu_milli_free) {
      if (free >= shares_[i]) {
        ++stats.fitting;
      } else {
        stats.too_small += free;
      }
      stats.copies += free >= 0 && free <= kMilliPerGpu ? quotient[free] : free / shares_[i];
    }
  }
  double frag = 0;
  for (std::size_t ti = 0; ti < types_.size(); ++ti) {
    const TaskType& type = types_[ti];
    const PodRequest& t = type.request;
    double unusable = 0;
    if (!t.wants_gpu()) {
      unusable = measure_ == FragmentationMeasure::kFgd ? static_cast<double>(total) : 0.0;
    } else if (!t.AllowsModel(node.model_id)) {
      unusable = static_cast<double>(total);
    } else if (measure_ == FragmentationMeasure::kFgd) {
      const ShareStats& stats = stats_[share_of_type_[ti]];
      const bool placeable = stats.fitting >= t.num_gpu && node.cpu_free >= t.cpu_milli;
      unusable = static_cast<double>(placeable ? stats.too_small : total);
    } else {
      const std::int64_t gpu_slots = stats_[share_of_type_[ti]].copies / t.num_gpu;
      const std::int64_t copies = std::min(gpu_slots, Slots(node.cpu_free, t.cpu_milli));
      unusable = static_cast<double>(total - copies * t.total_gpu_milli());
    }
    frag += type.popularity * unusable;
  }
  return frag;
}

}  // namespace gpuslice::placement
