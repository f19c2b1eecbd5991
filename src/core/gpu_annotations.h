// The two annotations the scheduler extender and the node agent share (docs/scheduler.md,
// "Annotations and node capacity"): the node's `gpuslice.io/gpus` (what it offers fractional
// pods, written by the node agent) and the pod's `gpuslice.io/assignment` (the extender's choice,
// written in the Binding, read by the node agent). Both are JSON strings with a version; keys are
// read as Go's encoding/json reads them (exact match first, then case-insensitively).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gpuslice {

// The member `key` of `object` (exact, else case-insensitive), or nullptr when absent or when
// `object` is not an object.
const nlohmann::json* FindKey(const nlohmann::json& object, std::string_view key);
// A string member, or "" when absent or not a string.
std::string StringKey(const nlohmann::json& object, std::string_view key);

// One GPU as the extender places it: the node agent's index and UUID.
struct AssignedGpu {
  int index = 0;
  std::string uuid;
  friend bool operator==(const AssignedGpu&, const AssignedGpu&) = default;
};

// The extender's choice for a pod, stored in the pod annotation gpuslice.io/assignment
// (version "v1").
struct GpuAssignment {
  std::string node;
  std::string container;
  std::vector<AssignedGpu> gpus;
  std::int64_t memory_bytes = 0;  // limit per GPU; 0 = whole GPU, no memory limit
  int compute_percent = 0;        // share of each GPU's time; 0 = whole GPU
  friend bool operator==(const GpuAssignment&, const GpuAssignment&) = default;
};

inline constexpr std::string_view kAssignmentVersion = "v1";
inline constexpr std::string_view kNodeGpusVersion = "v1";

std::string EncodeAssignment(const GpuAssignment& assignment);
// Errors name the annotation and the field (a missing node, an empty GPU list, a negative or
// out-of-range number, an unknown version).
Result<GpuAssignment> DecodeAssignment(std::string_view text);

// One GPU a node offers to fractional pods, from the node annotation gpuslice.io/gpus.
struct NodeGpu {
  int index = 0;
  std::string uuid;
  std::string model;
  std::int64_t memory_bytes = 0;
  friend bool operator==(const NodeGpu&, const NodeGpu&) = default;
};

std::string EncodeNodeGpus(const std::vector<NodeGpu>& gpus);
// GPUs sorted by index; checks versions, unique indices and UUIDs, memory > 0, one model.
Result<std::vector<NodeGpu>> DecodeNodeGpus(std::string_view text);

}  // namespace gpuslice
