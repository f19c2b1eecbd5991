// The placement policies. The baselines follow the definitions evaluated in the FGD paper (and its
// authors' open-source simulator); "gpuslice" is this project's own policy.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <utility>

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

// Scans every candidate, keeps the highest score, breaks exact ties uniformly at random.
//
// Scores are pure functions of a node's state and the pod's shape, so each node caches the scores
// it computed for the last few pod shapes until a pod is placed on or removed from it. Workloads
// repeat a few dozen shapes, so most nodes answer most pods from the cache and a decision costs
// a scan of the nodes, not a recomputation of every node's fragmentation. Cached and fresh scores
// are identical, so the cache does not change any choice.
class ScoredPolicy : public PlacementPolicy {
 public:
  explicit ScoredPolicy(std::uint64_t seed) : rng_(seed) {}

  std::optional<Placement> Choose(const ClusterState& state, const PodRequest& pod) override {
    Prepare(state, pod);
    if (cache_.size() != state.node_count()) cache_.assign(state.node_count(), NodeCache{});
    double best = -std::numeric_limits<double>::infinity();
    std::uint64_t ties = 0;
    Placement choice;
    const int n = static_cast<int>(state.node_count());
    for (int node = 0; node < n; ++node) {
      if (!state.Fits(pod, node)) continue;
      const CachedScores& scores = ScoresFor(state, pod, node);
      std::size_t offset = 0;
      for (std::size_t c = 0; c < scores.scores.size(); ++c) {
        const double score = scores.scores[c];
        const std::size_t width = static_cast<std::size_t>(pod.num_gpu);
        bool take = false;
        if (score > best + kTieEpsilon) {
          best = score;
          ties = 1;
          take = true;
        } else if (score >= best - kTieEpsilon) {
          take = rng_.Below(++ties) == 0;
        }
        if (take) {
          choice.node = node;
          choice.gpus.assign(scores.gpus.begin() + static_cast<std::ptrdiff_t>(offset),
                             scores.gpus.begin() + static_cast<std::ptrdiff_t>(offset + width));
        }
        offset += width;
      }
    }
    if (ties == 0) return std::nullopt;
    return choice;
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
  virtual void Prepare(const ClusterState& /*state*/, const PodRequest& /*pod*/) {}
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
  static constexpr std::size_t kShapesPerNode = 12;

  struct CachedScores {
    PodRequest shape;
    std::vector<double> scores;  // one per candidate, in candidate order
    std::vector<int> gpus;       // candidates' GPU indices, num_gpu each, concatenated
  };
  struct NodeCache {
    std::vector<CachedScores> entries;  // the first `used` are valid
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

  const CachedScores& ScoresFor(const ClusterState& state, const PodRequest& pod, int node) {
    NodeCache& cache = cache_[static_cast<std::size_t>(node)];
    for (std::size_t i = 0; i < cache.used; ++i) {
      if (SameShape(cache.entries[i].shape, pod)) return cache.entries[i];
    }
    // Reuse a slot's buffers (entries are cleared, not freed, when the node changes).
    CachedScores* slot = nullptr;
    if (cache.used < cache.entries.size()) {
      slot = &cache.entries[cache.used++];
    } else if (cache.entries.size() < kShapesPerNode) {
      cache.entries.emplace_back();
      ++cache.used;
      slot = &cache.entries.back();
    } else {
      slot = &cache.entries[cache.next_victim];
      cache.next_victim = (cache.next_victim + 1) % kShapesPerNode;
    }
    slot->shape = pod;
    slot->scores.clear();
    slot->gpus.clear();
    ForEachCandidate(state, pod, node, scratch_, [&](std::span<const int> gpus) {
      slot->scores.push_back(Score(state, pod, node, gpus));
      slot->gpus.insert(slot->gpus.end(), gpus.begin(), gpus.end());
    });
    return *slot;
  }

  void NodeChanged(const ClusterState& state, const PodRequest& pod, const Placement& p,
                   bool placed) {
    if (static_cast<std::size_t>(p.node) < cache_.size()) {
      NodeCache& cache = cache_[static_cast<std::size_t>(p.node)];
      cache.used = 0;
      cache.next_victim = 0;
    }
    OnNodeChanged(state, pod, p, placed);
  }

  Rng rng_;
  std::vector<int> scratch_;
  std::vector<NodeCache> cache_;
};

class RandomPolicy final : public ScoredPolicy {
 public:
  using ScoredPolicy::ScoredPolicy;
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
  FragmentationPolicy(std::uint64_t seed, std::vector<TaskType> types)
      : ScoredPolicy(seed),
        fgd_(types, FragmentationMeasure::kFgd),
        packable_(std::move(types), FragmentationMeasure::kPackable) {}

 protected:
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
      frees_.clear();
      for (const GpuState& gpu : n.gpus) frees_.push_back(gpu.milli_free);
      cached = Model(measure).NodeFragmentation({n.model_id, n.cpu_free, n.memory_free, frees_});
    }
    return cached;
  }

