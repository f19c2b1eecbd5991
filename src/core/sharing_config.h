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

std::string_view MigStrategyName(MigStrategy s);             // "none" | "single" | "mixed"
std::string_view DeviceListStrategyName(DeviceListStrategy s);  // "envvar", "volume-mounts", ...
std::string_view DeviceIdStrategyName(DeviceIdStrategy s);   // "uuid" | "index"
std::string_view SharingStrategyName(SharingStrategy s);     // "none" | "time-slicing" | "mps"

// Which devices a setting applies to: `all`, a count (the first N), or a list of GPU indices
// ("0"), MIG indices ("0:1" = GPU 0, MIG device 1), GPU UUIDs or MIG UUIDs.
struct DeviceSelector {
  enum class Kind { kAll, kCount, kList };
  Kind kind = Kind::kAll;
  int count = 0;                  // kCount
  std::vector<std::string> ids;   // kList, as written

  static DeviceSelector All() { return {}; }
  bool operator==(const DeviceSelector&) const = default;
};

// One entry of sharing.timeSlicing.resources / sharing.mps.resources.
struct ReplicatedResource {
  std::string name;        // resource to share, e.g. "nvidia.com/gpu", "nvidia.com/mig-1g.5gb"
  std::string rename;      // advertised name instead of `name` (empty = not renamed)
  DeviceSelector devices;  // which devices of `name` are replicated
  int replicas = 0;        // >= 2 for time-slicing; >= 2 for MPS
  int source_line = 0;     // 1-based line in the config file, for messages
};

struct ReplicatedResources {
  bool rename_by_default = false;          // append ".shared" to every shared resource name
  bool fail_requests_greater_than_one = false;
  std::vector<ReplicatedResource> resources;
};

struct PluginFlags {
  bool pass_device_specs = false;
  std::vector<DeviceListStrategy> device_list_strategies = {DeviceListStrategy::kEnvvar};
  DeviceIdStrategy device_id_strategy = DeviceIdStrategy::kUuid;
  std::string container_driver_root = "/driver-root";
  std::string cdi_annotation_prefix = "cdi.k8s.io/";
  std::string nvidia_ctk_path = "/usr/bin/nvidia-ctk";
};

struct GfdFlags {
  bool oneshot = false;
  bool no_timestamp = false;
  std::string output_file = "/etc/kubernetes/node-feature-discovery/features.d/gfd";
  std::string sleep_interval = "60s";
  std::string machine_type_file = "/sys/class/dmi/id/product_name";
};

struct Flags {
  MigStrategy mig_strategy = MigStrategy::kNone;
  bool fail_on_init_error = true;
  std::string nvidia_driver_root = "/";
  bool gds_enabled = false;
  bool mofed_enabled = false;
  PluginFlags plugin;
  GfdFlags gfd;
};

// `resources.gpus` / `resources.migs`: renames a device class by product-name pattern.
struct ResourcePattern {
  std::string pattern;  // glob on the product name ("*", "*A100*") or MIG profile ("1g.5gb")
  std::string name;     // resource name without the "nvidia.com/" prefix, e.g. "gpu"
};

// gpuslice's own settings (`gpuslice:` section), absent from NVIDIA's format.
struct FractionalSharing {
  bool enabled = false;              // advertise gpuslice.io/gpu slots on the selected GPUs
  DeviceSelector devices;            // which GPUs take fractional requests
  int slots_per_gpu = 16;            // most containers one GPU may be shared by
};

struct GpusliceSettings {
  FractionalSharing fractional;
};

struct SharingConfig {
  std::string version = "v1";
  Flags flags;
  std::optional<ReplicatedResources> time_slicing;
  std::optional<ReplicatedResources> mps;
  std::vector<ResourcePattern> gpu_resources;  // resources.gpus
  std::vector<ResourcePattern> mig_resources;  // resources.migs
  GpusliceSettings gpuslice;

  // Which sharing strategy is configured (time-slicing and MPS together are rejected at parse).
  SharingStrategy sharing_strategy() const;
  // The time-slicing or MPS settings in force, or nullptr when sharing is off.
  const ReplicatedResources* replicated() const;
};

// Parses a config from YAML text. `source_name` (usually the file path) prefixes every error
// message, with the line and field: "config.yaml:7: sharing.timeSlicing.resources[0].replicas:
// must be an integer >= 2 (got "two")".
Result<SharingConfig> ParseSharingConfig(std::string_view yaml_text,
                                         std::string_view source_name = "<config>");

// Reads and parses a config file.
Result<SharingConfig> LoadSharingConfigFile(const std::string& path);

// The built-in default: version v1, migStrategy none, no sharing.
SharingConfig DefaultSharingConfig();

}  // namespace gpuslice
