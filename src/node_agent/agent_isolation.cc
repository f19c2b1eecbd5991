#include "node_agent/agent_isolation.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "core/resource_names.h"
#include "node_agent/allocation_handoff.h"
#include "node_agent/atomic_file.h"
#include "node_agent/mps_daemon_supervisor.h"
#include "node_agent/shim_injection.h"
#include "shim/accounting_region.h"
#include "shim/container_limits.h"

namespace gpuslice {
namespace {

std::vector<std::string> SortedIds(std::vector<std::string> ids) {
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string HolderKey(const std::string& resource, const std::vector<std::string>& sorted_ids) {
  std::string key = resource;
  for (const std::string& id : sorted_ids) key += "\n" + id;
  return key;
}

}  // namespace

AgentIsolation::AgentIsolation(AgentIsolationOptions options, MemoryLimitDriver* limits,
                               MpsV3Control* mps)
    : options_(std::move(options)), limits_(limits), mps_(mps) {}

AgentIsolation::~AgentIsolation() {
  if (mps_ != nullptr && manager_ != nullptr) mps_->SetNamespaceSource(nullptr);
}

Status AgentIsolation::Update(const DriverInfo& driver, const std::vector<GpuInfo>& gpus) {
  std::vector<std::string> unsupported;
  for (const GpuInfo& gpu : gpus) {
    if (!gpu.mig_enabled && limits_ != nullptr && !limits_->Supported(gpu.uuid)) {
      unsupported.push_back(gpu.uuid);
    }
  }
  const bool enabled = options_.enabled;
  std::lock_guard<std::mutex> lock(mu_);
  node_ = DetectIsolation(driver, gpus, enabled && IsCgroupV2(options_.cgroup_mount),
                          enabled && limits_ != nullptr, unsupported);
  // MPS v3 is offered only when the agent can drive it, and (one token binds both) on GPUs with
  // driver memory partitions.
  for (GpuIsolation& gpu : node_.gpus) {
    if (mps_ == nullptr || !enabled || !options_.hook_installed || !gpu.memory_partitions) {
      gpu.mps_v3 = false;
    }
  }
  for (const GpuIsolation& gpu : node_.gpus) {
    spdlog::info("isolation on {}: memory {}, MPS {}{}", gpu.uuid,
                 gpu.memory_partitions ? "driver" : "shim", gpu.mps_v3 ? "v3" : "v2",
                 gpu.reason.empty() ? "" : " (" + gpu.reason + ")");
  }
  bool any_capable = false;
  for (const GpuIsolation& gpu : node_.gpus) any_capable = any_capable || gpu.memory_partitions;
  // No manager (no spool, no state, no hook in the CDI spec) on a node that cannot use the tier.
  if (manager_ != nullptr || !enabled || !any_capable) {
    UseV3ForLocked();
    return Status::Ok();
  }
  std::error_code ec;
  std::filesystem::create_directories(spool_dir(), ec);
  // Only root (the runtime's hook, the agent) may write requests.
  std::filesystem::permissions(options_.directory, std::filesystem::perms::owner_all, ec);
  std::filesystem::permissions(spool_dir(), std::filesystem::perms::owner_all, ec);
  IsolationManagerOptions manager_options;
  manager_options.spool_dir = spool_dir();
  manager_options.state_file = options_.directory + "/state.json";
  manager_options.pod_annotation_of = options_.pod_annotation_of;
  manager_options.mps_pipe_directory_of = [root = options_.mps_root](const std::string& uuid) {
    return MpsDaemonSupervisor::PipeDirectory(root, uuid);
  };
  manager_ = std::make_unique<IsolationManager>(manager_options, limits_, mps_);
  // Before the restore: a v3 daemon a previous agent left running is adopted when the restore
  // first talks to its server, so live namespaces are checked and ended ones deleted at once.
  UseV3ForLocked();
  Status restored = manager_->Restore();
  if (restored.code() == ErrorCode::kInvalidArgument) {
    // An unreadable state file: never overwrite it (it names live containers' limits). The tier
    // stays off, and the labels say so, until an operator moves the file away.
    manager_.reset();
    for (GpuIsolation& gpu : node_.gpus) {
      gpu.memory_partitions = false;
      gpu.mps_v3 = false;
      gpu.reason = restored.message();
    }
  }
  if (manager_ != nullptr && mps_ != nullptr) {
    // A (re)started v3 daemon declares the live containers' namespaces in its TOML file.
    mps_->SetNamespaceSource([manager = manager_.get()](const std::string& server) {
      return manager->Namespaces(server);
    });
  }
  UseV3ForLocked();
  return restored;
}

std::map<std::string, std::string> AgentIsolation::Labels(bool mps_sharing) const {
  std::lock_guard<std::mutex> lock(mu_);
  return IsolationLabels(node_, mps_sharing);
}

Status AgentIsolation::Decorate(const AdvertisedResource& resource,
                                const std::vector<GpuInfo>& gpus,
                                const std::vector<std::string>& ids,
                                v1beta1::ContainerAllocateResponse& out) {
  if (manager_ == nullptr || !options_.hook_installed || ids.empty()) return Status::Ok();
  if (resource.fractional) return DecorateFractional(resource, ids, out);
  if (resource.sharing != SharingStrategy::kTimeSlicing &&
      resource.sharing != SharingStrategy::kMps) {
    return Status::Ok();
  }
  std::map<std::string, int> replicas;  // device UUID -> replicas advertised
  for (const AdvertisedDevice& d : resource.devices) ++replicas[d.device_uuid];
  std::map<std::string, int> taken;  // device UUID -> replicas given to this container
  for (const std::string& id : ids) {
    for (const AdvertisedDevice& d : resource.devices) {
      if (d.id == id) {
        if (d.mig_index >= 0) return Status::Ok();  // MIG: partitioned in hardware
        ++taken[d.device_uuid];
      }
    }
  }
  if (taken.empty()) return Status::Ok();
  const bool mps = resource.sharing == SharingStrategy::kMps;
  if (mps && taken.size() > 1) {
    spdlog::info(
        "{}: an MPS container with replicas of {} GPUs stays on the shim tier (one MPS v3 "
        "namespace per token)",
        resource.name, taken.size());
    return Status::Ok();
  }
  // Every GPU of the container in the node's order: capable ones get their share as a driver
  // limit (one token binds them all), the others keep no limit, as time-slicing has.
  std::vector<shim::DeviceLimit> devices;
  Partition partition;
  for (const GpuInfo& gpu : gpus) {
    auto it = taken.find(gpu.uuid);
    if (it == taken.end()) continue;
    bool capable = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const GpuIsolation* iso = node_.Find(gpu.uuid);
      capable = iso != nullptr && iso->memory_partitions && (!mps || iso->mps_v3);
    }
    const auto of = static_cast<std::uint64_t>(replicas[gpu.uuid]);
    const auto count = static_cast<std::uint64_t>(it->second);
    const std::uint64_t share_bytes = gpu.memory_bytes / of * count;
    shim::DeviceLimit& device = devices.emplace_back();
    device.nvml_index = gpu.index;
    gpu.uuid.copy(device.uuid, sizeof(device.uuid) - 1);
    device.memory_bytes = capable ? share_bytes : gpu.memory_bytes;
    device.driver_enforced = capable;
    if (!capable) continue;
    if (partition.gpu_uuid.empty()) {
      partition.gpu_uuid = gpu.uuid;
      partition.hard_limit_bytes = share_bytes;
      partition.soft_limit_bytes = share_bytes;  // replicas: request = limit
      partition.active_thread_percentage = std::max(1, static_cast<int>(100 * count / of));
    } else {
      partition.more_gpus.push_back({gpu.uuid, share_bytes, share_bytes});
    }
  }
  if (partition.gpu_uuid.empty()) return Status::Ok();  // no capable GPU: shim tier
  partition.mps = mps;
  partition.resource_name = resource.name;
  partition.device_ids = SortedIds(ids);
  GPUSLICE_ASSIGN_OR_RETURN(std::string token, manager_->RegisterPartition(partition));
  if (mps) {
    GPUSLICE_ASSIGN_OR_RETURN(Partition registered, manager_->PartitionFor(token));
    GPUSLICE_RETURN_IF_ERROR(UseNamespaceDirectory(partition.gpu_uuid, registered, out));
  }
  GPUSLICE_RETURN_IF_ERROR(InjectReportingShim(token, devices, out));
  (*out.mutable_envs())[std::string(names::kIsolationTokenEnv)] = token;
  return Status::Ok();
}

Status AgentIsolation::InjectReportingShim(const std::string& token,
                                           const std::vector<shim::DeviceLimit>& devices,
                                           v1beta1::ContainerAllocateResponse& out) {
  if (Status usable = CheckShimDir(options_.shim_dir); !usable.ok()) {
    if (!shim_dir_warned_.exchange(true)) {
      spdlog::warn(
          "replica containers on driver-tier GPUs get no shim, so they see the whole "
          "GPU's memory (the driver still enforces their share): {}",
          usable.message());
    }
    return Status::Ok();
  }
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(options_.directory) / "shim" / token;
  const fs::path limits_dir = dir / "limits";
  const fs::path region_dir = dir / "region";
  std::error_code ec;
  fs::create_directories(limits_dir, ec);
  if (!ec) fs::create_directories(region_dir, ec);
  if (ec) return Unavailable("cannot create " + dir.string() + ": " + ec.message());
  fs::permissions(limits_dir,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  ec);
  fs::permissions(region_dir,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  ec);
  const std::string region = (region_dir / "accounting").string();
  if (const int rc = shim::AccountingRegion::Create(region.c_str(), 0666); rc != 0) {
    return Internal("cannot create the accounting region " + region + ": " +
                    std::error_code(rc, std::generic_category()).message());
  }
  shim::ContainerLimits limits;
  limits.version = shim::kContainerLimitsVersion;
  const std::string container_region = std::string(kContainerRegionDir) + "/accounting";
  container_region.copy(limits.region_path, sizeof(limits.region_path) - 1);
  // enforcer=driver on capable GPUs: report the share as the total, the driver refuses beyond it.
  for (const shim::DeviceLimit& device : devices) {
    if (limits.device_count == shim::kMaxLimitedDevices) break;
    limits.devices[limits.device_count++] = device;
  }
  GPUSLICE_RETURN_IF_ERROR(
      shim::WriteContainerLimitsFile((limits_dir / "limits").string(), limits));
  auto* limits_mount = out.add_mounts();
  limits_mount->set_container_path(kContainerLimitsDir);
  limits_mount->set_host_path(limits_dir.string());
  limits_mount->set_read_only(true);
  auto* region_mount = out.add_mounts();
  region_mount->set_container_path(kContainerRegionDir);
  region_mount->set_host_path(region_dir.string());
  region_mount->set_read_only(false);
  return InjectShims(options_.shim_dir, dir.string(), out);
}

int AgentIsolation::ExpireUnclaimedTokens() {
  if (options_.pod_resources == nullptr) return 0;
  const std::map<std::string, Partition> pending = manager_->Pending();
  bool any = false;
  for (const auto& [token, p] : pending)
    any = any || (!p.device_ids.empty() && p.pod_cgroup.empty());
  if (!any) {
    unclaimed_since_.clear();
    return 0;
  }
  Result<std::vector<ContainerDevices>> listed = options_.pod_resources->List();
  if (!listed.ok()) return 0;  // no answer: nothing is known to be gone
  int released = 0;
  std::set<std::string> held;
  for (const ContainerDevices& c : *listed) {
    held.insert(HolderKey(c.resource_name, SortedIds(c.device_ids)));
  }
  const auto now = std::chrono::steady_clock::now();
  std::map<std::string, std::chrono::steady_clock::time_point> still_unclaimed;
  for (const auto& [token, p] : pending) {
    if (p.device_ids.empty() || !p.pod_cgroup.empty()) continue;
    if (held.count(HolderKey(p.resource_name, p.device_ids)) > 0) continue;
    auto since = unclaimed_since_.find(token);
    const auto first = since == unclaimed_since_.end() ? now : since->second;
    if (now - first < options_.unclaimed_token_grace) {
      still_unclaimed[token] = first;
    } else if (manager_->DropPending(token)) {
      ++released;
      std::string devices;
      for (const std::string& id : p.device_ids) devices += (devices.empty() ? "" : ",") + id;
      spdlog::info(
          "released the isolation token of {} {}: no pod holds them any more (deleted "
          "before its container was created)",
          p.resource_name, devices);
    }
  }
  unclaimed_since_ = std::move(still_unclaimed);
  return released;
}

void AgentIsolation::RemoveStaleShimDirectories() {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(options_.directory) / "shim", ec)) {
    const std::string token = entry.path().filename().string();
    if (manager_->PartitionFor(token).ok()) continue;
    fs::remove_all(entry.path(), ec);
  }
}

