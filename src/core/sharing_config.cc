// Parsing and validation of the sharing configuration. The YAML walking helpers live in
// sharing_config_yaml.cc; this file knows the format: which fields exist, their defaults, and
// which combinations are meaningless.
#include "core/sharing_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/resource_names.h"
#include "core/sharing_config_yaml.h"

namespace gpuslice {
namespace {

using sharing_config_internal::ErrorSink;
using sharing_config_internal::IndexPath;
using sharing_config_internal::IsGpuIndex;
using sharing_config_internal::IsGpuUuid;
using sharing_config_internal::IsMigIndex;
using sharing_config_internal::IsMigProfile;
using sharing_config_internal::IsMigRef;
using sharing_config_internal::IsMigUuid;
using sharing_config_internal::JoinAccepted;
using sharing_config_internal::LineOf;
using sharing_config_internal::StrictMap;

constexpr std::size_t kMaxConfigBytes = std::size_t{1} << 20;
constexpr std::int64_t kMaxReplicas = 1 << 20;  // far beyond any GPU; keeps counts in an int
constexpr std::int64_t kMinSlotsPerGpu = 1;
constexpr std::int64_t kMaxSlotsPerGpu = 1024;
constexpr std::size_t kMaxResourceNameLength = 63;

using Fields = std::vector<std::string_view>;

const Fields& TopFields() {
  static const Fields f = {"version", "flags", "resources", "sharing", "imex", "gpuslice"};
  return f;
}
const Fields& FlagFields() {
  static const Fields f = {"migStrategy",
                           "failOnInitError",
                           "restartOnDeviceUnhealthy",
                           "nvidiaDriverRoot",
                           "nvidiaDevRoot",
                           "mpsRoot",
                           "gdsEnabled",
                           "mofedEnabled",
                           "gdrcopyEnabled",
                           "useNodeFeatureAPI",
                           "deviceDiscoveryStrategy",
                           "plugin",
                           "gfd"};
  return f;
}
const Fields& PluginFields() {
  static const Fields f = {
      "passDeviceSpecs",     "deviceListStrategy", "deviceIDStrategy",
      "cdiAnnotationPrefix", "nvidiaCTKPath",      "containerDriverRoot",
      "kubeletSocket",       "cdiFeatureFlags",    "sharedDevicesAllocationPolicy"};
  return f;
}
const Fields& GfdFields() {
  static const Fields f = {"oneshot", "noTimestamp", "sleepInterval", "outputFile",
                           "machineTypeFile"};
  return f;
}
const Fields& MigStrategies() {
  static const Fields f = {"none", "single", "mixed"};
  return f;
}
const Fields& DeviceListStrategies() {
  static const Fields f = {"envvar", "volume-mounts", "cdi-annotations", "cdi-cri"};
  return f;
}
const Fields& DeviceIdStrategies() {
  static const Fields f = {"uuid", "index"};
  return f;
}

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Where things were in the file, for validation messages after the whole file is read.
struct EntryLines {
  int entry = 0;
  int name = 0;
  int rename = 0;
  int devices = 0;
  std::vector<int> device_items;
};

struct SelectorLines {
  int devices = 0;
  std::vector<int> device_items;
};

// What a replicated resource's `name` refers to.
enum class NameClass { kUnknown, kGpu, kMig };

class ConfigParser {
 public:
  explicit ConfigParser(std::string_view source) : errors_(source) {}

  Result<SharingConfig> Parse(const YAML::Node& document);

 private:
  // Optional scalar fields: left at their default when absent or null.
  Status OptionalBool(const StrictMap& map, std::string_view key, bool* out) const;
  Status OptionalString(const StrictMap& map, std::string_view key, std::string* out) const;
  Status OptionalEnum(const StrictMap& map, std::string_view key, const Fields& accepted,
                      std::string* out) const;

  Status ParseFlags(const YAML::Node& node, Flags* flags);
  Status ParsePluginFlags(const YAML::Node& node, PluginFlags* plugin) const;
  Status ParseGfdFlags(const YAML::Node& node, GfdFlags* gfd) const;
  Status ParseResources(const YAML::Node& node, SharingConfig* config) const;
  Result<std::vector<ResourcePattern>> ParsePatterns(const YAML::Node& node,
                                                     const std::string& path) const;
  Status ParseSharing(const YAML::Node& node, SharingConfig* config);
  Result<ReplicatedResources> ParseReplicated(const YAML::Node& node, const std::string& path,
                                              bool is_mps);
  Status ParseImex(const YAML::Node& node, ImexSettings* imex) const;
  Status ParseGpuslice(const YAML::Node& node, GpusliceSettings* settings);
  Result<DeviceSelector> ParseSelector(const YAML::Node& node, const std::string& path,
                                       SelectorLines* lines) const;

  Status Validate(const SharingConfig& config) const;
  Status ValidateReplicated(const SharingConfig& config) const;
  Status ValidateFractional(const SharingConfig& config) const;
  NameClass Classify(const SharingConfig& config, const std::string& name) const;
  std::string EntryPath(std::size_t i) const { return IndexPath(section_path_ + ".resources", i); }

