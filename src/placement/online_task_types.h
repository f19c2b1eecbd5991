// Online workload knowledge: learns the task types of a workload and their popularity from the
// pods seen so far, so the fragmentation-aware policies (fgd, gpuslice) can run without being
// given the workload (what a scheduler extender sees: one pod at a time).
//
// Each observed pod adds weight 1 to its task type (keyed like TypicalTaskTypes: CPU, per-GPU
// share, GPU count, allowed models), and every earlier weight decays by 2^(-1 / half_life_pods)
// per observed pod: a pod observed `half_life_pods` pods ago counts half as much as the newest,
// so the learned mix follows a workload whose mix changes. Types whose share falls below
// `forget_share` are dropped. The result depends only on the sequence of observed pods.
//
// Pushing a new mix into a policy clears its caches (every node recomputes its scores once), so
// the learner says when the mix has moved far enough to be worth it: Changed() is true once the
// total-variation distance between the current mix and the one last published reaches
// `republish_distance` and at least a minimum gap of pods has been observed since (half the pods
// observed at the last publication, between `min_gap_pods` and half_life_pods / 4: frequent
// while the first pods shape the mix, then at most about four times per half-life), or
// `republish_every_pods` pods have been observed since (0: never by count alone).
//
// Typical use (the simulator's online mode, the scheduler extender):
//   OnlineTaskTypes learner;
//   PolicyOptions options;  options.task_types_later = true;
//   auto policy = MakePolicy("gpuslice", options);
//   for each pod: learner.ObserveAndUpdate(pod, *policy); policy->Choose(state, pod); ...
//
// Not thread safe; one scheduler thread owns a learner, like the policy it feeds.
#pragma once

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "placement/cluster_state.h"
#include "placement/fragmentation.h"
#include "placement/placement_policy.h"

namespace gpuslice::placement {

struct OnlineTaskTypesOptions {
  // Pods after which an observation counts half; must be > 0.
  double half_life_pods = 2000;
  // How the typical types are cut from the learned mix (coverage, CPU-only types).
  TaskTypeOptions typical;
  // Total-variation distance (0..1) between the current mix and the last published one that
  // makes Changed() true.
  double republish_distance = 0.05;
  // The smallest gap, in observed pods, between publications for a distance change.
  std::uint64_t min_gap_pods = 32;
  // Observed pods after which Changed() is true whatever the distance (0: never by count).
  std::uint64_t republish_every_pods = 0;
  // Types whose share of the decayed weight falls below this are forgotten.
  double forget_share = 1e-5;
};

class OnlineTaskTypes {
 public:
  explicit OnlineTaskTypes(OnlineTaskTypesOptions options = {});

  // Records one pod of the workload (call it once per pod, before or after placing it).
  void Observe(const PodRequest& pod);

  // Whether the mix moved enough since the last Publish/ObserveAndUpdate to push it again.
  // True after the first observation.
  bool Changed() const;

  // The learned types, most popular first: those covering options.typical.coverage of the
  // decayed weight, renormalised (as TypicalTaskTypes), and all of them (coverage 1).
  std::vector<TaskType> TypicalTypes() const;
  std::vector<TaskType> AllTypes() const;

  // Sets options.task_types and options.all_task_types to the learned mix and marks it published.
  void Publish(PolicyOptions& options);
  // Observe(pod), then, if Changed(), publishes the mix into `policy` (PlacementPolicy::
  // SetTaskTypes). Returns whether the policy was updated.
  bool ObserveAndUpdate(const PodRequest& pod, PlacementPolicy& policy);

  std::uint64_t pods_observed() const { return pods_observed_; }
  std::uint64_t publications() const { return publications_; }

 private:
  using TypeKey = std::tuple<std::int64_t, int, int, std::uint64_t>;
  struct Entry {
    PodRequest request;  // the first pod of the type seen (memory: decayed mean)
    double weight = 0;   // in units of the current scale
    double memory_weighted = 0;
  };
  std::vector<TaskType> Types(double coverage) const;
  double Share(const Entry& entry) const { return entry.weight / total_weight_; }
  void Rescale();
  void MarkPublished();

  OnlineTaskTypesOptions options_;
  double growth_;  // 2^(1 / half_life): the weight of each new pod grows instead of decay
  double next_weight_ = 1;
  double total_weight_ = 0;
  std::map<TypeKey, Entry> entries_;
  std::map<TypeKey, double> published_;  // share of each type at the last publication
  std::uint64_t pods_observed_ = 0;
  std::uint64_t observed_at_publication_ = 0;
  std::uint64_t publications_ = 0;
};

}  // namespace gpuslice::placement