Status AgentIsolation::UseNamespaceDirectory(const std::string& gpu_uuid,
                                             const Partition& partition,
                                             v1beta1::ContainerAllocateResponse& out) const {
  const std::string directory = MpsDaemonSupervisor::PipeDirectory(options_.mps_root, gpu_uuid) +
                                "/" + manager_->MpsServerFor(gpu_uuid) + "/" +
                                partition.mps_namespace;
  // The runtime bind-mounts it before the createContainer hook has the namespace created, so it
  // must exist now; the namespace's control socket appears in it at the hook.
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) {
    return Unavailable("cannot create the MPS v3 namespace directory " + directory + ": " +
                       ec.message());
  }
  bool mounted = false;
  for (v1beta1::Mount& mount : *out.mutable_mounts()) {
    if (mount.container_path() == names::kMpsContainerPipeDirectory) {
      mount.set_host_path(directory);
      mounted = true;
    }
  }
  if (!mounted) {
    v1beta1::Mount* mount = out.add_mounts();
    mount->set_host_path(directory);
    mount->set_container_path(std::string(names::kMpsContainerPipeDirectory));
  }
  auto& envs = *out.mutable_envs();
  envs[std::string(names::kMpsPipeDirectoryEnv)] = std::string(names::kMpsContainerPipeDirectory);
  envs.erase(std::string(names::kMpsActiveThreadPercentageEnv));
  envs.erase(std::string(names::kMpsPinnedDeviceMemLimitEnv));
  return Status::Ok();
}

