#include "core/gpu_annotations.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

#include "core/resource_names.h"

namespace gpuslice {
namespace {

using nlohmann::json;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

Result<json> ParseJsonObject(std::string_view text, std::string_view what) {
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) {
    return InvalidArgument(std::string(what) + " is not a JSON object");
  }
  if (StringKey(value, "version") != "v1") {
    return InvalidArgument(std::string(what) + ": version must be \"v1\", got '" +
                           StringKey(value, "version") + "'");
  }
  return value;
}

Result<std::int64_t> NonNegativeInt(const json& object, std::string_view key,
                                    std::string_view where) {
  const json* value = FindKey(object, key);
  if (value == nullptr || !value->is_number_integer() || value->get<std::int64_t>() < 0) {
    return InvalidArgument(std::string(where) + ": '" + std::string(key) +
                           "' must be a non-negative integer");
  }
  return value->get<std::int64_t>();
}

}  // namespace

const json* FindKey(const json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto exact = object.find(std::string(key));
  if (exact != object.end()) return &*exact;
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (EqualsIgnoreCase(it.key(), key)) return &*it;
  }
  return nullptr;
}

std::string StringKey(const json& object, std::string_view key) {
  const json* value = FindKey(object, key);
  return value != nullptr && value->is_string() ? value->get<std::string>() : std::string();
}

std::string EncodeAssignment(const GpuAssignment& assignment) {
  json gpus = json::array();
  for (const AssignedGpu& gpu : assignment.gpus) {
    gpus.push_back({{"index", gpu.index}, {"uuid", gpu.uuid}});
  }
  return json{
      {"version", kAssignmentVersion},          {"node", assignment.node},
      {"container", assignment.container},      {"gpus", gpus},
      {"memoryBytes", assignment.memory_bytes}, {"computePercent", assignment.compute_percent}}
      .dump();
}

Result<GpuAssignment> DecodeAssignment(std::string_view text) {
  const std::string what = std::string(names::kAnnotationPodAssignment);
  GPUSLICE_ASSIGN_OR_RETURN(const json value, ParseJsonObject(text, what));
  GpuAssignment assignment;
  assignment.node = StringKey(value, "node");
  assignment.container = StringKey(value, "container");
  if (assignment.node.empty()) return InvalidArgument(what + ": 'node' is missing");
  const json* gpus = FindKey(value, "gpus");
  if (gpus == nullptr || !gpus->is_array() || gpus->empty()) {
    return InvalidArgument(what + ": 'gpus' must be a non-empty list");
  }
  for (const json& gpu : *gpus) {
    GPUSLICE_ASSIGN_OR_RETURN(const std::int64_t index, NonNegativeInt(gpu, "index", what));
    if (index > 1024) return InvalidArgument(what + ": GPU index " + std::to_string(index));
    assignment.gpus.push_back({static_cast<int>(index), StringKey(gpu, "uuid")});
  }
  GPUSLICE_ASSIGN_OR_RETURN(assignment.memory_bytes, NonNegativeInt(value, "memoryBytes", what));
  GPUSLICE_ASSIGN_OR_RETURN(const std::int64_t compute,
                            NonNegativeInt(value, "computePercent", what));
  if (compute > 100) return InvalidArgument(what + ": computePercent must be 0..100");
  assignment.compute_percent = static_cast<int>(compute);
  return assignment;
}

std::string EncodeNodeGpus(const std::vector<NodeGpu>& gpus) {
  json list = json::array();
  for (const NodeGpu& gpu : gpus) {
    list.push_back({{"index", gpu.index},
                    {"uuid", gpu.uuid},
                    {"model", gpu.model},
                    {"memoryBytes", gpu.memory_bytes}});
  }
  return json{{"version", kNodeGpusVersion}, {"gpus", list}}.dump();
}

Result<std::vector<NodeGpu>> DecodeNodeGpus(std::string_view text) {
  const std::string what = std::string(names::kAnnotationNodeGpus);
  GPUSLICE_ASSIGN_OR_RETURN(const json value, ParseJsonObject(text, what));
  const json* list = FindKey(value, "gpus");
  if (list == nullptr || !list->is_array())
    return InvalidArgument(what + ": 'gpus' must be a list");
  std::vector<NodeGpu> gpus;
  std::set<std::int64_t> indices;
  std::set<std::string> uuids;
  for (const json& entry : *list) {
    NodeGpu gpu;
    GPUSLICE_ASSIGN_OR_RETURN(const std::int64_t index, NonNegativeInt(entry, "index", what));
    GPUSLICE_ASSIGN_OR_RETURN(gpu.memory_bytes, NonNegativeInt(entry, "memoryBytes", what));
    gpu.index = static_cast<int>(std::min<std::int64_t>(index, 1 << 20));
    gpu.uuid = StringKey(entry, "uuid");
    gpu.model = StringKey(entry, "model");
    const std::string where = what + ": GPU " + std::to_string(index);
    if (gpu.uuid.empty() || gpu.model.empty()) {
      return InvalidArgument(where + ": 'uuid' and 'model' must be non-empty strings");
    }
    if (gpu.memory_bytes <= 0) return InvalidArgument(where + ": 'memoryBytes' must be > 0");
    if (!indices.insert(index).second) return InvalidArgument(where + ": index listed twice");
    if (!uuids.insert(gpu.uuid).second) {
      return InvalidArgument(where + ": uuid '" + gpu.uuid + "' listed twice");
    }
    if (!gpus.empty() && gpus.front().model != gpu.model) {
      return InvalidArgument(what + ": GPUs of different models ('" + gpus.front().model + "', '" +
                             gpu.model + "') on one node are not supported");
    }
    gpus.push_back(std::move(gpu));
  }
  if (gpus.size() > 64) return InvalidArgument(what + ": more than 64 GPUs");
  std::sort(gpus.begin(), gpus.end(),
            [](const NodeGpu& a, const NodeGpu& b) { return a.index < b.index; });
  return gpus;
}

}  // namespace gpuslice
