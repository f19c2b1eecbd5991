// The placement policies. The baselines follow the definitions evaluated in the FGD paper (and its
// authors' open-source simulator); "gpuslice" is this project's own policy.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include "placement/cpu_stranding.h"
#include "placement/node_state_classes.h"
#include "placement/placement_policy.h"
#include "placement/rng.h"

namespace gpuslice::placement {
namespace {

// Normalisers used by the baselines' scores: the largest node shape in the trace.
constexpr double kMaxSpecCpuMilli = 128000;
constexpr double kMaxSpecGpuMilli = 8000;
constexpr double kTieEpsilon = 1e-9;

constexpr std::array<std::string_view, 7> kPolicyNames = {
    "random", "best-fit", "dot-product", "gpu-packing", "gpu-clustering", "fgd", "gpuslice"};

bool SameGpuState(const GpuState& a, const GpuState& b) {
  return a.milli_free == b.milli_free && a.memory_free_mib == b.memory_free_mib &&
         a.compute_free_percent == b.compute_free_percent;
}

// Fills `out` with the free share of each GPU of `node` once `pod` holds `gpus` (none: as the
// node is now).
void FreeShares(const NodeState& node, const PodRequest& pod, std::span<const int> gpus,
                std::vector<int>& out) {
  out.clear();
  for (const GpuState& gpu : node.gpus) out.push_back(gpu.milli_free);
  for (const int g : gpus) out[static_cast<std::size_t>(g)] -= pod.gpu_milli;
}

// Calls fn(span of GPU indices) for each distinct candidate of `pod` on node `index`, which the
// caller has checked with ClusterState::Fits. `scratch` is reused to avoid allocations.
template <typename Fn>
void ForEachCandidate(const ClusterState& state, const PodRequest& pod, int index,
                      std::vector<int>& scratch, Fn&& fn) {
  scratch.clear();
  if (!pod.wants_gpu()) {
    fn(std::span<const int>(scratch));
    return;
  }
  const std::vector<GpuState>& gpus = state.node(index).gpus;
  if (pod.is_share()) {
    for (std::size_t g = 0; g < gpus.size(); ++g) {
      if (!ClusterState::GpuFits(gpus[g], pod)) continue;
      bool duplicate = false;
      for (std::size_t h = 0; h < g && !duplicate; ++h) {
        duplicate = ClusterState::GpuFits(gpus[h], pod) && SameGpuState(gpus[h], gpus[g]);
      }
      if (duplicate) continue;
      scratch.assign(1, static_cast<int>(g));
      fn(std::span<const int>(scratch));
    }
    return;
  }
  for (std::size_t g = 0; g < gpus.size() && static_cast<int>(scratch.size()) < pod.num_gpu; ++g) {
    if (gpus[g].milli_free == kMilliPerGpu && ClusterState::GpuFits(gpus[g], pod)) {
      scratch.push_back(static_cast<int>(g));
    }
  }
  if (static_cast<int>(scratch.size()) == pod.num_gpu) fn(std::span<const int>(scratch));
}

// Scans every candidate, keeps the highest score, breaks exact ties by the policy's TieBreak.
//
// Scores are pure functions of a node's state and the pod's shape, so the scores computed for the
// last few pod shapes are cached per class of identical node states (NodeStateClasses) until a
// node's state changes: nodes alike share one computation, and a node returning to a state finds
// it again. Workloads repeat a few dozen shapes, so most nodes answer most pods from the cache
// and a decision costs a scan of the nodes, not a recomputation of every node's fragmentation.
// Cached and fresh scores are identical, so the cache does not change any choice.
class ScoredPolicy : public PlacementPolicy {
 public:
  explicit ScoredPolicy(const PolicyOptions& options)
      : rng_(options.seed), tie_break_(options.tie_break) {}

  std::optional<Placement> Choose(const ClusterState& state, const PodRequest& pod) override {
    if (classes_.node_count() != state.node_count()) StartCaches(state);
    Prepare(state, pod);
    const std::uint32_t shape = ShapeId(pod);
    double best = -std::numeric_limits<double>::infinity();
    std::uint64_t ties = 0;
    Placement choice;
    const std::size_t width = static_cast<std::size_t>(pod.num_gpu);
    std::vector<double>& bounds = BoundsFor(shape);
    PodRequest no_memory = pod;
    no_memory.memory_mib = 0;
    const int n = static_cast<int>(state.node_count());
    // A score some candidate reaches, so the scan can skip nodes that cannot reach it: the final
    // best is at least this. Only with lowest-name ties (with random ties every tie met during
    // the scan draws from the generator, so the scan must meet the same ones).
    const double floor = tie_break_ == TieBreak::kLowestNodeName && uses_slot_losses_
                             ? ReachableScore(state, pod, shape, bounds)
                             : -std::numeric_limits<double>::infinity();
    for (int node = 0; node < n; ++node) {
      const auto index = static_cast<std::size_t>(node);
      // Most nodes are decided here, from two contiguous arrays: the node cannot host the shape,
      // or none of its candidates can reach the best so far (scores never exceed the bound).
      double bound = bounds[index];
      if (bound == kCannotHost || bound < std::max(best, floor) - kTieEpsilon) continue;
      if (memory_free_[index] < pod.memory_mib) continue;
      if (std::isnan(bound)) {
        if (!state.Fits(no_memory, node)) {
          bounds[index] = kCannotHost;
          continue;
        }
        const CachedScores& fresh = ScoresFor(state, pod, shape, node);
        bound = fresh.scores.empty() ? kCannotHost
                                     : *std::max_element(fresh.scores.begin(), fresh.scores.end());
        bounds[index] = bound;
        if (bound == kCannotHost || bound < std::max(best, floor) - kTieEpsilon) continue;
      }
      CachedScores& scores = ScoresFor(state, pod, shape, node);
      std::size_t offset = 0;
      for (std::size_t c = 0; c < scores.scores.size(); ++c, offset += width) {
        double score = scores.scores[c];
        // The slot-loss cost is >= 0: a candidate already below the best can be neither better
        // nor a tie, so its cost need not be priced (the choice is the same either way).
        if (score < std::max(best, floor) - kTieEpsilon) continue;
        if (uses_slot_losses_) score -= CandidateLossCost(state, pod, node, scores, c);
        bool take = false;
        if (score > best + kTieEpsilon) {
          best = score;
          ties = 1;
          take = true;
        } else if (score >= best - kTieEpsilon) {
          ++ties;
          // Lowest name: a later candidate on the same node (a higher GPU index) never wins.
          take = tie_break_ == TieBreak::kRandom
                     ? rng_.Below(ties) == 0
                     : name_rank_[static_cast<std::size_t>(node)] <
                           name_rank_[static_cast<std::size_t>(choice.node)];
        }
        if (take) {
          choice.node = node;
          choice.gpus.assign(scores.gpus.begin() + static_cast<std::ptrdiff_t>(offset),
                             scores.gpus.begin() + static_cast<std::ptrdiff_t>(offset + width));
        }
      }
    }
    if (ties == 0) return std::nullopt;
    return choice;
  }

