#include "node_agent/allocation_handoff.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/resource_names.h"
#include "node_agent/atomic_file.h"
#include "node_agent/pod_resources_api.grpc.pb.h"
#include "shim/accounting_region.h"
#include "shim/arbiter_region.h"
#include "shim/container_limits.h"

namespace gpuslice {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLimitsFileName = "limits";
constexpr const char* kRefusedFileName = "refused";
constexpr const char* kRegionFileName = "accounting";
// Who holds an allocation (pod, container, UID, QoS class), for a restarted agent (Recover). In
// the allocation directory itself, which is never mounted into the container.
constexpr const char* kOwnerFileName = "owner";

// "GPU-abc::3" -> "GPU-abc"; an ID without a replica suffix is the GPU itself.
std::string GpuOfSlot(const std::string& id) {
  const auto sep = id.find(names::kReplicaSeparator);
  return sep == std::string::npos ? id : id.substr(0, sep);
}

std::string PodKey(const std::string& ns, const std::string& name) { return ns + "/" + name; }

// Where a container sees GPU `uuid`'s compute arbiter: the GPU of its first device ID (`primary`)
// at /run/gpuslice-arbiter with the request file compute-requests, each other GPU at
// /run/gpuslice-arbiter-<uuid> with compute-requests-<uuid> (each GPU has its own referee).
std::string ArbiterDirIn(const std::string& uuid, const std::string& primary) {
  return uuid == primary ? std::string(kContainerArbiterDir)
                         : std::string(kContainerArbiterDir) + "-" + uuid;
}
std::string RequestsFileName(const std::string& uuid, const std::string& primary) {
  return uuid == primary ? std::string(kArbiterRequestsFileName)
                         : std::string(kArbiterRequestsFileName) + "-" + uuid;
}
// A request file name a limits file may name (Recover reads it back): one of the above.
bool IsRequestsFileName(const std::string& name) {
  const std::string base = kArbiterRequestsFileName;
  return name == base ||
         (name.size() > base.size() + 1 && name.compare(0, base.size(), base) == 0 &&
          name[base.size()] == '-' && name.find('/') == std::string::npos &&
          name.find("..") == std::string::npos);
}

void CopyString(const std::string& from, char* to, std::size_t size) {
  std::snprintf(to, size, "%s", from.c_str());
}

Status WriteOwner(const fs::path& dir, const HandoffResult& r) {
  const nlohmann::json owner = {
      {"pod", r.pod}, {"container", r.container}, {"podUID", r.pod_uid}, {"qosClass", r.qos_class}};
  return WriteFileAtomically((dir / kOwnerFileName).string(), owner.dump() + "\n");
}

// Fills in what WriteOwner saved; leaves `r` as it is when the file is missing or unreadable.
void ReadOwner(const fs::path& dir, HandoffResult& r) {
  std::ifstream in(dir / kOwnerFileName);
  if (!in) return;
  const nlohmann::json owner = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!owner.is_object()) return;
  r.pod = StringKey(owner, "pod");
  r.container = StringKey(owner, "container");
  r.pod_uid = StringKey(owner, "podUID");
  r.qos_class = StringKey(owner, "qosClass");
}

}  // namespace

std::string PodCgroupPath(CgroupDriver driver, const std::string& pod_uid,
                          const std::string& qos_class) {
  if (pod_uid.empty()) return "";
  std::string qos;
  if (qos_class == "Burstable") {
    qos = "burstable";
  } else if (qos_class == "BestEffort") {
    qos = "besteffort";
  } else if (qos_class != "Guaranteed") {
    return "";
  }
  if (driver == CgroupDriver::kCgroupfs) {
    return "/kubepods" + (qos.empty() ? "" : "/" + qos) + "/pod" + pod_uid;
  }
  std::string uid = pod_uid;
  std::replace(uid.begin(), uid.end(), '-', '_');
  if (qos.empty()) return "/kubepods.slice/kubepods-pod" + uid + ".slice";
  return "/kubepods.slice/kubepods-" + qos + ".slice/kubepods-" + qos + "-pod" + uid + ".slice";
}

// --- PodResources over gRPC ---------------------------------------------------------------

