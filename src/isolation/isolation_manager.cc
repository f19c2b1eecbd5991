#include "isolation/isolation_manager.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "core/resource_names.h"
#include "isolation/oci_hook.h"

namespace gpuslice {
namespace {

std::string RandomToken() {
  std::random_device random;
  std::ostringstream out;
  for (int i = 0; i < 4; ++i) {
    char buf[9];
    std::snprintf(buf, sizeof(buf), "%08x", static_cast<unsigned>(random()));
    out << buf;
  }
  return out.str();
}

void WriteReply(const std::string& spool, const std::string& id, const Status& status) {
  const nlohmann::json reply = {{"ok", status.ok()}, {"message", status.ToString()}};
  const std::string path = SpoolReplyPath(spool, id);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << reply.dump();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
}

}  // namespace

IsolationManager::IsolationManager(IsolationManagerOptions options, MemoryLimitDriver* limits,
                                   MpsV3Control* mps)
    : options_(std::move(options)), limits_(limits), mps_(mps) {}

std::string IsolationManager::MpsServerFor(const std::string& gpu_uuid) const {
  if (auto it = options_.mps_server_by_gpu.find(gpu_uuid); it != options_.mps_server_by_gpu.end()) {
    return it->second;
  }
  return DefaultMpsV3ServerName(gpu_uuid);
}

Result<std::string> IsolationManager::RegisterPartition(const Partition& partition) {
  if (partition.gpu_uuid.empty()) return InvalidArgument("partition names no GPU");
  if (partition.soft_limit_bytes > partition.hard_limit_bytes) {
    return InvalidArgument("partition soft limit " + std::to_string(partition.soft_limit_bytes) +
                           " exceeds its hard limit " + std::to_string(partition.hard_limit_bytes));
  }
  for (const GpuShare& g : partition.more_gpus) {
    if (g.gpu_uuid.empty() || g.gpu_uuid == partition.gpu_uuid ||
        g.soft_limit_bytes > g.hard_limit_bytes) {
      return InvalidArgument("partition's further GPU '" + g.gpu_uuid +
                             "' needs a UUID of another GPU and soft <= hard");
    }
  }
  if (partition.mps && !partition.more_gpus.empty()) {
    return InvalidArgument("an MPS v3 partition binds one GPU (one namespace on its server)");
  }
  if (partition.mps &&
      (partition.active_thread_percentage < 1 || partition.active_thread_percentage > 100)) {
    return InvalidArgument("active thread percentage " +
                           std::to_string(partition.active_thread_percentage) +
                           " is outside 1..100");
  }
  std::string token = RandomToken();
  Partition registered = partition;
  if (registered.mps) registered.mps_namespace = "ns-" + token.substr(0, 16);
  std::lock_guard<std::mutex> lock(mu_);
  pending_[token] = registered;
  GPUSLICE_RETURN_IF_ERROR(Save());
  return token;
}

Status IsolationManager::SetPartitionLimits(const std::string& token, const std::string& gpu_uuid,
                                            std::uint64_t hard_limit_bytes,
                                            std::uint64_t soft_limit_bytes) {
  if (gpu_uuid.empty() || hard_limit_bytes == 0 || soft_limit_bytes > hard_limit_bytes) {
    return InvalidArgument("partition limits need a GPU and 0 < soft <= hard (got soft " +
                           std::to_string(soft_limit_bytes) + ", hard " +
                           std::to_string(hard_limit_bytes) + ")");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(token);
  if (it == pending_.end()) return NotFound("no pending partition for the token");
  it->second.gpu_uuid = gpu_uuid;
  it->second.hard_limit_bytes = hard_limit_bytes;
  it->second.soft_limit_bytes = soft_limit_bytes;
  it->second.awaiting_limits_from.clear();
  return Save();
}

Status IsolationManager::SetPartitionLimits(const std::string& token,
                                            const std::vector<GpuShare>& shares,
                                            int mps_active_thread_percentage) {
  if (shares.empty()) return InvalidArgument("partition limits need at least one GPU");
  if (mps_active_thread_percentage < 0 || mps_active_thread_percentage > 100) {
    return InvalidArgument("active thread percentage " +
                           std::to_string(mps_active_thread_percentage) + " is outside 1..100");
  }
  for (std::size_t i = 0; i < shares.size(); ++i) {
    const GpuShare& g = shares[i];
    if (g.gpu_uuid.empty() || g.hard_limit_bytes == 0 || g.soft_limit_bytes > g.hard_limit_bytes) {
      return InvalidArgument("partition limits on " + g.gpu_uuid +
                             " need a GPU and 0 < soft <= hard");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (shares[j].gpu_uuid == g.gpu_uuid) {
        return InvalidArgument("partition limits name GPU " + g.gpu_uuid + " twice");
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(token);
    if (it == pending_.end()) return NotFound("no pending partition for the token");
    Partition& p = it->second;
    if (p.mps && (shares.size() != 1 || shares[0].gpu_uuid != p.gpu_uuid)) {
      // Its namespace directory, on this GPU's server, is what the container has mounted.
      return InvalidArgument(
          "an MPS v3 partition on " + p.gpu_uuid + " takes limits for that GPU only, got " +
          std::to_string(shares.size()) + " GPU(s) starting with " + shares[0].gpu_uuid);
    }
    if (p.mps && mps_active_thread_percentage > 0) {
      p.active_thread_percentage = mps_active_thread_percentage;
    }
    p.more_gpus.assign(shares.begin() + 1, shares.end());
  }
  return SetPartitionLimits(token, shares[0].gpu_uuid, shares[0].hard_limit_bytes,
                            shares[0].soft_limit_bytes);
}

Status IsolationManager::ForgoPartitionLimits(const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(token);
  if (it == pending_.end()) return NotFound("no pending partition for the token");
  it->second.awaiting_limits_from.clear();  // hard 0: Apply sets no driver limit
  return Save();
}

std::map<std::string, Partition> IsolationManager::Pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_;
}

bool IsolationManager::DropPending(const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(token);
  if (it == pending_.end() || !it->second.pod_cgroup.empty()) return false;
  if (const std::string dir = NamespaceDirectory(it->second); !dir.empty()) {
    std::error_code ec;
    std::filesystem::remove(dir, ec);  // only when empty
  }
  pending_.erase(it);
  (void)Save();
  return true;
}

std::map<std::string, std::string> IsolationManager::AwaitingLimits() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& [token, p] : pending_) {
    if (!p.awaiting_limits_from.empty()) out[token] = p.awaiting_limits_from;
  }
  return out;
}

Result<Partition> IsolationManager::PartitionFor(const std::string& token) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = pending_.find(token); it != pending_.end()) return it->second;
  for (const auto& [id, binding] : bindings_) {
    if (!token.empty() && binding.token == token) return binding.partition;
  }
  return NotFound("no partition for the token");
}

