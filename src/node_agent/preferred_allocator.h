// PreferredAllocator: the devices this agent would like the kubelet to pick
// (GetPreferredAllocation).
//
// Whole GPUs: keep the set on as few NUMA nodes as possible (the node with the most available
// GPUs first, then by index), since GpuInfo carries no NVLink topology. Replicas and MIG devices:
// `distributed` spreads a request over physical GPUs (two replicas -> two GPUs when possible),
// preferring the least-used GPUs; `packed` fills the most-used GPU first. MPS replicas are always
// packed onto one device, since a container talks to one MPS daemon.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/advertised_resources.h"
#include "core/status.h"

namespace gpuslice {

enum class ReplicaPolicy { kDistributed, kPacked };

Result<ReplicaPolicy> ParseReplicaPolicy(std::string_view name);  // "distributed" | "packed"
std::string_view ReplicaPolicyName(ReplicaPolicy policy);

class PreferredAllocator {
 public:
  PreferredAllocator(AdvertisedResource resource, ReplicaPolicy policy);

  // `size` IDs from `available`, including all of `must_include`. Fails (InvalidArgument) when
  // the request cannot be met: unknown IDs, size smaller than must_include or larger than
  // what is available.
  Result<std::vector<std::string>> Choose(const std::vector<std::string>& available,
                                          const std::vector<std::string>& must_include,
                                          int size) const;

 private:
  std::vector<std::string> ChooseWholeGpus(const std::vector<const AdvertisedDevice*>& free,
                                           std::vector<std::string> chosen, std::size_t size) const;
  std::vector<std::string> ChooseShared(const std::vector<const AdvertisedDevice*>& free,
                                        std::vector<std::string> chosen, std::size_t size,
                                        ReplicaPolicy policy) const;

  AdvertisedResource resource_;
  ReplicaPolicy policy_;
};

}  // namespace gpuslice
