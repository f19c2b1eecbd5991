// AllocationHandoff: from a kubelet Allocate of `gpuslice.io/gpu` slots to the container's limits
// file, without guessing which pod the Allocate is for (issue 13 part 5, docs/node-agent.md).
//
// Allocate carries device IDs only. So:
//  1. In Allocate (PrepareAllocation), the agent creates a per-allocation directory on the host,
//     keyed by the allocated device IDs (which the kubelet hands to one container at a time), and
//     answers with two mounts: `<key>/limits` read-only at /etc/gpuslice (where the shim looks for
//     its limits file) and `<key>/region` read-write at /run/gpuslice (the accounting region,
//     created and initialised here, by the control plane only).
//  2. After the kubelet records the allocation, its PodResources API (v1 List) names the pod and
//     container holding exactly those device IDs. The reconciler (ReconcileOnce, on a thread
//     with Start) reads that pod's `gpuslice.io/assignment` from the API server and writes the
//     limits file atomically (mode 0444): the GPU the slots belong to, the assignment's memory
//     and compute.
//  3. If the kubelet's slots are on another GPU than the assignment names, the slots win (they
//     are what the container sees): the limits name the real GPU, the pod's assignment annotation
//     is patched to it so the extender's accounting follows, and a warning says so.
//  Allocate also injects the shims: both libraries and an /etc/ld.so.preload naming them, read-only
//     (shim_injection.h); a shim missing on the host fails the Allocate.
//  4. A pod without a valid assignment gets no limits file but a `refused` file naming why; the
//     shim then fails its GPU allocations closed with that text.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/gpu_annotations.h"
#include "core/status.h"
#include "kube/kube_api.h"
#include "node_agent/compute_arbiters.h"
#include "node_agent/device_plugin_api.pb.h"
#include "node_agent/shim_injection.h"
#include "shim/container_limits.h"

namespace gpuslice {

// One container's devices as the kubelet's PodResources API reports them.
struct ContainerDevices {
  std::string pod_namespace;
  std::string pod_name;
  std::string container;
  std::string resource_name;
  std::vector<std::string> device_ids;
};

// Who holds which devices (the kubelet's PodResources API; a fake in unit tests).
class PodResourcesSource {
 public:
  virtual ~PodResourcesSource() = default;
  virtual Result<std::vector<ContainerDevices>> List() = 0;
};

// PodResources v1 List over gRPC on a Unix socket.
class GrpcPodResources final : public PodResourcesSource {
 public:
  explicit GrpcPodResources(std::string socket_path);
  ~GrpcPodResources() override;
  Result<std::vector<ContainerDevices>> List() override;

 private:
  struct Impl;
  std::string socket_path_;
  std::unique_ptr<Impl> impl_;
};

struct HandoffOptions {
  std::string host_root = "/var/lib/gpuslice/allocations";  // per-allocation directories
  std::string node_name;
  std::string resource_name = "gpuslice.io/gpu";
  std::string cuda_driver;  // `cuda-driver` line of the limits file; "" = the shim's default
  std::string nvml_driver;  // `nvml-driver` line
  // Host directory of libgpuslice-cuda.so / libgpuslice-nvml.so, mounted into every fractional
  // container with an /etc/ld.so.preload naming them (shim_injection.h).
  std::string shim_dir = kDefaultHostShimDir;
  std::chrono::milliseconds reconcile_interval{100};
  // How often settled allocations are checked against PodResources; those no longer listed
  // (the pod ended) have their directory removed and are released (watchdog Unwatch).
  std::chrono::milliseconds release_interval{std::chrono::seconds(10)};
  // How long an allocation may stay unknown to PodResources before it is given up (logged).
  std::chrono::milliseconds give_up_after{std::chrono::minutes(5)};
};

// Container-side paths of the two mounts.
inline constexpr const char* kContainerLimitsDir = "/etc/gpuslice";
inline constexpr const char* kContainerRegionDir = "/run/gpuslice";

// What became of one allocation.
struct HandoffResult {
  enum class State { kPending, kLimited, kRefused, kGivenUp };
  State state = State::kPending;
  std::string key;  // directory name under host_root
  std::vector<std::string> device_ids;
  std::string pod;  // "namespace/name"
  std::string container;
  std::string pod_uid;    // metadata.uid
  std::string qos_class;  // status.qosClass: Guaranteed, Burstable, BestEffort
  std::string gpu_uuid;   // the GPU written to the limits file
  std::int64_t memory_bytes = 0;
  int compute_percent = 0;
  int compute_cap_percent = 0;  // the pod's gpu-compute limit when above its request; 0: none
  std::map<std::uint32_t, std::uint64_t> limit_bytes;  // NVML index -> bytes, per limited GPU
  std::string message;  // why refused / given up; the correction made when the GPU differed
};

// The pod's cgroup as /proc/<pid>/cgroup shows it on the host (cgroup v2, the kubelet's
// systemd or cgroupfs driver), from its UID and QoS class; "" when either is unknown.
enum class CgroupDriver { kSystemd, kCgroupfs };
std::string PodCgroupPath(CgroupDriver driver, const std::string& pod_uid,
                          const std::string& qos_class);

// Called when a container's limits are written (e.g. MemoryWatchdog::Watch).
using LimitsListener = std::function<void(const HandoffResult& result)>;

class AllocationHandoff {
 public:
  // `api` and `pod_resources` must outlive the handoff.
  AllocationHandoff(HandoffOptions options, kube::KubeApi& api, PodResourcesSource& pod_resources);
  ~AllocationHandoff();