std::vector<GpuShare> IsolationManager::SharesOf(const Partition& p) {
  std::vector<GpuShare> shares = {{p.gpu_uuid, p.hard_limit_bytes, p.soft_limit_bytes}};
  shares.insert(shares.end(), p.more_gpus.begin(), p.more_gpus.end());
  return shares;
}

Status IsolationManager::Apply(const ContainerBinding& b) {
  for (const GpuShare& g : SharesOf(b.partition)) {
    if (limits_ == nullptr || g.hard_limit_bytes == 0) continue;
    GPUSLICE_RETURN_IF_ERROR(
        limits_->SetMemoryLimits(g.gpu_uuid, b.cgroup_path, g.soft_limit_bytes, g.hard_limit_bytes)
            .WithContext("setting the driver memory limit of container " + b.container_id + " on " +
                         g.gpu_uuid));
  }
  if (b.partition.mps) {
    if (mps_ == nullptr) {
      return FailedPrecondition("container " + b.container_id +
                                " needs an MPS v3 namespace but the node has no MPS v3");
    }
    const MpsV3Namespace ns = NamespaceOf(b);
    GPUSLICE_ASSIGN_OR_RETURN(auto existing, mps_->ListNamespaces(b.mps_server));
    for (const auto& e : existing) {
      if (e.name != ns.name) continue;
      if (e == ns) return Status::Ok();
      GPUSLICE_RETURN_IF_ERROR(mps_->DeleteNamespace(ns.server, ns.name));  // stale values
    }
    GPUSLICE_RETURN_IF_ERROR(mps_->CreateNamespace(ns).WithContext(
        "creating the MPS v3 namespace of container " + b.container_id));
  }
  return Status::Ok();
}