Status AgentIsolation::DecorateFractional(const AdvertisedResource& resource,
                                          const std::vector<std::string>& ids,
                                          v1beta1::ContainerAllocateResponse& out) {
  if (options_.allocations_dir.empty()) return Status::Ok();
  std::set<std::string> uuids;
  for (const std::string& id : ids) {
    for (const AdvertisedDevice& d : resource.devices) {
      if (d.id == id) uuids.insert(d.device_uuid);
    }
  }
  // The slots' GPUs; the limits (and the GPUs the assignment names) come from the hand-off's
  // file. One token binds a driver limit on each capable GPU among them.
  std::string first_capable;
  for (const std::string& uuid : uuids) {
    if (first_capable.empty() && Capable(uuid)) first_capable = uuid;
  }
  if (first_capable.empty()) return Status::Ok();
  // The hand-off's file for these slots (AllocationHandoff::PrepareAllocation); a previous
  // holder's is removed so that its limits cannot be taken for this container's.
  const std::string file =
      AllocationHandoff::LimitsFileFor(options_.allocations_dir, AllocationHandoff::KeyFor(ids));
  std::error_code ec;
  std::filesystem::remove(file, ec);
  Partition partition;
  partition.gpu_uuid = first_capable;
  partition.awaiting_limits_from = file;
  partition.resource_name = resource.name;
  partition.device_ids = SortedIds(ids);
  // Compute by MPS v3: the container's namespace directory is mounted now (the runtime mounts
  // before the hook runs); its thread percentage comes with the limits. Until then it is the
  // least, so a container whose limits never come gets the least.
  if (resource.fractional_mps && uuids.size() == 1 &&
      FractionalComputeByMps(resource, *uuids.begin())) {
    partition.mps = true;
    partition.active_thread_percentage = 1;
  } else if (resource.fractional_mps && uuids.size() > 1) {
    spdlog::info(
        "{}: a container with slots of {} GPUs is not an MPS client (one MPS v3 namespace per "
        "token); the compute arbiter shares its GPU time",
        resource.name, uuids.size());
  }
  GPUSLICE_ASSIGN_OR_RETURN(std::string token, manager_->RegisterPartition(partition));
  if (partition.mps) {
    GPUSLICE_ASSIGN_OR_RETURN(Partition registered, manager_->PartitionFor(token));
    GPUSLICE_RETURN_IF_ERROR(UseNamespaceDirectory(partition.gpu_uuid, registered, out));
  }
  (*out.mutable_envs())[std::string(names::kIsolationTokenEnv)] = token;
  return Status::Ok();
}

