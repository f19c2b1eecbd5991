#include "scheduler/kube_objects.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

#include "core/resource_names.h"
#include "scheduler/quantity.h"

namespace gpuslice::scheduler {
namespace {

using nlohmann::json;

// A quantity given as a JSON string (what the API server sends) or a plain number.
Result<std::int64_t> QuantityValue(const json& value) {
  if (value.is_string()) return ParseQuantity(value.get_ref<const std::string&>());
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_number_unsigned() && value.get<std::uint64_t>() <= INT64_MAX) {
    return static_cast<std::int64_t>(value.get<std::uint64_t>());
  }
  return InvalidArgument("quantity must be a string like \"8Gi\", got " + value.dump());
}

// The value of resource `name` in a container's limits, else its requests; nullopt if absent.
Result<std::optional<std::int64_t>> ContainerResource(const json& container,
                                                      std::string_view name) {
  const json* resources = FindKey(container, "resources");
  if (resources == nullptr) return std::optional<std::int64_t>();
  std::optional<std::int64_t> found;
  for (const std::string_view section : {"limits", "requests"}) {
    const json* map = FindKey(*resources, section);
    if (map == nullptr || !map->is_object()) continue;
    const auto it = map->find(std::string(name));
    if (it == map->end()) continue;
    Result<std::int64_t> value = QuantityValue(*it);
    if (!value.ok()) {
      return value.status().WithContext("resources." + std::string(section) + "[" +
                                        std::string(name) + "]");
    }
    if (found && *found != *value) {
      return InvalidArgument("resources.limits and resources.requests differ for " +
                             std::string(name) + " (extended resources need them equal)");
    }
    if (!found) found = *value;
  }
  return found;
}

// The gpuslice request of one container, or a request with gpu_count 0 when it asks none.
Result<GpuRequest> ContainerRequest(const json& container) {
  GpuRequest request;
  request.container = StringKey(container, "name");
  GPUSLICE_ASSIGN_OR_RETURN(const auto count, ContainerResource(container, names::kGpusliceGpu));
  GPUSLICE_ASSIGN_OR_RETURN(const auto memory,
                            ContainerResource(container, names::kGpusliceGpuMemory));
  GPUSLICE_ASSIGN_OR_RETURN(const auto compute,
                            ContainerResource(container, names::kGpusliceGpuCompute));
  if (memory) {
    if (*memory <= 0) return InvalidArgument("gpuslice.io/gpu-memory must be > 0");
    request.memory_bytes = *memory;
  }
  if (compute) {
    if (*compute < 1 || *compute > 100) {
      return InvalidArgument("gpuslice.io/gpu-compute must be 1..100 (percent of a GPU), got " +
                             std::to_string(*compute));
    }
    request.compute_percent = static_cast<int>(*compute);
  }
  if (count) {
    if (*count < 0 || *count > 64) {
      return InvalidArgument("gpuslice.io/gpu must be 0..64, got " + std::to_string(*count));
    }
    request.gpu_count = static_cast<int>(*count);
    if (request.gpu_count == 0 && request.is_share()) {
      return InvalidArgument("gpuslice.io/gpu is 0 but gpu-memory or gpu-compute is set");
    }
  } else if (request.is_share()) {
    request.gpu_count = 1;
  }
  if (request.gpu_count > 1 && request.is_share()) {
    return InvalidArgument(
        "gpuslice.io/gpu is " + std::to_string(request.gpu_count) +
        ": more than one GPU means whole GPUs; gpu-memory and gpu-compute apply to a share of "
        "one GPU (ask for gpuslice.io/gpu: 1, or drop gpu-memory/gpu-compute)");
  }
  return request;
}

std::vector<std::string> SplitModels(std::string_view text) {
  std::vector<std::string> models;
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front())) != 0) {
      item.remove_prefix(1);
    }
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back())) != 0) {
      item.remove_suffix(1);
    }
    if (!item.empty()) models.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return models;
}

PodPhase ParsePhase(std::string_view phase) {
  if (phase == "Running") return PodPhase::kRunning;
  if (phase == "Succeeded") return PodPhase::kSucceeded;
  if (phase == "Failed") return PodPhase::kFailed;
  if (phase == "Unknown") return PodPhase::kUnknown;
  return PodPhase::kPending;
}