MpsV3Namespace IsolationManager::NamespaceOf(const ContainerBinding& b) {
  return {b.mps_server, b.mps_namespace, b.partition.hard_limit_bytes,
          b.partition.active_thread_percentage, b.partition.client_priority};
}

std::vector<MpsV3Namespace> IsolationManager::Namespaces(const std::string& server) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<MpsV3Namespace> out;
  for (const auto& [id, b] : bindings_) {
    if (b.partition.mps && b.mps_server == server) out.push_back(NamespaceOf(b));
  }
  return out;
}

int IsolationManager::ReconcileNamespaces(const std::vector<std::string>& servers) {
  if (mps_ == nullptr) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, MpsV3Namespace> wanted;  // server/name -> values
  std::set<std::string> pending;                 // namespaces of tokens not bound yet
  for (const auto& [id, b] : bindings_) {
    if (b.partition.mps) wanted[b.mps_server + "/" + b.mps_namespace] = NamespaceOf(b);
  }
  for (const auto& [token, p] : pending_) {
    if (p.mps) pending.insert(MpsServerFor(p.gpu_uuid) + "/" + p.mps_namespace);
  }
  int changed = 0;
  for (const std::string& server : servers) {
    Result<std::vector<MpsV3Namespace>> listed = mps_->ListNamespaces(server);
    if (!listed.ok()) continue;
    std::set<std::string> present;
    for (const MpsV3Namespace& ns : *listed) {
      const std::string key = server + "/" + ns.name;
      auto want = wanted.find(key);
      const bool ours = ns.name.rfind("ns-", 0) == 0;
      if (want != wanted.end() && want->second == ns) {
        present.insert(key);
      } else if ((want != wanted.end() || ours) && pending.count(key) == 0 &&
                 mps_->DeleteNamespace(server, ns.name).ok()) {
        ++changed;  // stale values are re-created below, orphans stay deleted
      }
    }
    for (const auto& [key, ns] : wanted) {
      if (ns.server != server || present.count(key) > 0) continue;
      if (mps_->CreateNamespace(ns).ok()) ++changed;
    }
  }
  return changed;
}

void IsolationManager::Release(const ContainerBinding& b) {
  std::error_code ec;
  for (const GpuShare& g : SharesOf(b.partition)) {
    if (limits_ != nullptr && g.hard_limit_bytes != 0 &&
        std::filesystem::is_directory(b.cgroup_path, ec)) {
      // A removed cgroup has no limits any more (NVIDIA); an emptied one is cleared explicitly.
      (void)limits_->ClearMemoryLimits(g.gpu_uuid, b.cgroup_path);
    }
  }
  if (b.partition.mps && mps_ != nullptr)
    (void)mps_->DeleteNamespace(b.mps_server, b.mps_namespace);
}

void IsolationManager::PendAgainForItsPod(const ContainerBinding& b) {
  const std::string pod = std::filesystem::path(b.cgroup_path).parent_path().string();
  std::error_code ec;
  if (b.token.empty()) return;
  if (!std::filesystem::is_directory(pod, ec)) {  // the pod has ended too
    if (const std::string dir = NamespaceDirectory(b.partition); !dir.empty()) {
      std::filesystem::remove(dir, ec);  // only when empty
    }
    return;
  }
  Partition again = b.partition;
  again.pod_cgroup = pod;
  pending_[b.token] = again;
  if (const std::string dir = NamespaceDirectory(again); !dir.empty()) {
    std::filesystem::create_directories(dir, ec);
  }
}