  bool SetTaskTypes(std::vector<TaskType> typical, std::vector<TaskType> all) final {
    if (!UsesTaskTypes()) return false;
    if (all.empty()) all = typical;
    ForgetScores();
    OnTaskTypes(std::move(typical), std::move(all));
    return true;
  }

  void OnPlaced(const ClusterState& state, const PodRequest& pod, const Placement& p) final {
    NodeChanged(state, pod, p, /*placed=*/true);
  }
  void OnRemoved(const ClusterState& state, const PodRequest& pod, const Placement& p) final {
    NodeChanged(state, pod, p, /*placed=*/false);
  }

 protected:
  // Higher is better. `gpus` are the candidate's GPU indices on `node`.
  virtual double Score(const ClusterState& state, const PodRequest& pod, int node,
                       std::span<const int> gpus) = 0;

  // A score may also depend on the whole cluster, through what a candidate takes away from the
  // node: copies of task types ("slots") it could host before and not after. Policies that set
  // uses_slot_losses_ list those in LostSlots (node-local, cached with the score) and price them
  // in SlotLossCost (from the cluster's current state, every decision); the price is subtracted.
  // Losses are listed lazily, for nodes whose candidates reach the best score so far, and kept
  // with the scores unless the lists are long (ListLosses).
  struct SlotLoss {
    std::uint32_t type = 0;
    std::int32_t copies = 0;
  };
  virtual void LostSlots(const ClusterState& /*state*/, const PodRequest& /*pod*/, int /*node*/,
                         std::span<const int> /*gpus*/, std::vector<SlotLoss>& /*out*/) {}
  virtual double SlotLossCost(std::span<const SlotLoss> /*losses*/) { return 0; }
  bool uses_slot_losses_ = false;
  // Policies with a target workload: take new task types (caches depending on them cleared).
  virtual bool UsesTaskTypes() const { return false; }
  virtual void OnTaskTypes(std::vector<TaskType> /*typical*/, std::vector<TaskType> /*all*/) {}
  virtual void Prepare(const ClusterState& /*state*/, const PodRequest& /*pod*/) {}
  // False when a score depends on more than the node's state (NodeStateClasses says what that
  // is) and the pod's shape: then every node caches its scores on its own.
  virtual bool ScoresFollowNodeState() const { return true; }
  // The nodes' classes of identical states, up to date from the first Prepare on.
  const NodeStateClasses& node_classes() const { return classes_; }
  // A pod was placed on (placed = true) or removed from node p.node.
  virtual void OnNodeChanged(const ClusterState& /*state*/, const PodRequest& /*pod*/,
                             const Placement& /*p*/, bool /*placed*/) {}

  // Prefers, among GPUs of one node, the one with the least free share (a "best" GPU choice);
  // small enough never to override a node-level difference.
  static double BestGpuTieBreak(const ClusterState& state, int node, std::span<const int> gpus) {
    double free = 0;
    for (const int g : gpus) free += state.node(node).gpus[static_cast<std::size_t>(g)].milli_free;
    return -1e-6 * free;
  }

 private:
  // More than the shapes a trace file repeats often (35 shapes cover 95 % of the default
  // file's pods), so common shapes are rarely evicted by rare ones.
  static constexpr std::size_t kShapesPerNode = 64;

  struct CachedScores {
    std::uint32_t shape = 0;              // ShapeId of the pods it answers
    std::vector<double> scores;           // one per candidate, in candidate order
    std::vector<int> gpus;                // candidates' GPU indices, num_gpu each, concatenated
    std::vector<SlotLoss> losses;         // candidates' lost slots, concatenated
    std::vector<std::uint32_t> loss_end;  // per candidate: end of its entries in `losses`
    bool losses_ready = false;            // listed only once a candidate needs pricing
    bool losses_uncached = false;         // too long to keep: listed again at each pricing
  };
  // The cache of one class of identical node states.
  struct NodeCache {
    std::vector<CachedScores> entries;  // the first `used` are valid
    std::vector<std::uint32_t> ids;     // entries[i].shape, kept compact for the lookup
    std::size_t used = 0;
    std::size_t next_victim = 0;
  };

  // Scores do not depend on the pod's memory (Fits checks it before scoring), so pods that
  // differ only in memory share cache entries.
  static bool SameShape(const PodRequest& a, const PodRequest& b) {
    return a.cpu_milli == b.cpu_milli && a.num_gpu == b.num_gpu && a.gpu_milli == b.gpu_milli &&
           a.allowed_models == b.allowed_models && a.gpu_memory_mib == b.gpu_memory_mib &&
           a.gpu_compute_percent == b.gpu_compute_percent;
  }

  // A small number per distinct shape, so a node's cache compares integers. Shapes seen before
  // are looked up from the most recent; the list is bounded (a cleared list only costs misses).
  std::uint32_t ShapeId(const PodRequest& pod) {
    for (std::size_t i = shapes_.size(); i-- > 0;) {
      if (SameShape(shapes_[i].first, pod)) return shapes_[i].second;
    }
    if (shapes_.size() >= kMaxShapes) {
      shapes_.clear();
      bounds_.clear();
      next_shape_id_ = 0;
      for (NodeCache& cache : cache_) cache.used = 0;
    }
    shapes_.emplace_back(pod, next_shape_id_);
    return next_shape_id_++;
  }
  static constexpr std::size_t kMaxShapes = 1024;