struct GrpcPodResources::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<::v1::PodResourcesLister::Stub> stub;
};

GrpcPodResources::GrpcPodResources(std::string socket_path)
    : socket_path_(std::move(socket_path)), impl_(std::make_unique<Impl>()) {
  impl_->channel =
      grpc::CreateChannel("unix://" + socket_path_, grpc::InsecureChannelCredentials());
  impl_->stub = ::v1::PodResourcesLister::NewStub(impl_->channel);
}

GrpcPodResources::~GrpcPodResources() = default;

Result<std::vector<ContainerDevices>> GrpcPodResources::List() {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  ::v1::ListPodResourcesRequest request;
  ::v1::ListPodResourcesResponse response;
  const grpc::Status s = impl_->stub->List(&context, request, &response);
  if (!s.ok()) {
    return Unavailable("kubelet PodResources List on " + socket_path_ + ": " + s.error_message() +
                       " (is the kubelet's pod-resources directory mounted?)");
  }
  std::vector<ContainerDevices> out;
  for (const auto& pod : response.pod_resources()) {
    for (const auto& container : pod.containers()) {
      for (const auto& devices : container.devices()) {
        out.push_back({pod.namespace_(),
                       pod.name(),
                       container.name(),
                       devices.resource_name(),
                       {devices.device_ids().begin(), devices.device_ids().end()}});
      }
    }
  }
  return out;
}

// --- AllocationHandoff --------------------------------------------------------------------

AllocationHandoff::AllocationHandoff(HandoffOptions options, kube::KubeApi& api,
                                     PodResourcesSource& pod_resources)
    : options_(std::move(options)),
      api_(api),
      pod_resources_(pod_resources),
      arbiters_((std::filesystem::path(options_.host_root) / "gpu-arbiters").string()) {}

AllocationHandoff::~AllocationHandoff() { Stop(); }

void AllocationHandoff::SetGpus(const std::vector<NodeGpu>& gpus) {
  std::lock_guard<std::mutex> lock(mu_);
  gpus_.clear();
  for (const NodeGpu& gpu : gpus) gpus_[gpu.uuid] = gpu;
}

void AllocationHandoff::SetLimitsListener(LimitsListener listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listener_ = std::move(listener);
}

std::string AllocationHandoff::KeyFor(std::vector<std::string> device_ids) {
  std::sort(device_ids.begin(), device_ids.end());
  std::uint64_t hash = 1469598103934665603ULL;  // FNV-1a 64
  for (const std::string& id : device_ids) {
    for (const char c : id + '\n') {
      hash ^= static_cast<unsigned char>(c);
      hash *= 1099511628211ULL;
    }
  }
  char key[32];
  std::snprintf(key, sizeof(key), "alloc-%016llx", static_cast<unsigned long long>(hash));
  return key;
}

std::string AllocationHandoff::LimitsFileFor(const std::string& allocations_dir,
                                             const std::string& key) {
  return (fs::path(allocations_dir) / key / "limits" / kLimitsFileName).string();
}

std::string AllocationHandoff::RefusedFileBeside(const std::string& limits_file) {
  return (fs::path(limits_file).parent_path() / kRefusedFileName).string();
}

