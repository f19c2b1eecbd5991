#include "node_agent/agent_isolation.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>

#include "core/resource_names.h"

namespace gpuslice {

AgentIsolation::AgentIsolation(AgentIsolationOptions options, MemoryLimitDriver* limits,
                               MpsV3Control* mps)
    : options_(std::move(options)), limits_(limits), mps_(mps) {}

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
  // MPS v3 is offered only when the agent can drive it.
  if (mps_ == nullptr || !enabled) {
    for (GpuIsolation& gpu : node_.gpus) gpu.mps_v3 = false;
  }
  for (const GpuIsolation& gpu : node_.gpus) {
    spdlog::info("isolation on {}: memory {}, MPS {}{}", gpu.uuid,
                 gpu.memory_partitions ? "driver" : "shim", gpu.mps_v3 ? "v3" : "v2",
                 gpu.reason.empty() ? "" : " (" + gpu.reason + ")");
  }
  bool any_capable = false;
  for (const GpuIsolation& gpu : node_.gpus) any_capable = any_capable || gpu.memory_partitions;
  // No manager (no spool, no state, no hook in the CDI spec) on a node that cannot use the tier.
  if (manager_ != nullptr || !enabled || !any_capable) return Status::Ok();
  std::error_code ec;
  std::filesystem::create_directories(spool_dir(), ec);
  // Only root (the runtime's hook, the agent) may write requests.
  std::filesystem::permissions(options_.directory, std::filesystem::perms::owner_all, ec);
  std::filesystem::permissions(spool_dir(), std::filesystem::perms::owner_all, ec);
  IsolationManagerOptions manager_options;
  manager_options.spool_dir = spool_dir();
  manager_options.state_file = options_.directory + "/state.json";
  manager_ = std::make_unique<IsolationManager>(manager_options, limits_, mps_);
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
  if (taken.size() != 1) {
    if (taken.size() > 1) {
      spdlog::info("{}: a container with replicas of {} GPUs stays on the shim tier", resource.name,
                   taken.size());
    }
    return Status::Ok();
  }
  const auto& [uuid, count] = *taken.begin();
  const bool mps = resource.sharing == SharingStrategy::kMps;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const GpuIsolation* iso = node_.Find(uuid);
    if (iso == nullptr || !iso->memory_partitions || (mps && !iso->mps_v3)) return Status::Ok();
  }
  std::uint64_t memory_bytes = 0;
  for (const GpuInfo& gpu : gpus) {
    if (gpu.uuid == uuid) memory_bytes = gpu.memory_bytes;
  }
  const int of = replicas[uuid];
  Partition partition;
  partition.gpu_uuid = uuid;
  partition.hard_limit_bytes =
      memory_bytes / static_cast<std::uint64_t>(of) * static_cast<std::uint64_t>(count);
  partition.soft_limit_bytes = partition.hard_limit_bytes;  // replicas: request = limit
  partition.mps = mps;
  partition.active_thread_percentage = std::max(1, 100 * count / of);
  GPUSLICE_ASSIGN_OR_RETURN(std::string token, manager_->RegisterPartition(partition));
  (*out.mutable_envs())[std::string(names::kIsolationTokenEnv)] = token;
  return Status::Ok();
}

void AgentIsolation::RunOnce() {
  if (manager_ == nullptr) return;
  manager_->ProcessRequests();
  manager_->ReapEnded();
}

}  // namespace gpuslice
