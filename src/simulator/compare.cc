// Strategy comparison: GPUs one workload needs under each way of sharing GPUs.
#include <algorithm>
#include <functional>
#include <map>

#include "core/mig_layout.h"
#include "placement/placement_engine.h"
#include "simulator/simulator.h"

namespace gpuslice::simulator {
namespace {

// First-fit decreasing of items (in units) into bins of `capacity` units; returns the bin count.
std::int64_t FirstFitDecreasing(std::vector<int> items, int capacity) {
  std::sort(items.begin(), items.end(), std::greater<>());
  std::vector<int> room;
  for (const int item : items) {
    bool placed = false;
    for (int& r : room) {
      if (r >= item) {
        r -= item;
        placed = true;
        break;
      }
    }
    if (!placed) room.push_back(capacity - item);
  }
  return static_cast<std::int64_t>(room.size());
}

// First-fit decreasing of MIG instances onto GPUs of `model`: a GPU takes an instance when the
// core planner (FitMigLayout: start slots, memory-slice overlap, compute slices, maximum counts)
// can lay out its instances plus the new one. Offline planning, so a GPU's instances may be
// re-laid out as it fills; whether a layout fits is memoised. Returns the GPU count.
Result<std::int64_t> PackMigInstances(const GpuModel& model,
                                      std::vector<const MigProfile*> instances) {
  std::sort(instances.begin(), instances.end(), [](const MigProfile* a, const MigProfile* b) {
    return a->size_slots != b->size_slots ? a->size_slots > b->size_slots
                                          : a->compute_slices > b->compute_slices;
  });
  std::map<MigLayout, bool> fits;
  auto layout_fits = [&](const MigLayout& layout) {
    const auto [it, inserted] = fits.try_emplace(layout, false);
    if (inserted) it->second = FitMigLayout(model, layout).ok();
    return it->second;
  };
  std::vector<MigLayout> gpus;
  for (const MigProfile* profile : instances) {
    bool placed = false;
    for (MigLayout& gpu : gpus) {
      MigLayout grown = gpu;
      ++grown[profile->name];
      if (layout_fits(grown)) {
        gpu = std::move(grown);
        placed = true;
        break;
      }
    }
    if (placed) continue;
    MigLayout alone{{profile->name, 1}};
    if (!layout_fits(alone)) {
      return Internal("MIG profile " + profile->name + " does not fit an empty " + model.name);
    }
    gpus.push_back(std::move(alone));
  }
  return static_cast<std::int64_t>(gpus.size());
}

}  // namespace

const MigProfile* MigProfileForShare(const GpuModel& model, int gpu_milli) {
  const MigProfile* best = nullptr;
  for (const MigProfile& profile : model.mig_profiles) {
    if (profile.media_extensions) continue;
    // Compute is what a share of GPU time asks for: compute_slices / compute_slices of the GPU.
    if (static_cast<std::int64_t>(profile.compute_slices) * placement::kMilliPerGpu <
        static_cast<std::int64_t>(gpu_milli) * model.compute_slices) {
      continue;
    }
    if (best == nullptr || profile.compute_slices < best->compute_slices ||
        (profile.compute_slices == best->compute_slices && profile.size_slots < best->size_slots)) {
      best = &profile;
    }
  }
  return best;
}

Result<std::vector<StrategyRow>> CompareStrategies(const std::vector<TracePod>& workload,
                                                   const CompareOptions& options) {
  if (options.time_slicing_replicas < 1) {
    return InvalidArgument("time-slicing replicas must be >= 1");
  }
  const int replicas = options.time_slicing_replicas;
  const GpuModel* mig_model = FindGpuModel(options.mig_model);
  if (mig_model == nullptr || !mig_model->mig_capable()) {
    std::string known;
    for (const GpuModel& m : AllGpuModels()) {
      if (!m.mig_capable()) continue;
      if (!known.empty()) known += ", ";
      known += m.name;
    }
    return InvalidArgument("MIG model '" + options.mig_model + "' is " +
                           (mig_model == nullptr ? "not in the catalogue" : "not MIG capable") +
                           "; MIG-capable models: " + known);
  }
  std::int64_t whole_gpus = 0;  // GPUs of pods that take whole GPUs
  std::int64_t shares = 0;
  std::int64_t share_milli = 0;
  std::vector<int> replica_items;
  std::vector<const MigProfile*> mig_items;
  std::vector<int> milli_items;
  std::int64_t pods = 0;
  for (const TracePod& pod : workload) {
    const placement::PodSpec& spec = pod.spec;
    if (spec.num_gpu <= 0) continue;
    ++pods;
    if (spec.num_gpu == 1 && spec.gpu_milli < placement::kMilliPerGpu) {
      ++shares;
      share_milli += spec.gpu_milli;
      // A time-slicing replica is an equal slice of GPU time: a pod needs enough replicas to get
      // its share.
      replica_items.push_back(std::max(
          1, (spec.gpu_milli * replicas + placement::kMilliPerGpu - 1) / placement::kMilliPerGpu));
      mig_items.push_back(MigProfileForShare(*mig_model, spec.gpu_milli));
      milli_items.push_back(spec.gpu_milli);
    } else {
      whole_gpus += spec.num_gpu;
    }
  }
  if (pods == 0) return InvalidArgument("the workload has no GPU pods");

  std::vector<StrategyRow> rows;
  rows.push_back({"whole GPUs only", whole_gpus + shares, "every share rounded up to a whole GPU"});
  rows.push_back(
      {"time-slicing x" + std::to_string(replicas),
       whole_gpus + FirstFitDecreasing(replica_items, replicas),
       "share rounded up to 1/" + std::to_string(replicas) + " GPU replicas; no memory isolation"});
  GPUSLICE_ASSIGN_OR_RETURN(const std::int64_t mig_gpus,
                            PackMigInstances(*mig_model, std::move(mig_items)));
  rows.push_back({"MIG (" + mig_model->name + ")", whole_gpus + mig_gpus,
                  "share rounded up to the smallest profile with enough compute slices; "
                  "instances laid out by NVIDIA's placement rules"});
  rows.push_back({"gpuslice fractions (offline)",
                  whole_gpus + FirstFitDecreasing(milli_items, placement::kMilliPerGpu),
                  "exact milli-GPU shares, first-fit decreasing"});

  // The same shares placed online, in arrival order, by the placement engine on enough 8-GPU
  // nodes whose CPU and memory never bind.
  std::vector<placement::NodeSpec> nodes;
  const std::int64_t node_count = (whole_gpus + shares) / 8 + 2;
  for (std::int64_t i = 0; i < node_count; ++i) {
    nodes.push_back({"compare-" + std::to_string(i), std::int64_t{1} << 40, std::int64_t{1} << 40,
                     8, "GPU", 0});
  }
  GPUSLICE_ASSIGN_OR_RETURN(placement::ClusterState cluster,
                            placement::ClusterState::Create(std::move(nodes)));
  std::vector<placement::PodRequest> requests;
  for (const TracePod& pod : workload) {
    if (pod.spec.num_gpu <= 0) continue;
    placement::PodSpec spec = pod.spec;
    spec.gpu_models.clear();
    GPUSLICE_ASSIGN_OR_RETURN(placement::PodRequest request, cluster.Resolve(spec));
    requests.push_back(request);
  }
  placement::PolicyOptions policy_options;
  policy_options.seed = options.seed;
  placement::SetWorkloadTaskTypes(policy_options, requests);
  GPUSLICE_ASSIGN_OR_RETURN(auto policy, placement::MakePolicy("gpuslice", policy_options));
  placement::PlacementEngine engine(std::move(cluster), std::move(policy));
  placement::PodId id = 0;
  for (const placement::PodRequest& request : requests) {
    GPUSLICE_ASSIGN_OR_RETURN(const placement::Placement placement, engine.Schedule(++id, request));
    (void)placement;
  }
  std::int64_t used = 0;
  for (const placement::NodeState& node : engine.state().nodes()) {
    for (const placement::GpuState& gpu : node.gpus) {
      if (gpu.milli_free < placement::kMilliPerGpu) ++used;
    }
  }
  rows.push_back(
      {"gpuslice fractions (online)", used, "placement engine, gpuslice policy, arrival order"});
  rows.push_back(
      {"lower bound",
       (whole_gpus * placement::kMilliPerGpu + share_milli + placement::kMilliPerGpu - 1) /
           placement::kMilliPerGpu,
       "total GPU demand, rounded up"});
  return rows;
}

}  // namespace gpuslice::simulator