Status AllocationHandoff::PrepareAllocation(const std::vector<std::string>& device_ids,
                                            v1beta1::ContainerAllocateResponse& response) {
  // Held throughout, so that a release of the same slots' directory cannot interleave.
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> ids = device_ids;
  std::sort(ids.begin(), ids.end());
  const std::string key = KeyFor(ids);
  const fs::path dir = fs::path(options_.host_root) / key;
  const fs::path limits_dir = dir / "limits";
  const fs::path region_dir = dir / "region";
  std::error_code ec;
  // A new container: nothing of an earlier holder of these slots may survive.
  fs::remove(limits_dir / kLimitsFileName, ec);
  fs::remove(limits_dir / kRefusedFileName, ec);
  fs::create_directories(limits_dir, ec);
  if (!ec) fs::create_directories(region_dir, ec);
  if (ec) {
    return Internal("cannot create the allocation directory " + dir.string() + ": " + ec.message() +
                    " (check --allocations-dir)");
  }
  ::chmod(limits_dir.c_str(), 0755);
  ::chmod(region_dir.c_str(), 0755);
  const std::string region = (region_dir / kRegionFileName).string();
  if (const int rc = shim::AccountingRegion::Create(region.c_str(), 0666); rc != 0) {
    return Internal("cannot create the accounting region " + region + ": " +
                    std::error_code(rc, std::generic_category()).message());
  }
  auto* limits_mount = response.add_mounts();
  limits_mount->set_container_path(kContainerLimitsDir);
  limits_mount->set_host_path(limits_dir.string());
  limits_mount->set_read_only(true);
  auto* region_mount = response.add_mounts();
  region_mount->set_container_path(kContainerRegionDir);
  region_mount->set_host_path(region_dir.string());
  region_mount->set_read_only(false);
  GPUSLICE_RETURN_IF_ERROR(PrepareComputeArbiter(key, ids, region_dir.string(), response));
  GPUSLICE_RETURN_IF_ERROR(InjectShims(options_.shim_dir, dir.string(), response));

  pending_[key] = Pending{ids, std::chrono::steady_clock::now()};
  HandoffResult result;
  result.key = key;
  result.device_ids = ids;
  results_[key] = result;
  return Status::Ok();
}

int AllocationHandoff::ReconcileOnce() {
  std::map<std::string, Pending> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending = pending_;
  }
  const auto started = std::chrono::steady_clock::now();
  const bool release_due = started - last_release_check_ >= options_.release_interval;
  if (pending.empty() && !release_due) return 0;
  Result<std::vector<ContainerDevices>> listed = pod_resources_.List();
  std::map<std::string, ContainerDevices> holders;  // by key
  if (!listed.ok()) {
    if (listed.status().message() != last_list_error_) {
      last_list_error_ = listed.status().message();
      spdlog::error("{}; {} allocation(s) wait for their limits", last_list_error_, pending.size());
    }
  } else {
    last_list_error_.clear();
    for (const ContainerDevices& c : *listed) {
      if (c.resource_name == options_.resource_name) holders[KeyFor(c.device_ids)] = c;
    }
    if (release_due) {
      last_release_check_ = started;
      ReleaseEnded(holders);
    }
  }
  int settled = 0;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [key, p] : pending) {
    auto holder = holders.find(key);
    if (holder == holders.end()) {
      if (now - p.queued < options_.give_up_after) continue;
      HandoffResult result;
      {
        std::lock_guard<std::mutex> lock(mu_);
        result = results_[key];
      }
      result.key = key;
      result.state = HandoffResult::State::kGivenUp;
      result.message =
          "the kubelet's PodResources never listed a container holding these "
          "devices; the container (if it runs) has no limits and its GPU calls fail";
      spdlog::error("allocation {} ({} device(s)): {}", key, p.device_ids.size(), result.message);
      Record(std::move(result));
      ++settled;
      continue;
    }
    Pending with_ids = p;
    if (with_ids.device_ids.empty()) {  // recovered after a restart: the kubelet names the slots
      with_ids.device_ids = holder->second.device_ids;
      std::sort(with_ids.device_ids.begin(), with_ids.device_ids.end());
    }
    Result<HandoffResult> result = Settle(with_ids, holder->second);
    if (!result.ok()) {
      spdlog::warn("allocation {} for {}: {}; retrying", key,
                   PodKey(holder->second.pod_namespace, holder->second.pod_name),
                   result.status().message());
      continue;
    }
    Record(*std::move(result));
    ++settled;
  }
  return settled;
}