  // Per shape, per node: the highest cached score of the node's candidates for that shape (an
  // upper bound of their final scores, since slot-loss costs are >= 0), kCannotHost when the node
  // cannot host the shape whatever the pod's memory, NaN when not known since the node changed.
  std::vector<double>& BoundsFor(std::uint32_t shape) {
    if (bounds_.size() <= shape) {
      bounds_.resize(shape + 1);
      bounds_epoch_.resize(shape + 1, 0);
    }
    std::vector<double>& bounds = bounds_[shape];
    if (bounds.size() != classes_.node_count() || bounds_epoch_[shape] != scores_epoch_) {
      bounds.assign(classes_.node_count(), std::numeric_limits<double>::quiet_NaN());
      bounds_epoch_[shape] = scores_epoch_;
    }
    return bounds;
  }
  static constexpr double kCannotHost = -std::numeric_limits<double>::infinity();

  // The node classes and their caches, and the nodes' rank by name (lowest-name tie-break).
  void StartCaches(const ClusterState& state) {
    classes_.Reset(state, /*per_node=*/!ScoresFollowNodeState());
    cache_.assign(classes_.class_capacity(), NodeCache{});
    bounds_.clear();
    memory_free_.resize(state.node_count());
    for (std::size_t i = 0; i < memory_free_.size(); ++i) {
      memory_free_[i] = state.node(static_cast<int>(i)).memory_free;
    }
    std::vector<int> order(state.node_count());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return state.node(a).spec.name < state.node(b).spec.name;
    });
    name_rank_.assign(order.size(), 0);
    for (std::size_t r = 1; r < order.size(); ++r) {
      const bool same = state.node(order[r]).spec.name == state.node(order[r - 1]).spec.name;
      name_rank_[static_cast<std::size_t>(order[r])] =
          same ? name_rank_[static_cast<std::size_t>(order[r - 1])] : static_cast<int>(r);
    }
  }

  // The slot-loss cost of candidate `c` of a node's cached entry.
  double CandidateLossCost(const ClusterState& state, const PodRequest& pod, int node,
                           CachedScores& entry, std::size_t c) {
    if (!entry.losses_ready) ListLosses(state, pod, node, entry);
    if (entry.losses_uncached) {
      const auto width = static_cast<std::size_t>(pod.num_gpu);
      loss_scratch_.clear();
      LostSlots(state, pod, node, std::span<const int>(entry.gpus).subspan(c * width, width),
                loss_scratch_);
      return SlotLossCost(loss_scratch_);
    }
    const std::uint32_t first = c == 0 ? 0 : entry.loss_end[c - 1];
    return SlotLossCost(
        std::span<const SlotLoss>(entry.losses).subspan(first, entry.loss_end[c] - first));
  }

  // The best final score among the candidates of the few nodes with the highest known bounds
  // (-inf when none is known): a score the decision is sure to reach.
  double ReachableScore(const ClusterState& state, const PodRequest& pod, std::uint32_t shape,
                        const std::vector<double>& bounds) {
    constexpr std::size_t kProbes = 4;
    std::array<int, kProbes> top{};
    std::array<double, kProbes> top_bound{};
    top_bound.fill(kCannotHost);
    for (std::size_t i = 0; i < bounds.size(); ++i) {
      const double bound = bounds[i];
      // NaN (unknown) and kCannotHost compare false.
      if (!(bound > top_bound[kProbes - 1]) || memory_free_[i] < pod.memory_mib) continue;
      std::size_t at = kProbes - 1;
      for (; at > 0 && bound > top_bound[at - 1]; --at) {
        top_bound[at] = top_bound[at - 1];
        top[at] = top[at - 1];
      }
      top_bound[at] = bound;
      top[at] = static_cast<int>(i);
    }
    double reachable = -std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k < kProbes && top_bound[k] != kCannotHost; ++k) {
      if (top_bound[k] < reachable) break;  // sorted: no later probe can do better
      CachedScores& entry = ScoresFor(state, pod, shape, top[k]);
      for (std::size_t c = 0; c < entry.scores.size(); ++c) {
        if (entry.scores[c] <= reachable) continue;
        reachable =
            std::max(reachable, entry.scores[c] - CandidateLossCost(state, pod, top[k], entry, c));
      }
    }
    return reachable;
  }

  // Lists every candidate's lost slots (node-local, so they stay valid as long as the scores).
  // Lists that would be longer (workloads with hundreds of task types) are not kept: keeping
  // them cost more in memory traffic than listing a candidate's losses again when it is priced.
  void ListLosses(const ClusterState& state, const PodRequest& pod, int node, CachedScores& entry) {
    entry.losses.clear();
    entry.loss_end.clear();
    entry.losses_ready = true;
    entry.losses_uncached = false;
    const auto width = static_cast<std::size_t>(pod.num_gpu);
    for (std::size_t c = 0; c < entry.scores.size(); ++c) {
      loss_scratch_.clear();
      LostSlots(state, pod, node, std::span<const int>(entry.gpus).subspan(c * width, width),
                loss_scratch_);
      if (entry.losses.size() + loss_scratch_.size() > kMaxCachedLosses) {
        entry.losses.clear();
        entry.loss_end.clear();
        entry.losses_uncached = true;
        return;
      }
      entry.losses.insert(entry.losses.end(), loss_scratch_.begin(), loss_scratch_.end());
      entry.loss_end.push_back(static_cast<std::uint32_t>(entry.losses.size()));
    }
  }
  static constexpr std::size_t kMaxCachedLosses = 256;

  CachedScores& ScoresFor(const ClusterState& state, const PodRequest& pod, std::uint32_t shape,
                          int node) {
    NodeCache& cache = cache_[classes_.ClassOf(node)];
    for (std::size_t i = 0; i < cache.used; ++i) {
      if (cache.ids[i] == shape) return cache.entries[i];
    }
    // Reuse a slot's buffers (entries are cleared, not freed, when the node changes).
    std::size_t index = 0;
    if (cache.used < cache.entries.size()) {
      index = cache.used++;
    } else if (cache.entries.size() < kShapesPerNode) {
      CachedScores& created = cache.entries.emplace_back();
      // Up to 8 candidates on the trace's nodes: a new entry allocates once per buffer.
      created.scores.reserve(8);
      created.gpus.reserve(8);
      created.loss_end.reserve(8);
      cache.ids.push_back(0);
      index = cache.used++;
    } else {
      index = cache.next_victim;
      cache.next_victim = (cache.next_victim + 1) % kShapesPerNode;
    }
    CachedScores* slot = &cache.entries[index];
    cache.ids[index] = shape;
    slot->shape = shape;
    slot->scores.clear();
    slot->gpus.clear();
    slot->losses_ready = false;
    ForEachCandidate(state, pod, node, scratch_, [&](std::span<const int> gpus) {
      slot->scores.push_back(Score(state, pod, node, gpus));
      slot->gpus.insert(slot->gpus.end(), gpus.begin(), gpus.end());
    });
    return *slot;
  }

  void NodeChanged(const ClusterState& state, const PodRequest& pod, const Placement& p,
                   bool placed) {
    const auto index = static_cast<std::size_t>(p.node);
    if (index < classes_.node_count()) {
      const NodeStateClasses::Change change = classes_.NodeChanged(state, p.node);
      if (cache_.size() < classes_.class_capacity()) cache_.resize(classes_.class_capacity());
      if (change.new_state) {
        cache_[change.class_id].used = 0;
        cache_[change.class_id].next_victim = 0;
      }
      memory_free_[index] = state.node(p.node).memory_free;
      for (std::vector<double>& bounds : bounds_) {
        if (index < bounds.size()) bounds[index] = std::numeric_limits<double>::quiet_NaN();
      }
    }
    OnNodeChanged(state, pod, p, placed);
  }

  // After new task types: every cached score is stale. Buffers are kept for reuse, and the
  // bounds are marked stale per shape, to be reset when the shape is next decided.
  void ForgetScores() {
    for (NodeCache& cache : cache_) {
      cache.used = 0;
      cache.next_victim = 0;
    }
    ++scores_epoch_;
  }

  Rng rng_;
  TieBreak tie_break_;
  std::vector<int> scratch_;
  std::vector<SlotLoss> loss_scratch_;
  NodeStateClasses classes_;
  std::vector<NodeCache> cache_;  // per class of node states
  std::vector<int> name_rank_;    // per node: its position among the nodes sorted by name
  std::vector<std::vector<double>> bounds_;  // [shape id][node], see BoundsFor
  std::vector<std::uint64_t> bounds_epoch_;  // per shape id: scores_epoch_ its bounds are of
  std::uint64_t scores_epoch_ = 0;
  std::vector<std::int64_t> memory_free_;  // per node, as of the last change the policy heard
  std::vector<std::pair<PodRequest, std::uint32_t>> shapes_;
  std::uint32_t next_shape_id_ = 0;
};

