// Workload variants generated from a trace pod list, the way the FGD paper's workloads are built
// from openb_pod_list_default: pods re-sampled from the base list so that one kind of pod takes a
// requested share (GPU-sharing pods' and multi-GPU pods' share of the GPU demand, as in the
// gpushareNN and multigpuNN files; CPU-only pods' share of the pods), and GPU pods restricted to
// GPU models drawn from a pool of model sets (as in the gpuspecNN files). Deterministic by seed.
//
// Method (docs/simulator.md, "Workload variants"): the base pods fall into four classes —
// CPU-only, sharing (one GPU, < 1000 milli), one whole GPU, multi-GPU. The variant has as many
// pods as the base; CPU-only pods take `cpu_only` of them; the GPU pods are split between the
// three GPU classes so that each class's expected share of the GPU demand is the requested one
// (classes without a requested share keep their base proportions in what remains); each class's
// pods are drawn uniformly with replacement from the base pods of that class. Then
// `model_restricted` of the GPU pods, chosen uniformly, get a model set drawn from the pool by
// weight among the sets that can host the pod on some node (GPU count, CPU, memory). Finally the
// pods are shuffled. Times are dropped (fill mode only).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "placement/cluster_state.h"
#include "simulator/trace_csv.h"

namespace gpuslice::simulator {

// Requested shares, each in [0, 1]; unset keeps the base list's share.
struct VariantMix {
  std::optional<double> model_restricted;  // of the GPU pods (count)
  std::optional<double> sharing;           // of the GPU demand (milli-GPU)
  std::optional<double> multi_gpu;         // of the GPU demand
  std::optional<double> cpu_only;          // of the pods (count)
};

// A set of GPU models a pod may be restricted to, and its weight in the pool.
struct ModelSetWeight {
  std::vector<std::string> models;
  double weight = 0;
};

// The model sets of a pod list's restricted pods, weighted by how many pods have them (e.g. the
// trace's openb_pod_list_gpuspec10.csv); empty when it restricts none.
std::vector<ModelSetWeight> ModelSetsOf(const std::vector<TracePod>& pods);
// Each single GPU model of the cluster, weighted by its GPU count.
std::vector<ModelSetWeight> SingleModelSets(const std::vector<placement::NodeSpec>& nodes);

Result<std::vector<TracePod>> GenerateVariant(const std::vector<TracePod>& base,
                                              const std::vector<placement::NodeSpec>& nodes,
                                              const std::vector<ModelSetWeight>& model_sets,
                                              const VariantMix& mix, std::uint64_t seed);

// A named variant: "<family><percent>-s<seed>", family one of spec (model_restricted), share
// (sharing), multi (multi_gpu), cpu (cpu_only); e.g. "spec30-s2" = 30 % of GPU pods restricted to
// models, generator seed 2.
struct VariantName {
  std::string name;
  VariantMix mix;
  std::uint64_t seed = 0;
};
Result<VariantName> ParseVariantName(std::string_view name);

// The standard variant sets, fixed before any tuning (docs/simulator.md): "tuning" (generator
// seed 1; spec 10/30, share 40/80, multi 20/40, cpu 5/30) and "reporting" (generator seeds 2 and
// 3; spec 20/40, share 60/100, multi 30/50, cpu 20/40). Also accepts "all" (both) or a
// comma-separated list of variant names.
Result<std::vector<VariantName>> VariantSet(std::string_view spec);

// The pod list in the trace's CSV format (name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec).
std::string PodCsv(const std::vector<TracePod>& pods);

}  // namespace gpuslice::simulator
