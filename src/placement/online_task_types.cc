#include "placement/online_task_types.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace gpuslice::placement {
namespace {

// Weights are kept in units that grow with each pod (so old weights need no update); they are
// brought back to 1 before they could overflow.
constexpr double kRescaleAbove = 1e100;
// How often (in observed pods) forgotten types are dropped.
constexpr std::uint64_t kForgetEveryPods = 1024;

}  // namespace

OnlineTaskTypes::OnlineTaskTypes(OnlineTaskTypesOptions options)
    : options_(options), growth_(std::exp2(1.0 / std::max(options.half_life_pods, 1e-9))) {}

void OnlineTaskTypes::Observe(const PodRequest& pod) {
  if (!options_.typical.include_cpu_only && !pod.wants_gpu()) return;
  const TypeKey key{pod.cpu_milli, pod.gpu_milli, pod.num_gpu, pod.allowed_models};
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& entry = it->second;
  if (inserted) entry.request = pod;
  entry.weight += next_weight_;
  entry.memory_weighted += next_weight_ * static_cast<double>(pod.memory_mib);
  total_weight_ += next_weight_;
  next_weight_ *= growth_;
  ++pods_observed_;
  if (next_weight_ > kRescaleAbove) Rescale();
  if (pods_observed_ % kForgetEveryPods == 0) {
    std::erase_if(entries_, [&](const auto& e) {
      if (Share(e.second) >= options_.forget_share) return false;
      total_weight_ -= e.second.weight;
      return true;
    });
  }
}

void OnlineTaskTypes::Rescale() {
  const double scale = next_weight_;
  for (auto& [key, entry] : entries_) {
    entry.weight /= scale;
    entry.memory_weighted /= scale;
  }
  total_weight_ /= scale;
  next_weight_ = 1;
}

bool OnlineTaskTypes::Changed() const {
  if (pods_observed_ == observed_at_publication_) return false;
  if (publications_ == 0) return true;
  const std::uint64_t since = pods_observed_ - observed_at_publication_;
  if (options_.republish_every_pods > 0 && since >= options_.republish_every_pods) return true;
  const auto max_gap = static_cast<std::uint64_t>(std::max(1.0, options_.half_life_pods / 4));
  const std::uint64_t gap =
      std::min(std::max(observed_at_publication_ / 2, options_.min_gap_pods), max_gap);
  if (since < gap) return false;
  // Total-variation distance: half the sum of |share now - share published| over all types.
  // Both maps are walked side by side in key order (no lookups: this runs for most pods).
  double distance = 0;
  auto published = published_.begin();
  for (const auto& [key, entry] : entries_) {
    while (published != published_.end() && published->first < key) ++published;
    const bool known = published != published_.end() && published->first == key;
    distance += std::abs(Share(entry) - (known ? published->second : 0.0));
  }
  auto current = entries_.begin();
  for (const auto& [key, share] : published_) {
    while (current != entries_.end() && current->first < key) ++current;
    if (current == entries_.end() || current->first != key) distance += share;
  }
  return distance / 2 >= options_.republish_distance;
}

std::vector<TaskType> OnlineTaskTypes::Types(double coverage) const {
  std::vector<const Entry*> sorted;
  sorted.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) sorted.push_back(&entry);
  // Most popular first; ties in key order, as TypicalTaskTypes.
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Entry* a, const Entry* b) { return a->weight > b->weight; });
  std::vector<TaskType> types;
  double covered = 0;
  for (const Entry* entry : sorted) {
    if (total_weight_ > 0 && covered >= coverage * total_weight_) break;
    TaskType type;
    type.request = entry->request;
    type.request.memory_mib = static_cast<std::int64_t>(entry->memory_weighted / entry->weight);
    type.popularity = entry->weight;
    covered += entry->weight;
    types.push_back(type);
  }
  for (TaskType& type : types) type.popularity /= covered;
  return types;
}

std::vector<TaskType> OnlineTaskTypes::TypicalTypes() const {
  return Types(options_.typical.coverage);
}

std::vector<TaskType> OnlineTaskTypes::AllTypes() const { return Types(1.0); }

void OnlineTaskTypes::MarkPublished() {
  published_.clear();
  for (const auto& [key, entry] : entries_) published_[key] = Share(entry);
  observed_at_publication_ = pods_observed_;
  ++publications_;
}

void OnlineTaskTypes::Publish(PolicyOptions& options) {
  options.task_types = TypicalTypes();
  options.all_task_types = AllTypes();
  MarkPublished();
}

bool OnlineTaskTypes::ObserveAndUpdate(const PodRequest& pod, PlacementPolicy& policy) {
  Observe(pod);
  if (!Changed()) return false;
  policy.SetTaskTypes(TypicalTypes(), AllTypes());
  MarkPublished();
  return true;
}

}  // namespace gpuslice::placement