// Every candidate scores the same, so every choice is a tie; they are always broken at random.
PolicyOptions RandomTies(PolicyOptions options) {
  options.tie_break = TieBreak::kRandom;
  return options;
}

class RandomPolicy final : public ScoredPolicy {
 public:
  explicit RandomPolicy(const PolicyOptions& options) : ScoredPolicy(RandomTies(options)) {}
  std::string_view name() const override { return "random"; }

 protected:
  double Score(const ClusterState&, const PodRequest&, int, std::span<const int>) override {
    return 0;
  }
};

// Least leftover CPU and GPU after placement, equally weighted.
class BestFitPolicy final : public ScoredPolicy {
 public:
  using ScoredPolicy::ScoredPolicy;
  std::string_view name() const override { return "best-fit"; }

 protected:
  double Score(const ClusterState& state, const PodRequest& pod, int node,
               std::span<const int> gpus) override {
    const NodeState& n = state.node(node);
    const double cpu_left = static_cast<double>(n.cpu_free - pod.cpu_milli) / kMaxSpecCpuMilli;
    const double gpu_left =
        static_cast<double>(n.gpu_milli_free - pod.total_gpu_milli()) / kMaxSpecGpuMilli;
    return -(0.5 * cpu_left + 0.5 * gpu_left) + BestGpuTieBreak(state, node, gpus);
  }
};

// Tetris-style dot product of the node's free vector and the pod's demand, normalised by the
// largest node shape; as evaluated in the FGD paper, a smaller product scores higher.
class DotProductPolicy final : public ScoredPolicy {
 public:
  using ScoredPolicy::ScoredPolicy;
  std::string_view name() const override { return "dot-product"; }

 protected:
  double Score(const ClusterState& state, const PodRequest& pod, int node,
               std::span<const int> gpus) override {
    const NodeState& n = state.node(node);
    const double cpu = static_cast<double>(n.cpu_free) / kMaxSpecCpuMilli *
                       static_cast<double>(pod.cpu_milli) / kMaxSpecCpuMilli;
    const double gpu = static_cast<double>(n.gpu_milli_free) / kMaxSpecGpuMilli *
                       static_cast<double>(pod.total_gpu_milli()) / kMaxSpecGpuMilli;
    return -(cpu + gpu) / 2 + BestGpuTieBreak(state, node, gpus);
  }
};

// Prefer partially used GPUs, then free GPUs on partially used nodes, then idle nodes.
class GpuPackingPolicy final : public ScoredPolicy {
 public:
  using ScoredPolicy::ScoredPolicy;
  std::string_view name() const override { return "gpu-packing"; }

 protected:
  double Score(const ClusterState& state, const PodRequest& pod, int node,
               std::span<const int> gpus) override {
    if (!pod.wants_gpu()) return 0;
    const NodeState& n = state.node(node);
    const int gpu_count = static_cast<int>(n.gpus.size());
    double score = 0;
    if (n.whole_free_gpus == gpu_count) {
      score = std::max(100 / 3 - n.whole_free_gpus, n.whole_free_gpus);
    } else {
      int whole_used = 0;
      int free_percent = 0;
      for (const int g : gpus) {
        const int free = n.gpus[static_cast<std::size_t>(g)].milli_free;
        if (free == kMilliPerGpu) ++whole_used;
        free_percent += free * 100 / kMilliPerGpu;
      }
      score = whole_used > 0 ? std::max(100 / 2 - whole_used, 100 / 3)
                             : std::max(100 - free_percent / 10, 100 / 2);
    }
    return score + BestGpuTieBreak(state, node, gpus);
  }
};