Result<HandoffResult> AllocationHandoff::Settle(const Pending& pending,
                                                const ContainerDevices& holder) {
  HandoffResult result;
  result.key = KeyFor(pending.device_ids);
  result.device_ids = pending.device_ids;
  result.pod = PodKey(holder.pod_namespace, holder.pod_name);
  result.container = holder.container;
  const fs::path limits_dir = fs::path(options_.host_root) / result.key / "limits";

  Result<kube::Json> pod = api_.Get(kube::Pod(holder.pod_namespace, holder.pod_name));
  if (!pod.ok()) return pod.status();  // retried: the API server may be briefly unreachable
  std::string text;
  const kube::Json& meta = (*pod)["metadata"];
  if (meta.is_object() && meta.contains("uid") && meta["uid"].is_string()) {
    result.pod_uid = meta["uid"].get<std::string>();
  }
  if (const kube::Json& status = (*pod)["status"];
      status.is_object() && status.contains("qosClass") && status["qosClass"].is_string()) {
    result.qos_class = status["qosClass"].get<std::string>();
  }
  if (meta.is_object() && meta.contains("annotations") && meta["annotations"].is_object()) {
    const kube::Json& a = meta["annotations"];
    if (auto it = a.find(std::string(names::kAnnotationPodAssignment));
        it != a.end() && it->is_string()) {
      text = it->get<std::string>();
    }
  }
  auto refuse = [&](std::string why) -> Result<HandoffResult> {
    result.state = HandoffResult::State::kRefused;
    result.message = std::move(why);
    spdlog::error("pod {} container {}: {}", result.pod, result.container, result.message);
    GPUSLICE_RETURN_IF_ERROR(
        WriteFileAtomically((limits_dir / kRefusedFileName).string(), result.message + "\n"));
    ::chmod((limits_dir / kRefusedFileName).c_str(), 0444);
    return result;
  };
  if (text.empty()) {
    return refuse("pod " + result.pod + " holds " + options_.resource_name +
                  " devices but has no " + std::string(names::kAnnotationPodAssignment) +
                  " annotation (was it scheduled by gpuslice-scheduler? set spec.schedulerName); "
                  "its GPU memory allocations are refused");
  }
  Result<GpuAssignment> assignment = DecodeAssignment(text);
  if (!assignment.ok()) {
    return refuse("pod " + result.pod + ": invalid " +
                  std::string(names::kAnnotationPodAssignment) +
                  " annotation: " + assignment.status().message());
  }
  if (!assignment->container.empty() && assignment->container != holder.container) {
    return refuse("pod " + result.pod + ": the assignment is for container \"" +
                  assignment->container + "\" but the kubelet allocated for container \"" +
                  holder.container + "\"");
  }
  if (!options_.node_name.empty() && !assignment->node.empty() &&
      assignment->node != options_.node_name) {
    return refuse("pod " + result.pod + ": the assignment names node " + assignment->node +
                  " but the pod runs on " + options_.node_name);
  }
  // The hard cap: an invalid annotation is logged and ignored; the container keeps its weight.
  const auto weight = static_cast<std::uint32_t>(
      assignment->compute_percent > 0 ? assignment->compute_percent : 100);
  if (Result<std::uint32_t> cap = ComputeCapOf(*pod, holder.container, weight); cap.ok()) {
    result.compute_cap_percent = static_cast<int>(*cap);
  } else {
    result.message = cap.status().message() + "; ignored: the container runs uncapped";
    spdlog::error("pod {} container {}: {}", result.pod, result.container, result.message);
  }
  return Limit(std::move(result), *std::move(assignment), holder.pod_namespace, holder.pod_name);
}

