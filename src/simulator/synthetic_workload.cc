#include "simulator/synthetic_workload.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <span>
#include <string>

#include "placement/rng.h"

namespace gpuslice::simulator {
namespace {

using placement::NodeSpec;
using placement::Rng;

template <typename T>
struct Weighted {
  T value;
  double weight;
};

template <typename T>
const T& Pick(Rng& rng, std::span<const Weighted<T>> choices) {
  double total = 0;
  for (const auto& c : choices) total += c.weight;
  double r = rng.Unit() * total;
  for (const auto& c : choices) {
    if (r < c.weight) return c.value;
    r -= c.weight;
  }
  return choices.back().value;
}

struct NodeShape {
  std::int64_t cpu_milli;
  std::int64_t memory_mib;
  int gpus;
  const char* model;
};

// Node shapes and their share of the trace's 1,213 GPU nodes, with generic model names.
constexpr Weighted<NodeShape> kNodeShapes[] = {
    {{96000, 393216, 8, "A100"}, 549}, {{104000, 524288, 2, "T4"}, 387},
    {{16000, 122880, 2, "P100"}, 107}, {{128000, 786432, 8, "H100"}, 39},
    {{32000, 131072, 4, "V100"}, 28},  {{64000, 262144, 2, "P100"}, 22},
    {{96000, 786432, 8, "V100"}, 21},  {{8000, 32768, 1, "V100"}, 19},
    {{96000, 393216, 4, "T4"}, 17},    {{128000, 1048576, 1, "A10"}, 2},
};

enum class PodKind { kCpuOnly, kWhole, kShare, kTwo, kFour, kEight };
// The trace's default pod list: 13.3 % CPU-only, 48 % one whole GPU, 37.8 % shares, and a few
// 2-, 4- and 8-GPU pods.
constexpr Weighted<PodKind> kPodKinds[] = {
    {PodKind::kCpuOnly, 1088}, {PodKind::kWhole, 3911}, {PodKind::kShare, 3078},
    {PodKind::kTwo, 16},       {PodKind::kFour, 15},    {PodKind::kEight, 44},
};
// The most requested GPU shares (milli-GPU).
constexpr Weighted<int> kShares[] = {
    {810, 1078}, {470, 750}, {320, 328}, {650, 253}, {230, 140}, {460, 128}, {590, 75},
    {500, 70},   {250, 60},  {100, 50},  {550, 40},  {700, 40},  {900, 30},
};
constexpr Weighted<std::int64_t> kCpuPerGpu[] = {
    {4000, 20}, {6000, 25}, {8000, 25}, {12000, 15}, {16000, 10}, {24000, 5},
};
constexpr Weighted<std::int64_t> kCpuOnlyCpu[] = {
    {1000, 15}, {2000, 20}, {4000, 25}, {8000, 20}, {16000, 12}, {32000, 8},
};
constexpr Weighted<std::int64_t> kMemoryPerCore[] = {{2048, 40}, {4096, 45}, {8192, 15}};

double StandardNormal(Rng& rng) {
  // Box-Muller; 1 - Unit() is in (0, 1].
  const double u = 1.0 - rng.Unit();
  const double v = rng.Unit();
  return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * std::numbers::pi * v);
}

}  // namespace

std::vector<NodeSpec> SyntheticCluster(const SyntheticOptions& options) {
  Rng rng(options.seed);
  std::vector<NodeSpec> nodes;
  for (int i = 0; i < options.node_count; ++i) {
    const NodeShape& shape = Pick<NodeShape>(rng, kNodeShapes);
    NodeSpec node;
    node.name = "synth-node-" + std::to_string(i);
    node.cpu_milli = shape.cpu_milli;
    node.memory_mib = shape.memory_mib;
    node.gpu_count = shape.gpus;
    node.gpu_model = shape.model;
    nodes.push_back(node);
  }
  return nodes;
}

std::vector<TracePod> SyntheticPods(const std::vector<NodeSpec>& cluster,
                                    const SyntheticOptions& options) {
  Rng rng(options.seed ^ 0x5eed5eed5eedULL);
  std::int64_t capacity = 0;
  std::vector<std::string> models;
  for (const NodeSpec& node : cluster) {
    capacity += static_cast<std::int64_t>(node.gpu_count) * placement::kMilliPerGpu;
    if (node.gpu_count > 0 &&
        std::find(models.begin(), models.end(), node.gpu_model) == models.end()) {
      models.push_back(node.gpu_model);
    }
  }
  const auto target =
      static_cast<std::int64_t>(options.demand_ratio * static_cast<double>(capacity));
  std::vector<TracePod> pods;
  std::int64_t demand = 0;
  double clock_s = 0;
  while (demand < target) {
    TracePod pod;
    pod.spec.name = "synth-pod-" + std::to_string(pods.size());
    const PodKind kind = Pick<PodKind>(rng, kPodKinds);
    switch (kind) {
      case PodKind::kCpuOnly:
        pod.spec.cpu_milli = Pick<std::int64_t>(rng, kCpuOnlyCpu);
        break;
      case PodKind::kWhole:
      case PodKind::kTwo:
      case PodKind::kFour:
      case PodKind::kEight:
        pod.spec.num_gpu = kind == PodKind::kWhole  ? 1
                           : kind == PodKind::kTwo  ? 2
                           : kind == PodKind::kFour ? 4
                                                    : 8;
        pod.spec.gpu_milli = placement::kMilliPerGpu;
        pod.spec.cpu_milli = Pick<std::int64_t>(rng, kCpuPerGpu) * pod.spec.num_gpu;
        break;
      case PodKind::kShare:
        pod.spec.num_gpu = 1;
        pod.spec.gpu_milli = Pick<int>(rng, kShares);
        pod.spec.cpu_milli = Pick<std::int64_t>(rng, kCpuPerGpu) / 2;
        break;
    }
    pod.spec.memory_mib = pod.spec.cpu_milli / 1000 * Pick<std::int64_t>(rng, kMemoryPerCore);
    // About 5 % of GPU pods insist on one model, like the trace's gpuspec workloads.
    if (pod.spec.num_gpu > 0 && !models.empty() && rng.Unit() < 0.05) {
      pod.spec.gpu_models.push_back(models[rng.Below(models.size())]);
    }
    // Arrivals every ~20 s on average; run times log-normal with a median of ~1 day, so a replay
    // loads the cluster close to its capacity and some pods have to wait.
    clock_s += -std::log(1.0 - rng.Unit()) * 20.0;
    pod.creation_time = static_cast<std::int64_t>(clock_s);
    pod.deletion_time = pod.creation_time + 60 +
                        static_cast<std::int64_t>(std::exp(11.4 + 1.0 * StandardNormal(rng)));
    pod.phase = "Running";
    demand += static_cast<std::int64_t>(pod.spec.num_gpu) * pod.spec.gpu_milli;
    pods.push_back(std::move(pod));
  }
  return pods;
}

}  // namespace gpuslice::simulator
