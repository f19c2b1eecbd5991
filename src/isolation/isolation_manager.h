// IsolationManager: the driver isolation tier on one node.
//
// At Allocate the node agent registers a Partition (GPU, hard/soft memory limits, MPS share)
// under a fresh one-time token that goes into the container's environment. The createContainer
// hook hands back {container id, pid, cgroup, token} through the spool directory; the manager
// binds the token to that container (once: a token is never bound twice), sets the driver's
// memory limits on the container's cgroup and, under MPS, creates the container's MPS v3
// namespace, then replies so the hook lets the container start. When a container ends (its
// cgroup is gone or has no processes) its limits are cleared and its namespace deleted. Every
// binding is persisted (state file, written atomically) so an agent restart re-applies the limits
// and namespaces of live containers and cleans up after ended ones.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "backends/memory_limits.h"
#include "core/status.h"
#include "isolation/isolation_state.h"
#include "isolation/mps_v3.h"
#include "isolation/oci_hook.h"

namespace gpuslice {

// One bound container's limits as the driver reports them now (for metrics).
struct ContainerUsage {
  std::string container_id;
  std::string gpu_uuid;
  std::string cgroup_path;
  std::string mps_namespace;  // "" unless MPS v3
  std::uint64_t hard_limit_bytes = 0;
  std::uint64_t soft_limit_bytes = 0;
  std::uint64_t current_used_bytes = 0;
  std::string error;  // why the driver could not be read; "" when read
};

// Reads annotation `key` of `pod` from the Kubernetes API server: "" when the pod has none;
// an error when the pod is not found (or has another UID than pod.uid) or the API cannot be
// reached. Must return within a few seconds: the agent's loop waits for it. Injected by the node
// agent (its --node-name mode), so this library does not depend on the API client.
using PodAnnotationSource =
    std::function<Result<std::string>(const PodRef& pod, const std::string& key)>;

struct IsolationManagerOptions {
  std::string spool_dir;   // where the hook writes requests (see oci_hook.h)
  std::string state_file;  // persisted bindings and pending tokens
  // The MPS v3 server name for a GPU; default "gpu-" + the UUID's first 8 hex digits.
  std::map<std::string, std::string> mps_server_by_gpu;
  // The MPS pipe directory of a GPU (the agent's layout). When set, the manager keeps the
  // namespace directory of a token pending again in place (the restarted container's runtime
  // bind-mounts it before the hook runs; a `namespace delete` may remove it), and removes it when
  // such a token's pod has ended.
  std::function<std::string(const std::string& gpu_uuid)> mps_pipe_directory_of = {};
  // Where an MPS v3 container's client priority comes from when its hook request carries none
  // (the runtime did not pass the pod's annotation into the bundle) but names its pod. Unset:
  // such a container gets priority 0 (normal). A lookup error is logged and leaves the
  // partition's priority (0, or that of a restarted container's predecessor).
  PodAnnotationSource pod_annotation_of = {};
};

class IsolationManager {
 public:
  // `limits` may be null (no driver memory partitions: the manager then only does MPS v3);
  // `mps` may be null (no MPS v3). Both must outlive the manager.
  IsolationManager(IsolationManagerOptions options, MemoryLimitDriver* limits, MpsV3Control* mps);

  // Records a partition for a container being allocated; returns its token (unguessable, 128
  // random bits in hex). Persisted, so a container created after an agent restart still binds.
  Result<std::string> RegisterPartition(const Partition& partition);
  // The partition registered under `token` (pending or bound); NotFound otherwise.
  Result<Partition> PartitionFor(const std::string& token) const;

  // After a (re)start: loads the state file, re-applies the limits and namespaces of every live
  // container, clears those of ended ones. Missing state file = fresh node.
  Status Restore();

  // Handles every request in the spool (writes each reply); returns how many were handled.
  int ProcessRequests();

  // Clears limits and deletes namespaces of containers that ended; returns how many.
  int ReapEnded();

  // Binds one request (the spool path calls this). OK = limits/namespace are in place.
  // `mps_client_priority` (the pod's gpuslice.io/mps-client-priority, 0 or 1; -1 = not set)
  // replaces the partition's client priority under MPS v3; elsewhere it has no effect.
  Status Bind(const std::string& container_id, long pid, const std::string& cgroup_path,
              const std::string& token, int mps_client_priority = -1);

