// NodeAgent: the composition of the node agent's parts, driven by a control loop.
//
// Start() loads the configuration (which must be valid), asks the backend for the GPUs, computes
// the advertisement (AdvertiseNode: the agent serves exactly what it returns), serves one
// device-plugin server per resource, writes the NFD feature file and the CDI spec, and starts
// MPS daemons. RunOnce() is one turn of the loop: health events, config changes, kubelet
// restarts, dead MPS daemons. A broken new config keeps the old one running and logs why.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backends/gpu_backend.h"
#include "backends/mps_control.h"
#include "core/advertised_resources.h"
#include "core/sharing_config.h"
#include "node_agent/agent_isolation.h"
#include "node_agent/cdi_spec_writer.h"
#include "node_agent/config_source.h"
#include "node_agent/feature_file_writer.h"
#include "node_agent/health_tracker.h"
#include "node_agent/mps_daemon_supervisor.h"
#include "node_agent/plugin_manager.h"
#include "node_agent/preferred_allocator.h"

namespace gpuslice {

struct NodeAgentOptions {
  std::string config_path;  // "" = the built-in default configuration
  // The GPU Operator's flow instead of config_path: named configurations in a directory, one
  // chosen by a node label read from `node_labels_file` (see config_source.h).
  NamedConfigOptions named;
  std::string node_labels_file;
  std::string device_plugin_dir = "/var/lib/kubelet/device-plugins/";
  std::string kubelet_socket_name = "kubelet.sock";
  std::string features_file = "/etc/kubernetes/node-feature-discovery/features.d/gpuslice";
  std::string cdi_dir = "/var/run/cdi";
  std::string mps_root = "/run/nvidia/mps";
  std::string mig_minors_file = "/proc/driver/nvidia-caps/mig-minors";
  std::set<std::uint64_t> ignored_xids = HealthTracker::DefaultIgnoredXids();
  // --replica-policy; unset = the config's flags.plugin.sharedDevicesAllocationPolicy.
  std::optional<ReplicaPolicy> replica_policy;
  // Longest a RunOnce waits for health events; also how often files are polled.
  std::chrono::milliseconds poll_interval{100};
  // The driver isolation tier (docs/isolation.md).
  AgentIsolationOptions isolation;
  // The command the CDI spec gives the runtime as the createContainer hook (argv[0] = path).
  std::vector<std::string> hook_command;
};

// The configuration the agent would start with under `options` (for decisions taken before the
// agent exists, such as flags.failOnInitError when the GPU backend cannot start).
Result<SharingConfig> LoadStartupConfig(const NodeAgentOptions& options);

class NodeAgent {
 public:
  // `backend` and `mps_control` must outlive the agent.
  NodeAgent(NodeAgentOptions options, GpuBackend& backend, MpsControl& mps_control);
  // With a configuration source of the caller's (tests, a future API-server label watch).
  NodeAgent(NodeAgentOptions options, GpuBackend& backend, MpsControl& mps_control,
            std::unique_ptr<ConfigSource> config_source);
  ~NodeAgent();

  Status Start();
  void RunOnce();
  // Asks the next RunOnce to reload the configuration (SIGHUP). Thread-safe.
  void RequestReload() { reload_requested_ = true; }
  // Stops the servers (removing their sockets) and the MPS daemons.
  void Stop();
  // Gives the agent the driver's memory-limit interface and the MPS v3 control (either may be
  // null). Call before Start().
  void SetIsolationDrivers(MemoryLimitDriver* limits, MpsV3Control* mps);

  // For tests and benchmarks.
  const NodeAdvertisement& advertisement() const { return advertisement_; }
  // The configuration source as last applied (name, file, why it was chosen).
  const ConfigSnapshot& applied_config() const { return applied_; }
  PluginManager& plugins() { return plugins_; }
  AgentIsolation* isolation() { return isolation_.get(); }

  // Issue 13 node side (wired by main, see allocation_handoff.h and node_capacity.h); set before
  // Start. `on_publish` runs after every push to the kubelet (config applied, health changed)
  // with the advertisement, the GPUs and device health; `fractional_allocate` runs in Allocate
  // of gpuslice.io/gpu after the allocator.
  using PublishListener = std::function<void(const NodeAdvertisement&, const std::vector<GpuInfo>&,
                                             const std::function<bool(const AdvertisedDevice&)>&)>;
  void SetPublishListener(PublishListener listener) { on_publish_ = std::move(listener); }
  void SetFractionalAllocateHook(decltype(ResourceState::after_allocate) hook) {
    fractional_allocate_ = std::move(hook);
  }
  std::string kubelet_socket() const;

 private:
  // Parses a snapshot of the config source; the built-in default when it names no file.
  static Result<SharingConfig> ParseSnapshot(const ConfigSnapshot& snapshot);
  // Re-lists the GPUs and re-advertises under `config`; on error nothing changes.
  Status Apply(const SharingConfig& config);
  // Pushes the current advertisement with current health to the servers.
  Status Publish();
  void HandleHealthEvents(const std::vector<HealthEvent>& events);
  void CheckConfig();
  void CheckKubelet();

  NodeAgentOptions options_;
  GpuBackend& backend_;
  MpsDaemonSupervisor mps_;
  PluginManager plugins_;
  FeatureFileWriter features_;
  CdiSpecWriter cdi_;
  HealthTracker health_;

  std::unique_ptr<ConfigSource> config_source_;
  std::unique_ptr<AgentIsolation> isolation_;
  std::optional<SharingConfig> config_;
  ConfigSnapshot seen_;            // what the source held when last looked at
  ConfigSnapshot applied_;         // what is running
  std::string source_error_;       // the source's last error, logged once
  std::int64_t started_unix_ = 0;  // nvidia.com/gfd.timestamp: when the agent started
  std::vector<GpuInfo> gpus_;
  DriverInfo driver_;
  NodeAdvertisement advertisement_;
  std::map<std::string, int> mig_cap_minors_;
  bool health_seeded_ = false;
  bool logged_no_devices_ = false;

  struct KubeletSocketId {
    bool exists = false;
    std::uint64_t inode = 0;
    std::int64_t change_ns = 0;
    bool operator==(const KubeletSocketId&) const = default;
  };
  KubeletSocketId KubeletSocketNow() const;
  KubeletSocketId kubelet_id_;

  PublishListener on_publish_;
  decltype(ResourceState::after_allocate) fractional_allocate_;

  std::atomic<bool> reload_requested_{false};
  std::chrono::steady_clock::time_point last_config_poll_{};
};

}  // namespace gpuslice
