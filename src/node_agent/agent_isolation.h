// AgentIsolation: the node agent's side of the driver isolation tier (docs/isolation.md).
//
// Decides the node's tier from the backend (driver version, cgroup v2, the memory-limit driver),
// adds the gpuslice.io/memory-isolation and gpuslice.io/mps labels, and at Allocate registers a
// partition for each shared container on a driver-capable GPU and hands the container its token
// (GPUSLICE_ISOLATION_TOKEN); the createContainer hook brings it back with the cgroup, and the
// agent's loop binds it (IsolationManager). Kept out of NodeAgent so the Allocate path only gains
// one call.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/isolation_capability.h"
#include "backends/memory_limits.h"
#include "core/advertised_resources.h"
#include "core/status.h"
#include "isolation/isolation_manager.h"
#include "isolation/mps_v3.h"
#include "node_agent/device_plugin_api.pb.h"
#include "shim/container_limits.h"

namespace gpuslice {

class PodResourcesSource;  // node_agent/allocation_handoff.h

struct AgentIsolationOptions {
  bool enabled = true;                                // --isolation=auto|off
  std::string directory = "/run/gpuslice/isolation";  // spool + state file
  std::string cgroup_mount = "/sys/fs/cgroup";
  // The CDI spec carries the createContainer hook (--hook-path given). Without it no container
  // could bind a partition, so none is registered and the shim tier stays the enforcer.
  bool hook_installed = false;
  // Host directory of the per-device MPS pipe directories (NodeAgentOptions::mps_root): under
  // MPS v3 a container gets only <pipe>/<server>/<namespace> mounted.
  std::string mps_root = "/run/nvidia/mps";
  // How often the loop reconciles MPS v3 namespaces with the daemons (`namespace list`) and
  // writes <directory>/usage.json (every bound container's limits and current use, for
  // metrics); 0 = every turn.
  std::chrono::milliseconds namespace_reconcile_interval{5000};
  // The allocation hand-off's --allocations-dir: fractional containers on a capable GPU get a
  // driver limit (hard = soft = their gpuslice.io/gpu-memory assignment) once the hand-off has
  // written their limits file there. "" = fractional containers stay on the shim tier.
  std::string allocations_dir;
  // Host directory of the shims (--shim-dir). Replica containers on driver-tier GPUs get them,
  // report-only (`enforcer=driver` in an agent-written, read-only limits file): they see their
  // share as the GPU's total while the driver enforces it. "" or a directory without the shims:
  // no shim (logged once), the driver still enforces.
  std::string shim_dir;
  // The kubelet's PodResources API (may be null). A token never bound whose devices no listed
  // container holds for `unclaimed_token_grace` (its pod was deleted between Allocate and the
  // container's creation) is released, with its MPS namespace directory. A failed List releases
  // nothing.
  PodResourcesSource* pod_resources = nullptr;
  std::chrono::milliseconds unclaimed_token_grace{std::chrono::minutes(5)};
  // The pod annotations in the API server (--node-name mode; unset otherwise): an MPS v3
  // container whose bundle lacks gpuslice.io/mps-client-priority takes its pod's value from
  // there (IsolationManagerOptions::pod_annotation_of).
  PodAnnotationSource pod_annotation_of = {};
};

class AgentIsolation {
 public:
  // `limits`, `mps` may be null (no driver memory limits / no MPS v3 control); must outlive this.
  AgentIsolation(AgentIsolationOptions options, MemoryLimitDriver* limits, MpsV3Control* mps);
  ~AgentIsolation();  // the MPS v3 control no longer asks this manager for namespaces
  AgentIsolation(const AgentIsolation&) = delete;
  AgentIsolation& operator=(const AgentIsolation&) = delete;

  // Re-detects the tier for the node's GPUs; on the first call also restores persisted bindings.
  Status Update(const DriverInfo& driver, const std::vector<GpuInfo>& gpus);
  // The node labels; `mps_sharing`: the configuration shares some GPU with MPS.
  std::map<std::string, std::string> Labels(bool mps_sharing) const;
  NodeIsolation node() const {
    std::lock_guard<std::mutex> lock(mu_);
    return node_;
  }

  // For one container's Allocate: registers its partition and adds the token env when the
  // container gets replicas of exactly one driver-capable GPU. No-op otherwise.
  Status Decorate(const AdvertisedResource& resource, const std::vector<GpuInfo>& gpus,
                  const std::vector<std::string>& ids, v1beta1::ContainerAllocateResponse& out);

  // One turn of the agent loop: hook requests, ended containers, MPS v3 namespaces.
  void RunOnce();
  // The MPS v3 servers of the node's v3 GPUs.
  std::vector<std::string> MpsV3Servers() const;
  // Whether MPS v3 shares the compute of fractional slots on GPU `uuid` (the resource asks for it
  // with gpuslice.fractional.compute: mps, and the GPU has MPS v3 with the hook installed): the
  // agent then runs the GPU's MPS v3 server, and each fractional container on it alone gets a
  // namespace. Elsewhere the shim's compute arbiter shares it.
  bool FractionalComputeByMps(const AdvertisedResource& resource, const std::string& uuid) const;

  IsolationManager* manager() { return manager_.get(); }
  std::string spool_dir() const { return options_.directory + "/spool"; }

 private:
  AgentIsolationOptions options_;
  MemoryLimitDriver* limits_;
  MpsV3Control* mps_;
  mutable std::mutex mu_;  // node_: written by the loop, read by Allocate threads
  NodeIsolation node_;
  std::unique_ptr<IsolationManager> manager_;
  std::chrono::steady_clock::time_point last_reconcile_{};

  void UseV3ForLocked();  // tells mps_ which GPUs get a v3 server; under mu_
  // Fractional (gpuslice.io/gpu) containers: a partition awaiting the hand-off's limits file.
  Status DecorateFractional(const AdvertisedResource& resource, const std::vector<std::string>& ids,
                            v1beta1::ContainerAllocateResponse& out);
  // Gives awaiting partitions the limits their files now hold.
  void TakeFractionalLimits();
  // The same for a fractional container that is an MPS v3 client: its namespace's threads are
  // the file's compute-percent, and its file loses the compute arbiter.
  void TakeFractionalMpsLimits(const std::string& token, const Partition& partition,
                               const std::string& file, shim::ContainerLimits limits);
  // The GPU takes driver memory partitions.
  bool Capable(const std::string& uuid) const;
  // Replica containers on driver-tier GPUs: the shims with a report-only limits file in
  // <directory>/shim/<token>/{limits,region}, mounted at /etc/gpuslice and /run/gpuslice.
  // `devices`: every GPU of the container (limits file device lines).
  Status InjectReportingShim(const std::string& token,
                             const std::vector<shim::DeviceLimit>& devices,
                             v1beta1::ContainerAllocateResponse& out);
  // Removes the shim directories of tokens the manager no longer knows.
  void RemoveStaleShimDirectories();
  // Releases pending tokens that PodResources has not listed for the grace period; how many.
  int ExpireUnclaimedTokens();
  std::chrono::steady_clock::time_point last_expiry_check_{};
  std::map<std::string, std::chrono::steady_clock::time_point> unclaimed_since_;  // loop only
  std::atomic<bool> shim_dir_warned_{false};  // Allocate runs on gRPC threads

  // Under MPS v3: the container's pipe mount becomes its namespace's directory, and NVIDIA's
  // per-process limit variables are dropped (the namespace holds the container's limits).
  Status UseNamespaceDirectory(const std::string& gpu_uuid, const Partition& partition,
                               v1beta1::ContainerAllocateResponse& out) const;
};

}  // namespace gpuslice