  // The node's fractional GPUs (index, UUID, memory), as published. Thread-safe.
  void SetGpus(const std::vector<NodeGpu>& gpus);
  void SetLimitsListener(LimitsListener listener);
  // Called (on the reconciler thread) when a settled allocation is no longer held. Set before
  // Start.
  void SetReleasedListener(LimitsListener listener) { released_ = std::move(listener); }

  // Allocate for one container: creates the directories and the region, adds the mounts to
  // `response`, queues the allocation for the reconciler. Thread-safe.
  Status PrepareAllocation(const std::vector<std::string>& device_ids,
                           v1beta1::ContainerAllocateResponse& response);

  // One pass over the queued allocations. Returns how many were settled.
  int ReconcileOnce();
  // After an agent restart: rebuilds, from the allocation directories an earlier agent left
  // under host_root, the results and the compute arbiter registrations (weight and cap from each
  // limits file, the request file and grant page re-used in place). A directory without limits
  // is queued again. Containers that ended meanwhile go by the release path (ReleaseEnded) at the
  // first PodResources answer. Returns how many containers were registered again. Start calls it.
  int Recover();
  void Start();
  void Stop();

  // The result for the allocation of `device_ids` (any order); kPending when unknown.
  HandoffResult ResultFor(const std::vector<std::string>& device_ids) const;
  // Waits until that allocation is settled; false on timeout.
  bool WaitSettled(const std::vector<std::string>& device_ids,
                   std::chrono::milliseconds timeout) const;

  // The directory name for a set of device IDs (stable, order-independent).
  static std::string KeyFor(std::vector<std::string> device_ids);
  // Where the hand-off writes the limits file for the allocation `key` under `allocations_dir`
  // (host side); a refusal is the file `refused` beside it.
  static std::string LimitsFileFor(const std::string& allocations_dir, const std::string& key);
  // The refusal file beside a limits file (its presence: the pod was refused).
  static std::string RefusedFileBeside(const std::string& limits_file);

  // The node's compute arbiters (one referee per fractional GPU; tests read them).
  ComputeArbiters& arbiters() { return arbiters_; }

 private:
  struct Pending {
    std::vector<std::string> device_ids;  // sorted; empty when recovered (PodResources names them)
    std::chrono::steady_clock::time_point queued;
  };
  // The result for `pending`, held by `holder`; an error (API unreachable) retries later.
  Result<HandoffResult> Settle(const Pending& pending, const ContainerDevices& holder);
  Result<HandoffResult> Limit(HandoffResult result, GpuAssignment assignment,
                              const std::string& pod_namespace, const std::string& pod_name);
  void Record(HandoffResult result);
  // Compute arbiter (issue 14): the container's request file and the GPU's read-only mount at
  // Allocate; its weight and cap, and the two paths in its limits, once the pod is known.
  Status PrepareComputeArbiter(const std::string& key, const std::vector<std::string>& ids,
                               const std::string& region_dir,
                               v1beta1::ContainerAllocateResponse& response);
  Status LimitCompute(const HandoffResult& result, const std::string& uuid, shim::DeviceLimit& d);
  void ReleaseEnded(const std::map<std::string, ContainerDevices>& holders);
  // Recover for one directory `key`; true when it registered the container again.
  bool RecoverOne(const std::string& key);

  const HandoffOptions options_;
  kube::KubeApi& api_;
  PodResourcesSource& pod_resources_;
  ComputeArbiters arbiters_;

  mutable std::mutex mu_;
  mutable std::condition_variable settled_cv_;
  std::map<std::string, NodeGpu> gpus_;  // by UUID
  LimitsListener listener_;
  std::map<std::string, Pending> pending_;        // by key
  std::map<std::string, HandoffResult> results_;  // by key
  std::string last_list_error_;
  LimitsListener released_;
  std::chrono::steady_clock::time_point last_release_check_{};

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace gpuslice