  // Makes each server's namespaces match the bound containers (NVIDIA's `namespace list`):
  // creates missing ones (a daemon that restarted), fixes changed values, deletes gpuslice's own
  // namespaces ("ns-" prefix) that belong to no container. Servers that cannot be listed (daemon
  // not up yet) are skipped. Returns how many namespaces were created or deleted.
  int ReconcileNamespaces(const std::vector<std::string>& servers);
  // The namespaces of bound containers on `server` (for a (re)started daemon's TOML file).
  std::vector<MpsV3Namespace> Namespaces(const std::string& server) const;

  std::vector<ContainerBinding> Bindings() const;
  // Every bound container's limits and current use, read back from the driver
  // (nvmlDeviceGetMemoryLimits_v1 semantics).
  std::vector<ContainerUsage> Usage() const;
  // Usage() as JSON: {"containers":[{"id","gpu","cgroup","namespace","hardLimitBytes",
  // "softLimitBytes","currentUsedBytes","error"}]}.
  static std::string UsageJson(const std::vector<ContainerUsage>& usage);
  std::size_t PendingTokens() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_.size();
  }

  // Gives a partition registered with awaiting_limits_from its limits (and GPU); the hook's
  // waiting request then binds. NotFound when the token is not pending.
  Status SetPartitionLimits(const std::string& token, const std::string& gpu_uuid,
                            std::uint64_t hard_limit_bytes, std::uint64_t soft_limit_bytes);
  // The same for a container on several GPUs: the first share is the partition's GPU, the
  // others its more_gpus. For an MPS v3 partition (a fractional container whose namespace
  // directory Allocate already mounted) the one share must be its registered GPU, and
  // `mps_active_thread_percentage` (1..100; 0 keeps the registered value) becomes its
  // namespace's active-thread percentage; the pinned-memory limit is the hard limit.
  Status SetPartitionLimits(const std::string& token, const std::vector<GpuShare>& shares,
                            int mps_active_thread_percentage = 0);
  // The hand-off refused the container (no valid assignment): it binds without a driver limit,
  // and the shim fails its allocations closed as on the shim tier.
  Status ForgoPartitionLimits(const std::string& token);
  // Every pending token's partition (not bound yet, or pending again for its pod).
  std::map<std::string, Partition> Pending() const;
  // Releases a token that was never bound (its pod was deleted before its container was
  // created): forgets it and removes its empty MPS namespace directory. False when the token is
  // not pending, or is pending again for a pod (ReapEnded handles those).
  bool DropPending(const std::string& token);
  // Pending tokens still awaiting their limits: token -> limits file.
  std::map<std::string, std::string> AwaitingLimits() const;

  // The MPS v3 server name used for a GPU.
  std::string MpsServerFor(const std::string& gpu_uuid) const;

 private:
  Status RestoreLocked();  // Restore() under mu_
  // The MPS client priority of a hook request: the bundle's annotation, else the pod's in the
  // API server (MPS v3 partitions only); -1 = not set. An invalid value is an error.
  Result<int> ClientPriorityOf(const HookRequest& request);
  Status Apply(const ContainerBinding& binding);
  // The partition's GPU and its further GPUs, each with its limits.
  static std::vector<GpuShare> SharesOf(const Partition& partition);
  static MpsV3Namespace NamespaceOf(const ContainerBinding& binding);
  void Release(const ContainerBinding& binding);
  // After `binding`'s container ended: its token is pending again, for its pod only, while the
  // pod cgroup exists (a restarted container presents the same token); otherwise its namespace
  // directory is removed.
  void PendAgainForItsPod(const ContainerBinding& binding);
  // The token's holder if its container has ended: released and pending again. Under mu_.
  void ReapEndedHolderOf(const std::string& token);
  // The host directory of a partition's MPS v3 namespace; "" when unknown or not MPS.
  std::string NamespaceDirectory(const Partition& partition) const;
  static bool ContainerAlive(const ContainerBinding& binding);
  Status Save() const;

  IsolationManagerOptions options_;
  MemoryLimitDriver* limits_;
  MpsV3Control* mps_;
  std::map<std::string, Partition> pending_;          // token -> partition
  std::map<std::string, ContainerBinding> bindings_;  // container id -> binding
  mutable std::mutex mu_;  // Allocate (gRPC threads) registers while the loop binds
};

}  // namespace gpuslice