  ErrorSink errors_;
  int mig_strategy_line_ = 0;
  int section_line_ = 0;      // line of sharing.timeSlicing / sharing.mps
  std::string section_path_;  // "sharing.timeSlicing" or "sharing.mps"
  std::vector<EntryLines> entry_lines_;
  SelectorLines fractional_lines_;
};

Status ConfigParser::OptionalBool(const StrictMap& map, std::string_view key, bool* out) const {
  if (!map.Has(key)) return Status::Ok();
  GPUSLICE_ASSIGN_OR_RETURN(
      *out, sharing_config_internal::ReadBool(errors_, map.Get(key), map.PathOf(key)));
  return Status::Ok();
}

Status ConfigParser::OptionalString(const StrictMap& map, std::string_view key,
                                    std::string* out) const {
  if (!map.Has(key)) return Status::Ok();
  GPUSLICE_ASSIGN_OR_RETURN(
      *out, sharing_config_internal::ReadString(errors_, map.Get(key), map.PathOf(key)));
  return Status::Ok();
}

Status ConfigParser::OptionalEnum(const StrictMap& map, std::string_view key,
                                  const Fields& accepted, std::string* out) const {
  if (!map.Has(key)) return Status::Ok();
  GPUSLICE_ASSIGN_OR_RETURN(
      *out, sharing_config_internal::ReadEnum(errors_, map.Get(key), map.PathOf(key), accepted));
  return Status::Ok();
}

Result<SharingConfig> ConfigParser::Parse(const YAML::Node& document) {
  GPUSLICE_ASSIGN_OR_RETURN(StrictMap top, StrictMap::Read(errors_, document, "", TopFields()));
  SharingConfig config;
  // As NVIDIA's parser: a file without `version` is v1, so files it accepts load here too.
  if (top.Has("version")) {
    GPUSLICE_ASSIGN_OR_RETURN(config.version, sharing_config_internal::ReadEnum(
                                                  errors_, top.Get("version"), "version", {"v1"}));
  }
  if (top.Has("flags")) GPUSLICE_RETURN_IF_ERROR(ParseFlags(top.Get("flags"), &config.flags));
  if (top.Has("resources")) GPUSLICE_RETURN_IF_ERROR(ParseResources(top.Get("resources"), &config));
  if (top.Has("sharing")) GPUSLICE_RETURN_IF_ERROR(ParseSharing(top.Get("sharing"), &config));
  if (top.Has("imex")) GPUSLICE_RETURN_IF_ERROR(ParseImex(top.Get("imex"), &config.imex));
  if (top.Has("gpuslice")) {
    GPUSLICE_RETURN_IF_ERROR(ParseGpuslice(top.Get("gpuslice"), &config.gpuslice));
  }
  GPUSLICE_RETURN_IF_ERROR(Validate(config));
  return config;
}

Status ConfigParser::ParseFlags(const YAML::Node& node, Flags* flags) {
  GPUSLICE_ASSIGN_OR_RETURN(StrictMap map, StrictMap::Read(errors_, node, "flags", FlagFields()));
  std::string mig_strategy(MigStrategyName(flags->mig_strategy));
  GPUSLICE_RETURN_IF_ERROR(OptionalEnum(map, "migStrategy", MigStrategies(), &mig_strategy));
  if (mig_strategy == "single") flags->mig_strategy = MigStrategy::kSingle;
  if (mig_strategy == "mixed") flags->mig_strategy = MigStrategy::kMixed;
  mig_strategy_line_ = LineOf(map.Get("migStrategy"));
  GPUSLICE_RETURN_IF_ERROR(OptionalBool(map, "failOnInitError", &flags->fail_on_init_error));
  GPUSLICE_RETURN_IF_ERROR(
      OptionalBool(map, "restartOnDeviceUnhealthy", &flags->restart_on_device_unhealthy));
  GPUSLICE_RETURN_IF_ERROR(OptionalString(map, "nvidiaDriverRoot", &flags->nvidia_driver_root));
  GPUSLICE_RETURN_IF_ERROR(OptionalString(map, "nvidiaDevRoot", &flags->nvidia_dev_root));
  GPUSLICE_RETURN_IF_ERROR(OptionalString(map, "mpsRoot", &flags->mps_root));
  GPUSLICE_RETURN_IF_ERROR(OptionalBool(map, "gdsEnabled", &flags->gds_enabled));
  GPUSLICE_RETURN_IF_ERROR(OptionalBool(map, "mofedEnabled", &flags->mofed_enabled));
  GPUSLICE_RETURN_IF_ERROR(OptionalBool(map, "gdrcopyEnabled", &flags->gdrcopy_enabled));
  GPUSLICE_RETURN_IF_ERROR(OptionalBool(map, "useNodeFeatureAPI", &flags->use_node_feature_api));
  GPUSLICE_RETURN_IF_ERROR(OptionalEnum(map, "deviceDiscoveryStrategy", {"auto", "nvml", "tegra"},
                                        &flags->device_discovery_strategy));
  if (map.Has("plugin"))
    GPUSLICE_RETURN_IF_ERROR(ParsePluginFlags(map.Get("plugin"), &flags->plugin));
  if (map.Has("gfd")) GPUSLICE_RETURN_IF_ERROR(ParseGfdFlags(map.Get("gfd"), &flags->gfd));
  return Status::Ok();
}

Status ConfigParser::ParsePluginFlags(const YAML::Node& node, PluginFlags* plugin) const {
  GPUSLICE_ASSIGN_OR_RETURN(StrictMap map,
                            StrictMap::Read(errors_, node, "flags.plugin", PluginFields()));
  GPUSLICE_RETURN_IF_ERROR(OptionalBool(map, "passDeviceSpecs", &plugin->pass_device_specs));
  if (map.Has("deviceListStrategy")) {
    const std::string path = map.PathOf("deviceListStrategy");
    const YAML::Node value = map.Get("deviceListStrategy");
    GPUSLICE_ASSIGN_OR_RETURN(std::vector<std::string> names,
                              sharing_config_internal::ReadStringOrList(errors_, value, path));
    if (names.empty()) {
      return errors_.At(
          value, path,
          "must name at least one strategy; accepted: " + JoinAccepted(DeviceListStrategies()));
    }
    plugin->device_list_strategies.clear();
    for (const std::string& name : names) {
      const Fields& all = DeviceListStrategies();
      const auto it = std::find(all.begin(), all.end(), name);
      if (it == all.end()) {
        return errors_.At(value, path,
                          "unknown value " + Quoted(name) + "; accepted: " + JoinAccepted(all));
      }
      const auto strategy = static_cast<DeviceListStrategy>(it - all.begin());
      if (std::find(plugin->device_list_strategies.begin(), plugin->device_list_strategies.end(),
                    strategy) == plugin->device_list_strategies.end()) {
        plugin->device_list_strategies.push_back(strategy);
      }
    }
  }
  std::string id_strategy(DeviceIdStrategyName(plugin->device_id_strategy));
  GPUSLICE_RETURN_IF_ERROR(
      OptionalEnum(map, "deviceIDStrategy", DeviceIdStrategies(), &id_strategy));
  plugin->device_id_strategy =
      id_strategy == "index" ? DeviceIdStrategy::kIndex : DeviceIdStrategy::kUuid;
  GPUSLICE_RETURN_IF_ERROR(
      OptionalString(map, "cdiAnnotationPrefix", &plugin->cdi_annotation_prefix));
  GPUSLICE_RETURN_IF_ERROR(OptionalString(map, "nvidiaCTKPath", &plugin->nvidia_ctk_path));
  GPUSLICE_RETURN_IF_ERROR(
      OptionalString(map, "containerDriverRoot", &plugin->container_driver_root));
  GPUSLICE_RETURN_IF_ERROR(OptionalString(map, "kubeletSocket", &plugin->kubelet_socket));
  if (map.Has("cdiFeatureFlags")) {
    GPUSLICE_ASSIGN_OR_RETURN(plugin->cdi_feature_flags, sharing_config_internal::ReadStringOrList(
                                                             errors_, map.Get("cdiFeatureFlags"),
                                                             map.PathOf("cdiFeatureFlags")));
  }
  // NVIDIA's plugin refuses any other value at start ("invalid
  // --shared-devices-allocation-policy option").
  return OptionalEnum(map, "sharedDevicesAllocationPolicy", {"distributed", "packed"},
                      &plugin->shared_devices_allocation_policy);
}

Status ConfigParser::ParseGfdFlags(const YAML::Node& node, GfdFlags* gfd) const {
  GPUSLICE_ASSIGN_OR_RETURN(StrictMap map,
                            StrictMap::Read(errors_, node, "flags.gfd", GfdFields()));
  GPUSLICE_RETURN_IF_ERROR(OptionalBool(map, "oneshot", &gfd->oneshot));
  GPUSLICE_RETURN_IF_ERROR(OptionalBool(map, "noTimestamp", &gfd->no_timestamp));
  if (map.Has("sleepInterval")) {
    GPUSLICE_ASSIGN_OR_RETURN(gfd->sleep_interval,
                              sharing_config_internal::ReadDuration(
                                  errors_, map.Get("sleepInterval"), map.PathOf("sleepInterval")));
  }
  GPUSLICE_RETURN_IF_ERROR(OptionalString(map, "outputFile", &gfd->output_file));
  GPUSLICE_RETURN_IF_ERROR(OptionalString(map, "machineTypeFile", &gfd->machine_type_file));
  return Status::Ok();
}

Status ConfigParser::ParseResources(const YAML::Node& node, SharingConfig* config) const {
  GPUSLICE_ASSIGN_OR_RETURN(StrictMap map,
                            StrictMap::Read(errors_, node, "resources", {"gpus", "mig", "migs"}));
  if (map.Has("mig") && map.Has("migs")) {
    return errors_.At(map.Key("migs"), "resources",
                      "set \"mig\" (NVIDIA's name) or \"migs\", not both");
  }
  if (map.Has("gpus")) {
    GPUSLICE_ASSIGN_OR_RETURN(config->gpu_resources,
                              ParsePatterns(map.Get("gpus"), map.PathOf("gpus")));
  }
  for (std::string_view key : {"mig", "migs"}) {
    if (map.Has(key)) {
      GPUSLICE_ASSIGN_OR_RETURN(config->mig_resources,
                                ParsePatterns(map.Get(key), map.PathOf(key)));
    }
  }
  return Status::Ok();
}

Result<std::vector<ResourcePattern>> ConfigParser::ParsePatterns(const YAML::Node& node,
                                                                 const std::string& path) const {
  if (!node.IsSequence()) {
    return errors_.At(
        node, path,
        "must be a list of {pattern, name}, got " + sharing_config_internal::Describe(node));
  }
  std::vector<ResourcePattern> patterns;
  std::size_t i = 0;
  for (auto it = node.begin(); it != node.end(); ++it, ++i) {
    GPUSLICE_ASSIGN_OR_RETURN(
        StrictMap map, StrictMap::Read(errors_, *it, IndexPath(path, i), {"pattern", "name"}));
    ResourcePattern pattern;
    for (std::string_view key : {"pattern", "name"}) {
      if (!map.Has(key)) {
        return errors_.At(map.node(), map.PathOf(key),
                          "missing; every entry needs a pattern and a name");
      }
    }
    GPUSLICE_ASSIGN_OR_RETURN(
        pattern.pattern,
        sharing_config_internal::ReadString(errors_, map.Get("pattern"), map.PathOf("pattern")));
    if (pattern.pattern.empty()) {
      return errors_.At(map.Get("pattern"), map.PathOf("pattern"),
                        "must not be empty; use \"*\" to match every device");
    }
    GPUSLICE_ASSIGN_OR_RETURN(std::string full, sharing_config_internal::ReadResourceName(
                                                    errors_, map.Get("name"), map.PathOf("name")));
    pattern.name = full.substr(names::kNvidiaPrefix.size());
    patterns.push_back(std::move(pattern));
  }
  return patterns;
}

Status ConfigParser::ParseSharing(const YAML::Node& node, SharingConfig* config) {
  GPUSLICE_ASSIGN_OR_RETURN(StrictMap map,
                            StrictMap::Read(errors_, node, "sharing", {"timeSlicing", "mps"}));
  // As NVIDIA's parser: `timeSlicing:` with no value is an error ("no resources specified"),
  // `mps:` with no value means no MPS.
  if (map.Present("timeSlicing") && !map.Has("timeSlicing")) {
    return errors_.At(map.Key("timeSlicing"), map.PathOf("timeSlicing"),
                      "is empty; list the resources to share under timeSlicing.resources, or "
                      "remove the key");
  }
  if (map.Has("timeSlicing") && map.Has("mps")) {
    return errors_.At(map.Key("mps"), "sharing",
                      "timeSlicing and mps cannot both be set; choose one sharing strategy");
  }
  if (map.Has("timeSlicing")) {
    GPUSLICE_ASSIGN_OR_RETURN(config->time_slicing,
                              ParseReplicated(map.Get("timeSlicing"), map.PathOf("timeSlicing"),
                                              /*is_mps=*/false));
  }
  if (map.Has("mps")) {
    GPUSLICE_ASSIGN_OR_RETURN(config->mps,
                              ParseReplicated(map.Get("mps"), map.PathOf("mps"), /*is_mps=*/true));
  }
  return Status::Ok();
}

Result<ReplicatedResources> ConfigParser::ParseReplicated(const YAML::Node& node,
                                                          const std::string& path, bool is_mps) {
  GPUSLICE_ASSIGN_OR_RETURN(
      StrictMap map,
      StrictMap::Read(errors_, node, path,
                      {"renameByDefault", "failRequestsGreaterThanOne", "resources"}));
  section_path_ = path;
  section_line_ = map.line();
  ReplicatedResources shared;
  // NVIDIA's plugin keeps MPS requests at one replica unless the file says otherwise.
  shared.fail_requests_greater_than_one = is_mps;
  GPUSLICE_RETURN_IF_ERROR(OptionalBool(map, "renameByDefault", &shared.rename_by_default));
  GPUSLICE_RETURN_IF_ERROR(
      OptionalBool(map, "failRequestsGreaterThanOne", &shared.fail_requests_greater_than_one));
  const std::string resources_path = map.PathOf("resources");
  if (!map.Has("resources")) {
    return errors_.At(map.node(), resources_path, "missing; list at least one resource to share");
  }
  const YAML::Node resources = map.Get("resources");
  if (!resources.IsSequence() || resources.size() == 0) {
    return errors_.At(resources, resources_path,
                      "must be a non-empty list of {name, replicas, devices, rename}, got " +
                          sharing_config_internal::Describe(resources));
  }
  std::size_t i = 0;
  for (auto it = resources.begin(); it != resources.end(); ++it, ++i) {
    const std::string entry_path = IndexPath(resources_path, i);
    GPUSLICE_ASSIGN_OR_RETURN(
        StrictMap entry,
        StrictMap::Read(errors_, *it, entry_path, {"name", "rename", "devices", "replicas"}));
    ReplicatedResource resource;
    EntryLines lines;
    lines.entry = entry.line();
    resource.source_line = lines.entry;
    if (!entry.Has("name")) {
      return errors_.At(entry.node(), entry.PathOf("name"),
                        "missing; e.g. nvidia.com/gpu or nvidia.com/mig-1g.5gb");
    }
    GPUSLICE_ASSIGN_OR_RETURN(resource.name, sharing_config_internal::ReadResourceName(
                                                 errors_, entry.Get("name"), entry.PathOf("name")));
    lines.name = LineOf(entry.Get("name"));
    if (entry.Has("rename")) {
      GPUSLICE_ASSIGN_OR_RETURN(
          resource.rename, sharing_config_internal::ReadResourceName(errors_, entry.Get("rename"),
                                                                     entry.PathOf("rename")));
      lines.rename = LineOf(entry.Get("rename"));
    }
    if (entry.Present("devices") && !entry.Has("devices")) {
      return errors_.At(entry.Key("devices"), entry.PathOf("devices"),
                        "is empty; write \"all\", a count, or a list of devices, or remove the "
                        "key (it defaults to all)");
    }
    if (entry.Has("devices")) {
      SelectorLines selector_lines;
      GPUSLICE_ASSIGN_OR_RETURN(
          resource.devices,
          ParseSelector(entry.Get("devices"), entry.PathOf("devices"), &selector_lines));
      lines.devices = selector_lines.devices;
      lines.device_items = std::move(selector_lines.device_items);
    }
    if (!entry.Has("replicas")) {
      return errors_.At(entry.node(), entry.PathOf("replicas"), "missing; must be an integer >= 2");
    }
    GPUSLICE_ASSIGN_OR_RETURN(
        const std::int64_t replicas,
        sharing_config_internal::ReadInt(errors_, entry.Get("replicas"), entry.PathOf("replicas"),
                                         2, kMaxReplicas, "an integer >= 2"));
    resource.replicas = static_cast<int>(replicas);
    shared.resources.push_back(std::move(resource));
    entry_lines_.push_back(std::move(lines));
  }
  return shared;
}

Result<DeviceSelector> ConfigParser::ParseSelector(const YAML::Node& node, const std::string& path,
                                                   SelectorLines* lines) const {
  lines->devices = LineOf(node);
  GPUSLICE_ASSIGN_OR_RETURN(DeviceSelector selector,
                            sharing_config_internal::ReadDeviceSelector(errors_, node, path));
  if (selector.kind == DeviceSelector::Kind::kList) {
    for (auto it = node.begin(); it != node.end(); ++it) lines->device_items.push_back(LineOf(*it));
  }
  return selector;
}

Status ConfigParser::ParseImex(const YAML::Node& node, ImexSettings* imex) const {
  GPUSLICE_ASSIGN_OR_RETURN(StrictMap map,
                            StrictMap::Read(errors_, node, "imex", {"channelIDs", "required"}));
  GPUSLICE_RETURN_IF_ERROR(OptionalBool(map, "required", &imex->required));
  if (!map.Has("channelIDs")) return Status::Ok();
  const YAML::Node ids = map.Get("channelIDs");
  const std::string path = map.PathOf("channelIDs");
  if (!ids.IsSequence()) {
    return errors_.At(ids, path,
                      "must be [] or [0], got " + sharing_config_internal::Describe(ids));
  }
  std::size_t i = 0;
  for (auto it = ids.begin(); it != ids.end(); ++it, ++i) {
    GPUSLICE_ASSIGN_OR_RETURN(
        const std::int64_t id,
        sharing_config_internal::ReadInt(errors_, *it, IndexPath(path, i), 0,
                                         std::numeric_limits<int>::max(), "a channel ID >= 0"));
    imex->channel_ids.push_back(static_cast<int>(id));
  }
  if (!(imex->channel_ids.empty() || imex->channel_ids == std::vector<int>{0})) {
    return errors_.At(ids, path, "must be [] or [0] (the only channel NVIDIA's plugin injects)");
  }
  return Status::Ok();
}

Status ConfigParser::ParseGpuslice(const YAML::Node& node, GpusliceSettings* settings) {
  GPUSLICE_ASSIGN_OR_RETURN(StrictMap map,
                            StrictMap::Read(errors_, node, "gpuslice", {"fractional"}));
  if (!map.Has("fractional")) return Status::Ok();
  GPUSLICE_ASSIGN_OR_RETURN(StrictMap fractional,
                            StrictMap::Read(errors_, map.Get("fractional"), "gpuslice.fractional",
                                            {"enabled", "devices", "slotsPerGpu", "compute"}));
  FractionalSharing& out = settings->fractional;
  GPUSLICE_RETURN_IF_ERROR(OptionalBool(fractional, "enabled", &out.enabled));
  if (fractional.Has("devices")) {
    GPUSLICE_ASSIGN_OR_RETURN(
        out.devices,
        ParseSelector(fractional.Get("devices"), fractional.PathOf("devices"), &fractional_lines_));
    for (std::size_t i = 0; i < out.devices.ids.size(); ++i) {
      if (IsMigRef(out.devices.ids[i])) {
        return errors_.At(fractional_lines_.device_items[i],
                          IndexPath(fractional.PathOf("devices"), i),
                          "fractional sharing takes whole GPUs; " + Quoted(out.devices.ids[i]) +
                              " is a MIG device");
      }
    }
  }
  if (fractional.Has("slotsPerGpu")) {
    GPUSLICE_ASSIGN_OR_RETURN(
        const std::int64_t slots,
        sharing_config_internal::ReadInt(errors_, fractional.Get("slotsPerGpu"),
                                         fractional.PathOf("slotsPerGpu"), kMinSlotsPerGpu,
                                         kMaxSlotsPerGpu, "an integer from 1 to 1024"));
    out.slots_per_gpu = static_cast<int>(slots);
  }
  std::string compute = "arbiter";
  GPUSLICE_RETURN_IF_ERROR(OptionalEnum(fractional, "compute", {"arbiter", "mps"}, &compute));
  out.compute = compute == "mps" ? FractionalCompute::kMps : FractionalCompute::kArbiter;
  return Status::Ok();
}

NameClass ConfigParser::Classify(const SharingConfig& config, const std::string& name) const {
  const std::string_view prefix = names::kNvidiaPrefix;
  if (config.gpu_resources.empty()) {
    if (name == names::kNvidiaGpu) return NameClass::kGpu;
  } else {
    for (const ResourcePattern& p : config.gpu_resources) {
      if (name == std::string(prefix) + p.name) return NameClass::kGpu;
    }
  }
  if (config.mig_resources.empty()) {
    const std::string_view mig_prefix = names::kNvidiaMigPrefix;
    if (name.starts_with(mig_prefix) &&
        IsMigProfile(std::string_view(name).substr(mig_prefix.size()))) {
      return NameClass::kMig;
    }
  } else {
    for (const ResourcePattern& p : config.mig_resources) {
      if (name == std::string(prefix) + p.name) return NameClass::kMig;
    }
  }
  return NameClass::kUnknown;
}

// Whether two device selections for the same resource can be shown, from the file alone, to
// pick a common device; `reason` says why.
bool SelectorsOverlap(const DeviceSelector& a, const DeviceSelector& b, std::string* reason) {
  using Kind = DeviceSelector::Kind;
  if (a.kind == Kind::kAll || b.kind == Kind::kAll) {
    *reason = "\"all\" selects every device";
    return true;
  }
  if (a.kind == Kind::kCount || b.kind == Kind::kCount) {
    *reason = "a count selects the first devices, which the other entry also selects or may select";
    return true;
  }
  for (const std::string& x : a.ids) {
    for (const std::string& y : b.ids) {
      if (x == y) {
        *reason = "both select " + Quoted(x);
        return true;
      }
      // A GPU index or UUID selects every MIG device on that GPU.
      const std::string& gpu = IsGpuIndex(x) || IsGpuUuid(x) ? x : y;
      const std::string& other = &gpu == &x ? y : x;
      if (IsGpuIndex(gpu) && IsMigIndex(other) && other.starts_with(gpu + ":")) {
        *reason = Quoted(gpu) + " includes MIG device " + Quoted(other);
        return true;
      }
      if (IsGpuUuid(gpu) && IsMigUuid(other) && other.starts_with("MIG-" + gpu + "/")) {
        *reason = Quoted(gpu) + " includes MIG device " + Quoted(other);
        return true;
      }
    }
  }
  return false;
}

// Same, for fractional GPUs against a replicated entry of full GPUs: a count and a list cannot be
// compared without knowing the node, so that case is left to the advertise step.
bool GpusOverlap(const DeviceSelector& fractional, const DeviceSelector& shared,
                 std::string* reason) {
  using Kind = DeviceSelector::Kind;
  if (fractional.kind == Kind::kAll && shared.kind == Kind::kAll) {
    *reason = "both select all GPUs";
    return true;
  }
  if (fractional.kind == Kind::kAll || shared.kind == Kind::kAll) {
    *reason = "\"all\" selects every GPU";
    return true;
  }
  if (fractional.kind == Kind::kCount && shared.kind == Kind::kCount) {
    *reason = "both counts include the first GPU";
    return true;
  }
  if (fractional.kind == Kind::kList && shared.kind == Kind::kList) {
    for (const std::string& id : fractional.ids) {
      if (std::find(shared.ids.begin(), shared.ids.end(), id) != shared.ids.end()) {
        *reason = "both select GPU " + Quoted(id);
        return true;
      }
    }
  }
  return false;
}

Status ConfigParser::Validate(const SharingConfig& config) const {
  GPUSLICE_RETURN_IF_ERROR(ValidateReplicated(config));
  return ValidateFractional(config);
}

Status ConfigParser::ValidateReplicated(const SharingConfig& config) const {
  const ReplicatedResources* shared = config.replicated();
  if (shared == nullptr) return Status::Ok();
  const bool is_mps = config.sharing_strategy() == SharingStrategy::kMps;
  const MigStrategy mig = config.flags.mig_strategy;
  if (is_mps && mig == MigStrategy::kMixed) {
    return errors_.At(mig_strategy_line_, "flags.migStrategy",
                      "\"mixed\" is not supported with MPS (" + section_path_ +
                          "); accepted with MPS: none, single");
  }
  // Everything NVIDIA's plugin loads, gpuslice loads too: a name that matches no resource of
  // this node (an unknown name, a MIG profile under migStrategy none or single, MIG devices in
  // `devices` under none), a rename to an existing name. Whether it applies to a node is
  // AdvertiseNode's question: no match is a warning there, a real name collision an error.
  for (std::size_t i = 0; i < shared->resources.size(); ++i) {
    const ReplicatedResource& entry = shared->resources[i];
    const EntryLines& lines = entry_lines_[i];
    const std::string path = EntryPath(i);
    if (entry.rename.empty() && shared->rename_by_default) {
      const std::string advertised = entry.name + std::string(names::kSharedSuffix);
      if (advertised.size() > kMaxResourceNameLength) {
        return errors_.At(lines.name, path + ".name",
                          "renameByDefault makes " + Quoted(advertised) +
                              ", longer than 63 characters; set rename");
      }
    }
    // Entries for the same resource must pick disjoint devices: one replica count per device.
    for (std::size_t j = 0; j < i; ++j) {
      const ReplicatedResource& earlier = shared->resources[j];
      if (earlier.name != entry.name) continue;
      std::string reason;
      if (SelectorsOverlap(earlier.devices, entry.devices, &reason)) {
        const int line = lines.devices > 0 ? lines.devices : lines.entry;
        return errors_.At(line, path + ".devices",
                          "overlaps " + EntryPath(j) + ".devices (line " +
                              std::to_string(entry_lines_[j].entry) + ") for " +
                              Quoted(entry.name) + ": " + reason +
                              "; entries for one resource must select disjoint devices");
      }
    }
  }
  return Status::Ok();
}

Status ConfigParser::ValidateFractional(const SharingConfig& config) const {
  const FractionalSharing& fractional = config.gpuslice.fractional;
  const ReplicatedResources* shared = config.replicated();
  if (!fractional.enabled || shared == nullptr) return Status::Ok();
  for (std::size_t i = 0; i < shared->resources.size(); ++i) {
    const ReplicatedResource& entry = shared->resources[i];
    if (Classify(config, entry.name) != NameClass::kGpu) continue;
    std::string reason;
    if (GpusOverlap(fractional.devices, entry.devices, &reason)) {
      const char* how =
          config.sharing_strategy() == SharingStrategy::kMps ? "MPS-shared" : "time-sliced";
      return errors_.At(fractional_lines_.devices, "gpuslice.fractional.devices",
                        "overlaps " + EntryPath(i) + ".devices (line " +
                            std::to_string(entry_lines_[i].entry) + "): " + reason +
                            "; a GPU is either fractional or " + how);
    }
  }
  return Status::Ok();
}

// --- Formatting ---

void EmitSelector(YAML::Emitter& out, const DeviceSelector& selector) {
  switch (selector.kind) {
    case DeviceSelector::Kind::kAll:
      out << "all";
      return;
    case DeviceSelector::Kind::kCount:
      out << selector.count;
      return;
    case DeviceSelector::Kind::kList:
      break;
  }
  out << YAML::Flow << YAML::BeginSeq;
  for (const std::string& id : selector.ids) out << id;
  out << YAML::EndSeq;
}

void EmitPatterns(YAML::Emitter& out, const std::vector<ResourcePattern>& patterns) {
  out << YAML::BeginSeq;
  for (const ResourcePattern& p : patterns) {
    out << YAML::BeginMap << YAML::Key << "pattern" << YAML::Value << p.pattern << YAML::Key
        << "name" << YAML::Value << p.name << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void EmitReplicated(YAML::Emitter& out, const ReplicatedResources& shared) {
  out << YAML::BeginMap;
  out << YAML::Key << "renameByDefault" << YAML::Value << shared.rename_by_default;
  out << YAML::Key << "failRequestsGreaterThanOne" << YAML::Value
      << shared.fail_requests_greater_than_one;
  out << YAML::Key << "resources" << YAML::Value << YAML::BeginSeq;
  for (const ReplicatedResource& r : shared.resources) {
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << r.name;
    if (!r.rename.empty()) out << YAML::Key << "rename" << YAML::Value << r.rename;
    out << YAML::Key << "devices" << YAML::Value;
    EmitSelector(out, r.devices);
    out << YAML::Key << "replicas" << YAML::Value << r.replicas << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
}

void EmitStrings(YAML::Emitter& out, const std::vector<std::string>& values) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const std::string& v : values) out << v;
  out << YAML::EndSeq;
}

}  // namespace

std::string_view MigStrategyName(MigStrategy s) {
  switch (s) {
    case MigStrategy::kNone:
      return "none";
    case MigStrategy::kSingle:
      return "single";
    case MigStrategy::kMixed:
      return "mixed";
  }
  return "none";
}

std::string_view DeviceListStrategyName(DeviceListStrategy s) {
  switch (s) {
    case DeviceListStrategy::kEnvvar:
      return "envvar";
    case DeviceListStrategy::kVolumeMounts:
      return "volume-mounts";
    case DeviceListStrategy::kCdiAnnotations:
      return "cdi-annotations";
    case DeviceListStrategy::kCdiCri:
      return "cdi-cri";
  }
  return "envvar";
}

std::string_view DeviceIdStrategyName(DeviceIdStrategy s) {
  switch (s) {
    case DeviceIdStrategy::kUuid:
      return "uuid";
    case DeviceIdStrategy::kIndex:
      return "index";
  }
  return "uuid";
}

std::string_view SharingStrategyName(SharingStrategy s) {
  switch (s) {
    case SharingStrategy::kNone:
      return "none";
    case SharingStrategy::kTimeSlicing:
      return "time-slicing";
    case SharingStrategy::kMps:
      return "mps";
  }
  return "none";
}

bool SelectsMigDevices(const DeviceSelector& selector) {
  return selector.kind == DeviceSelector::Kind::kList &&
         std::any_of(selector.ids.begin(), selector.ids.end(),
                     [](const std::string& id) { return IsMigRef(id); });
}

SharingStrategy SharingConfig::sharing_strategy() const {
  // As NVIDIA's Sharing.SharingStrategy(): MPS first (parsing rejects setting both), and only
  // when some resource has more than one replica (files cannot say fewer than 2; code can).
  auto replicated = [](const std::optional<ReplicatedResources>& r) {
    return r.has_value() && std::any_of(r->resources.begin(), r->resources.end(),
                                        [](const ReplicatedResource& e) { return e.replicas > 1; });
  };
  if (replicated(mps)) return SharingStrategy::kMps;
  if (replicated(time_slicing)) return SharingStrategy::kTimeSlicing;
  return SharingStrategy::kNone;
}

const ReplicatedResources* SharingConfig::replicated() const {
  switch (sharing_strategy()) {
    case SharingStrategy::kMps:
      return &*mps;
    case SharingStrategy::kTimeSlicing:
      return &*time_slicing;
    case SharingStrategy::kNone:
      break;
  }
  return nullptr;
}

SharingConfig DefaultSharingConfig() { return SharingConfig{}; }

Result<SharingConfig> ParseSharingConfig(std::string_view yaml_text, std::string_view source_name) {
  const ErrorSink errors(source_name);
  if (yaml_text.size() > kMaxConfigBytes) {
    return errors.At(
        0, "",
        "the configuration is " + std::to_string(yaml_text.size()) + " bytes; the limit is 1 MiB");
  }
  GPUSLICE_RETURN_IF_ERROR(sharing_config_internal::CheckText(errors, yaml_text));
  try {
    GPUSLICE_ASSIGN_OR_RETURN(
        const YAML::Node document,
        sharing_config_internal::LoadSingleDocument(errors, std::string(yaml_text)));
    if (!document.IsMap()) {
      return errors.At(document, "",
                       "the configuration must be a map of fields (" + JoinAccepted(TopFields()) +
                           "), got " + sharing_config_internal::Describe(document));
    }
    ConfigParser parser(source_name);
    return parser.Parse(document);
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    return errors.At(line, "", "YAML syntax error: " + e.msg);
  } catch (const std::exception& e) {
    return errors.At(0, "", std::string("cannot be read as YAML: ") + e.what());
  } catch (...) {
    return errors.At(0, "", "cannot be read as YAML: unknown error");
  }
}

Result<SharingConfig> LoadSharingConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Unavailable("cannot open configuration file " + path + ": " + std::strerror(errno));
  }
  std::string text;
  char buffer[4096];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigBytes) {
      return InvalidArgument(path + ": the configuration is larger than 1 MiB");
    }
  }
  if (in.bad()) return Unavailable("cannot read configuration file " + path);
  return ParseSharingConfig(text, path);
}