// Gandiva-style: co-locate pods of the same GPU request class on a node.
class GpuClusteringPolicy final : public ScoredPolicy {
 public:
  using ScoredPolicy::ScoredPolicy;
  std::string_view name() const override { return "gpu-clustering"; }

 protected:
  void OnNodeChanged(const ClusterState& state, const PodRequest& pod, const Placement& p,
                     bool placed) override {
    Resize(state);
    if (!pod.wants_gpu()) return;
    auto& counts = classes_[static_cast<std::size_t>(p.node)];
    if (placed) {
      ++counts[ClassOf(pod)];
      return;
    }
    const auto it = counts.find(ClassOf(pod));
    if (it != counts.end() && --it->second == 0) counts.erase(it);
  }

  void Prepare(const ClusterState& state, const PodRequest&) override { Resize(state); }
  bool ScoresFollowNodeState() const override { return false; }

  double Score(const ClusterState& state, const PodRequest& pod, int node,
               std::span<const int> gpus) override {
    if (!pod.wants_gpu()) return 0;
    const auto& counts = classes_[static_cast<std::size_t>(node)];
    const double used = std::floor(
        25.0 * (kMaxSpecGpuMilli - static_cast<double>(state.node(node).gpu_milli_free)) /
        kMaxSpecGpuMilli);
    double tier = 0;
    if (counts.contains(ClassOf(pod))) {
      tier = counts.size() == 1 ? 75 : 50;
    } else if (counts.empty()) {
      tier = 25;
    }
    return tier + used + BestGpuTieBreak(state, node, gpus);
  }

 private:
  static std::int64_t ClassOf(const PodRequest& pod) {
    return static_cast<std::int64_t>(pod.num_gpu) * 10000 + pod.gpu_milli;
  }
  void Resize(const ClusterState& state) {
    if (classes_.size() != state.node_count()) classes_.resize(state.node_count());
  }
  std::vector<std::map<std::int64_t, int>> classes_;
};

// Keeps each node's fragmentation under one or two measures cached, and scores a candidate by
// how much it changes them.
class FragmentationPolicy : public ScoredPolicy {
 public:
  explicit FragmentationPolicy(const PolicyOptions& options)
      : ScoredPolicy(options),
        fgd_(options.task_types, FragmentationMeasure::kFgd),
        packable_(options.task_types, FragmentationMeasure::kPackable) {}

 protected:
  bool UsesTaskTypes() const final { return true; }
  void OnTaskTypes(std::vector<TaskType> typical, std::vector<TaskType> all) override {
    fgd_ = FragmentationModel(typical, FragmentationMeasure::kFgd);
    packable_ = FragmentationModel(std::move(typical), FragmentationMeasure::kPackable);
    for (auto& cache : cached_) cache.clear();
    OnAllTaskTypes(all);
  }
  // The workload's every type (PolicyOptions::all_task_types), after a SetTaskTypes.
  virtual void OnAllTaskTypes(const std::vector<TaskType>& /*all*/) {}

  void OnNodeChanged(const ClusterState&, const PodRequest&, const Placement& p, bool) override {
    Invalidate(p.node);
  }

  enum Measure { kFgdMeasure = 0, kPackableMeasure = 1 };

  void Prepare(const ClusterState& state, const PodRequest&) override {
    if (cached_[0].size() != state.node_count()) {
      for (auto& cache : cached_) {
        cache.assign(state.node_count(), std::numeric_limits<double>::quiet_NaN());
      }
    }
  }

  // Fragmentation of `node` now, from the per-node cache.
  double Before(const ClusterState& state, int node, Measure measure) {
    double& cached = cached_[measure][static_cast<std::size_t>(node)];
    if (std::isnan(cached)) {
      const NodeState& n = state.node(node);
      FreeShares(n, {}, {}, frees_);
      cached = Model(measure).NodeFragmentation({n.model_id, n.cpu_free, n.memory_free, frees_});
    }
    return cached;
  }

  // Fragmentation of `node` if `pod` were placed on `gpus`.
  double After(const ClusterState& state, const PodRequest& pod, int node,
               std::span<const int> gpus, Measure measure) {
    const NodeState& n = state.node(node);
    FreeShares(n, pod, gpus, frees_);
    return Model(measure).NodeFragmentation(
        {n.model_id, n.cpu_free - pod.cpu_milli, n.memory_free - pod.memory_mib, frees_});
  }

  double Delta(const ClusterState& state, const PodRequest& pod, int node,
               std::span<const int> gpus, Measure measure) {
    return After(state, pod, node, gpus, measure) - Before(state, node, measure);
  }

 private:
  const FragmentationModel& Model(Measure measure) const {
    return measure == kFgdMeasure ? fgd_ : packable_;
  }
  void Invalidate(int node) {
    for (auto& cache : cached_) {
      if (static_cast<std::size_t>(node) < cache.size()) {
        cache[static_cast<std::size_t>(node)] = std::numeric_limits<double>::quiet_NaN();
      }
    }
  }

  FragmentationModel fgd_;
  FragmentationModel packable_;
  std::array<std::vector<double>, 2> cached_;
  std::vector<int> frees_;
};

// FGD: the candidate that increases the node's expected fragmentation least.
class FgdPolicy final : public FragmentationPolicy {
 public:
  using FragmentationPolicy::FragmentationPolicy;
  std::string_view name() const override { return "fgd"; }

 protected:
  double Score(const ClusterState& state, const PodRequest& pod, int node,
               std::span<const int> gpus) override {
    const double delta = Delta(state, pod, node, gpus, kFgdMeasure);
    // The authors' simulator: kube-scheduler's integer score 0..100 of sigmoid(-delta / 1000).
    return std::floor(100.0 / (1.0 + std::exp(delta / 1000.0)));
  }
};