  // Fragmentation of `node` if `pod` were placed on `gpus`.
  double After(const ClusterState& state, const PodRequest& pod, int node,
               std::span<const int> gpus, Measure measure) {
    const NodeState& n = state.node(node);
    frees_.clear();
    for (const GpuState& gpu : n.gpus) frees_.push_back(gpu.milli_free);
    for (const int g : gpus) frees_[static_cast<std::size_t>(g)] -= pod.gpu_milli;
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

// gpuslice: minimises a weighted sum of two fragmentation changes over the workload's task types:
//  - FGD's (capacity a task type cannot use at all), and
//  - a lookahead measure (capacity left over after packing as many copies of each type as the
//    node's CPU and GPUs allow), which also sees GPUs that only a few more pods could use
//    before the node's CPU runs out;
// CPU-only pods also prefer nodes with fewer idle GPUs; then the candidate leaving the node fuller
// (best fit), then the fullest GPU. Unlike
// `fgd` it compares exact fragmentation changes (no integer score), so near-ties are not left to
// chance.
class GpuslicePolicy final : public FragmentationPolicy {
 public:
  using FragmentationPolicy::FragmentationPolicy;
  std::string_view name() const override { return "gpuslice"; }

 protected:
  double Score(const ClusterState& state, const PodRequest& pod, int node,
               std::span<const int> gpus) override {
    const double fgd = Delta(state, pod, node, gpus, kFgdMeasure);
    const double packable = Delta(state, pod, node, gpus, kPackableMeasure);
    const NodeState& n = state.node(node);
    const double gpu_left =
        static_cast<double>(n.gpu_milli_free - pod.total_gpu_milli()) / kMaxSpecGpuMilli;
    const double cpu_left = static_cast<double>(n.cpu_free - pod.cpu_milli) / kMaxSpecCpuMilli;
    // A CPU-only pod's CPU serves GPU work only where idle GPUs remain, so it goes preferably
    // where fewest are idle (both fragmentation measures are mostly blind to it).
    const double idle_gpu_cost =
        pod.wants_gpu() ? 0.0 : kCpuOnlyIdleGpuWeight * static_cast<double>(n.gpu_milli_free);
    return -(fgd + kPackableWeight * packable) - idle_gpu_cost -
           kBestFitWeight * (gpu_left + cpu_left) + BestGpuTieBreak(state, node, gpus);
  }

 private:
  // One global constant, tuned on the trace's pod lists (docs/benchmarks.md says how).
  static constexpr double kPackableWeight = 0.1;
  // Per idle milli-GPU on the node, for CPU-only pods (docs/benchmarks.md says how it was chosen).
  static constexpr double kCpuOnlyIdleGpuWeight = 0.1;
  // Normalised leftovers are <= 2, fragmentation changes are in milli-GPU: a tie-break.
  static constexpr double kBestFitWeight = 1e-3;
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

Result<std::unique_ptr<PlacementPolicy>> MakePolicy(std::string_view name,
                                                    const PolicyOptions& options) {
  const std::uint64_t seed = options.seed;
  if (name == "random") return std::unique_ptr<PlacementPolicy>(new RandomPolicy(seed));
  if (name == "best-fit") return std::unique_ptr<PlacementPolicy>(new BestFitPolicy(seed));
  if (name == "dot-product") return std::unique_ptr<PlacementPolicy>(new DotProductPolicy(seed));
  if (name == "gpu-packing") return std::unique_ptr<PlacementPolicy>(new GpuPackingPolicy(seed));
  if (name == "gpu-clustering") {
    return std::unique_ptr<PlacementPolicy>(new GpuClusteringPolicy(seed));
  }
  if (name == "fgd" || name == "gpuslice") {
    if (options.task_types.empty()) {
      return InvalidArgument("policy '" + std::string(name) +
                             "' needs the target workload's task types; none were given");
    }
    if (name == "fgd") {
      return std::unique_ptr<PlacementPolicy>(new FgdPolicy(seed, options.task_types));
    }
    return std::unique_ptr<PlacementPolicy>(new GpuslicePolicy(seed, options.task_types));
  }
  std::string known;
  for (const std::string_view n : kPolicyNames) {
    if (!known.empty()) known += ", ";
    known += n;
  }
  return InvalidArgument("unknown placement policy '" + std::string(name) + "'; known: " + known);
}

}  // namespace gpuslice::placement
