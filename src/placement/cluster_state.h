// Cluster state for GPU placement: nodes (CPU, memory, GPUs of one model) and every GPU's free
// share, plus the pods placed on them.
//
// Units: CPU in milli-cores, memory in MiB, GPU share in milli-GPU (1000 = one whole GPU), GPU
// compute in percent of the GPU's time. Pure logic, no I/O; not thread safe (one scheduler thread
// owns a ClusterState).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace gpuslice::placement {

inline constexpr int kMilliPerGpu = 1000;
inline constexpr int kMaxGpuModels = 64;  // models are a bit mask in PodRequest

// A node as the cluster describes it.
struct NodeSpec {
  std::string name;
  std::int64_t cpu_milli = 0;
  std::int64_t memory_mib = 0;
  int gpu_count = 0;
  std::string gpu_model;            // empty for a CPU-only node
  std::int64_t gpu_memory_mib = 0;  // per GPU; 0 = not tracked (pods cannot ask for GPU memory)
};

// A pod's request as a workload file or the scheduler extender states it.
struct PodSpec {
  std::string name;
  std::int64_t cpu_milli = 0;
  std::int64_t memory_mib = 0;
  int num_gpu = 0;    // whole GPUs, or 1 for a share
  int gpu_milli = 0;  // per GPU; < 1000 only with num_gpu == 1 (a share); 0 when num_gpu == 0
  std::vector<std::string> gpu_models;  // allowed models ("A|B" in the trace); empty = any
  std::int64_t gpu_memory_mib = 0;      // gpuslice.io/gpu-memory per GPU; 0 = not requested
  int gpu_compute_percent = 0;          // gpuslice.io/gpu-compute; 0 = not requested
};

// A PodSpec checked and resolved against a cluster's model table.
struct PodRequest {
  std::int64_t cpu_milli = 0;
  std::int64_t memory_mib = 0;
  int num_gpu = 0;
  int gpu_milli = 0;
  std::uint64_t allowed_models = 0;  // bit i = model id i allowed; 0 = any model
  std::int64_t gpu_memory_mib = 0;
  int gpu_compute_percent = 0;

  bool is_share() const { return num_gpu == 1 && gpu_milli < kMilliPerGpu; }
  bool wants_gpu() const { return num_gpu > 0; }
  std::int64_t total_gpu_milli() const {
    return static_cast<std::int64_t>(num_gpu) * static_cast<std::int64_t>(gpu_milli);
  }
  bool AllowsModel(int model_id) const {
    return allowed_models == 0 ||
           (model_id >= 0 && ((allowed_models >> static_cast<unsigned>(model_id)) & 1U) != 0);
  }
};

// Where a pod goes: a node and the indices of the GPUs it uses on that node.
struct Placement {
  int node = -1;
  std::vector<int> gpus;
  friend bool operator==(const Placement&, const Placement&) = default;
};

struct GpuState {
  int milli_free = kMilliPerGpu;
  std::int64_t memory_free_mib = 0;
  int compute_free_percent = 100;
};

struct NodeState {
  NodeSpec spec;
  int model_id = -1;  // -1 for CPU-only nodes
  std::int64_t cpu_free = 0;
  std::int64_t memory_free = 0;
  std::vector<GpuState> gpus;
  int whole_free_gpus = 0;          // GPUs with nothing allocated
  std::int64_t gpu_milli_free = 0;  // sum over the node's GPUs
};

using PodId = std::uint64_t;

class ClusterState {
 public:
  // Checks every node (non-negative resources, at most kMaxGpuModels distinct models).
  static Result<ClusterState> Create(std::vector<NodeSpec> nodes);

  // Validates a pod and resolves its allowed models. A model that no node has is allowed but
  // matches nothing. Errors name the pod and the field.
  Result<PodRequest> Resolve(const PodSpec& pod) const;

  std::size_t node_count() const { return nodes_.size(); }
  const NodeState& node(int index) const { return nodes_[static_cast<std::size_t>(index)]; }
  const std::vector<NodeState>& nodes() const { return nodes_; }
  const std::vector<std::string>& model_names() const { return model_names_; }
  int ModelId(std::string_view model) const;  // -1 if no node has it

  // Whether `pod` fits `gpu` on its own terms (share, memory and compute room).
  static bool GpuFits(const GpuState& gpu, const PodRequest& pod);
  // Whether some placement of `pod` on `node` exists (CPU, memory, model, GPUs).
  bool Fits(const PodRequest& pod, int node) const;
  // Checks that `placement` is valid for `pod` now, without changing anything.
  Status Check(const PodRequest& pod, const Placement& placement) const;

  // Places a pod under a caller-chosen id; fails without changing state if the placement is not
  // valid or the id is in use.
  Status Place(PodId id, const PodRequest& pod, const Placement& placement);
  // Removes a placed pod, restoring exactly the resources it held.
  Status Remove(PodId id);
  // The placement of a placed pod, or nullptr.
  const Placement* Find(PodId id) const;

  std::int64_t gpu_milli_capacity() const { return gpu_milli_capacity_; }
  std::int64_t gpu_milli_allocated() const { return gpu_milli_allocated_; }
  std::int64_t cpu_milli_capacity() const { return cpu_milli_capacity_; }
  std::int64_t cpu_milli_allocated() const { return cpu_milli_allocated_; }
  std::size_t pod_count() const { return pods_.size(); }

 private:
  struct PlacedPod {
    PodRequest request;
    Placement placement;
  };
  void Apply(const PodRequest& pod, const Placement& placement, int sign);

  std::vector<NodeState> nodes_;
  std::vector<std::string> model_names_;
  std::unordered_map<PodId, PlacedPod> pods_;
  std::int64_t gpu_milli_capacity_ = 0;
  std::int64_t gpu_milli_allocated_ = 0;
  std::int64_t cpu_milli_capacity_ = 0;
  std::int64_t cpu_milli_allocated_ = 0;
};

}  // namespace gpuslice::placement