// gpuslice: minimises a weighted sum of fragmentation changes over the workload's task types:
//  - FGD's (capacity a task type cannot use at all),
//  - a lookahead measure (capacity left over after packing as many copies of each type as the
//    node's CPU and GPUs allow), which also sees GPUs that only a few more pods could use
//    before the node's CPU runs out; weighted by the share of the workload's GPU demand asked
//    by GPU-sharing pods (whose packing into GPU remainders it measures), and
//  - scarce slots: every copy of a GPU task type (rare ones included) the node could host before
//    and not after, priced at the type's GPUs times 0.01 x min(1, expected / slots), where
//    expected is the type's share of the pods that would fill the cluster's free GPU and CPU,
//    and slots the copies of it all nodes can still host. A slot many nodes offer costs little;
//    the last hosts of a large type (an 8-GPU pod asking for 120 cores fits only 128-core
//    nodes) cost more while such pods are still expected.
//  - model scarcity: a copy lost of a type restricted to GPU models also costs the type's GPUs
//    times the chance that its model set runs out (its expected demand over what its models'
//    nodes can still host, cubed, at most 1) times the share of the cluster's GPUs it cannot
//    use. So a pod that may run anywhere stays off the models that restricted pods will need,
//    in proportion to how oversubscribed they are, and nothing changes when no pod is restricted.
//  - CPU stranding: the change in the node's idle GPU capacity that its free CPU cannot serve at
//    the workload's CPU per GPU (cpu_stranding.h), weight 1, so CPU (CPU-only pods' included)
//    goes where it leaves enough for the GPUs still idle.
// Then the candidate leaving the node fuller (best fit), then the fullest GPU. Unlike `fgd` it
// compares exact fragmentation changes (no integer score), so near-ties are not left to chance.
class GpuslicePolicy final : public FragmentationPolicy {
 public:
  explicit GpuslicePolicy(const PolicyOptions& options) : FragmentationPolicy(options) {
    OnAllTaskTypes(options.all_task_types.empty() ? options.task_types : options.all_task_types);
  }
  std::string_view name() const override { return "gpuslice"; }

 protected:
  void OnAllTaskTypes(const std::vector<TaskType>& all) override {
    mean_pod_gpu_milli_ = 0;
    mean_pod_cpu_milli_ = 0;
    // The lookahead measure sees how GPU-sharing pods pack into a GPU's remainder; it weighs
    // in proportion to the share of the workload's GPU demand that such pods ask for.
    double share_milli = 0;
    double gpu_milli = 0;
    for (const TaskType& t : all) {
      const double demand = t.popularity * static_cast<double>(t.request.total_gpu_milli());
      gpu_milli += demand;
      if (t.request.is_share()) share_milli += demand;
    }
    packable_weight_ = gpu_milli > 0 ? kPackablePerSharingShare * share_milli / gpu_milli : 0.0;
    cpu_per_gpu_milli_ = CpuPerGpuMilli(all);
    slot_types_.clear();
    shares_.clear();
    share_index_.clear();
    copies_.clear();  // recounted for the new types at the next decision
    for (const TaskType& t : all) {
      mean_pod_gpu_milli_ += t.popularity * static_cast<double>(t.request.total_gpu_milli());
      mean_pod_cpu_milli_ += t.popularity * static_cast<double>(t.request.cpu_milli);
      if (!t.request.wants_gpu()) continue;
      slot_types_.push_back(t);
      const auto known = std::find(shares_.begin(), shares_.end(), t.request.gpu_milli);
      share_index_.push_back(static_cast<std::size_t>(known - shares_.begin()));
      if (known == shares_.end()) shares_.push_back(t.request.gpu_milli);
    }
    share_slots_.resize(shares_.size());
    // A GPU's free share is 0..kMilliPerGpu: tabulate free / share for each share once.
    quotients_.resize(shares_.size() * (kMilliPerGpu + 1));
    for (std::size_t i = 0; i < shares_.size(); ++i) {
      for (int free = 0; free <= kMilliPerGpu; ++free) {
        quotients_[i * (kMilliPerGpu + 1) + static_cast<std::size_t>(free)] =
            static_cast<std::uint16_t>(free / shares_[i]);
      }
    }
    prices_.assign(slot_types_.size(), 0);
    ratios_.assign(slot_types_.size(), 0);
    // Types restricted to the same set of models compete for the same GPUs.
    group_.clear();
    std::vector<std::uint64_t> model_sets;
    for (const TaskType& t : slot_types_) {
      const auto known = std::find(model_sets.begin(), model_sets.end(), t.request.allowed_models);
      group_.push_back(static_cast<std::size_t>(known - model_sets.begin()));
      if (known == model_sets.end()) model_sets.push_back(t.request.allowed_models);
    }
    group_pressure_.assign(model_sets.size(), 0);
    exclusivity_.clear();  // computed against the cluster at the next decision
    uses_slot_losses_ = mean_pod_gpu_milli_ > 0 && !slot_types_.empty();
  }

  void Prepare(const ClusterState& state, const PodRequest& pod) override {
    FragmentationPolicy::Prepare(state, pod);
    if (!uses_slot_losses_) return;
    const std::size_t types = slot_types_.size();
    if (copies_.size() != state.node_count() * types) RecountAllNodes(state);
    if (exclusivity_.size() != types) ComputeExclusivity(state);
    const double free_gpu =
        static_cast<double>(state.gpu_milli_capacity() - state.gpu_milli_allocated());
    double remaining_pods = free_gpu / mean_pod_gpu_milli_;
    if (mean_pod_cpu_milli_ > 0) {
      const double free_cpu =
          static_cast<double>(state.cpu_milli_capacity() - state.cpu_milli_allocated());
      remaining_pods = std::min(remaining_pods, free_cpu / mean_pod_cpu_milli_);
    }
    // Each type's price per lost copy, for this decision: a small part for every type (its
    // expected copies over the copies left, at most 1), and for types restricted to models, the
    // chance that their model set runs out (below).
    std::fill(group_pressure_.begin(), group_pressure_.end(), 0.0);
    for (std::size_t t = 0; t < types; ++t) {
      const double expected = slot_types_[t].popularity * remaining_pods;
      const double slots = static_cast<double>(std::max<std::int64_t>(slots_[t], 1));
      ratios_[t] = expected / slots;
      group_pressure_[group_[t]] += ratios_[t];
    }
    // A model set's pressure is the sum of its types' ratios: about its expected GPU demand
    // over the GPUs left that can serve it. Each type gets its part (ratio / pressure) of the
    // set's chance of running out, taken as min(1, pressure)^3 (a set used far below its
    // capacity costs nearly nothing), times the share of the cluster the set cannot use: a lost
    // copy of a type that only a few nodes can host is a pod of that type that will fail.
    for (std::size_t t = 0; t < types; ++t) {
      const double gpu = static_cast<double>(slot_types_[t].request.total_gpu_milli());
      const double pressure = group_pressure_[group_[t]];
      const double capped = std::min(1.0, pressure);
      const double shortage = capped * capped * capped;
      const double exclusive =
          exclusivity_[t] == 0 ? 0.0 : exclusivity_[t] * shortage * ratios_[t] / pressure;
      prices_[t] = gpu * (kSlotLossWeight * std::min(1.0, ratios_[t]) + exclusive);
    }
  }

