// Extender: gpuslice's kube-scheduler extender logic, without HTTP. It keeps a cache of nodes
// (their published GPUs) and GPU pods (bound placements from their annotations, in-memory
// reservations of binds in flight), answers filter and prioritize as pure functions of that
// cache, and binds through a BindingWriter with the chosen GPUs in the Binding's annotations.
//
// Thread safety: every public method may be called concurrently. Filter and Prioritize share a
// reader lock; state changes and the reservation step of Bind take the writer lock; the
// BindingWriter is called with no lock held.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "placement/cluster_state.h"
#include "placement/online_task_types.h"
#include "placement/placement_policy.h"
#include "scheduler/binding_writer.h"
#include "scheduler/kube_objects.h"

namespace gpuslice::scheduler {

struct ExtenderOptions {
  std::string policy = "gpuslice";  // one of placement::PolicyNames()
  // Task types are not given: they are learned online (task_types below), so task_types and
  // all_task_types here are ignored.
  placement::PolicyOptions policy_options;
  // The online learner of the workload's task types (the simulator's online mode): each GPU pod
  // the cache learns about is observed once, when first seen.
  placement::OnlineTaskTypesOptions task_types;
  // How long a bind's reservation holds its GPUs before the pod is seen bound.
  Clock::Duration reservation_ttl = std::chrono::minutes(2);
  // Prioritize ranks this many nodes by the policy (scores 10, 9, ...); the rest score 0.
  int ranked_nodes = 10;
  // Pods seen only in filter/prioritize arguments are remembered (for bind) at most this many.
  std::size_t max_remembered_pods = 10000;
};

struct FilterResult {
  std::vector<std::string> nodes;                   // where the pod fits, in the order given
  std::map<std::string, std::string> failed;        // node -> reason (preemption may help)
  std::map<std::string, std::string> unresolvable;  // node -> reason (preemption cannot help)
};

struct HostScore {
  std::string host;
  int score = 0;  // 0..kMaxExtenderPriority
  friend bool operator==(const HostScore&, const HostScore&) = default;
};

inline constexpr int kMaxExtenderPriority = 10;  // k8s.io/kube-scheduler/extender/v1

struct BindArgs {
  std::string pod_name;
  std::string pod_namespace;
  std::string pod_uid;
  std::string node;
};

// What a full sync found: counts, and objects that could not be used (with why).
struct SyncReport {
  int nodes = 0;
  int gpu_nodes = 0;
  int pods = 0;          // pods asking for gpuslice.io resources
  int holding_pods = 0;  // pods whose GPUs are accounted (bound or reserved)
  std::vector<std::string> problems;
};

// The free resources of one GPU as the extender sees them (after reservations).
struct GpuFree {
  int index = 0;
  std::string uuid;
  std::int64_t memory_free_bytes = 0;
  int compute_free_percent = 0;
  int milli_free = 0;
  friend bool operator==(const GpuFree&, const GpuFree&) = default;
};

class Extender {
 public:
  // Fails when options.policy is not a known policy name.
  static Result<std::unique_ptr<Extender>> Create(ExtenderOptions options, const Clock& clock,
                                                  BindingWriter& writer);
  ~Extender();
  Extender(const Extender&) = delete;
  Extender& operator=(const Extender&) = delete;

  // --- Cache feed (from a list+watch informer, or a static file) ---
  // Replaces the whole cache with these v1 Node and Pod objects and marks the extender synced.
  // Pods absent from `pods` release what they held; reservations of pods still pending survive.
  SyncReport Rebuild(std::span<const nlohmann::json> nodes, std::span<const nlohmann::json> pods);
  // Adds or updates one object (a watch ADDED/MODIFIED event). Errors describe an unusable object;
  // the cache stays consistent either way.
  Status UpsertNode(const nlohmann::json& node);
  Status UpsertPod(const nlohmann::json& pod);
  void DeleteNode(const std::string& name);
  void DeletePod(const std::string& uid);
  // True once Rebuild has run; until then the verbs answer Unavailable.
  bool synced() const;

