// What the extender reads from Kubernetes objects (v1 Pod and Node, as the API server sends them
// as JSON). Keys are read as Go's encoding/json reads them: exact match first, then
// case-insensitively. The two annotations it shares with the node agent are in
// core/gpu_annotations.h.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/gpu_annotations.h"
#include "core/status.h"

namespace gpuslice::scheduler {

// The annotation codecs live in core (the node agent uses them too); named here as well so that
// scheduler code and its tests can keep saying scheduler::GpuAssignment.
using gpuslice::AssignedGpu;
using gpuslice::DecodeAssignment;
using gpuslice::DecodeNodeGpus;
using gpuslice::EncodeAssignment;
using gpuslice::EncodeNodeGpus;
using gpuslice::FindKey;
using gpuslice::GpuAssignment;
using gpuslice::kAssignmentVersion;
using gpuslice::kNodeGpusVersion;
using gpuslice::NodeGpu;
using gpuslice::StringKey;

// What one container asks of gpuslice's resources. A pod may have at most one such container.
struct GpuRequest {
  std::string container;
  int gpu_count = 0;                // gpuslice.io/gpu; 1 when only memory/compute are set
  std::int64_t memory_bytes = 0;    // gpuslice.io/gpu-memory per GPU; 0 = not requested
  int compute_percent = 0;          // gpuslice.io/gpu-compute, 1..100; 0 = not requested
  std::vector<std::string> models;  // from the gpuslice.io/gpu-models annotation; empty = any

  bool wants_gpu() const { return gpu_count > 0; }
  // A share of one GPU (memory or compute given) rather than whole GPUs.
  bool is_share() const { return memory_bytes > 0 || compute_percent > 0; }
  friend bool operator==(const GpuRequest&, const GpuRequest&) = default;
};

enum class PodPhase { kPending, kRunning, kSucceeded, kFailed, kUnknown };

struct PodInfo {
  std::string uid;
  std::string namespace_name;
  std::string name;
  std::string node_name;  // spec.nodeName; empty while pending
  PodPhase phase = PodPhase::kPending;
  GpuRequest request;
  // The gpuslice.io/assignment annotation, when present and valid; assignment_error says why
  // a present annotation was not usable.
  std::optional<GpuAssignment> assignment;
  std::string assignment_error;

  // Succeeded and Failed pods hold no resources any more.
  bool terminated() const { return phase == PodPhase::kSucceeded || phase == PodPhase::kFailed; }
  std::string Describe() const;  // "namespace/name"
};

// Reads a v1 Pod. Errors (bad quantities, out-of-range compute, two GPU containers, no uid) name
// the pod, the container and the field.
Result<PodInfo> ParsePod(const nlohmann::json& pod);

struct NodeInfo {
  std::string name;
  std::vector<NodeGpu> gpus;   // empty when the node publishes none or publishes garbage
  std::string capacity_error;  // why a present gpuslice.io/gpus annotation was rejected
};

// Reads a v1 Node. Only a missing name is an error; a bad capacity annotation is recorded in
// capacity_error so the node is reported as failing rather than dropped silently.
Result<NodeInfo> ParseNode(const nlohmann::json& node);

}  // namespace gpuslice::scheduler