const json* MapEntry(const json& map, std::string_view key) {
  if (!map.is_object()) return nullptr;
  const auto it = map.find(std::string(key));
  return it == map.end() ? nullptr : &*it;
}

}  // namespace

std::string PodInfo::Describe() const { return namespace_name + "/" + name; }

Result<PodInfo> ParsePod(const json& pod) {
  if (!pod.is_object()) return InvalidArgument("pod is not a JSON object");
  static const json kEmpty = json::object();
  const json* metadata_ptr = FindKey(pod, "metadata");
  const json& metadata = metadata_ptr != nullptr ? *metadata_ptr : kEmpty;
  PodInfo info;
  info.uid = StringKey(metadata, "uid");
  info.name = StringKey(metadata, "name");
  info.namespace_name = StringKey(metadata, "namespace");
  if (info.namespace_name.empty()) info.namespace_name = "default";
  const std::string where = "pod '" + info.Describe() + "'";
  if (info.uid.empty() || info.name.empty()) {
    return InvalidArgument(where + ": metadata.uid and metadata.name are required");
  }
  const json* spec_ptr = FindKey(pod, "spec");
  const json& spec = spec_ptr != nullptr ? *spec_ptr : kEmpty;
  info.node_name = StringKey(spec, "nodeName");
  const json* status = FindKey(pod, "status");
  if (status != nullptr) info.phase = ParsePhase(StringKey(*status, "phase"));

  for (const std::string_view list : {"initContainers", "containers"}) {
    const json* containers = FindKey(spec, list);
    if (containers == nullptr || !containers->is_array()) continue;
    for (const json& container : *containers) {
      Result<GpuRequest> request = ContainerRequest(container);
      const std::string at = where + " container '" + StringKey(container, "name") + "'";
      if (!request.ok()) return request.status().WithContext(at);
      if (!request->wants_gpu()) continue;
      if (list == "initContainers") {
        return InvalidArgument(at + ": init containers cannot request gpuslice.io resources");
      }
      if (info.request.wants_gpu()) {
        return InvalidArgument(where + ": containers '" + info.request.container + "' and '" +
                               request->container +
                               "' both request gpuslice.io resources; only one container per "
                               "pod may");
      }
      info.request = *std::move(request);
    }
  }
  const json* annotations = FindKey(metadata, "annotations");
  if (annotations != nullptr && annotations->is_object()) {
    // Map keys (annotations) match exactly, as Go's map[string]string does.
    const json* models = MapEntry(*annotations, names::kAnnotationPodGpuModels);
    if (models != nullptr && models->is_string()) {
      info.request.models = SplitModels(models->get<std::string>());
    }
    const json* assignment = MapEntry(*annotations, names::kAnnotationPodAssignment);
    if (assignment != nullptr) {
      Result<GpuAssignment> decoded = assignment->is_string()
                                          ? DecodeAssignment(assignment->get<std::string>())
                                          : Result<GpuAssignment>(InvalidArgument("not a string"));
      if (decoded.ok()) {
        info.assignment = *std::move(decoded);
      } else {
        info.assignment_error = decoded.status().message();
      }
    }
  }
  return info;
}

Result<NodeInfo> ParseNode(const json& node) {
  NodeInfo info;
  const json* metadata = FindKey(node, "metadata");
  if (metadata != nullptr) info.name = StringKey(*metadata, "name");
  if (info.name.empty()) return InvalidArgument("node without metadata.name");
  const json* annotations = metadata != nullptr ? FindKey(*metadata, "annotations") : nullptr;
  const json* gpus =
      annotations != nullptr ? MapEntry(*annotations, names::kAnnotationNodeGpus) : nullptr;
  if (gpus == nullptr) return info;
  Result<std::vector<NodeGpu>> decoded =
      gpus->is_string() ? DecodeNodeGpus(gpus->get<std::string>())
                        : Result<std::vector<NodeGpu>>(InvalidArgument("not a string"));
  if (decoded.ok()) {
    info.gpus = *std::move(decoded);
  } else {
    info.capacity_error = "node '" + info.name + "': " + decoded.status().message();
  }
  return info;
}

}  // namespace gpuslice::scheduler