void AgentIsolation::TakeFractionalLimits() {
  for (const auto& [token, file] : manager_->AwaitingLimits()) {
    std::error_code ec;
    const std::string refused = AllocationHandoff::RefusedFileBeside(file);
    if (std::filesystem::exists(refused, ec)) {
      // No valid assignment: the container starts, its shim refuses GPU allocations (as today).
      spdlog::warn("fractional container of {} was refused by the hand-off; no driver limit", file);
      (void)manager_->ForgoPartitionLimits(token);
      continue;
    }
    if (!std::filesystem::exists(file, ec)) continue;
    Result<shim::ContainerLimits> limits = shim::ReadContainerLimitsFile(file);
    if (!limits.ok() || limits->device_count < 1) continue;
    const Partition partition = manager_->PartitionFor(token).value_or(Partition{});
    if (partition.mps) {
      TakeFractionalMpsLimits(token, partition, file, *limits);
      continue;
    }
    // The hand-off's limit per GPU is the pod's gpuslice.io/gpu-memory: hard = soft = it. Each
    // capable GPU gets it as a driver limit, and its device line `enforcer=driver`.
    shim::ContainerLimits report_only = *limits;
    std::vector<GpuShare> shares;
    bool marked = false;  // a device line gained enforcer=driver
    for (std::uint32_t i = 0; i < limits->device_count; ++i) {
      const shim::DeviceLimit& device = limits->devices[i];
      std::string gpu(device.uuid);
      if (gpu.empty() && limits->device_count == 1) {
        gpu = manager_->PartitionFor(token).value_or(Partition{}).gpu_uuid;
      }
      if (device.memory_bytes == 0 || !Capable(gpu)) continue;
      shares.push_back({gpu, device.memory_bytes, device.memory_bytes});
      marked = marked || !device.driver_enforced;
      report_only.devices[i].driver_enforced = true;
    }
    if (shares.empty()) {  // no capable GPU in the assignment: the shim enforces, as before
      (void)manager_->ForgoPartitionLimits(token);
      continue;
    }
    // The driver enforces them: the container's shim only reports them (the hook binds, and so
    // the container starts, only after this turn, so its shim reads the rewritten file).
    if (marked) {
      if (Status s = shim::WriteContainerLimitsFile(file, report_only); !s.ok()) {
        spdlog::warn("{}: the shim stays the enforcer too: {}", file, s.message());
      }
    }
    if (Status s = manager_->SetPartitionLimits(token, shares); !s.ok()) {
      spdlog::warn("fractional container limits from {}: {}", file, s.message());
    }
  }
}