std::string IsolationManager::NamespaceDirectory(const Partition& p) const {
  if (!p.mps || p.mps_namespace.empty() || !options_.mps_pipe_directory_of) return "";
  return MpsV3NamespaceDirectory(options_.mps_pipe_directory_of(p.gpu_uuid),
                                 {MpsServerFor(p.gpu_uuid), p.mps_namespace});
}

void IsolationManager::ReapEndedHolderOf(const std::string& token) {
  for (auto it = bindings_.begin(); it != bindings_.end(); ++it) {
    if (it->second.token != token || ContainerAlive(it->second)) continue;
    Release(it->second);
    PendAgainForItsPod(it->second);
    bindings_.erase(it);
    return;
  }
}

bool IsolationManager::ContainerAlive(const ContainerBinding& b) {
  // cgroup.events' "populated" counts processes in descendant cgroups too (a container that
  // nests cgroups); cgroup.procs only those of the cgroup itself.
  if (std::ifstream events(b.cgroup_path + "/cgroup.events"); events) {
    std::string key;
    int value = 0;
    while (events >> key >> value) {
      if (key == "populated") return value != 0;
    }
  }
  std::ifstream procs(b.cgroup_path + "/cgroup.procs");
  if (!procs) return false;
  long pid = 0;
  return static_cast<bool>(procs >> pid);
}

Status IsolationManager::Bind(const std::string& container_id, long pid,
                              const std::string& cgroup_path, const std::string& token,
                              int mps_client_priority) {
  std::lock_guard<std::mutex> lock(mu_);
  GPUSLICE_RETURN_IF_ERROR(ValidateContainerId(container_id));
  if (mps_client_priority < -1 || mps_client_priority > 1) {
    return InvalidArgument("container " + container_id + ": MPS client priority " +
                           std::to_string(mps_client_priority) + " is not 0 or 1");
  }
  if (auto it = bindings_.find(container_id); it != bindings_.end()) {
    // A hook retried for the same container (runtime retry): idempotent only for the same cgroup.
    if (it->second.cgroup_path == cgroup_path) return Apply(it->second);
    return AlreadyExists("container " + container_id + " is already bound to cgroup " +
                         it->second.cgroup_path);
  }
  auto pending = pending_.find(token);
  if (pending == pending_.end()) {
    ReapEndedHolderOf(token);  // a restarted container, seen before the loop reaped its predecessor
    pending = pending_.find(token);
  }
  if (pending == pending_.end()) {
    return PermissionDenied("container " + container_id +
                            " presented an isolation token the node agent did not issue or "
                            "already bound to another container");
  }
  if (!pending->second.awaiting_limits_from.empty()) {
    return Unavailable("the limits of container " + container_id + " are not known yet (" +
                       pending->second.awaiting_limits_from + " not written)");
  }
  std::error_code ec;
  if (cgroup_path.empty() || !std::filesystem::is_directory(cgroup_path, ec)) {
    return NotFound("cgroup " + cgroup_path + " of container " + container_id + " does not exist");
  }
  if (const std::string& pod = pending->second.pod_cgroup;
      !pod.empty() && std::filesystem::path(cgroup_path).parent_path().string() != pod) {
    return PermissionDenied("container " + container_id +
                            " presented the isolation token of a "
                            "container of pod cgroup " +
                            pod + " from outside that pod");
  }
  for (const auto& [id, other] : bindings_) {
    if (other.cgroup_path == cgroup_path) {
      return AlreadyExists("cgroup " + cgroup_path + " already belongs to container " + id);
    }
  }
  ContainerBinding binding;
  binding.container_id = container_id;
  binding.pid = pid;
  binding.cgroup_path = cgroup_path;
  binding.partition = pending->second;
  binding.partition.pod_cgroup.clear();
  binding.token = token;
  if (binding.partition.mps) {
    binding.mps_server = MpsServerFor(binding.partition.gpu_uuid);
    binding.mps_namespace = binding.partition.mps_namespace;
    if (mps_client_priority >= 0) binding.partition.client_priority = mps_client_priority;
  }
  GPUSLICE_RETURN_IF_ERROR(Apply(binding));
  pending_.erase(pending);
  bindings_[container_id] = binding;
  return Save();
}

