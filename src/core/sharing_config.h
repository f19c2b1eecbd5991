// The sharing configuration: NVIDIA's device-plugin config file format (`version: v1`) plus
// gpuslice's own `gpuslice:` section.
//
// Files written for NVIDIA's k8s-device-plugin / GPU Feature Discovery load unchanged. Where
// NVIDIA accepts a field but ignores it (per-resource `devices`, `rename` on sharing resources),
// gpuslice honours it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gpuslice {

enum class MigStrategy { kNone, kSingle, kMixed };
enum class DeviceListStrategy { kEnvvar, kVolumeMounts, kCdiAnnotations, kCdiCri };
enum class DeviceIdStrategy { kUuid, kIndex };
enum class SharingStrategy { kNone, kTimeSlicing, kMps };

std::string_view MigStrategyName(MigStrategy s);                // "none" | "single" | "mixed"
std::string_view DeviceListStrategyName(DeviceListStrategy s);  // "envvar", "volume-mounts", ...
std::string_view DeviceIdStrategyName(DeviceIdStrategy s);      // "uuid" | "index"
std::string_view SharingStrategyName(SharingStrategy s);        // "none" | "time-slicing" | "mps"

// Which devices a setting applies to: `all`, a count (the first N), or a list of GPU indices
// ("0"), MIG indices ("0:1" = GPU 0, MIG device 1), GPU UUIDs or MIG UUIDs.
struct DeviceSelector {
  enum class Kind { kAll, kCount, kList };
  Kind kind = Kind::kAll;
  int count = 0;                 // kCount
  std::vector<std::string> ids;  // kList, as written; indices canonical ("007" -> "7")

  static DeviceSelector All() { return {}; }
  bool operator==(const DeviceSelector&) const = default;
};

// True when the selector names a device on a MIG index ("0:1") or MIG UUID ("MIG-...").
bool SelectsMigDevices(const DeviceSelector& selector);

// One entry of sharing.timeSlicing.resources / sharing.mps.resources.
struct ReplicatedResource {
  std::string name;        // resource to share, e.g. "nvidia.com/gpu", "nvidia.com/mig-1g.5gb"
  std::string rename;      // advertised name instead of `name` (empty = not renamed)
  DeviceSelector devices;  // which devices of `name` are replicated
  int replicas = 0;        // >= 2 for time-slicing; >= 2 for MPS
  int source_line = 0;     // 1-based line in the config file, for messages

  bool operator==(const ReplicatedResource&) const = default;
};

struct ReplicatedResources {
  bool rename_by_default = false;  // append ".shared" to every shared resource name
  // Reject requests for more than one replica. Parsing sets it to true for MPS when the file
  // leaves it out, as NVIDIA's plugin does.
  bool fail_requests_greater_than_one = false;
  std::vector<ReplicatedResource> resources;

  bool operator==(const ReplicatedResources&) const = default;
};

struct PluginFlags {
  bool pass_device_specs = false;
  std::vector<DeviceListStrategy> device_list_strategies = {DeviceListStrategy::kEnvvar};
  DeviceIdStrategy device_id_strategy = DeviceIdStrategy::kUuid;
  std::string container_driver_root = "/driver-root";
  std::string cdi_annotation_prefix = "cdi.k8s.io/";
  std::string nvidia_ctk_path = "/usr/bin/nvidia-ctk";
  std::string kubelet_socket;                  // empty = the kubelet's default socket
  std::vector<std::string> cdi_feature_flags;  // passed through to CDI spec generation
  // How GetPreferredAllocation picks replicas of shared devices (NVIDIA v0.20):
  // "distributed" (spread over GPUs, the default) or "packed" (fill one GPU first).
  std::string shared_devices_allocation_policy = "distributed";

  bool operator==(const PluginFlags&) const = default;
};

struct GfdFlags {
  bool oneshot = false;
  bool no_timestamp = false;
  std::string output_file = "/etc/kubernetes/node-feature-discovery/features.d/gfd";
  // A Go duration ("60s", "1m30s"), "<n>ns" for a bare integer (nanoseconds, as NVIDIA reads
  // it), or "infinite" (label once, then sleep forever).
  std::string sleep_interval = "60s";
  std::string machine_type_file = "/sys/class/dmi/id/product_name";

