#include "node_agent/container_allocator.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "core/resource_names.h"
#include "node_agent/mps_daemon_supervisor.h"

namespace gpuslice {
namespace {

constexpr std::uint64_t kMiB = 1024ULL * 1024ULL;

std::string Join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// "nvidia.com/mig-1g.5gb" -> "nvidia.com_mig-1g.5gb": CDI annotation keys allow no '/'.
std::string AnnotationSafe(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '/', '_');
  return out;
}

void AddDeviceNode(const std::string& path, v1beta1::ContainerAllocateResponse& out) {
  for (const auto& existing : out.devices()) {
    if (existing.host_path() == path) return;
  }
  v1beta1::DeviceSpec* spec = out.add_devices();
  spec->set_container_path(path);
  spec->set_host_path(path);
  spec->set_permissions("rw");
}

}  // namespace

std::map<std::string, int> ParseMigMinors(std::string_view text) {
  std::map<std::string, int> out;
  std::istringstream in{std::string(text)};
  std::string key;
  int minor = 0;
  while (in >> key >> minor) out[key] = minor;
  return out;
}

std::string DeviceIdFor(const AdvertisedDevice& device, DeviceIdStrategy strategy) {
  if (strategy == DeviceIdStrategy::kUuid) return device.device_uuid;
  std::string id = std::to_string(device.gpu_index);
  if (device.mig_index >= 0) id += ":" + std::to_string(device.mig_index);
  return id;
}

ContainerAllocator::ContainerAllocator(AdvertisedResource resource,
                                       const std::vector<GpuInfo>& gpus,
                                       AllocationSettings settings)
    : resource_(std::move(resource)), settings_(std::move(settings)) {
  for (const AdvertisedDevice& d : resource_.devices) {
    by_id_[d.id] = &d;
    ++replicas_per_device_[d.device_uuid];
  }
  for (const GpuInfo& gpu : gpus) {
    facts_[gpu.uuid] = {gpu.minor_number, gpu.memory_bytes, -1, -1};
    for (const MigDeviceInfo& mig : gpu.mig_devices) {
      facts_[mig.uuid] = {gpu.minor_number, mig.memory_bytes, mig.gpu_instance_id,
                          mig.compute_instance_id};
    }
  }
}

Result<v1beta1::ContainerAllocateResponse> ContainerAllocator::Allocate(
    const std::vector<std::string>& ids) const {
  if (ids.empty())
    return InvalidArgument("allocate request for " + resource_.name + " names no devices");
  if (resource_.sharing != SharingStrategy::kNone && resource_.fail_requests_greater_than_one &&
      ids.size() > 1) {
    return InvalidArgument("request for '" + resource_.name + ": " + std::to_string(ids.size()) +
                           "' too large: maximum request size for shared resources is 1 "
                           "(sharing.*.failRequestsGreaterThanOne is set)");
  }
  // Strip replica suffixes and de-duplicate, keeping the kubelet's order.
  std::vector<const AdvertisedDevice*> devices;
  std::set<std::string> seen;
  for (const std::string& id : ids) {
    auto it = by_id_.find(id);
    if (it == by_id_.end()) {
      return InvalidArgument("unknown device ID \"" + id + "\" for resource " + resource_.name);
    }
    if (seen.insert(it->second->device_uuid).second) devices.push_back(it->second);
  }

  v1beta1::ContainerAllocateResponse out;
  std::vector<std::string> visible;
  for (const AdvertisedDevice* d : devices) {
    visible.push_back(DeviceIdFor(*d, settings_.plugin.device_id_strategy));
  }
  const auto& strategies = settings_.plugin.device_list_strategies;
  auto uses = [&](DeviceListStrategy s) {
    return std::find(strategies.begin(), strategies.end(), s) != strategies.end();
  };
  if (uses(DeviceListStrategy::kEnvvar)) {
    (*out.mutable_envs())[std::string(names::kVisibleDevicesEnv)] = Join(visible, ",");
  }
  if (uses(DeviceListStrategy::kVolumeMounts)) {
    if (!uses(DeviceListStrategy::kEnvvar)) {
      (*out.mutable_envs())[std::string(names::kVisibleDevicesEnv)] =
          std::string(names::kVolumeMountDeviceRoot);
    }
    for (const std::string& id : visible) {
      v1beta1::Mount* m = out.add_mounts();
      m->set_host_path("/dev/null");
      m->set_container_path(std::string(names::kVolumeMountDeviceRoot) + "/" + id);
    }
  }
  std::vector<std::string> cdi_names;
  for (const std::string& id : visible)
    cdi_names.push_back(std::string(names::kCdiKind) + "=" + id);
  if (uses(DeviceListStrategy::kCdiAnnotations)) {
    const std::string key = settings_.plugin.cdi_annotation_prefix +
                            std::string(names::kCdiAnnotationPlugin) + "_" +
                            AnnotationSafe(resource_.name);
    (*out.mutable_annotations())[key] = Join(cdi_names, ",");
  }
  if (uses(DeviceListStrategy::kCdiCri)) {
    for (const std::string& name : cdi_names) out.add_cdi_devices()->set_name(name);
  }
  if (settings_.plugin.pass_device_specs) AddDeviceSpecs(devices, out);
  if (resource_.sharing == SharingStrategy::kMps) {
    GPUSLICE_RETURN_IF_ERROR(AddMps(ids, devices, out));
  }
  return out;
}

