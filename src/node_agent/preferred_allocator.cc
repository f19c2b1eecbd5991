#include "node_agent/preferred_allocator.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace gpuslice {

Result<ReplicaPolicy> ParseReplicaPolicy(std::string_view name) {
  if (name == "distributed") return ReplicaPolicy::kDistributed;
  if (name == "packed") return ReplicaPolicy::kPacked;
  return InvalidArgument("unknown replica policy \"" + std::string(name) +
                         "\"; accepted: distributed, packed");
}

std::string_view ReplicaPolicyName(ReplicaPolicy policy) {
  return policy == ReplicaPolicy::kPacked ? "packed" : "distributed";
}

PreferredAllocator::PreferredAllocator(AdvertisedResource resource, ReplicaPolicy policy)
    : resource_(std::move(resource)), policy_(policy) {}

Result<std::vector<std::string>> PreferredAllocator::Choose(
    const std::vector<std::string>& available, const std::vector<std::string>& must_include,
    int size) const {
  std::map<std::string, const AdvertisedDevice*> by_id;
  for (const AdvertisedDevice& d : resource_.devices) by_id[d.id] = &d;
  for (const auto* list : {&available, &must_include}) {
    for (const std::string& id : *list) {
      if (!by_id.count(id)) {
        return InvalidArgument("unknown device ID \"" + id + "\" for resource " + resource_.name);
      }
    }
  }
  std::vector<std::string> chosen;
  std::set<std::string> chosen_set;
  for (const std::string& id : must_include) {
    if (chosen_set.insert(id).second) chosen.push_back(id);
  }
  if (size < 0 || static_cast<std::size_t>(size) < chosen.size()) {
    return InvalidArgument("allocation size " + std::to_string(size) + " for " + resource_.name +
                           " is smaller than the " + std::to_string(chosen.size()) +
                           " devices that must be included");
  }
  std::vector<const AdvertisedDevice*> free;
  std::set<std::string> seen;
  for (const std::string& id : available) {
    if (chosen_set.count(id) || !seen.insert(id).second) continue;
    free.push_back(by_id.at(id));
  }
  const auto wanted = static_cast<std::size_t>(size);
  if (free.size() + chosen.size() < wanted) {
    return InvalidArgument("allocation size " + std::to_string(size) + " for " + resource_.name +
                           " exceeds the " + std::to_string(free.size() + chosen.size()) +
                           " available devices");
  }
  std::sort(free.begin(), free.end(), [](const AdvertisedDevice* a, const AdvertisedDevice* b) {
    return std::tie(a->gpu_index, a->mig_index, a->replica) <
           std::tie(b->gpu_index, b->mig_index, b->replica);
  });
  const bool whole_gpus =
      std::all_of(resource_.devices.begin(), resource_.devices.end(),
                  [](const AdvertisedDevice& d) { return d.replica < 0 && d.mig_index < 0; });
  if (whole_gpus) return ChooseWholeGpus(free, std::move(chosen), wanted);
  const ReplicaPolicy policy =
      resource_.sharing == SharingStrategy::kMps ? ReplicaPolicy::kPacked : policy_;
  return ChooseShared(free, std::move(chosen), wanted, policy);
}