  bool operator==(const GfdFlags&) const = default;
};

struct Flags {
  MigStrategy mig_strategy = MigStrategy::kNone;
  bool fail_on_init_error = true;
  std::string nvidia_driver_root = "/";
  bool gds_enabled = false;
  bool mofed_enabled = false;
  // Accepted for compatibility with newer NVIDIA plugin releases.
  bool restart_on_device_unhealthy = false;
  bool gdrcopy_enabled = false;
  bool use_node_feature_api = false;
  std::string nvidia_dev_root;                     // empty = nvidia_driver_root
  std::string mps_root;                            // host folder for MPS pipes; empty = unset
  std::string device_discovery_strategy = "auto";  // "auto" | "nvml" | "tegra"
  PluginFlags plugin;
  GfdFlags gfd;

  bool operator==(const Flags&) const = default;
};

// `imex:` (fabric-attached devices): channel IDs to inject, [] or [0].
struct ImexSettings {
  std::vector<int> channel_ids;
  bool required = false;

  bool operator==(const ImexSettings&) const = default;
};

// `resources.gpus` / `resources.mig`: renames a device class by product-name pattern.
struct ResourcePattern {
  std::string pattern;  // glob on the product name ("*", "*A100*") or MIG profile ("1g.5gb")
  std::string name;     // resource name without the "nvidia.com/" prefix, e.g. "gpu"

  bool operator==(const ResourcePattern&) const = default;
};

// How fractional containers share a GPU's compute (`gpuslice.fractional.compute`).
enum class FractionalCompute {
  kArbiter,  // "arbiter": the shim's compute arbiter time-slices by gpuslice.io/gpu-compute
  // "mps": on GPUs with MPS v3 (driver r615+, docs/isolation.md) one MPS v3 server per GPU and
  // a namespace per container whose active-thread percentage is its gpuslice.io/gpu-compute;
  // elsewhere the arbiter, as with "arbiter".
  kMps,
};

// gpuslice's own settings (`gpuslice:` section), absent from NVIDIA's format.
struct FractionalSharing {
  bool enabled = false;    // advertise gpuslice.io/gpu slots on the selected GPUs
  DeviceSelector devices;  // which GPUs take fractional requests
  int slots_per_gpu = 16;  // most containers one GPU may be shared by, 1..1024
  FractionalCompute compute = FractionalCompute::kArbiter;

  bool operator==(const FractionalSharing&) const = default;
};

struct GpusliceSettings {
  FractionalSharing fractional;

  bool operator==(const GpusliceSettings&) const = default;
};

struct SharingConfig {
  std::string version = "v1";
  Flags flags;
  std::optional<ReplicatedResources> time_slicing;
  std::optional<ReplicatedResources> mps;
  std::vector<ResourcePattern> gpu_resources;  // resources.gpus
  std::vector<ResourcePattern> mig_resources;  // resources.mig (NVIDIA's key; "migs" accepted)
  ImexSettings imex;
  GpusliceSettings gpuslice;

  bool operator==(const SharingConfig&) const = default;

  // Which sharing strategy is configured (time-slicing and MPS together are rejected at parse).
  SharingStrategy sharing_strategy() const;
  // The time-slicing or MPS settings in force, or nullptr when sharing is off.
  const ReplicatedResources* replicated() const;
};

// Parses and validates a config from YAML text. Never throws. `source_name` (usually the file
// path) prefixes every error message, with the 1-based line and the field path:
// "config.yaml:7: sharing.timeSlicing.resources[0].replicas: must be an integer >= 2, got "two"".
// Unknown fields are errors at every level. See docs/configuration.md.
Result<SharingConfig> ParseSharingConfig(std::string_view yaml_text,
                                         std::string_view source_name = "<config>");

// Reads and parses a config file. A file that cannot be read is Unavailable; bad content is
// InvalidArgument, as from ParseSharingConfig.
Result<SharingConfig> LoadSharingConfigFile(const std::string& path);

// Writes `config` back as YAML in the same format (every field, defaults included), such that
// ParseSharingConfig(FormatSharingConfig(c)) gives back `c` except for source lines.
std::string FormatSharingConfig(const SharingConfig& config);

// The built-in default: version v1, migStrategy none, no sharing.
SharingConfig DefaultSharingConfig();

}  // namespace gpuslice