  void OnNodeChanged(const ClusterState& state, const PodRequest& pod, const Placement& p,
                     bool placed) override {
    FragmentationPolicy::OnNodeChanged(state, pod, p, placed);
    if (uses_slot_losses_ && !copies_.empty()) RecountNode(state, p.node);
  }

  void LostSlots(const ClusterState& state, const PodRequest& pod, int node,
                 std::span<const int> gpus, std::vector<SlotLoss>& out) override {
    const NodeState& n = state.node(node);
    FreeShares(n, pod, gpus, frees_);
    CountShareSlots();
    const std::size_t types = slot_types_.size();
    const std::int32_t* before = &copies_[static_cast<std::size_t>(node) * types];
    const std::int64_t cpu_after = n.cpu_free - pod.cpu_milli;
    for (std::size_t t = 0; t < types; ++t) {
      const std::int64_t had = before[t];
      if (had == 0) continue;
      // Copies never grow; divide only when GPUs or CPU no longer cover `had` copies.
      const PodRequest& r = slot_types_[t].request;
      if (share_slots_[share_index_[t]] >= had * r.num_gpu && cpu_after >= had * r.cpu_milli) {
        continue;
      }
      const std::int32_t after = Copies(t, n.model_id, cpu_after);
      out.push_back({static_cast<std::uint32_t>(t), before[t] - after});
    }
  }

  double SlotLossCost(std::span<const SlotLoss> losses) override {
    double cost = 0;
    for (const SlotLoss& loss : losses) cost += loss.copies * prices_[loss.type];
    return cost;
  }

  double Score(const ClusterState& state, const PodRequest& pod, int node,
               std::span<const int> gpus) override {
    const double fgd = Delta(state, pod, node, gpus, kFgdMeasure);
    const double packable =
        packable_weight_ == 0 ? 0.0 : Delta(state, pod, node, gpus, kPackableMeasure);
    const NodeState& n = state.node(node);
    const double gpu_left =
        static_cast<double>(n.gpu_milli_free - pod.total_gpu_milli()) / kMaxSpecGpuMilli;
    const double cpu_left = static_cast<double>(n.cpu_free - pod.cpu_milli) / kMaxSpecCpuMilli;
    return -(fgd + packable_weight_ * packable) - CpuStrandingDelta(n, pod) -
           kBestFitWeight * (gpu_left + cpu_left) + BestGpuTieBreak(state, node, gpus);
  }

 private:
  // Change in the node's GPU capacity that its free CPU cannot serve at the workload's CPU per
  // milli-GPU (cpu_stranding.h), weight 1 like the fragmentation changes (both in milli-GPU). It
  // sees what both fragmentation measures miss: CPU (of any pod, CPU-only ones included) taken
  // where the GPUs left idle will need it, rather than where CPU is plentiful.
  double CpuStrandingDelta(const NodeState& n, const PodRequest& pod) const {
    const double before = StrandedGpuMilli(n.gpu_milli_free, n.cpu_free, cpu_per_gpu_milli_);
    const double after = StrandedGpuMilli(n.gpu_milli_free - pod.total_gpu_milli(),
                                          n.cpu_free - pod.cpu_milli, cpu_per_gpu_milli_);
    return after - before;
  }

  // share_slots_[i]: how many shares of shares_[i] the GPU shares in `frees_` hold.
  void CountShareSlots() {
    for (std::size_t i = 0; i < shares_.size(); ++i) {
      const std::uint16_t* quotient = &quotients_[i * (kMilliPerGpu + 1)];
      std::int64_t slots = 0;
      for (const int free : frees_) slots += quotient[free];
      share_slots_[i] = slots;
    }
  }

  // Copies of slot type `type` a node could still host with the GPU shares counted by the last
  // CountShareSlots and `cpu_free`. Like the fragmentation measures it ignores memory, so scores
  // stay pure functions of the node and the pod's shape (which the score cache relies on).
  std::int32_t Copies(std::size_t type, int model_id, std::int64_t cpu_free) const {
    const PodRequest& t = slot_types_[type].request;
    if (!t.AllowsModel(model_id) || cpu_free < t.cpu_milli) return 0;
    std::int64_t copies = share_slots_[share_index_[type]] / t.num_gpu;
    if (t.cpu_milli > 0) copies = std::min(copies, cpu_free / t.cpu_milli);
    return static_cast<std::int32_t>(copies);
  }

  // Per slot type: the share of the cluster's GPU capacity on models the type may not use
  // (0 for types that accept any model). Depends only on the nodes' specs and the types.
  void ComputeExclusivity(const ClusterState& state) {
    exclusivity_.assign(slot_types_.size(), 0);
    const double capacity = static_cast<double>(state.gpu_milli_capacity());
    if (capacity <= 0) return;
    for (std::size_t t = 0; t < slot_types_.size(); ++t) {
      const PodRequest& r = slot_types_[t].request;
      if (r.allowed_models == 0) continue;
      double usable = 0;
      for (const NodeState& n : state.nodes()) {
        if (r.AllowsModel(n.model_id)) usable += static_cast<double>(n.gpus.size()) * kMilliPerGpu;
      }
      exclusivity_[t] = 1.0 - usable / capacity;
    }
  }