void ContainerAllocator::AddDeviceSpecs(const std::vector<const AdvertisedDevice*>& devices,
                                        v1beta1::ContainerAllocateResponse& out) const {
  AddDeviceNode("/dev/nvidiactl", out);
  AddDeviceNode("/dev/nvidia-uvm", out);
  AddDeviceNode("/dev/nvidia-uvm-tools", out);
  for (const AdvertisedDevice* d : devices) {
    auto facts = facts_.find(d->device_uuid);
    if (facts == facts_.end()) continue;
    const DeviceFacts& f = facts->second;
    AddDeviceNode("/dev/nvidia" + std::to_string(f.gpu_minor), out);
    if (d->mig_index < 0) continue;
    const std::string gi =
        "gpu" + std::to_string(f.gpu_minor) + "/gi" + std::to_string(f.gpu_instance_id);
    for (const std::string& key :
         {gi + "/access", gi + "/ci" + std::to_string(f.compute_instance_id) + "/access"}) {
      auto minor = settings_.mig_cap_minors.find(key);
      if (minor == settings_.mig_cap_minors.end()) continue;
      AddDeviceNode("/dev/nvidia-caps/nvidia-cap" + std::to_string(minor->second), out);
    }
  }
}

Status ContainerAllocator::AddMps(const std::vector<std::string>& ids,
                                  const std::vector<const AdvertisedDevice*>& devices,
                                  v1beta1::ContainerAllocateResponse& out) const {
  if (devices.size() != 1) {
    return InvalidArgument("MPS request for " + resource_.name + " spans " +
                           std::to_string(devices.size()) +
                           " devices; a container can use MPS replicas of one device only "
                           "(request replicas of one GPU, or set failRequestsGreaterThanOne)");
  }
  const AdvertisedDevice& d = *devices.front();
  const int total = replicas_per_device_.at(d.device_uuid);
  const int requested = static_cast<int>(ids.size());
  const int percent = std::max(1, 100 * requested / std::max(total, 1));
  auto& envs = *out.mutable_envs();
  envs[std::string(names::kMpsPipeDirectoryEnv)] = std::string(names::kMpsContainerPipeDirectory);
  envs[std::string(names::kMpsActiveThreadPercentageEnv)] = std::to_string(percent);
  auto facts = facts_.find(d.device_uuid);
  if (facts != facts_.end() && facts->second.memory_bytes > 0) {
    const std::uint64_t limit_mib = facts->second.memory_bytes / kMiB *
                                    static_cast<std::uint64_t>(requested) /
                                    static_cast<std::uint64_t>(std::max(total, 1));
    // The container sees its one device as ordinal 0.
    envs[std::string(names::kMpsPinnedDeviceMemLimitEnv)] = "0=" + std::to_string(limit_mib) + "M";
  }
  v1beta1::Mount* pipe = out.add_mounts();
  pipe->set_host_path(MpsDaemonSupervisor::PipeDirectory(settings_.mps_root, d.device_uuid));
  pipe->set_container_path(std::string(names::kMpsContainerPipeDirectory));
  pipe->set_read_only(false);
  return Status::Ok();
}

}  // namespace gpuslice