Result<HandoffResult> AllocationHandoff::Limit(HandoffResult result, GpuAssignment assignment,
                                               const std::string& pod_namespace,
                                               const std::string& pod_name) {
  // The GPUs the container really got: those its slots belong to, in slot order.
  std::vector<std::string> real;
  for (const std::string& id : result.device_ids) {
    const std::string gpu = GpuOfSlot(id);
    if (std::find(real.begin(), real.end(), gpu) == real.end()) real.push_back(gpu);
  }
  std::map<std::string, NodeGpu> gpus;
  {
    std::lock_guard<std::mutex> lock(mu_);
    gpus = gpus_;
  }
  std::set<std::string> assigned;
  for (const AssignedGpu& g : assignment.gpus) assigned.insert(g.uuid);
  if (assigned != std::set<std::string>(real.begin(), real.end())) {
    // The slots are what the container sees: the accounting must follow them.
    std::string said;
    for (const auto& g : assignment.gpus) said += (said.empty() ? "" : ",") + g.uuid;
    std::string got;
    assignment.gpus.clear();
    for (const std::string& uuid : real) {
      auto it = gpus.find(uuid);
      assignment.gpus.push_back({it == gpus.end() ? -1 : it->second.index, uuid});
      got += (got.empty() ? "" : ",") + uuid;
    }
    result.message = "the kubelet allocated GPU " + got + " but the assignment said " + said +
                     "; the limits follow the kubelet and the assignment annotation is corrected";
    spdlog::warn("pod {} container {}: {}", result.pod, result.container, result.message);
    const kube::Json patch = {
        {"metadata",
         {{"annotations",
           {{std::string(names::kAnnotationPodAssignment), EncodeAssignment(assignment)}}}}}};
    Result<kube::Json> patched =
        api_.Patch(kube::Pod(pod_namespace, pod_name), kube::PatchType::kMerge, patch);
    if (!patched.ok()) {
      return Status(patched.status().code(),
                    "cannot correct the assignment annotation: " + patched.status().message());
    }
  }

  shim::ContainerLimits limits;
  limits.version = shim::kContainerLimitsVersion;
  CopyString(std::string(kContainerRegionDir) + "/" + kRegionFileName, limits.region_path,
             sizeof(limits.region_path));
  CopyString(options_.cuda_driver, limits.cuda_driver_path, sizeof(limits.cuda_driver_path));
  CopyString(options_.nvml_driver, limits.nvml_driver_path, sizeof(limits.nvml_driver_path));
  for (const AssignedGpu& g : assignment.gpus) {
    if (limits.device_count == shim::kMaxLimitedDevices) break;
    shim::DeviceLimit& d = limits.devices[limits.device_count++];
    auto it = gpus.find(g.uuid);
    d.nvml_index = it == gpus.end() ? g.index : it->second.index;
    CopyString(g.uuid, d.uuid, sizeof(d.uuid));
    // 0 = whole GPU: its full memory.
    const std::int64_t whole = it == gpus.end() ? 0 : it->second.memory_bytes;
    d.memory_bytes =
        static_cast<std::uint64_t>(assignment.memory_bytes > 0 ? assignment.memory_bytes : whole);
    d.compute_percent = static_cast<std::uint32_t>(
        assignment.compute_percent > 0 ? assignment.compute_percent : 100);
    if (d.nvml_index >= 0) {
      result.limit_bytes[static_cast<std::uint32_t>(d.nvml_index)] = d.memory_bytes;
    }
    if (assignment.compute_percent > 0) {  // every GPU: each has its own referee
      GPUSLICE_RETURN_IF_ERROR(LimitCompute(result, g.uuid, d));
    }
  }
  const fs::path file = LimitsFileFor(options_.host_root, result.key);
  GPUSLICE_RETURN_IF_ERROR(WriteOwner(fs::path(options_.host_root) / result.key, result));
  GPUSLICE_RETURN_IF_ERROR(shim::WriteContainerLimitsFile(file.string(), limits));
  result.state = HandoffResult::State::kLimited;
  result.gpu_uuid = assignment.gpus.empty() ? std::string() : assignment.gpus.front().uuid;
  result.memory_bytes = static_cast<std::int64_t>(limits.devices[0].memory_bytes);
  result.compute_percent = static_cast<int>(limits.devices[0].compute_percent);
  result.compute_cap_percent = static_cast<int>(limits.devices[0].compute_cap_percent);
  spdlog::info("pod {} container {}: limits written to {} (GPU {}, {} bytes, {}% compute)",
               result.pod, result.container, file.string(), result.gpu_uuid, result.memory_bytes,
               result.compute_percent);
  return result;
}

Status AllocationHandoff::PrepareComputeArbiter(const std::string& key,
                                                const std::vector<std::string>& ids,
                                                const std::string& region_dir,
                                                v1beta1::ContainerAllocateResponse& response) {
  if (ids.empty()) return Status::Ok();
  arbiters_.Remove(key);  // a new container on these slots
  // Every GPU of the container: a request file of its own and the GPU's directory, read-only.
  const std::string primary = GpuOfSlot(ids.front());
  std::vector<std::string> gpus;
  for (const std::string& id : ids) {
    const std::string uuid = GpuOfSlot(id);
    if (std::find(gpus.begin(), gpus.end(), uuid) != gpus.end()) continue;
    gpus.push_back(uuid);
    const std::string requests = region_dir + "/" + RequestsFileName(uuid, primary);
    if (const int rc = shim::ArbiterRegion::CreateRequests(requests.c_str(), 0666); rc != 0) {
      return Internal("cannot create the compute request file " + requests + ": " +
                      std::error_code(rc, std::generic_category()).message());
    }
    GPUSLICE_ASSIGN_OR_RETURN(const std::string gpu_dir, arbiters_.GpuDir(uuid));
    auto* mount = response.add_mounts();
    mount->set_container_path(ArbiterDirIn(uuid, primary));
    mount->set_host_path(gpu_dir);
    mount->set_read_only(true);
  }
  return Status::Ok();
}