  // Counts every node's copies afresh (new task types), once per class of identical node states
  // (a node's copies depend only on its model, free CPU and free GPU shares).
  void RecountAllNodes(const ClusterState& state) {
    const NodeStateClasses& classes = node_classes();
    const std::size_t types = slot_types_.size();
    // Learned types only grow in number for a while: room for more, so that each new mix does not
    // reallocate (and page in) megabytes.
    const std::size_t size = state.node_count() * types;
    if (copies_.capacity() < size) copies_.reserve(size + size / 2);
    copies_.assign(size, 0);
    slots_.assign(types, 0);
    first_of_class_.assign(classes.class_capacity(), -1);
    for (int node = 0; node < static_cast<int>(state.node_count()); ++node) {
      int& first = first_of_class_[classes.ClassOf(node)];
      if (first < 0) {
        first = node;
        RecountNode(state, node);
        continue;
      }
      const std::int32_t* source = &copies_[static_cast<std::size_t>(first) * types];
      std::int32_t* row = &copies_[static_cast<std::size_t>(node) * types];
      for (std::size_t t = 0; t < types; ++t) {
        slots_[t] += source[t] - row[t];
        row[t] = source[t];
      }
    }
  }

  void RecountNode(const ClusterState& state, int node) {
    const NodeState& n = state.node(node);
    FreeShares(n, {}, {}, frees_);
    CountShareSlots();
    const std::size_t types = slot_types_.size();
    std::int32_t* row = &copies_[static_cast<std::size_t>(node) * types];
    for (std::size_t t = 0; t < types; ++t) {
      const std::int32_t now = Copies(t, n.model_id, n.cpu_free);
      slots_[t] += now - row[t];
      row[t] = now;
    }
  }

  // The lookahead measure's weight per unit of the workload's GPU demand asked by GPU-sharing
  // pods (0.3 x 28 % on the trace's default list), chosen on the tuning set of workload
  // variants (docs/benchmarks.md says how).
  static constexpr double kPackablePerSharingShare = 0.3;
  // Per milli-GPU of scarce slots lost, for every type (docs/benchmarks.md says how it was
  // chosen); slots of model-restricted types also cost their shortage, with weight 1.
  static constexpr double kSlotLossWeight = 0.01;
  // Normalised leftovers are <= 2, fragmentation changes are in milli-GPU: a tie-break.
  static constexpr double kBestFitWeight = 1e-3;

  std::vector<TaskType> slot_types_;      // the workload's GPU task types, all of them
  std::vector<int> shares_;               // the distinct per-GPU shares among them
  std::vector<std::size_t> share_index_;  // per slot type: its share's index in shares_
  std::vector<std::int64_t> share_slots_;
  std::vector<std::uint16_t> quotients_;  // [share index * 1001 + free]: free / share
  std::vector<double> prices_;            // per slot type: cost of one lost copy, this decision
  std::vector<double> exclusivity_;       // per slot type: share of GPU capacity it may not use
  std::vector<double> ratios_;            // per slot type: expected copies / copies left
  std::vector<std::size_t> group_;        // per slot type: index of its allowed-model set
  std::vector<double> group_pressure_;    // per model set: sum of its types' ratios
  double cpu_per_gpu_milli_ = 0;          // the GPU task types' CPU per milli-GPU (CpuPerGpuMilli)
  double packable_weight_ = 0;            // kPackablePerSharingShare x the sharing pods' share
  double mean_pod_gpu_milli_ = 0;         // over all the workload's pods, CPU-only ones included
  double mean_pod_cpu_milli_ = 0;
  std::vector<std::int32_t> copies_;  // [node * types + type]: copies the node can host now
  std::vector<std::int64_t> slots_;   // per type: copies over all nodes
  std::vector<int> first_of_class_;   // RecountAllNodes: per node class, its first node
  std::vector<int> frees_;
};

}  // namespace

std::span<const std::string_view> PolicyNames() { return kPolicyNames; }

std::vector<std::vector<int>> CandidateGpuSets(const ClusterState& state, const PodRequest& pod,
                                               int node) {
  std::vector<std::vector<int>> sets;
  if (node < 0 || static_cast<std::size_t>(node) >= state.node_count() || !state.Fits(pod, node)) {
    return sets;
  }
  std::vector<int> scratch;
  ForEachCandidate(state, pod, node, scratch,
                   [&](std::span<const int> gpus) { sets.emplace_back(gpus.begin(), gpus.end()); });
  return sets;
}

void SetWorkloadTaskTypes(PolicyOptions& options, std::span<const PodRequest> workload,
                          const TaskTypeOptions& typical) {
  options.task_types = TypicalTaskTypes(workload, typical);
  options.all_task_types = TypicalTaskTypes(workload, {.coverage = 1.0});
}

std::string_view TieBreakName(TieBreak tie_break) {
  return tie_break == TieBreak::kRandom ? "random" : "lowest-name";
}

Result<TieBreak> ParseTieBreak(std::string_view text) {
  constexpr TieBreak kAll[] = {TieBreak::kLowestNodeName, TieBreak::kRandom};
  std::string known;
  for (const TieBreak t : kAll) {
    if (text == TieBreakName(t)) return t;
    known += (known.empty() ? "" : ", ") + std::string(TieBreakName(t));
  }
  return InvalidArgument("unknown tie-break '" + std::string(text) + "'; known: " + known);
}

Result<std::unique_ptr<PlacementPolicy>> MakePolicy(std::string_view name,
                                                    const PolicyOptions& options) {
  const PolicyOptions& o = options;
  if (name == "random") return std::unique_ptr<PlacementPolicy>(new RandomPolicy(o));
  if (name == "best-fit") return std::unique_ptr<PlacementPolicy>(new BestFitPolicy(o));
  if (name == "dot-product") return std::unique_ptr<PlacementPolicy>(new DotProductPolicy(o));
  if (name == "gpu-packing") return std::unique_ptr<PlacementPolicy>(new GpuPackingPolicy(o));
  if (name == "gpu-clustering") return std::unique_ptr<PlacementPolicy>(new GpuClusteringPolicy(o));
  if (name == "fgd" || name == "gpuslice") {
    if (options.task_types.empty() && !options.task_types_later) {
      return InvalidArgument("policy '" + std::string(name) +
                             "' needs the target workload's task types; none were given");
    }
    if (name == "fgd") return std::unique_ptr<PlacementPolicy>(new FgdPolicy(o));
    return std::unique_ptr<PlacementPolicy>(new GpuslicePolicy(o));
  }
  std::string known;
  for (const std::string_view n : kPolicyNames) {
    if (!known.empty()) known += ", ";
    known += n;
  }
  return InvalidArgument("unknown placement policy '" + std::string(name) + "'; known: " + known);
}

}  // namespace gpuslice::placement