  // --- Extender verbs ---
  // Which of `node_names` can host `pod` (a v1 Pod as kube-scheduler sends it), with a reason for
  // each node that cannot. No side effects on the cache.
  Result<FilterResult> Filter(const nlohmann::json& pod, std::span<const std::string> node_names);
  // Scores 0..10: the policy's first choice among `node_names` gets 10, its next choices 9, 8, ...
  Result<std::vector<HostScore>> Prioritize(const nlohmann::json& pod,
                                            std::span<const std::string> node_names);
  // Chooses the GPUs on args.node (reusing prioritize's choice when still valid), reserves them
  // and writes the Binding with the gpuslice.io/assignment annotation. Idempotent for a pod that
  // is already bound to, or has a reservation on, that node.
  Status Bind(const BindArgs& args);

  // --- Introspection (tests, status pages) ---
  std::optional<GpuAssignment> AssignmentOf(const std::string& uid) const;
  bool IsReserved(const std::string& uid) const;  // reserved by a bind, not yet seen bound
  // The task types the fragmentation-aware policies aim at now (as last published by the
  // learner), and how many pods the learner has observed.
  std::vector<placement::TaskType> TaskTypes() const;
  std::uint64_t PodsObserved() const;
  std::vector<GpuFree> FreeGpus(const std::string& node) const;

 private:
  struct PodEntry;
  struct NodeEntry;
  struct RememberedPod;

  Extender(ExtenderOptions options, const Clock& clock, BindingWriter& writer);

  // All private helpers expect state_mutex_ held (shared for const ones, unique otherwise).
  void RebuildClusterState();
  Status ApplyPod(PodInfo info);
  void Release(PodEntry& entry);
  Status Hold(PodEntry& entry, const GpuAssignment& assignment, bool reserved);
  Result<placement::PodRequest> Resolve(const GpuRequest& request) const;
  Result<GpuAssignment> AssignmentFor(const PodInfo& pod, const std::string& node, int index,
                                      const std::vector<int>& positions) const;
  std::string WhyNot(const placement::PodRequest& request, const GpuRequest& asked, int index,
                     bool* unresolvable) const;
  void ObserveOnce(const PodInfo& pod);
  void ExpireReservations();
  void ExpireIfDue();
  Result<PodInfo> PodForBind(const BindArgs& args);
  std::vector<int> ChooseGpusOnNode(const PodInfo& pod, const placement::PodRequest& request,
                                    int index);
  struct RankedChoice {
    std::string node;
    std::vector<int> gpus;  // positions in the node's GPU list
  };
  void Remember(const PodInfo& pod, std::optional<std::vector<RankedChoice>> ranked);

  const ExtenderOptions options_;
  const Clock& clock_;
  BindingWriter& writer_;

  mutable std::shared_mutex state_mutex_;
  bool synced_ = false;
  std::map<std::string, std::unique_ptr<NodeEntry>> nodes_;          // by name
  std::unordered_map<std::string, std::unique_ptr<PodEntry>> pods_;  // by uid
  std::optional<placement::ClusterState> state_;
  std::unordered_map<std::string, int> node_index_;  // name -> index in state_
  std::set<std::string> reserved_;  // uids holding a reservation (binds not yet seen bound)
  placement::PodId next_pod_id_ = 1;
  std::atomic<Clock::Duration::rep> next_expiry_{0};  // earliest reservation expiry

  // Pods seen in filter/prioritize arguments, with prioritize's ranked placements (for bind).
  std::mutex remembered_mutex_;
  std::unordered_map<std::string, RememberedPod> remembered_;  // by uid

  // Online task types, changed only with state_mutex_ held exclusively (cache changes), read by
  // prioritize under the shared lock: filter and prioritize never change what they read.
  placement::OnlineTaskTypes learner_;
  std::unordered_set<std::string> observed_;  // uids of the pods the learner has seen
  placement::PolicyOptions policy_options_;   // options_.policy_options + the published types
};

}  // namespace gpuslice::scheduler