// Registers the container with the GPU's referee (weight = its gpu-compute request, cap = its
// gpu-compute-cap annotation or a limit above the request) and names the grant page and its request
// file in its limits.
Status AllocationHandoff::LimitCompute(const HandoffResult& result, const std::string& uuid,
                                       shim::DeviceLimit& d) {
  const std::string primary =
      result.device_ids.empty() ? uuid : GpuOfSlot(result.device_ids.front());
  const std::string name = RequestsFileName(uuid, primary);
  const std::string requests =
      (fs::path(options_.host_root) / result.key / "region" / name).string();
  const std::uint32_t cap = result.compute_cap_percent >= static_cast<int>(d.compute_percent)
                                ? static_cast<std::uint32_t>(result.compute_cap_percent)
                                : 0;
  GPUSLICE_RETURN_IF_ERROR(arbiters_.Add(result.key, uuid, requests, d.compute_percent, cap));
  d.compute_cap_percent = cap;
  CopyString(ArbiterDirIn(uuid, primary) + "/" + kArbiterGrantFileName, d.arbiter_path,
             sizeof(d.arbiter_path));
  CopyString(std::string(kContainerRegionDir) + "/" + name, d.requests_path,
             sizeof(d.requests_path));
  return Status::Ok();
}

void AllocationHandoff::Record(HandoffResult result) {
  LimitsListener listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (result.state == HandoffResult::State::kLimited) listener = listener_;
  }
  // Registered (watchdog) before the result is visible as settled.
  if (listener) listener(result);
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.erase(result.key);
    results_[result.key] = std::move(result);
  }
  settled_cv_.notify_all();
}

void AllocationHandoff::ReleaseEnded(const std::map<std::string, ContainerDevices>& holders) {
  std::vector<HandoffResult> ended;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = results_.begin(); it != results_.end();) {
      // Given up: never listed in the give-up time, so no container holds its directory.
      const bool settled = it->second.state == HandoffResult::State::kLimited ||
                           it->second.state == HandoffResult::State::kRefused ||
                           it->second.state == HandoffResult::State::kGivenUp;
      if (settled && !holders.count(it->first) && !pending_.count(it->first)) {
        std::error_code ec;
        fs::remove_all(fs::path(options_.host_root) / it->first, ec);
        if (ec) spdlog::warn("cannot remove {}: {}", it->first, ec.message());
        arbiters_.Remove(it->first);
        ended.push_back(it->second);
        it = results_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const HandoffResult& r : ended) {
    spdlog::info("pod {} container {} no longer holds its devices: removed {}", r.pod, r.container,
                 r.key);
    if (released_) released_(r);
  }
}

int AllocationHandoff::Recover() {
  std::error_code ec;
  fs::directory_iterator it(options_.host_root, ec);
  if (ec) {
    if (ec != std::errc::no_such_file_or_directory) {
      spdlog::error("cannot list the allocations directory {} to recover earlier containers: {}",
                    options_.host_root, ec.message());
    }
    return 0;
  }
  int registered = 0;
  for (const fs::directory_entry& entry : it) {
    const std::string key = entry.path().filename().string();
    if (key.rfind("alloc-", 0) != 0 || !entry.is_directory(ec)) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (results_.count(key) != 0) continue;  // known to this agent
    }
    if (RecoverOne(key)) ++registered;
  }
  // Each re-registered container got its virtual time and charge back from its GPU's charges
  // file; what is left there belongs to containers that are gone.
  arbiters_.ForgetUnclaimedCharges();
  if (registered > 0) {
    spdlog::info("recovered {} container(s) from {} into their GPUs' compute arbiters", registered,
                 options_.host_root);
  }
  return registered;
}

