#include "scheduler/extender.h"

#include <algorithm>
#include <limits>
#include <set>
#include <utility>

#include "core/resource_names.h"
#include "placement/placement_engine.h"
#include "scheduler/quantity.h"

namespace gpuslice::scheduler {
namespace {

using nlohmann::json;
using placement::PodRequest;

constexpr std::int64_t kMiB = std::int64_t{1024} * 1024;

std::string MiBText(std::int64_t mib) { return FormatBytes(mib * kMiB); }

std::string JoinModels(const std::vector<std::string>& models) {
  std::string out;
  for (const std::string& m : models) out += (out.empty() ? "" : ", ") + m;
  return out;
}

// Makes every GPU of `node` in `engine` unusable, so the policy's next choice is another node.
bool BlockNode(placement::PlacementEngine& engine, int node, placement::PodId& next_id) {
  bool blocked = false;
  const auto& gpus = engine.state().node(node).gpus;
  for (std::size_t g = 0; g < gpus.size(); ++g) {
    const placement::GpuState gpu = gpus[g];
    if (gpu.milli_free <= 0) continue;
    PodRequest blocker;
    blocker.num_gpu = 1;
    blocker.gpu_milli = gpu.milli_free;
    blocker.gpu_memory_mib = std::max<std::int64_t>(gpu.memory_free_mib, 0);
    blocker.gpu_compute_percent = std::max(gpu.compute_free_percent, 0);
    blocked |= engine.Place(next_id++, blocker, {node, {static_cast<int>(g)}}).ok();
  }
  return blocked;
}

}  // namespace

struct Extender::NodeEntry {
  NodeInfo info;
};

struct Extender::PodEntry {
  enum class HoldKind { kNone, kReserved, kBound };
  PodInfo info;
  HoldKind hold = HoldKind::kNone;
  GpuAssignment assignment;  // what it holds, when hold != kNone
  bool placed = false;       // whether `assignment` is counted in state_ (under `id`)
  placement::PodId id = 0;
  Clock::TimePoint expires{};  // for kReserved
};

struct Extender::RememberedPod {
  PodInfo info;
  Clock::TimePoint seen{};
  std::vector<RankedChoice> ranked;
};

Result<std::unique_ptr<Extender>> Extender::Create(ExtenderOptions options, const Clock& clock,
                                                   BindingWriter& writer) {
  const auto names = placement::PolicyNames();
  if (std::find(names.begin(), names.end(), options.policy) == names.end()) {
    std::string accepted;
    for (const std::string_view n : names)
      accepted += (accepted.empty() ? "" : ", ") + std::string(n);
    return InvalidArgument("unknown placement policy '" + options.policy +
                           "'; accepted: " + accepted);
  }
  if (options.ranked_nodes < 1 || options.ranked_nodes > kMaxExtenderPriority) {
    return InvalidArgument("ranked_nodes must be 1..10");
  }
  return std::unique_ptr<Extender>(new Extender(std::move(options), clock, writer));
}

Extender::Extender(ExtenderOptions options, const Clock& clock, BindingWriter& writer)
    : options_(std::move(options)),
      clock_(clock),
      writer_(writer),
      learner_(options_.task_types),
      policy_options_(options_.policy_options) {
  // Until the first pod is observed the fragmentation-aware policies have no types; they then
  // score as if no type could be hurt (the simulator's online mode does the same).
  policy_options_.task_types.clear();
  policy_options_.all_task_types.clear();
  policy_options_.task_types_later = true;
  next_expiry_ = std::numeric_limits<Clock::Duration::rep>::max();
  RebuildClusterState();
}

Extender::~Extender() = default;

bool Extender::synced() const {
  std::shared_lock lock(state_mutex_);
  return synced_;
}

// ---------------------------------------------------------------- cache feed

SyncReport Extender::Rebuild(std::span<const json> nodes, std::span<const json> pods) {
  std::unique_lock lock(state_mutex_);
  SyncReport report;
  nodes_.clear();
  for (const json& node : nodes) {
    Result<NodeInfo> info = ParseNode(node);
    if (!info.ok()) {
      report.problems.push_back(info.status().message());
      continue;
    }
    if (!info->capacity_error.empty()) report.problems.push_back(info->capacity_error);
    if (!info->gpus.empty()) ++report.gpu_nodes;
    ++report.nodes;
    std::string name = info->name;
    nodes_[name] = std::make_unique<NodeEntry>(NodeEntry{*std::move(info)});
  }
  std::vector<PodInfo> infos;
  std::set<std::string> uids;
  for (const json& pod : pods) {
    Result<PodInfo> info = ParsePod(pod);
    if (!info.ok()) {
      report.problems.push_back(info.status().message());
      continue;
    }
    uids.insert(info->uid);
    infos.push_back(*std::move(info));
  }
  // Binds in flight keep their reservations: the pod is still there and still pending.
  std::unordered_map<std::string, std::unique_ptr<PodEntry>> kept;
  for (const PodInfo& info : infos) {
    const auto old = pods_.find(info.uid);
    if (old == pods_.end() || old->second->hold != PodEntry::HoldKind::kReserved ||
        !info.node_name.empty()) {
      continue;
    }
    auto entry = std::move(old->second);
    entry->placed = false;
    kept.emplace(info.uid, std::move(entry));
  }
  pods_ = std::move(kept);
  std::erase_if(observed_, [&](const std::string& uid) { return !uids.contains(uid); });
  reserved_.clear();
  for (const auto& [uid, entry] : pods_) reserved_.insert(uid);
  RebuildClusterState();
  for (PodInfo& info : infos) {
    const Status applied = ApplyPod(std::move(info));
    if (!applied.ok()) report.problems.push_back(applied.message());
  }
  for (const auto& [uid, entry] : pods_) {
    ++report.pods;
    if (entry->placed) ++report.holding_pods;
  }
  synced_ = true;
  return report;
}

Status Extender::UpsertNode(const json& node) {
  GPUSLICE_ASSIGN_OR_RETURN(NodeInfo info, ParseNode(node));
  std::unique_lock lock(state_mutex_);
  auto& entry = nodes_[info.name];
  const bool same = entry != nullptr && entry->info.gpus == info.gpus &&
                    entry->info.capacity_error == info.capacity_error;
  const std::string error = info.capacity_error;
  entry = std::make_unique<NodeEntry>(NodeEntry{std::move(info)});
  if (!same) RebuildClusterState();
  if (!error.empty()) return InvalidArgument(error);
  return Status::Ok();
}

void Extender::DeleteNode(const std::string& name) {
  std::unique_lock lock(state_mutex_);
  if (nodes_.erase(name) > 0) RebuildClusterState();
}

Status Extender::UpsertPod(const json& pod) {
  GPUSLICE_ASSIGN_OR_RETURN(PodInfo info, ParsePod(pod));
  std::unique_lock lock(state_mutex_);
  ExpireReservations();
  return ApplyPod(std::move(info));
}

void Extender::DeletePod(const std::string& uid) {
  {
    std::unique_lock lock(state_mutex_);
    const auto it = pods_.find(uid);
    if (it != pods_.end()) {
      Release(*it->second);
      pods_.erase(it);
    }
    observed_.erase(uid);
  }
  std::lock_guard remembered_lock(remembered_mutex_);
  remembered_.erase(uid);
}

Status Extender::ApplyPod(PodInfo info) {
  if (!info.request.wants_gpu()) {  // holds nothing the extender counts: not cached
    if (const auto it = pods_.find(info.uid); it != pods_.end()) {
      Release(*it->second);
      pods_.erase(it);
    }
    return Status::Ok();
  }
  auto& slot = pods_[info.uid];
  if (slot == nullptr) slot = std::make_unique<PodEntry>();
  PodEntry& entry = *slot;
  entry.info = std::move(info);
  const PodInfo& pod = entry.info;
  ObserveOnce(pod);
  if (pod.terminated()) {
    Release(entry);
    return Status::Ok();
  }
  if (pod.node_name.empty()) return Status::Ok();  // pending: a reservation, if any, stays
  if (pod.assignment && pod.assignment->node == pod.node_name) {
    if (entry.hold != PodEntry::HoldKind::kNone && entry.placed &&
        entry.assignment == *pod.assignment) {
      entry.hold = PodEntry::HoldKind::kBound;  // our reservation, now seen bound: commit
      reserved_.erase(pod.uid);
      return Status::Ok();
    }
    Release(entry);
    return Hold(entry, *pod.assignment, /*reserved=*/false)
        .WithContext("pod '" + pod.Describe() + "'");
  }
  // Bound without a usable annotation. Keep a reservation on that node counted (conservative).
  if (entry.hold == PodEntry::HoldKind::kReserved && entry.assignment.node == pod.node_name) {
    entry.hold = PodEntry::HoldKind::kBound;
    reserved_.erase(pod.uid);
    return Status::Ok();
  }
  Release(entry);
  const std::string why =
      !pod.assignment_error.empty()
          ? pod.assignment_error
          : (pod.assignment ? "it names node '" + pod.assignment->node + "'" : "it is missing");
  return FailedPrecondition("pod '" + pod.Describe() + "' is bound to node '" + pod.node_name +
                            "' but its " + std::string(names::kAnnotationPodAssignment) +
                            " annotation is not usable (" + why +
                            "): its GPU use is unknown to gpuslice-scheduler");
}

void Extender::Release(PodEntry& entry) {
  if (entry.placed && state_) (void)state_->Remove(entry.id);
  entry.placed = false;
  entry.hold = PodEntry::HoldKind::kNone;
  entry.assignment = {};
  reserved_.erase(entry.info.uid);
}

Status Extender::Hold(PodEntry& entry, const GpuAssignment& assignment, bool reserved) {
  entry.hold = reserved ? PodEntry::HoldKind::kReserved : PodEntry::HoldKind::kBound;
  entry.assignment = assignment;
  if (reserved) {
    reserved_.insert(entry.info.uid);
  } else {
    reserved_.erase(entry.info.uid);
  }
  entry.placed = false;
  const auto node_it = nodes_.find(assignment.node);
  const auto index_it = node_index_.find(assignment.node);
  if (node_it == nodes_.end() || index_it == node_index_.end()) {
    return NotFound("node '" + assignment.node +
                    "' publishes no GPUs (yet); its share is "
                    "counted when the node appears");
  }
  const std::vector<NodeGpu>& gpus = node_it->second->info.gpus;
  placement::Placement where{index_it->second, {}};
  for (const AssignedGpu& assigned : assignment.gpus) {
    const auto match = std::find_if(gpus.begin(), gpus.end(), [&](const NodeGpu& gpu) {
      return assigned.uuid.empty() ? gpu.index == assigned.index : gpu.uuid == assigned.uuid;
    });
    if (match == gpus.end()) {
      return NotFound("node '" + assignment.node + "' has no GPU " +
                      (assigned.uuid.empty() ? std::to_string(assigned.index) : assigned.uuid));
    }
    where.gpus.push_back(static_cast<int>(match - gpus.begin()));
  }
  GpuRequest asked = entry.info.request;
  asked.models.clear();  // what is held is held, whatever models the pod allows
  GPUSLICE_ASSIGN_OR_RETURN(const PodRequest request, Resolve(asked));
  entry.id = next_pod_id_++;
  GPUSLICE_RETURN_IF_ERROR(state_->Place(entry.id, request, where));
  entry.placed = true;
  return Status::Ok();
}

void Extender::RebuildClusterState() {
  std::vector<placement::NodeSpec> specs;
  node_index_.clear();
  for (const auto& [name, entry] : nodes_) {
    const std::vector<NodeGpu>& gpus = entry->info.gpus;
    if (gpus.empty()) continue;
    placement::NodeSpec spec;
    spec.name = name;
    spec.gpu_count = static_cast<int>(gpus.size());
    spec.gpu_model = gpus.front().model;
    spec.gpu_memory_mib = std::numeric_limits<std::int64_t>::max();
    for (const NodeGpu& gpu : gpus) {
      spec.gpu_memory_mib = std::min(spec.gpu_memory_mib, gpu.memory_bytes / kMiB);
    }
    node_index_[name] = static_cast<int>(specs.size());
    specs.push_back(std::move(spec));
  }
  Result<placement::ClusterState> state = placement::ClusterState::Create(std::move(specs));
  if (!state.ok()) {  // more distinct GPU models than the engine supports: serve no GPU node
    node_index_.clear();
    state = placement::ClusterState::Create({});
  }
  state_ = *std::move(state);
  for (auto& [uid, entry] : pods_) {
    if (entry->hold == PodEntry::HoldKind::kNone) continue;
    entry->placed = false;
    const GpuAssignment assignment = entry->assignment;
    (void)Hold(*entry, assignment, entry->hold == PodEntry::HoldKind::kReserved);
  }
}

Result<PodRequest> Extender::Resolve(const GpuRequest& request) const {
  placement::PodSpec spec;
  spec.num_gpu = request.gpu_count;
  if (request.is_share()) {
    // A share's size in the engine's unit: its GPU time; best-effort time counts as 1/1000.
    spec.gpu_milli = request.compute_percent > 0 ? request.compute_percent * 10 : 1;
    spec.gpu_memory_mib = (request.memory_bytes + kMiB - 1) / kMiB;
    spec.gpu_compute_percent = request.compute_percent;
  } else if (request.gpu_count > 0) {
    spec.gpu_milli = placement::kMilliPerGpu;
  }
  spec.gpu_models = request.models;
  return state_->Resolve(spec);
}

// ---------------------------------------------------------------- filter

std::string Extender::WhyNot(const PodRequest& request, const GpuRequest& asked, int index,
                             bool* unresolvable) const {
  const placement::NodeState& n = state_->node(index);
  *unresolvable = true;
  if (!request.AllowsModel(n.model_id)) {
    return "no GPU of the allowed models (pod allows " + JoinModels(asked.models) + "; node has " +
           n.spec.gpu_model + ")";
  }
  if (request.num_gpu > n.spec.gpu_count) {
    return "pod needs " + std::to_string(request.num_gpu) + " GPUs, node has " +
           std::to_string(n.spec.gpu_count);
  }
  if (request.gpu_memory_mib > n.spec.gpu_memory_mib) {
    return "GPU memory request " + FormatBytes(asked.memory_bytes) +
           " exceeds every GPU's memory (" + MiBText(n.spec.gpu_memory_mib) + ")";
  }
  *unresolvable = false;
  if (!request.is_share()) {
    return "needs " + std::to_string(request.num_gpu) + " unshared GPU(s), node has " +
           std::to_string(n.whole_free_gpus);
  }
  std::int64_t memory = 0;
  int compute = 0;
  int milli = 0;
  for (const placement::GpuState& gpu : n.gpus) {
    memory = std::max(memory, gpu.memory_free_mib);
    compute = std::max(compute, gpu.compute_free_percent);
    milli = std::max(milli, gpu.milli_free);
  }
  if (memory < request.gpu_memory_mib) {
    return "insufficient GPU memory on every GPU: largest free " + MiBText(memory) + " < " +
           FormatBytes(asked.memory_bytes);
  }
  if (compute < request.gpu_compute_percent) {
    return "insufficient GPU compute on every GPU: largest free " + std::to_string(compute) +
           "% < " + std::to_string(request.gpu_compute_percent) + "%";
  }
  if (milli < request.gpu_milli) {
    return "no GPU has a free share of " + std::to_string(request.gpu_milli) +
           " milli-GPU: largest free " + std::to_string(milli);
  }
  return "no single GPU has both " + FormatBytes(asked.memory_bytes) + " of memory and " +
         std::to_string(request.gpu_compute_percent) + "% of compute free";
}

Result<FilterResult> Extender::Filter(const json& pod, std::span<const std::string> node_names) {
  ExpireIfDue();
  GPUSLICE_ASSIGN_OR_RETURN(const PodInfo info, ParsePod(pod));
  std::shared_lock lock(state_mutex_);
  if (!synced_) {
    return Unavailable("gpuslice-scheduler has not synced its node and pod cache yet (retry)");
  }
  Remember(info, std::nullopt);
  FilterResult result;
  if (!info.request.wants_gpu()) {
    result.nodes.assign(node_names.begin(), node_names.end());
    return result;
  }
  Result<PodRequest> request = Resolve(info.request);
  if (!request.ok()) return request.status().WithContext("pod '" + info.Describe() + "'");
  std::string own_node;  // a reservation or binding of this very pod counts as fitting there
  if (const auto own = pods_.find(info.uid); own != pods_.end() && own->second->placed) {
    own_node = own->second->assignment.node;
  }
  for (const std::string& name : node_names) {
    const auto node = nodes_.find(name);
    const auto index = node_index_.find(name);
    if (name == own_node || (index != node_index_.end() && state_->Fits(*request, index->second))) {
      result.nodes.push_back(name);
    } else if (node == nodes_.end()) {
      result.unresolvable[name] = "node is not in gpuslice-scheduler's cache (not seen yet)";
    } else if (!node->second->info.capacity_error.empty()) {
      result.unresolvable[name] = node->second->info.capacity_error;
    } else if (index == node_index_.end()) {
      result.unresolvable[name] = "node publishes no GPUs for gpuslice (annotation " +
                                  std::string(names::kAnnotationNodeGpus) +
                                  " missing: is gpuslice-node-agent running there?)";
    } else {
      bool unresolvable = false;
      std::string why = WhyNot(*request, info.request, index->second, &unresolvable);
      (unresolvable ? result.unresolvable : result.failed)[name] = std::move(why);
    }
  }
  return result;
}

// ---------------------------------------------------------------- prioritize

void Extender::ObserveOnce(const PodInfo& pod) {
  if (pod.terminated() || observed_.contains(pod.uid)) return;
  // A pod whose request cannot be resolved yet (no node of its models) is observed when it can.
  Result<PodRequest> request = Resolve(pod.request);
  if (!request.ok()) return;
  learner_.Observe(*request);
  observed_.insert(pod.uid);
  if (learner_.Changed()) learner_.Publish(policy_options_);
}

Result<std::vector<HostScore>> Extender::Prioritize(const json& pod,
                                                    std::span<const std::string> node_names) {
  ExpireIfDue();
  GPUSLICE_ASSIGN_OR_RETURN(const PodInfo info, ParsePod(pod));
  std::shared_lock lock(state_mutex_);
  if (!synced_) {
    return Unavailable("gpuslice-scheduler has not synced its node and pod cache yet (retry)");
  }
  std::vector<HostScore> scores;
  scores.reserve(node_names.size());
  for (const std::string& name : node_names) scores.push_back({name, 0});
  if (!info.request.wants_gpu()) return scores;
  Result<PodRequest> request = Resolve(info.request);
  if (!request.ok()) return request.status().WithContext("pod '" + info.Describe() + "'");

  std::set<int> candidates;
  for (const std::string& name : node_names) {
    if (const auto it = node_index_.find(name); it != node_index_.end()) {
      candidates.insert(it->second);
    }
  }
  Result<std::unique_ptr<placement::PlacementPolicy>> policy =
      placement::MakePolicy(options_.policy, policy_options_);
  if (!policy.ok()) return policy.status().WithContext("placement policy");
  // The policy ranks nodes on a private copy: after each choice, that node is blocked and the
  // policy is asked again. The shared cache is not touched.
  placement::PlacementEngine engine(*state_, *std::move(policy));
  placement::PodId blocker_id = std::numeric_limits<placement::PodId>::max() / 2;
  std::vector<RankedChoice> ranked;
  std::set<int> ranked_nodes;
  for (std::size_t round = 0; round <= state_->node_count(); ++round) {
    const std::optional<placement::Placement> choice =
        engine.policy().Choose(engine.state(), *request);
    if (!choice) break;
    if (candidates.contains(choice->node) && ranked_nodes.insert(choice->node).second) {
      ranked.push_back({state_->node(choice->node).spec.name, choice->gpus});
      if (std::ssize(ranked) >= options_.ranked_nodes) break;
    }
    if (!BlockNode(engine, choice->node, blocker_id)) break;
  }
  for (std::size_t rank = 0; rank < ranked.size(); ++rank) {
    for (HostScore& score : scores) {
      if (score.host == ranked[rank].node) {
        score.score = kMaxExtenderPriority - static_cast<int>(rank);
      }
    }
  }
  Remember(info, std::move(ranked));
  return scores;
}

void Extender::Remember(const PodInfo& pod, std::optional<std::vector<RankedChoice>> ranked) {
  std::lock_guard lock(remembered_mutex_);
  const Clock::TimePoint now = clock_.Now();
  if (remembered_.size() >= options_.max_remembered_pods && !remembered_.contains(pod.uid)) {
    std::erase_if(remembered_, [&](const auto& item) {
      return now - item.second.seen > options_.reservation_ttl;
    });
    if (remembered_.size() >= options_.max_remembered_pods) remembered_.clear();
  }
  const auto it = remembered_.try_emplace(pod.uid).first;
  it->second.info = pod;
  it->second.seen = now;
  if (ranked) it->second.ranked = *std::move(ranked);
}

// ---------------------------------------------------------------- bind

Result<PodInfo> Extender::PodForBind(const BindArgs& args) {
  if (const auto it = pods_.find(args.pod_uid); it != pods_.end()) return it->second->info;
  std::lock_guard lock(remembered_mutex_);
  if (const auto it = remembered_.find(args.pod_uid); it != remembered_.end()) {
    return it->second.info;
  }
  return NotFound("pod '" + args.pod_namespace + "/" + args.pod_name + "' (uid " + args.pod_uid +
                  ") is unknown: not in the pod cache nor seen in filter/prioritize");
}

std::vector<int> Extender::ChooseGpusOnNode(const PodInfo& pod, const PodRequest& request,
                                            int index) {
  {
    std::lock_guard lock(remembered_mutex_);
    if (const auto it = remembered_.find(pod.uid); it != remembered_.end()) {
      const std::string& name = state_->node(index).spec.name;
      for (const RankedChoice& choice : it->second.ranked) {
        if (choice.node == name && state_->Check(request, {index, choice.gpus}).ok()) {
          return choice.gpus;  // prioritize's choice, still valid
        }
      }
    }
  }
  // kube-scheduler picked a node the policy did not rank first: tightest fit on that node.
  std::vector<int> best;
  std::int64_t best_left = std::numeric_limits<std::int64_t>::max();
  for (std::vector<int>& gpus : placement::CandidateGpuSets(*state_, request, index)) {
    std::int64_t left = 0;
    for (const int g : gpus) {
      const placement::GpuState& gpu = state_->node(index).gpus[static_cast<std::size_t>(g)];
      left += gpu.milli_free - request.gpu_milli;
    }
    if (left < best_left) {
      best_left = left;
      best = std::move(gpus);
    }
  }
  return best;
}

Result<GpuAssignment> Extender::AssignmentFor(const PodInfo& pod, const std::string& node,
                                              int /*index*/,
                                              const std::vector<int>& positions) const {
  const std::vector<NodeGpu>& gpus = nodes_.at(node)->info.gpus;
  GpuAssignment assignment;
  assignment.node = node;
  assignment.container = pod.request.container;
  assignment.memory_bytes = pod.request.memory_bytes;
  assignment.compute_percent = pod.request.compute_percent;
  for (const int position : positions) {
    const NodeGpu& gpu = gpus.at(static_cast<std::size_t>(position));
    assignment.gpus.push_back({gpu.index, gpu.uuid});
  }
  return assignment;
}

Status Extender::Bind(const BindArgs& args) {
  const std::string who = "pod '" + args.pod_namespace + "/" + args.pod_name + "'";
  std::unique_lock lock(state_mutex_);
  if (!synced_) {
    return Unavailable("gpuslice-scheduler has not synced its node and pod cache yet (retry)");
  }
  ExpireReservations();
  GPUSLICE_ASSIGN_OR_RETURN(const PodInfo pod, PodForBind(args));
  PodEntry* entry = pods_.contains(args.pod_uid) ? pods_.at(args.pod_uid).get() : nullptr;
  const std::string bound_to =
      !pod.node_name.empty()
          ? pod.node_name
          : (entry != nullptr && entry->hold == PodEntry::HoldKind::kBound ? entry->assignment.node
                                                                           : std::string());
  if (!bound_to.empty()) {
    if (bound_to == args.node) return Status::Ok();  // already done: answer idempotently
    return FailedPrecondition(who + " is already bound to node '" + bound_to + "'");
  }
  BindingRequest binding{args.pod_namespace, args.pod_name, args.pod_uid, args.node, {}};
  placement::PodId reserved_id = 0;
  if (pod.request.wants_gpu()) {
    if (entry != nullptr && entry->hold == PodEntry::HoldKind::kReserved &&
        entry->assignment.node != args.node) {
      Release(*entry);
    }
    if (entry == nullptr || entry->hold != PodEntry::HoldKind::kReserved) {
      const auto index = node_index_.find(args.node);
      if (index == node_index_.end()) {
        return NotFound(who + ": node '" + args.node + "' publishes no GPUs to gpuslice");
      }
      Result<PodRequest> request = Resolve(pod.request);
      if (!request.ok()) return request.status().WithContext(who);
      const std::vector<int> gpus = ChooseGpusOnNode(pod, *request, index->second);
      if (gpus.empty()) {
        bool unresolvable = false;
        return ResourceExhausted(who + " does not fit node '" + args.node + "': " +
                                 WhyNot(*request, pod.request, index->second, &unresolvable));
      }
      GPUSLICE_ASSIGN_OR_RETURN(const GpuAssignment assignment,
                                AssignmentFor(pod, args.node, index->second, gpus));
      auto& slot = pods_[args.pod_uid];
      if (slot == nullptr) {
        slot = std::make_unique<PodEntry>();
        slot->info = pod;
      }
      entry = slot.get();
      GPUSLICE_RETURN_IF_ERROR(Hold(*entry, assignment, /*reserved=*/true).WithContext(who));
    }
    entry->expires = clock_.Now() + options_.reservation_ttl;
    next_expiry_ = std::min(next_expiry_.load(), entry->expires.time_since_epoch().count());
    reserved_id = entry->id;
    binding.annotations[std::string(names::kAnnotationPodAssignment)] =
        EncodeAssignment(entry->assignment);
  }
  lock.unlock();
  const Status written = writer_.Bind(binding);
  if (written.ok()) return Status::Ok();
  lock.lock();
  if (const auto it = pods_.find(args.pod_uid); it != pods_.end() && reserved_id != 0 &&
                                                it->second->hold == PodEntry::HoldKind::kReserved &&
                                                it->second->id == reserved_id) {
    Release(*it->second);
  }
  return written.WithContext("binding " + who + " to node '" + args.node + "'");
}

void Extender::ExpireReservations() {
  const Clock::TimePoint now = clock_.Now();
  auto next = std::numeric_limits<Clock::Duration::rep>::max();
  for (auto it = reserved_.begin(); it != reserved_.end();) {
    PodEntry& entry = *pods_.at(*it++);  // Release erases the current element
    if (entry.expires <= now) {
      Release(entry);
    } else {
      next = std::min(next, entry.expires.time_since_epoch().count());
    }
  }
  next_expiry_ = next;
}

void Extender::ExpireIfDue() {
  if (clock_.Now().time_since_epoch().count() < next_expiry_.load()) return;
  std::unique_lock lock(state_mutex_);
  ExpireReservations();
}

// ---------------------------------------------------------------- introspection

std::optional<GpuAssignment> Extender::AssignmentOf(const std::string& uid) const {
  std::shared_lock lock(state_mutex_);
  const auto it = pods_.find(uid);
  if (it == pods_.end() || it->second->hold == PodEntry::HoldKind::kNone) return std::nullopt;
  return it->second->assignment;
}

bool Extender::IsReserved(const std::string& uid) const {
  std::shared_lock lock(state_mutex_);
  const auto it = pods_.find(uid);
  return it != pods_.end() && it->second->hold == PodEntry::HoldKind::kReserved;
}

std::vector<placement::TaskType> Extender::TaskTypes() const {
  std::shared_lock lock(state_mutex_);
  return policy_options_.task_types;
}

std::uint64_t Extender::PodsObserved() const {
  std::shared_lock lock(state_mutex_);
  return learner_.pods_observed();
}

std::vector<GpuFree> Extender::FreeGpus(const std::string& node) const {
  std::shared_lock lock(state_mutex_);
  std::vector<GpuFree> out;
  const auto index = node_index_.find(node);
  if (index == node_index_.end()) return out;
  const std::vector<NodeGpu>& gpus = nodes_.at(node)->info.gpus;
  const auto& states = state_->node(index->second).gpus;
  for (std::size_t g = 0; g < states.size(); ++g) {
    out.push_back({gpus[g].index, gpus[g].uuid, states[g].memory_free_mib * kMiB,
                   states[g].compute_free_percent, states[g].milli_free});
  }
  return out;
}

}  // namespace gpuslice::scheduler
