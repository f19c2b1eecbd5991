#include "simulator/workload_variants.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <map>
#include <sstream>
#include <utility>

#include "placement/rng.h"

namespace gpuslice::simulator {
namespace {

using placement::NodeSpec;
using placement::PodSpec;

enum PodClass { kCpuOnly = 0, kSharing = 1, kWholeOne = 2, kMulti = 3 };
constexpr std::array<std::string_view, 4> kClassNames = {"CPU-only", "GPU-sharing", "one-GPU",
                                                         "multi-GPU"};

PodClass ClassOf(const PodSpec& pod) {
  if (pod.num_gpu == 0) return kCpuOnly;
  if (pod.num_gpu == 1 && pod.gpu_milli < placement::kMilliPerGpu) return kSharing;
  return pod.num_gpu == 1 ? kWholeOne : kMulti;
}

double Demand(const PodSpec& pod) { return static_cast<double>(pod.num_gpu) * pod.gpu_milli; }

Status CheckShare(const std::optional<double>& share, std::string_view what) {
  if (share && !(*share >= 0 && *share <= 1)) {
    return InvalidArgument(std::string(what) + " share must be in [0, 1], got " +
                           std::to_string(*share));
  }
  return Status::Ok();
}

// Target shares of the GPU demand for sharing, one-GPU and multi-GPU pods.
Result<std::array<double, 4>> DemandShares(const std::array<double, 4>& base,
                                           const VariantMix& mix) {
  std::array<double, 4> share = base;
  double fixed = 0;
  double free_base = 0;
  for (const PodClass c : {kSharing, kWholeOne, kMulti}) {
    const std::optional<double>& want = c == kSharing ? mix.sharing
                                        : c == kMulti ? mix.multi_gpu
                                                      : std::optional<double>{};
    if (want) {
      share[c] = *want;
      fixed += *want;
    } else {
      free_base += base[c];
    }
  }
  if (fixed > 1 + 1e-12) {
    return InvalidArgument(
        "GPU-sharing and multi-GPU shares of the GPU demand add up to more "
        "than 1");
  }
  for (const PodClass c : {kSharing, kWholeOne, kMulti}) {
    const bool is_fixed = (c == kSharing && mix.sharing) || (c == kMulti && mix.multi_gpu);
    if (is_fixed) continue;
    if (free_base <= 0) {
      if (fixed < 1 - 1e-12) return InvalidArgument("the base list has no pods to fill the rest");
      share[c] = 0;
    } else {
      share[c] = base[c] / free_base * (1 - fixed);
    }
  }
  return share;
}

// Splits `total` into integer counts proportional to `weights` (largest remainders).
std::array<std::size_t, 4> Apportion(std::size_t total, const std::array<double, 4>& weights) {
  double sum = 0;
  for (const double w : weights) sum += w;
  std::array<std::size_t, 4> counts{};
  if (sum <= 0) return counts;
  std::array<std::pair<double, int>, 4> remainders{};
  std::size_t assigned = 0;
  for (int c = 0; c < 4; ++c) {
    const double exact = static_cast<double>(total) * weights[static_cast<std::size_t>(c)] / sum;
    counts[static_cast<std::size_t>(c)] = static_cast<std::size_t>(std::floor(exact));
    assigned += counts[static_cast<std::size_t>(c)];
    remainders[static_cast<std::size_t>(c)] = {exact - std::floor(exact), c};
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t i = 0; assigned < total; ++i, ++assigned) {
    ++counts[static_cast<std::size_t>(remainders[i % 4].second)];
  }
  return counts;
}

bool CanHost(const ModelSetWeight& set, const PodSpec& pod, const std::vector<NodeSpec>& nodes) {
  for (const NodeSpec& node : nodes) {
    if (node.gpu_count >= pod.num_gpu && node.cpu_milli >= pod.cpu_milli &&
        node.memory_mib >= pod.memory_mib &&
        std::find(set.models.begin(), set.models.end(), node.gpu_model) != set.models.end()) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::vector<ModelSetWeight> ModelSetsOf(const std::vector<TracePod>& pods) {
  std::map<std::vector<std::string>, double> counts;
  for (const TracePod& pod : pods) {
    if (pod.spec.num_gpu > 0 && !pod.spec.gpu_models.empty()) counts[pod.spec.gpu_models] += 1;
  }
  std::vector<ModelSetWeight> sets;
  for (const auto& [models, count] : counts) sets.push_back({models, count});
  return sets;
}

std::vector<ModelSetWeight> SingleModelSets(const std::vector<NodeSpec>& nodes) {
  std::map<std::string, double> gpus;
  for (const NodeSpec& node : nodes) {
    if (node.gpu_count > 0 && !node.gpu_model.empty()) gpus[node.gpu_model] += node.gpu_count;
  }
  std::vector<ModelSetWeight> sets;
  for (const auto& [model, count] : gpus) sets.push_back({{model}, count});
  return sets;
}

namespace {

// The base pods by class, and how many of each class the variant draws.
struct ClassPlan {
  std::array<std::vector<const TracePod*>, 4> pools;
  std::array<std::size_t, 4> counts{};
};

Result<ClassPlan> PlanClasses(const std::vector<TracePod>& base, const VariantMix& mix) {
  ClassPlan plan;
  std::array<double, 4> demand{};
  for (const TracePod& pod : base) {
    const PodClass c = ClassOf(pod.spec);
    plan.pools[c].push_back(&pod);
    demand[c] += Demand(pod.spec);
  }
  const double total_demand = demand[kSharing] + demand[kWholeOne] + demand[kMulti];
  if (total_demand <= 0) return InvalidArgument("the base pod list asks for no GPUs");
  std::array<double, 4> base_share{};
  for (const PodClass c : {kSharing, kWholeOne, kMulti}) base_share[c] = demand[c] / total_demand;
  using Shares = std::array<double, 4>;
  GPUSLICE_ASSIGN_OR_RETURN(const Shares share, DemandShares(base_share, mix));
  const std::size_t total = base.size();
  const double cpu_only = mix.cpu_only.value_or(static_cast<double>(plan.pools[kCpuOnly].size()) /
                                                static_cast<double>(total));
  const auto cpu_count =
      static_cast<std::size_t>(std::llround(cpu_only * static_cast<double>(total)));
  // Pods per GPU class: demand share / mean demand per pod of the class.
  std::array<double, 4> weights{};
  for (const PodClass c : {kSharing, kWholeOne, kMulti}) {
    if (share[c] <= 0) continue;
    if (plan.pools[c].empty()) {
      return InvalidArgument("the base pod list has no " + std::string(kClassNames[c]) +
                             " pods to draw from");
    }
    weights[c] = share[c] / (demand[c] / static_cast<double>(plan.pools[c].size()));
  }
  plan.counts = Apportion(total - cpu_count, weights);
  plan.counts[kCpuOnly] = cpu_count;
  if (cpu_count > 0 && plan.pools[kCpuOnly].empty()) {
    return InvalidArgument("the base pod list has no CPU-only pods to draw from");
  }
  return plan;
}

// Restricts `share` of the GPU pods, chosen uniformly (partial Fisher-Yates), to a model set
// drawn by weight among those that can host the pod.
Status RestrictToModels(std::vector<TracePod>& pods, const std::vector<NodeSpec>& nodes,
                        const std::vector<ModelSetWeight>& model_sets, double share,
                        placement::Rng& rng) {
  std::vector<std::size_t> gpu_pods;
  for (std::size_t i = 0; i < pods.size(); ++i) {
    if (pods[i].spec.num_gpu > 0) gpu_pods.push_back(i);
  }
  const auto restricted =
      static_cast<std::size_t>(std::llround(share * static_cast<double>(gpu_pods.size())));
  if (restricted > 0 && model_sets.empty()) {
    return InvalidArgument("model restrictions asked for, but there are no model sets to draw");
  }
  std::vector<const ModelSetWeight*> fitting;
  for (std::size_t k = 0; k < restricted; ++k) {
    std::swap(gpu_pods[k], gpu_pods[k + rng.Below(gpu_pods.size() - k)]);
    PodSpec& pod = pods[gpu_pods[k]].spec;
    fitting.clear();
    double weight = 0;
    for (const ModelSetWeight& set : model_sets) {
      if (set.weight > 0 && CanHost(set, pod, nodes)) {
        fitting.push_back(&set);
        weight += set.weight;
      }
    }
    if (fitting.empty()) {
      return InvalidArgument("no model set can host pod '" + pod.name + "' (" +
                             std::to_string(pod.num_gpu) + " GPUs, " +
                             std::to_string(pod.cpu_milli) + " mCPU)");
    }
    double draw = rng.Unit() * weight;
    const ModelSetWeight* chosen = fitting.back();
    for (const ModelSetWeight* set : fitting) {
      if (draw < set->weight) {
        chosen = set;
        break;
      }
      draw -= set->weight;
    }
    pod.gpu_models = chosen->models;
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<TracePod>> GenerateVariant(const std::vector<TracePod>& base,
                                              const std::vector<NodeSpec>& nodes,
                                              const std::vector<ModelSetWeight>& model_sets,
                                              const VariantMix& mix, std::uint64_t seed) {
  GPUSLICE_RETURN_IF_ERROR(CheckShare(mix.model_restricted, "model-restricted"));
  GPUSLICE_RETURN_IF_ERROR(CheckShare(mix.sharing, "GPU-sharing"));
  GPUSLICE_RETURN_IF_ERROR(CheckShare(mix.multi_gpu, "multi-GPU"));
  GPUSLICE_RETURN_IF_ERROR(CheckShare(mix.cpu_only, "CPU-only"));
  if (base.empty()) return InvalidArgument("the base pod list is empty");
  GPUSLICE_ASSIGN_OR_RETURN(const ClassPlan plan, PlanClasses(base, mix));
  placement::Rng rng(seed);
  std::vector<TracePod> pods;
  pods.reserve(base.size());
  for (std::size_t c = 0; c < plan.pools.size(); ++c) {
    const auto& pool = plan.pools[c];
    for (std::size_t i = 0; i < plan.counts[c]; ++i) {
      TracePod pod = *pool[rng.Below(pool.size())];
      pod.spec.gpu_models.clear();
      pod.creation_time = pod.deletion_time = -1;
      pods.push_back(std::move(pod));
    }
  }
  GPUSLICE_RETURN_IF_ERROR(
      RestrictToModels(pods, nodes, model_sets, mix.model_restricted.value_or(0), rng));
  for (std::size_t i = pods.size(); i > 1; --i) std::swap(pods[i - 1], pods[rng.Below(i)]);
  for (std::size_t i = 0; i < pods.size(); ++i) {
    pods[i].spec.name = "variant-pod-" + std::to_string(i);
  }
  return pods;
}

Result<VariantName> ParseVariantName(std::string_view name) {
  const auto fail = [&] {
    return InvalidArgument("variant '" + std::string(name) +
                           "': expected <family><percent>-s<seed> with family spec, share, "
                           "multi or cpu (e.g. spec30-s2)");
  };
  std::size_t letters = 0;
  while (letters < name.size() && name[letters] >= 'a' && name[letters] <= 'z') ++letters;
  const std::string_view family = name.substr(0, letters);
  const std::size_t dash = name.find("-s", letters);
  if (dash == std::string_view::npos) return fail();
  int percent = -1;
  std::uint64_t seed = 0;
  const std::string_view p = name.substr(letters, dash - letters);
  const std::string_view s = name.substr(dash + 2);
  if (std::from_chars(p.data(), p.data() + p.size(), percent).ptr != p.data() + p.size() ||
      p.empty() ||
      std::from_chars(s.data(), s.data() + s.size(), seed).ptr != s.data() + s.size() ||
      s.empty() || percent < 0 || percent > 100) {
    return fail();
  }
  VariantName v;
  v.name = std::string(name);
  v.seed = seed;
  const double share = percent / 100.0;
  if (family == "spec") {
    v.mix.model_restricted = share;
  } else if (family == "share") {
    v.mix.sharing = share;
  } else if (family == "multi") {
    v.mix.multi_gpu = share;
  } else if (family == "cpu") {
    v.mix.cpu_only = share;
  } else {
    return fail();
  }
  return v;
}

Result<std::vector<VariantName>> VariantSet(std::string_view spec) {
  std::vector<std::string> names;
  const auto add = [&](std::initializer_list<const char*> families,
                       std::initializer_list<int> seeds) {
    for (const int seed : seeds) {
      for (const char* f : families) names.push_back(std::string(f) + "-s" + std::to_string(seed));
    }
  };
  const bool all = spec == "all";
  if (spec == "tuning" || all) {
    add({"spec10", "spec30", "share40", "share80", "multi20", "multi40", "cpu5", "cpu30"}, {1});
  }
  if (spec == "reporting" || all) {
    add({"spec20", "spec40", "share60", "share100", "multi30", "multi50", "cpu20", "cpu40"},
        {2, 3});
  }
  if (names.empty()) {
    std::stringstream in{std::string(spec)};
    std::string item;
    while (std::getline(in, item, ',')) names.push_back(item);
  }
  std::vector<VariantName> variants;
  for (const std::string& name : names) {
    GPUSLICE_ASSIGN_OR_RETURN(VariantName v, ParseVariantName(name));
    variants.push_back(std::move(v));
  }
  if (variants.empty()) return InvalidArgument("no variants named");
  return variants;
}

std::string PodCsv(const std::vector<TracePod>& pods) {
  std::ostringstream out;
  out << "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n";
  for (const TracePod& pod : pods) {
    const PodSpec& s = pod.spec;
    std::string models;
    for (const std::string& m : s.gpu_models) models += (models.empty() ? "" : "|") + m;
    out << s.name << ',' << s.cpu_milli << ',' << s.memory_mib << ',' << s.num_gpu << ','
        << s.gpu_milli << ',' << models << '\n';
  }
  return out.str();
}

}  // namespace gpuslice::simulator