std::string FormatSharingConfig(const SharingConfig& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "version" << YAML::Value << config.version;

  const Flags& f = config.flags;
  out << YAML::Key << "flags" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "migStrategy" << YAML::Value << std::string(MigStrategyName(f.mig_strategy));
  out << YAML::Key << "failOnInitError" << YAML::Value << f.fail_on_init_error;
  out << YAML::Key << "restartOnDeviceUnhealthy" << YAML::Value << f.restart_on_device_unhealthy;
  out << YAML::Key << "nvidiaDriverRoot" << YAML::Value << f.nvidia_driver_root;
  out << YAML::Key << "nvidiaDevRoot" << YAML::Value << f.nvidia_dev_root;
  out << YAML::Key << "mpsRoot" << YAML::Value << f.mps_root;
  out << YAML::Key << "gdsEnabled" << YAML::Value << f.gds_enabled;
  out << YAML::Key << "mofedEnabled" << YAML::Value << f.mofed_enabled;
  out << YAML::Key << "gdrcopyEnabled" << YAML::Value << f.gdrcopy_enabled;
  out << YAML::Key << "useNodeFeatureAPI" << YAML::Value << f.use_node_feature_api;
  out << YAML::Key << "deviceDiscoveryStrategy" << YAML::Value << f.device_discovery_strategy;
  out << YAML::Key << "plugin" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "passDeviceSpecs" << YAML::Value << f.plugin.pass_device_specs;
  std::vector<std::string> list_strategies;
  for (DeviceListStrategy s : f.plugin.device_list_strategies) {
    list_strategies.emplace_back(DeviceListStrategyName(s));
  }
  out << YAML::Key << "deviceListStrategy" << YAML::Value;
  EmitStrings(out, list_strategies);
  out << YAML::Key << "deviceIDStrategy" << YAML::Value
      << std::string(DeviceIdStrategyName(f.plugin.device_id_strategy));
  out << YAML::Key << "cdiAnnotationPrefix" << YAML::Value << f.plugin.cdi_annotation_prefix;
  out << YAML::Key << "nvidiaCTKPath" << YAML::Value << f.plugin.nvidia_ctk_path;
  out << YAML::Key << "containerDriverRoot" << YAML::Value << f.plugin.container_driver_root;
  out << YAML::Key << "kubeletSocket" << YAML::Value << f.plugin.kubelet_socket;
  out << YAML::Key << "cdiFeatureFlags" << YAML::Value;
  EmitStrings(out, f.plugin.cdi_feature_flags);
  out << YAML::Key << "sharedDevicesAllocationPolicy" << YAML::Value
      << f.plugin.shared_devices_allocation_policy;
  out << YAML::EndMap;
  out << YAML::Key << "gfd" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "oneshot" << YAML::Value << f.gfd.oneshot;
  out << YAML::Key << "noTimestamp" << YAML::Value << f.gfd.no_timestamp;
  out << YAML::Key << "sleepInterval" << YAML::Value << f.gfd.sleep_interval;
  out << YAML::Key << "outputFile" << YAML::Value << f.gfd.output_file;
  out << YAML::Key << "machineTypeFile" << YAML::Value << f.gfd.machine_type_file;
  out << YAML::EndMap;
  out << YAML::EndMap;  // flags

  if (!config.gpu_resources.empty() || !config.mig_resources.empty()) {
    out << YAML::Key << "resources" << YAML::Value << YAML::BeginMap;
    if (!config.gpu_resources.empty()) {
      out << YAML::Key << "gpus" << YAML::Value;
      EmitPatterns(out, config.gpu_resources);
    }
    if (!config.mig_resources.empty()) {
      out << YAML::Key << "mig" << YAML::Value;
      EmitPatterns(out, config.mig_resources);
    }
    out << YAML::EndMap;
  }

  if (config.time_slicing.has_value() || config.mps.has_value()) {
    out << YAML::Key << "sharing" << YAML::Value << YAML::BeginMap;
    if (config.time_slicing.has_value()) {
      out << YAML::Key << "timeSlicing" << YAML::Value;
      EmitReplicated(out, *config.time_slicing);
    }
    if (config.mps.has_value()) {
      out << YAML::Key << "mps" << YAML::Value;
      EmitReplicated(out, *config.mps);
    }
    out << YAML::EndMap;
  }

  out << YAML::Key << "imex" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "channelIDs" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (int id : config.imex.channel_ids) out << id;
  out << YAML::EndSeq;
  out << YAML::Key << "required" << YAML::Value << config.imex.required;
  out << YAML::EndMap;

  const FractionalSharing& fractional = config.gpuslice.fractional;
  out << YAML::Key << "gpuslice" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "fractional" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << fractional.enabled;
  out << YAML::Key << "devices" << YAML::Value;
  EmitSelector(out, fractional.devices);
  out << YAML::Key << "slotsPerGpu" << YAML::Value << fractional.slots_per_gpu;
  out << YAML::Key << "compute" << YAML::Value
      << (fractional.compute == FractionalCompute::kMps ? "mps" : "arbiter");
  out << YAML::EndMap << YAML::EndMap;

  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace gpuslice