Result<int> IsolationManager::ClientPriorityOf(const HookRequest& request) {
  const std::string where = "container " + request.container_id + ": pod annotation " +
                            std::string(names::kAnnotationPodMpsClientPriority);
  if (!request.mps_client_priority.empty()) {  // the bundle's own annotation wins
    return ParseMpsClientPriority(request.mps_client_priority, where);
  }
  if (!options_.pod_annotation_of || request.pod.empty()) return -1;
  Result<Partition> partition = PartitionFor(request.token);
  if (!partition.ok() || !partition->mps) return -1;  // no namespace: no priority to set
  Result<std::string> value =
      options_.pod_annotation_of(request.pod, std::string(names::kAnnotationPodMpsClientPriority));
  if (!value.ok()) {
    spdlog::warn(
        "container {}: cannot read {} of pod {} from the API server ({}); its MPS client "
        "priority stays {} ({})",
        request.container_id, names::kAnnotationPodMpsClientPriority, request.pod.Describe(),
        value.status().ToString(), partition->client_priority,
        partition->client_priority == 0 ? "normal" : "below normal");
    return -1;  // the registered value: 0, or what a restarted container's predecessor had
  }
  if (value->empty()) return -1;
  spdlog::info("container {}: {}={} from pod {} in the API server", request.container_id,
               names::kAnnotationPodMpsClientPriority, *value, request.pod.Describe());
  return ParseMpsClientPriority(*value, where);
}

int IsolationManager::ProcessRequests() {
  std::error_code ec;
  std::filesystem::create_directories(options_.spool_dir + "/requests", ec);
  std::filesystem::create_directories(options_.spool_dir + "/replies", ec);
  int handled = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(options_.spool_dir + "/requests", ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".json") continue;  // *.tmp.<pid>: still being written
    const std::string id = entry.path().stem().string();
    std::ifstream in(entry.path());
    std::ostringstream text;
    text << in.rdbuf();
    Result<HookRequest> request = HookRequestFromJson(text.str());
    Status status = request.status();
    if (request.ok() && request->container_id != id) {
      status =
          InvalidArgument("request file " + name + " names container " + request->container_id);
    }
    if (status.ok() && AwaitingLimits().count(request->token) > 0) continue;  // not yet
    int priority = -1;
    if (status.ok()) {
      Result<int> parsed = ClientPriorityOf(*request);
      if (parsed.ok()) priority = *parsed;
      status = parsed.status();
    }
    if (status.ok()) {
      status = Bind(id, request->pid, request->cgroup_path, request->token, priority);
    }
    std::filesystem::remove(entry.path(), ec);
    if (ValidateContainerId(id).ok()) WriteReply(options_.spool_dir, id, status);
    ++handled;
  }
  return handled;
}

int IsolationManager::ReapEnded() {
  std::lock_guard<std::mutex> lock(mu_);
  int reaped = 0;
  for (auto it = bindings_.begin(); it != bindings_.end();) {
    if (ContainerAlive(it->second)) {
      ++it;
      continue;
    }
    Release(it->second);
    PendAgainForItsPod(it->second);
    it = bindings_.erase(it);
    ++reaped;
  }
  std::error_code ec;
  for (auto it = pending_.begin(); it != pending_.end();) {
    // The pod of a token pending again has ended: no container will present it any more.
    if (!it->second.pod_cgroup.empty() &&
        !std::filesystem::is_directory(it->second.pod_cgroup, ec)) {
      if (const std::string dir = NamespaceDirectory(it->second); !dir.empty()) {
        std::filesystem::remove(dir, ec);  // only when empty
      }
      it = pending_.erase(it);
      ++reaped;
    } else {
      ++it;
    }
  }
  if (reaped > 0) (void)Save();
  return reaped;
}