std::vector<std::string> PreferredAllocator::ChooseWholeGpus(
    const std::vector<const AdvertisedDevice*>& free, std::vector<std::string> chosen,
    std::size_t size) const {
  std::map<int, std::vector<const AdvertisedDevice*>> by_numa;  // sorted by index within
  for (const AdvertisedDevice* d : free) by_numa[d->numa_node].push_back(d);
  std::set<int> numa_of_chosen;
  for (const AdvertisedDevice& d : resource_.devices) {
    if (std::find(chosen.begin(), chosen.end(), d.id) != chosen.end()) {
      numa_of_chosen.insert(d.numa_node);
    }
  }
  const std::size_t need = size - chosen.size();
  // NUMA nodes already used first; then the smallest node that fits the rest (keeps larger
  // groups whole for later requests); then the largest.
  std::vector<int> order;
  for (const auto& [numa, list] : by_numa) order.push_back(numa);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    const std::size_t fa = by_numa[a].size(), fb = by_numa[b].size();
    const bool ua = numa_of_chosen.count(a) > 0, ub = numa_of_chosen.count(b) > 0;
    if (ua != ub) return ua;
    const bool fits_a = fa >= need, fits_b = fb >= need;
    if (fits_a != fits_b) return fits_a;
    if (fits_a && fa != fb) return fa < fb;
    if (!fits_a && fa != fb) return fa > fb;
    return a < b;
  });
  for (int numa : order) {
    for (const AdvertisedDevice* d : by_numa[numa]) {
      if (chosen.size() >= size) return chosen;
      chosen.push_back(d->id);
    }
  }
  return chosen;
}

std::vector<std::string> PreferredAllocator::ChooseShared(
    const std::vector<const AdvertisedDevice*>& free, std::vector<std::string> chosen,
    std::size_t size, ReplicaPolicy policy) const {
  // Per physical GPU: devices advertised, free, and picked for this request.
  std::map<std::string, int> advertised, available, picked;
  // For MPS, per device (GPU or MIG): free replicas.
  std::map<std::string, int> free_per_device;
  for (const AdvertisedDevice& d : resource_.devices) ++advertised[d.gpu_uuid];
  for (const AdvertisedDevice* d : free) {
    ++available[d->gpu_uuid];
    ++free_per_device[d->device_uuid];
  }
  std::map<std::string, const AdvertisedDevice*> by_id;
  for (const AdvertisedDevice& d : resource_.devices) by_id[d.id] = &d;
  std::string mps_device;  // the device an MPS request is packed onto
  const bool mps = resource_.sharing == SharingStrategy::kMps;
  for (const std::string& id : chosen) {
    ++picked[by_id.at(id)->gpu_uuid];
    if (mps && mps_device.empty()) mps_device = by_id.at(id)->device_uuid;
  }
  const std::size_t need = size - chosen.size();
  if (mps && mps_device.empty()) {
    // The most-used device that can hold the whole request.
    int best_used = -1;
    for (const AdvertisedDevice* d : free) {
      if (static_cast<std::size_t>(free_per_device[d->device_uuid]) < need) continue;
      const int used = advertised[d->gpu_uuid] - available[d->gpu_uuid];
      if (used > best_used) {
        best_used = used;
        mps_device = d->device_uuid;
      }
    }
  }

  std::vector<bool> taken(free.size(), false);
  while (chosen.size() < size) {
    std::size_t best = free.size();
    for (std::size_t i = 0; i < free.size(); ++i) {
      if (taken[i]) continue;
      if (best == free.size()) {
        best = i;
        continue;
      }
      const AdvertisedDevice& a = *free[i];
      const AdvertisedDevice& b = *free[best];
      if (!mps_device.empty()) {
        const bool ma = a.device_uuid == mps_device, mb = b.device_uuid == mps_device;
        if (ma != mb) {
          if (ma) best = i;
          continue;
        }
      }
      const int used_a = advertised[a.gpu_uuid] - available[a.gpu_uuid] + picked[a.gpu_uuid];
      const int used_b = advertised[b.gpu_uuid] - available[b.gpu_uuid] + picked[b.gpu_uuid];
      bool better = false;
      if (policy == ReplicaPolicy::kDistributed) {
        // Fewest picked by this request, then least used overall; `free` is in index order.
        better = std::tie(picked[a.gpu_uuid], used_a) < std::tie(picked[b.gpu_uuid], used_b);
      } else {
        better = used_a > used_b;
      }
      if (better) best = i;
    }
    taken[best] = true;
    chosen.push_back(free[best]->id);
    ++picked[free[best]->gpu_uuid];
  }
  return chosen;
}

}  // namespace gpuslice
