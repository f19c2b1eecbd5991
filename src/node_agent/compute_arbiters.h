// ComputeArbiters: the node agent's compute arbiters (src/shim/compute_arbiter.h), one referee
// thread per fractional GPU. The Allocate hand-off (allocation_handoff.h) gives each container a
// request file of its own (in its read-write /run/gpuslice mount) and the GPU's directory
// read-only at /run/gpuslice-arbiter (the grant page), and registers the container with the
// weight and cap of its pod once the pod is known. Nothing a container can write holds its
// weight, virtual time, the holder or the lease.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "core/status.h"
#include "node_agent/compute_cap.h"  // ComputeCapOf, ParseComputeCap (moved there)
#include "shim/arbiter_referee.h"

namespace gpuslice {

// Container-side paths.
inline constexpr const char* kContainerArbiterDir = "/run/gpuslice-arbiter";
inline constexpr const char* kArbiterGrantFileName = "grant";
inline constexpr const char* kArbiterRequestsFileName = "compute-requests";

class ComputeArbiters {
 public:
  // GPU directories live under `root` (gpu-<uuid>/grant, mounted read-only into the GPU's
  // containers); each referee's charges file beside them (gpu-<uuid>.charges, mode 0600, never
  // mounted), so virtual times and charges survive an agent restart.
  explicit ComputeArbiters(std::string root) : root_(std::move(root)) {}

  // The host directory of `uuid`'s arbiter (mounted read-only into its containers); starts its
  // referee on first use.
  Result<std::string> GpuDir(const std::string& uuid);
  // Registers container `key` on `uuid` with its request file (host path), weight and cap (a
  // container with several GPUs is registered on each, with a request file per GPU).
  Status Add(const std::string& key, const std::string& uuid, const std::string& requests_path,
             std::uint32_t weight, std::uint32_t cap_percent);
  void Remove(const std::string& key);
  // After the agent re-registered the containers it recovered from disk: charges carried over
  // the restart that no container claimed are dropped, and the charges files of GPUs without a
  // referee removed, so a later container under the same key starts afresh.
  void ForgetUnclaimedCharges();
  // The referee of `uuid`, or null (tests, diagnostics).
  shim::ArbiterReferee* Referee(const std::string& uuid);

 private:
  static constexpr const char* kChargesSuffix = ".charges";
  std::string ChargesPath(const std::string& uuid) const;

  std::string root_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<shim::ArbiterReferee>> referees_;  // by GPU UUID
  std::map<std::string, std::set<std::string>> gpus_of_;                   // key -> UUIDs
};

}  // namespace gpuslice