bool AllocationHandoff::RecoverOne(const std::string& key) {
  const fs::path dir = fs::path(options_.host_root) / key;
  HandoffResult result;
  result.key = key;
  std::error_code ec;
  bool registered = false;
  if (fs::exists(dir / "limits" / kLimitsFileName, ec)) {
    result.state = HandoffResult::State::kLimited;
    ReadOwner(dir, result);
    Result<shim::ContainerLimits> limits =
        shim::ReadContainerLimitsFile((dir / "limits" / kLimitsFileName).string());
    if (!limits.ok()) {
      // Released with the others when its pod is gone; until then it runs as its shim decides.
      spdlog::error("recovering {}: {}; the container is not arbitrated", key,
                    limits.status().message());
    } else if (limits->device_count > 0) {
      const shim::DeviceLimit& d = limits->devices[0];
      result.gpu_uuid = d.uuid;
      result.memory_bytes = static_cast<std::int64_t>(d.memory_bytes);
      result.compute_percent = static_cast<int>(d.compute_percent);
      result.compute_cap_percent = static_cast<int>(d.compute_cap_percent);
      for (std::uint32_t i = 0; i < limits->device_count; ++i) {
        const shim::DeviceLimit& l = limits->devices[i];
        if (l.nvml_index >= 0) {
          result.limit_bytes[static_cast<std::uint32_t>(l.nvml_index)] = l.memory_bytes;
        }
      }
      for (std::uint32_t i = 0; i < limits->device_count; ++i) {
        const shim::DeviceLimit& l = limits->devices[i];
        if (l.arbiter_path[0] == '\0') continue;
        const std::string name = fs::path(l.requests_path).filename().string();
        if (!IsRequestsFileName(name)) {
          spdlog::error(
              "recovering {}: the limits file names the request file {}, not one the "
              "agent writes; GPU {} is not arbitrated",
              key, l.requests_path, l.uuid);
          continue;
        }
        const std::string requests = (dir / "region" / name).string();
        if (Status s =
                arbiters_.Add(key, l.uuid, requests, l.compute_percent, l.compute_cap_percent);
            !s.ok()) {
          spdlog::error("recovering {}: {}; GPU {} is not arbitrated", key, s.message(), l.uuid);
        } else {
          registered = true;
        }
      }
    }
  } else if (fs::exists(dir / "limits" / kRefusedFileName, ec)) {
    result.state = HandoffResult::State::kRefused;
    result.message = "refused before the agent restarted";
  } else {
    // Allocated but not yet settled when the agent stopped: settle it now.
    std::lock_guard<std::mutex> lock(mu_);
    if (results_.count(key) != 0) return false;  // a new Allocate of these slots came first
    pending_[key] = Pending{{}, std::chrono::steady_clock::now()};
    results_[key] = result;
    return false;
  }
  LimitsListener listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (results_.count(key) != 0) return registered;
    results_[key] = result;
    if (result.state == HandoffResult::State::kLimited && !result.pod.empty()) listener = listener_;
  }
  if (listener) listener(result);  // e.g. the memory watchdog watches it again
  return registered;
}

HandoffResult AllocationHandoff::ResultFor(const std::vector<std::string>& device_ids) const {
  const std::string key = KeyFor(device_ids);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = results_.find(key);
  if (it != results_.end()) return it->second;
  HandoffResult none;
  none.key = key;
  return none;
}

bool AllocationHandoff::WaitSettled(const std::vector<std::string>& device_ids,
                                    std::chrono::milliseconds timeout) const {
  const std::string key = KeyFor(device_ids);
  std::unique_lock<std::mutex> lock(mu_);
  return settled_cv_.wait_for(lock, timeout, [&] {
    auto it = results_.find(key);
    return it != results_.end() && it->second.state != HandoffResult::State::kPending;
  });
}

void AllocationHandoff::Start() {
  Recover();
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(stop_mu_);
    while (!stopping_) {
      lock.unlock();
      ReconcileOnce();
      lock.lock();
      stop_cv_.wait_for(lock, options_.reconcile_interval, [this] { return stopping_; });
    }
  });
}

void AllocationHandoff::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace gpuslice