std::vector<ContainerBinding> IsolationManager::Bindings() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ContainerBinding> out;
  for (const auto& [id, b] : bindings_) out.push_back(b);
  return out;
}

std::vector<ContainerUsage> IsolationManager::Usage() const {
  std::vector<ContainerBinding> bindings = Bindings();
  std::vector<ContainerUsage> out;
  for (const ContainerBinding& b : bindings) {
    for (const GpuShare& g : SharesOf(b.partition)) {  // one entry per GPU of the container
      ContainerUsage u;
      u.container_id = b.container_id;
      u.gpu_uuid = g.gpu_uuid;
      u.cgroup_path = b.cgroup_path;
      u.mps_namespace = b.partition.mps ? b.mps_namespace : "";
      u.hard_limit_bytes = g.hard_limit_bytes;
      u.soft_limit_bytes = g.soft_limit_bytes;
      if (limits_ == nullptr) {
        u.error = "no driver memory limits on this node";
      } else if (Result<MemoryLimits> read = limits_->GetMemoryLimits(u.gpu_uuid, u.cgroup_path);
                 read.ok()) {
        u.hard_limit_bytes = read->hard_limit_bytes;
        u.soft_limit_bytes = read->soft_limit_bytes;
        u.current_used_bytes = read->current_used_bytes;
      } else {
        u.error = read.status().message();
      }
      out.push_back(std::move(u));
    }
  }
  return out;
}

std::string IsolationManager::UsageJson(const std::vector<ContainerUsage>& usage) {
  nlohmann::json containers = nlohmann::json::array();
  for (const ContainerUsage& u : usage) {
    containers.push_back({{"id", u.container_id},
                          {"gpu", u.gpu_uuid},
                          {"cgroup", u.cgroup_path},
                          {"namespace", u.mps_namespace},
                          {"hardLimitBytes", u.hard_limit_bytes},
                          {"softLimitBytes", u.soft_limit_bytes},
                          {"currentUsedBytes", u.current_used_bytes},
                          {"error", u.error}});
  }
  return nlohmann::json{{"containers", containers}}.dump(1) + "\n";
}

Status IsolationManager::Save() const {
  IsolationState state;
  state.pending = pending_;
  for (const auto& [id, b] : bindings_) state.containers.push_back(b);
  const std::string tmp = options_.state_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << FormatIsolationState(state);
    if (!out) return Unavailable("cannot write isolation state " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, options_.state_file, ec);
  if (ec) return Unavailable("cannot replace " + options_.state_file + ": " + ec.message());
  return Status::Ok();
}

Status IsolationManager::Restore() {
  std::lock_guard<std::mutex> lock(mu_);
  return RestoreLocked();
}

Status IsolationManager::RestoreLocked() {
  std::ifstream in(options_.state_file);
  if (!in) return Status::Ok();
  std::ostringstream text;
  text << in.rdbuf();
  // A malformed file is refused whole (InvalidArgument, never overwritten by the caller).
  GPUSLICE_ASSIGN_OR_RETURN(IsolationState state,
                            ParseIsolationState(text.str(), options_.state_file));
  pending_ = std::move(state.pending);
  bindings_.clear();
  Status first_error;
  for (ContainerBinding& b : state.containers) {
    if (!ContainerAlive(b)) {
      Release(b);
      PendAgainForItsPod(b);
      continue;
    }
    Status applied = Apply(b);
    if (!applied.ok() && first_error.ok()) first_error = applied;
    bindings_[b.container_id] = std::move(b);
  }
  GPUSLICE_RETURN_IF_ERROR(Save());
  return first_error;
}

}  // namespace gpuslice