void AgentIsolation::TakeFractionalMpsLimits(const std::string& token, const Partition& partition,
                                             const std::string& file,
                                             shim::ContainerLimits limits) {
  shim::DeviceLimit& device = limits.devices[0];
  const std::string gpu = device.uuid[0] == '\0' ? partition.gpu_uuid : std::string(device.uuid);
  if (limits.device_count != 1 || gpu != partition.gpu_uuid || device.memory_bytes == 0) {
    // Not the one GPU whose namespace directory the container has: it binds with the least
    // threads and no driver limit; its shim enforces the file's memory.
    spdlog::warn(
        "fractional container limits from {} name {} GPU(s) starting with {}, not its slots' GPU "
        "{} alone; it gets no driver limit and the least MPS threads",
        file, limits.device_count, gpu, partition.gpu_uuid);
    (void)manager_->ForgoPartitionLimits(token);
    return;
  }
  const int threads = static_cast<int>(std::clamp<std::uint32_t>(device.compute_percent, 1, 100));
  // MPS shares the GPU's compute by the namespace's threads: the shim does not arbitrate here
  // (the container never asks the referee for a turn), and the driver enforces the memory.
  device.arbiter_path[0] = '\0';
  device.requests_path[0] = '\0';
  device.compute_cap_percent = 0;
  device.driver_enforced = true;
  if (Status s = shim::WriteContainerLimitsFile(file, limits); !s.ok()) {
    // The container would be arbitrated besides MPS, and its shim would enforce: fail closed.
    spdlog::warn("{}: cannot mark it for MPS v3 ({}); no driver limit, the least MPS threads", file,
                 s.message());
    (void)manager_->ForgoPartitionLimits(token);
    return;
  }
  if (Status s = manager_->SetPartitionLimits(
          token, {{gpu, device.memory_bytes, device.memory_bytes}}, threads);
      !s.ok()) {
    spdlog::warn("fractional container limits from {}: {}", file, s.message());
  }
}

