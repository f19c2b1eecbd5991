#include "placement/cluster_state.h"

#include <algorithm>
#include <utility>

namespace gpuslice::placement {

Result<ClusterState> ClusterState::Create(std::vector<NodeSpec> nodes) {
  ClusterState state;
  state.nodes_.reserve(nodes.size());
  for (NodeSpec& spec : nodes) {
    const std::string where = "node '" + spec.name + "'";
    if (spec.cpu_milli < 0 || spec.memory_mib < 0 || spec.gpu_count < 0 ||
        spec.gpu_memory_mib < 0) {
      return InvalidArgument(where +
                             ": cpu_milli, memory_mib, gpu count and GPU memory must be >= 0");
    }
    if (spec.gpu_count > 0 && spec.gpu_model.empty()) {
      return InvalidArgument(where + ": has " + std::to_string(spec.gpu_count) +
                             " GPUs but no GPU model");
    }
    NodeState node;
    node.cpu_free = spec.cpu_milli;
    node.memory_free = spec.memory_mib;
    if (spec.gpu_count > 0) {
      int id = state.ModelId(spec.gpu_model);
      if (id < 0) {
        if (state.model_names_.size() >= kMaxGpuModels) {
          return InvalidArgument(where + ": more than " + std::to_string(kMaxGpuModels) +
                                 " distinct GPU models");
        }
        id = static_cast<int>(state.model_names_.size());
        state.model_names_.push_back(spec.gpu_model);
      }
      node.model_id = id;
    }
    node.gpus.assign(static_cast<std::size_t>(spec.gpu_count),
                     GpuState{kMilliPerGpu, spec.gpu_memory_mib, 100});
    node.whole_free_gpus = spec.gpu_count;
    node.gpu_milli_free = static_cast<std::int64_t>(spec.gpu_count) * kMilliPerGpu;
    state.gpu_milli_capacity_ += node.gpu_milli_free;
    state.cpu_milli_capacity_ += spec.cpu_milli;
    node.spec = std::move(spec);
    state.nodes_.push_back(std::move(node));
  }
  return state;
}

int ClusterState::ModelId(std::string_view model) const {
  for (std::size_t i = 0; i < model_names_.size(); ++i) {
    if (model_names_[i] == model) return static_cast<int>(i);
  }
  return -1;
}

Result<PodRequest> ClusterState::Resolve(const PodSpec& pod) const {
  const std::string where = "pod '" + pod.name + "'";
  if (pod.cpu_milli < 0 || pod.memory_mib < 0) {
    return InvalidArgument(where + ": cpu_milli and memory_mib must be >= 0");
  }
  if (pod.num_gpu < 0) return InvalidArgument(where + ": num_gpu must be >= 0");
  if (pod.num_gpu == 0 && pod.gpu_milli != 0) {
    return InvalidArgument(where + ": gpu_milli is " + std::to_string(pod.gpu_milli) +
                           " but num_gpu is 0");
  }
  if (pod.num_gpu > 0 && (pod.gpu_milli <= 0 || pod.gpu_milli > kMilliPerGpu)) {
    return InvalidArgument(where + ": gpu_milli must be in 1..1000 when num_gpu > 0, got " +
                           std::to_string(pod.gpu_milli));
  }
  if (pod.num_gpu > 1 && pod.gpu_milli != kMilliPerGpu) {
    return InvalidArgument(where + ": a pod asking for " + std::to_string(pod.num_gpu) +
                           " GPUs must take whole GPUs (gpu_milli 1000), got " +
                           std::to_string(pod.gpu_milli));
  }
  if (pod.gpu_memory_mib < 0 || pod.gpu_compute_percent < 0 || pod.gpu_compute_percent > 100) {
    return InvalidArgument(where + ": GPU memory must be >= 0 and GPU compute in 0..100");
  }
  PodRequest request;
  request.cpu_milli = pod.cpu_milli;
  request.memory_mib = pod.memory_mib;
  request.num_gpu = pod.num_gpu;
  request.gpu_milli = pod.gpu_milli;
  request.gpu_memory_mib = pod.gpu_memory_mib;
  request.gpu_compute_percent = pod.gpu_compute_percent;
  if (!pod.gpu_models.empty()) {
    // A constraint naming only models no node has must match nothing, so keep a sentinel bit
    // outside the model range (model ids are < kMaxGpuModels only when that many models exist).
    bool any_known = false;
    for (const std::string& model : pod.gpu_models) {
      const int id = ModelId(model);
      if (id >= 0) {
        request.allowed_models |= std::uint64_t{1} << static_cast<unsigned>(id);
        any_known = true;
      }
    }
    if (!any_known) {
      if (model_names_.size() >= kMaxGpuModels) {
        return InvalidArgument(where + ": none of its GPU models exists in the cluster");
      }
      request.allowed_models = std::uint64_t{1} << static_cast<unsigned>(model_names_.size());
    }
  }
  return request;
}

bool ClusterState::GpuFits(const GpuState& gpu, const PodRequest& pod) {
  return gpu.milli_free >= pod.gpu_milli && gpu.memory_free_mib >= pod.gpu_memory_mib &&
         gpu.compute_free_percent >= pod.gpu_compute_percent;
}

bool ClusterState::Fits(const PodRequest& pod, int index) const {
  const NodeState& n = node(index);
  if (n.cpu_free < pod.cpu_milli || n.memory_free < pod.memory_mib) return false;
  if (!pod.wants_gpu()) return true;
  if (n.model_id < 0 || !pod.AllowsModel(n.model_id)) return false;
  if (pod.gpu_milli == kMilliPerGpu) {
    if (n.whole_free_gpus < pod.num_gpu) return false;
    if (pod.gpu_memory_mib == 0 && pod.gpu_compute_percent == 0) return true;
  }
  int fitting = 0;
  for (const GpuState& gpu : n.gpus) {
    if (GpuFits(gpu, pod) && ++fitting >= pod.num_gpu) return true;
  }
  return false;
}

Status ClusterState::Check(const PodRequest& pod, const Placement& placement) const {
  if (placement.node < 0 || static_cast<std::size_t>(placement.node) >= nodes_.size()) {
    return InvalidArgument("placement names node " + std::to_string(placement.node) + " of " +
                           std::to_string(nodes_.size()));
  }
  const NodeState& n = node(placement.node);
  const std::string where = "node '" + n.spec.name + "'";
  if (n.cpu_free < pod.cpu_milli) return ResourceExhausted(where + ": not enough CPU");
  if (n.memory_free < pod.memory_mib) return ResourceExhausted(where + ": not enough memory");
  if (static_cast<int>(placement.gpus.size()) != pod.num_gpu) {
    return InvalidArgument(where + ": pod needs " + std::to_string(pod.num_gpu) +
                           " GPUs, placement lists " + std::to_string(placement.gpus.size()));
  }
  if (!pod.wants_gpu()) return Status::Ok();
  if (!pod.AllowsModel(n.model_id)) {
    return FailedPrecondition(where + ": GPU model '" + n.spec.gpu_model +
                              "' is not one the pod allows");
  }
  for (std::size_t i = 0; i < placement.gpus.size(); ++i) {
    const int g = placement.gpus[i];
    if (g < 0 || g >= static_cast<int>(n.gpus.size())) {
      return InvalidArgument(where + ": no GPU " + std::to_string(g));
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (placement.gpus[j] == g) {
        return InvalidArgument(where + ": GPU " + std::to_string(g) + " listed twice");
      }
    }
    if (!GpuFits(n.gpus[static_cast<std::size_t>(g)], pod)) {
      return ResourceExhausted(where + ": GPU " + std::to_string(g) + " has not enough room");
    }
  }
  return Status::Ok();
}

void ClusterState::Apply(const PodRequest& pod, const Placement& placement, int sign) {
  NodeState& n = nodes_[static_cast<std::size_t>(placement.node)];
  n.cpu_free -= sign * pod.cpu_milli;
  n.memory_free -= sign * pod.memory_mib;
  cpu_milli_allocated_ += sign * pod.cpu_milli;
  for (const int g : placement.gpus) {
    GpuState& gpu = n.gpus[static_cast<std::size_t>(g)];
    if (gpu.milli_free == kMilliPerGpu) --n.whole_free_gpus;
    gpu.milli_free -= sign * pod.gpu_milli;
    gpu.memory_free_mib -= sign * pod.gpu_memory_mib;
    gpu.compute_free_percent -= sign * pod.gpu_compute_percent;
    if (gpu.milli_free == kMilliPerGpu) ++n.whole_free_gpus;
    n.gpu_milli_free -= sign * pod.gpu_milli;
    gpu_milli_allocated_ += sign * pod.gpu_milli;
  }
}

Status ClusterState::Place(PodId id, const PodRequest& pod, const Placement& placement) {
  if (pods_.contains(id)) return AlreadyExists("pod id " + std::to_string(id) + " is placed");
  GPUSLICE_RETURN_IF_ERROR(Check(pod, placement));
  Apply(pod, placement, +1);
  pods_.emplace(id, PlacedPod{pod, placement});
  return Status::Ok();
}

Status ClusterState::Remove(PodId id) {
  const auto it = pods_.find(id);
  if (it == pods_.end()) return NotFound("pod id " + std::to_string(id) + " is not placed");
  Apply(it->second.request, it->second.placement, -1);
  pods_.erase(it);
  return Status::Ok();
}

const Placement* ClusterState::Find(PodId id) const {
  const auto it = pods_.find(id);
  return it == pods_.end() ? nullptr : &it->second.placement;
}

}  // namespace gpuslice::placement