bool AgentIsolation::FractionalComputeByMps(const AdvertisedResource& resource,
                                            const std::string& uuid) const {
  if (!resource.fractional || !resource.fractional_mps || mps_ == nullptr ||
      !options_.hook_installed || options_.allocations_dir.empty()) {
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  const GpuIsolation* iso = node_.Find(uuid);
  return manager_ != nullptr && iso != nullptr && iso->mps_v3;
}

bool AgentIsolation::Capable(const std::string& uuid) const {
  std::lock_guard<std::mutex> lock(mu_);
  const GpuIsolation* iso = node_.Find(uuid);
  return iso != nullptr && iso->memory_partitions;
}

void AgentIsolation::UseV3ForLocked() {
  if (mps_ == nullptr) return;
  std::set<std::string> v3;
  for (const GpuIsolation& gpu : node_.gpus) {
    if (gpu.mps_v3 && manager_ != nullptr) v3.insert(gpu.uuid);
  }
  mps_->UseV3For(v3);
}

std::vector<std::string> AgentIsolation::MpsV3Servers() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> servers;
  if (manager_ == nullptr) return servers;
  for (const GpuIsolation& gpu : node_.gpus) {
    if (gpu.mps_v3) servers.push_back(manager_->MpsServerFor(gpu.uuid));
  }
  return servers;
}

void AgentIsolation::RunOnce() {
  if (manager_ == nullptr) return;
  // A container bound or ended: its usage entry is written now, not at the next interval.
  TakeFractionalLimits();
  const auto now = std::chrono::steady_clock::now();
  int expired = 0;
  // PodResources is asked at most every reconcile interval, and often enough for the grace.
  if (now - last_expiry_check_ >=
      std::min(options_.namespace_reconcile_interval, options_.unclaimed_token_grace / 2)) {
    last_expiry_check_ = now;
    expired = ExpireUnclaimedTokens();
  }
  const bool bound_or_ended = manager_->ProcessRequests() + manager_->ReapEnded() + expired > 0;
  if (!bound_or_ended && now - last_reconcile_ < options_.namespace_reconcile_interval) return;
  last_reconcile_ = now;
  RemoveStaleShimDirectories();
  if (mps_ != nullptr) {
    if (const int changed = manager_->ReconcileNamespaces(MpsV3Servers()); changed > 0) {
      spdlog::info("MPS v3: {} namespaces re-created or removed to match the containers", changed);
    }
  }
  // The limits and current use for metrics: <directory>/usage.json, replaced atomically.
  const std::string path = options_.directory + "/usage.json";
  if (Status s = WriteFileAtomically(path, IsolationManager::UsageJson(manager_->Usage()));
      !s.ok()) {
    spdlog::warn("cannot write {}: {}", path, s.message());
  }
}

}  // namespace gpuslice
